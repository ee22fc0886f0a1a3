"""Position information: sinusoidal, learned, T5 relative bias, and rotary embeddings.

Example:

>>> import numpy as np
>>> x = np.zeros((2, 5, 16), "float32")
>>> tuple(SinusoidalPositionEncoding()(x).shape)           # added to token embeddings
(2, 5, 16)
>>> q = np.ones((2, 5, 4, 8), "float32")           # [batch, length, heads, head_dim]
>>> tuple(RotaryEmbedding()(q).shape)                     # applied to queries and keys
(2, 5, 4, 8)
"""

import math

import keras
from keras import ops

PACKAGE = "keras_transformers"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sine/cosine encodings of Vaswani et al. (2017), section 3.5.

    `PE[pos, 2i] = sin(pos / max_wavelength ** (2i / d))` and
    `PE[pos, 2i + 1] = cos(pos / max_wavelength ** (2i / d))`; with `interleave=False` the
    same numbers as two halves, `PE[pos, i]` the sines and `PE[pos, d / 2 + i]` the cosines
    (fairseq's and Marian's layout).

    Args:
        max_wavelength: the longest wavelength, 10,000 in the paper.
        interleave: sines and cosines in alternate channels (the paper), or in two halves.

    Call arguments:
        inputs: `[batch, length, hidden_dim]`; only its shape is used.
        start_index: position of the first token (for cached decoding).

    Returns:
        The encodings, broadcast to the shape of `inputs`.
    """

    def __init__(self, max_wavelength=10000, interleave=True, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.interleave = interleave

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, hidden_dim = shape[-2], shape[-1]
        if isinstance(hidden_dim, int) and hidden_dim % 2:
            raise ValueError(
                f"SinusoidalPositionEncoding needs an even hidden_dim, got {hidden_dim}: "
                "sines and cosines come in pairs."
            )
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        channels = ops.arange(hidden_dim)
        is_sine = channels % 2 == 0 if self.interleave else channels < hidden_dim // 2
        pair_index = channels // 2 if self.interleave else channels % (hidden_dim // 2)
        inverse_frequency = ops.power(
            float(self.max_wavelength),
            -2.0 * ops.cast(pair_index, "float32") / ops.cast(hidden_dim, "float32"),
        )
        angles = positions[:, None] * inverse_frequency[None, :]
        encoding = ops.where(is_sine[None, :], ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength,
                "interleave": self.interleave}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embeddings (BERT, GPT-2, ViT).

    Args:
        sequence_length: the most positions the layer can encode.
        initializer: for the `[sequence_length, hidden_dim]` table.

    Call arguments:
        inputs: `[batch, length, hidden_dim]`; only its shape is used.
        start_index: position of the first token (for cached decoding).

    Returns:
        The embeddings of positions `start_index ... start_index + length - 1`, broadcast to the
        shape of `inputs`.
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, inputs_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length = shape[-2]
        if isinstance(length, int) and isinstance(start_index, int):
            if start_index + length > self.sequence_length:
                raise ValueError(
                    f"PositionEmbedding holds {self.sequence_length} positions but was asked "
                    f"for positions {start_index}..{start_index + length - 1}. Truncate the "
                    f"input or build the layer with a larger `sequence_length`."
                )
        indices = ops.arange(length, dtype="int32") + ops.cast(start_index, "int32")
        positions = ops.take(self.embeddings, indices, axis=0)
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """T5's bucketing of `key_position - query_position` (Raffel et al., 2020).

    Half the buckets (per direction when bidirectional) hold exact distances; the rest
    cover distances up to `max_distance` logarithmically; longer distances share the last
    bucket. In the bidirectional case keys after the query get buckets from
    `num_buckets // 2` on.
    """
    relative_position = ops.convert_to_tensor(relative_position, "int32")
    bucket = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + ops.cast(relative_position > 0, "int32") * num_buckets
        distance = ops.abs(relative_position)
    else:
        distance = -ops.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    safe_distance = ops.maximum(ops.cast(distance, "float32"), 1.0)
    log_ratio = ops.log(safe_distance / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + ops.cast(log_ratio * (num_buckets - max_exact), "int32")
    large = ops.minimum(large, num_buckets - 1)
    return bucket + ops.where(is_small, distance, large)


@keras.saving.register_keras_serializable(package=PACKAGE)
class RelativePositionBias(keras.layers.Layer):
    """T5's learned relative position bias, added to attention logits.

    Each head learns one scalar per bucket of `key_position - query_position`
    (see `relative_position_bucket`). T5 computes it once, in the first layer of the
    encoder (bidirectional) and of the decoder (causal), and shares it with all layers.

    Args:
        num_heads: attention heads; one bias per head.
        num_buckets: 32 in T5.
        max_distance: 128 in T5.
        bidirectional: True for the encoder, False for the decoder.

    Call arguments:
        query: `[batch, query_length, ...]`; only its length is used.
        key: `[batch, key_length, ...]`; defaults to `query`.
        query_start: position of the first query (for cached decoding).

    Returns:
        `[1, num_heads, query_length, key_length]`, to pass as `attention_bias`.
    """

    def __init__(self, num_heads, num_buckets=32, max_distance=128, bidirectional=True,
                 initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.initializer = keras.initializers.get(initializer)

    def build(self, query_shape, key_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.initializer,
        )

    def call(self, query, key=None, query_start=0):
        key = query if key is None else key
        query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
        query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_start, "int32")
        key_positions = ops.arange(key_length, dtype="int32")
        relative = key_positions[None, :] - query_positions[:, None]
        buckets = relative_position_bucket(
            relative, self.bidirectional, self.num_buckets, self.max_distance
        )
        bias = ops.take(self.embeddings, buckets, axis=0)  # [query, key, heads]
        bias = ops.transpose(bias, (2, 0, 1))[None]
        return ops.cast(bias, self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "num_buckets": self.num_buckets,
            "max_distance": self.max_distance,
            "bidirectional": self.bidirectional,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (Su et al., 2021), in Llama's rotate-half convention.

    Channel `j` of the first half and channel `j + head_dim / 2` form a pair, rotated by
    the angle `position * max_wavelength ** (-2j / head_dim) / scaling_factor`:
    `x * cos + rotate_half(x) * sin`, where `rotate_half([a, b]) = [-b, a]`.

    Args:
        max_wavelength: the base, 10,000 for Llama 2, 100,000 for SmolLM2.
        scaling_factor: linear position interpolation (divide positions by it).

    Call arguments:
        inputs: `[batch, length, heads, head_dim]` queries or keys.
        start_index: position of the first token (for cached decoding); a scalar.

    Returns:
        `inputs`, rotated.
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, head_dim = shape[1], shape[-1]
        if isinstance(head_dim, int) and head_dim % 2:
            raise ValueError(
                f"RotaryEmbedding needs an even head_dim, got {head_dim}: channels are "
                "rotated in pairs."
            )
        half = head_dim // 2
        inverse_frequency = ops.power(
            float(self.max_wavelength),
            -ops.cast(ops.arange(half), "float32") * 2.0 / ops.cast(head_dim, "float32"),
        )
        positions = ops.cast(ops.arange(length) + start_index, "float32") / self.scaling_factor
        angles = positions[:, None] * inverse_frequency[None, :]
        angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        first, second = inputs[..., :half], inputs[..., half:]
        rotated = ops.concatenate([-second, first], axis=-1)
        return inputs * cos + rotated * sin

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scaling_factor": self.scaling_factor,
        }
