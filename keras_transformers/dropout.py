"""Dropout whose random mask comes from a counter-based hash: cheap under XLA on a CPU.

`keras.layers.Dropout` draws its mask with `tf.random.stateless_uniform` (algorithm
"auto_select") on TensorFlow. Compiled by XLA for a CPU with a seed known only at run time,
that draw costs about a second per million numbers on this project's 2-core machine, so
dropout took a quarter of a small BERT's training step (see BENCHMARKS.md). The mask here is
murmur3's 32-bit finalizer applied to each element's index mixed with the seed: a handful of
integer operations that XLA fuses with the multiply, about as cheap as the multiply itself.
The numbers are the same on every backend for the same seed (`hash_uniform_bits`).

Example:

>>> import numpy as np
>>> layer = Dropout(0.5, seed=1)
>>> out = np.asarray(layer(np.ones((4, 1000), "float32"), training=True))
>>> sorted(set(out.ravel().tolist())), round(float((out == 0).mean()), 1)
([0.0, 2.0], 0.5)
>>> bool((np.asarray(layer(np.ones((2, 3)))) == 1).all())  # not training: unchanged
True
"""

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_transformers"

_GOLDEN = 0x9E3779B1  # 2^32 / golden ratio, odd: multiplying by it is a bijection mod 2^32
_MIX_1, _MIX_2 = 0x85EBCA6B, 0xC2B2AE35  # murmur3's finalizer constants


def _u32(value):
    return ops.convert_to_tensor(np.uint32(value), dtype="uint32")


def fmix32(h):
    """murmur3's 32-bit finalizer: a bijection of uint32 with full avalanche."""
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))
    h = ops.multiply(h, _u32(_MIX_1))
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(13)))
    h = ops.multiply(h, _u32(_MIX_2))
    return ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))


def hash_uniform_bits(shape, seed):
    """uint32 random bits of `shape`: `fmix32(index * golden ^ key)`, key from `seed`.

    Args:
        shape: a tuple of ints, or of ints and int32 scalars (dimensions known at run time).
        seed: int32 or uint32 `[2]` (a `keras.random.SeedGenerator` draw).
    """
    seed = ops.cast(seed, "uint32")
    key = fmix32(ops.bitwise_xor(ops.multiply(seed[0], _u32(_GOLDEN)), fmix32(seed[1])))
    if all(isinstance(dim, int) for dim in shape):
        size = int(np.prod(shape))
    else:
        size = ops.prod(ops.stack([ops.cast(dim, "int32") for dim in shape]))
    index = ops.cast(ops.arange(size, dtype="int32"), "uint32")
    bits = fmix32(ops.bitwise_xor(ops.multiply(index, _u32(_GOLDEN)), key))
    return ops.reshape(bits, shape)


def draw_seed(seed_generator):
    """The next `[2]` seed of a `keras.random.SeedGenerator`, as int32 on every backend."""
    seed = seed_generator.next()
    # TensorFlow keeps the state in int64: fold it into int32 the way Keras' own ops do.
    return ops.cast(ops.mod(seed, 2**31 - 1), "int32")


def dropout(inputs, rate, seed, noise_shape=None):
    """Zero each element with probability `rate` (to 1 / 2^32) and scale the rest by
    `1 / (1 - rate)`; `seed` is an int32 `[2]`; `noise_shape` broadcasts one mask."""
    shape = tuple(ops.shape(inputs)) if noise_shape is None else tuple(noise_shape)
    threshold = _u32(min(int(round(rate * 2**32)), 2**32 - 1))
    keep = ops.greater_equal(hash_uniform_bits(shape, seed), threshold)
    scaled = ops.divide(inputs, ops.cast(1.0 - rate, inputs.dtype))
    return ops.where(keep, scaled, ops.zeros_like(inputs))


@keras.saving.register_keras_serializable(package=PACKAGE)
class Dropout(keras.layers.Layer):
    """`keras.layers.Dropout` with the hashed mask of `dropout` (see the module docstring).

    Args:
        rate: the fraction of elements zeroed while training, in [0, 1).
        noise_shape: the mask's shape, broadcast over the input (None entries take the
            input's size); the input's shape when None.
        seed: an int for a reproducible mask sequence; random when None.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}.")
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        noise_shape = None
        if self.noise_shape is not None:
            noise_shape = tuple(ops.shape(inputs)[i] if dim is None else dim
                                for i, dim in enumerate(self.noise_shape))
        return dropout(inputs, self.rate, draw_seed(self.seed_generator), noise_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}
