"""RMSNorm (Zhang & Sennrich, 2019), as in T5 and Llama. LayerNorm is Keras' own.

Example:

>>> import numpy as np
>>> tuple(RMSNorm(epsilon=1e-6)(np.ones((2, 3, 8), "float32")).shape)
(2, 3, 8)
"""

import keras
from keras import ops

PACKAGE = "keras_transformers"


@keras.saving.register_keras_serializable(package=PACKAGE)
class RMSNorm(keras.layers.Layer):
    """`x / sqrt(mean(x ** 2) + epsilon) * scale`: no centering, no bias.

    Computed in float32 whatever the compute dtype, as T5 and Llama do.

    Args:
        epsilon: added to the mean square; 1e-6 in T5, 1e-5 in SmolLM2.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, inputs_shape):
        self.scale = self.add_weight(name="scale", shape=(inputs_shape[-1],),
                                     initializer="ones")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x * ops.cast(self.scale, "float32"), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
