"""The position-wise feed-forward network of a transformer block, plain or gated.

Example:

>>> import numpy as np
>>> tuple(FeedForward(intermediate_dim=64, activation="swiglu")(np.ones((2, 3, 16))).shape)
(2, 3, 16)
"""

import keras

from keras_transformers.dropout import Dropout
from keras_transformers.initializers import clone_initializer

PACKAGE = "keras_transformers"


def gelu_tanh(x):
    """GELU with the tanh approximation (GPT-2's and T5 v1.1's "gelu_new")."""
    return keras.activations.gelu(x, approximate=True)


def gelu_exact(x):
    """GELU with the error function (BERT, ViT)."""
    return keras.activations.gelu(x, approximate=False)


# activation name -> (function, gated). A gated network computes act(x W_gate) * (x W_up).
ACTIVATIONS = {
    "relu": (keras.activations.relu, False),
    "gelu": (gelu_exact, False),
    "gelu_tanh": (gelu_tanh, False),
    "silu": (keras.activations.silu, False),
    "geglu": (gelu_exact, True),
    "geglu_tanh": (gelu_tanh, True),
    "swiglu": (keras.activations.silu, True),
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeedForward(keras.layers.Layer):
    """`W_out(act(W_in x))`, or gated: `W_out(act(W_gate x) * W_up x)` (Shazeer, 2020).

    Args:
        intermediate_dim: width of the hidden layer.
        activation: one of `relu`, `gelu` (erf), `gelu_tanh`, `silu`, and the gated
            `geglu`, `geglu_tanh` (T5 v1.1), `swiglu` (Llama).
        output_dim: width of the output; the input's width when None.
        use_bias: biases in the dense layers (False for T5 and Llama).
        dropout: rate on the hidden layer, after the activation (as in T5).
        kernel_initializer, bias_initializer: for the dense layers.

    Sublayers: `intermediate_dense` (W_in or W_up), `gate_dense` (gated only), `output_dense`.
    """

    def __init__(self, intermediate_dim, activation="gelu", output_dim=None, use_bias=True,
                 dropout=0.0, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}. Choose one of {sorted(ACTIVATIONS)}."
            )
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.output_dim = output_dim
        self.use_bias = use_bias
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.activation_fn, self.gated = ACTIVATIONS[activation]
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def _dense(self, units, name):
        return keras.layers.Dense(
            units, use_bias=self.use_bias,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy, name=name,
        )

    def build(self, inputs_shape):
        self.intermediate_dense = self._dense(self.intermediate_dim, "intermediate")
        self.intermediate_dense.build(inputs_shape)
        if self.gated:
            self.gate_dense = self._dense(self.intermediate_dim, "gate")
            self.gate_dense.build(inputs_shape)
        self.output_dense = self._dense(self.output_dim or inputs_shape[-1], "output")
        self.output_dense.build((*inputs_shape[:-1], self.intermediate_dim))

    def call(self, inputs, training=None):
        if self.gated:
            hidden = self.activation_fn(self.gate_dense(inputs)) * self.intermediate_dense(inputs)
        else:
            hidden = self.activation_fn(self.intermediate_dense(inputs))
        hidden = self.dropout_layer(hidden, training=training)
        return self.output_dense(hidden)

    def get_config(self):
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "output_dim": self.output_dim,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
