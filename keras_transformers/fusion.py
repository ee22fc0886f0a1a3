"""`unfused(x)`: `x`, which TensorFlow's XLA may not fuse into the product that reads it.

TensorFlow 2.21's XLA on CPU drops the batch dimension of a single row and then fuses the
producer of a matrix-vector product's matrix into the product, emitted as a naive loop that
reads the matrix column by column. The attention kernels are 3-D variables read as 2-D
matrices, so when a model decodes one prompt each of their products became such a loop
(SmolLM2-135M: 90 of its 271 products per token). Behind an optimization barrier the reshaped
kernel is no longer a producer to fuse, and the product stays XLA's matrix-vector routine.

Only where it matters and where it runs: under TensorFlow inside an XLA compilation (a
`jit_compile=True` function, the SavedModel `generate` signature). Everywhere else `x` comes
back as it is: JAX (its XLA sends every product to YNNPACK), TensorFlow without XLA (which has
no kernel for the barrier; TFLite conversion traces this way), eager calls. The barrier has no
gradient: use it on inference paths (a decoding step), not in training.

Example:

>>> import numpy as np
>>> unfused(np.ones((2, 3), "float32")).shape         # eager: the same tensor
(2, 3)
"""

import keras


def unfused(x):
    """`x` behind an XLA optimization barrier when TensorFlow compiles it with XLA, else `x`.

    Args:
        x: a tensor (typically a reshaped kernel about to enter a matrix product).

    Returns:
        A tensor equal to `x`.
    """
    if keras.backend.backend() != "tensorflow" or not in_xla_compilation():
        return x
    from tensorflow.compiler.tf2xla.python import xla

    return xla.optimization_barrier(x)[0]


def in_xla_compilation():
    """Whether TensorFlow is tracing a graph that XLA compiles (never when eager)."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
