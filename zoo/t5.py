"""T5 (Raffel et al., 2020): an encoder-decoder transformer with relative position biases.

The architecture of Hugging Face's `T5ForConditionalGeneration`: one token table shared by
encoder and decoder, no absolute positions, pre-norm RMSNorm blocks without biases, attention
logits unscaled (scale 1.0) plus a learned relative position bias that each stack computes
once and shares with all its blocks, a final RMSNorm per stack, and a language-model head
tied to the token table (T5 v1.0, output scaled by `hidden_dim ** -0.5`) or separate
(T5 v1.1, gated GELU). Presets reproduce the published sizes; `small` has 60,506,624
parameters.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("t5", task="seq2seq_lm")
>>> inputs = {"encoder_token_ids": np.array([[5, 6, 7, 1]]),
...           "encoder_padding_mask": np.ones((1, 4), "int32"),
...           "decoder_token_ids": np.array([[0, 7, 6]]),
...           "decoder_padding_mask": np.ones((1, 3), "int32")}
>>> tuple(model.predict(inputs, verbose=0).shape)       # next-token logits per position
(1, 3, 1024)
"""

from dataclasses import dataclass

import keras

from keras_transformers import (
    DecoderBlock,
    Dropout,
    EncoderBlock,
    RelativePositionBias,
    RMSNorm,
    TokenAndPositionEmbedding,
)
from keras_transformers.feedforward import ACTIVATIONS
from zoo.backbone import Backbone
from zoo.config import Family, check_positive
from zoo.seq2seq import Seq2SeqLM, run_decoder_layers

PACKAGE = "zoo"
INPUT_NAMES = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
               "decoder_padding_mask")


@dataclass(frozen=True)
class T5Config:
    """The hyperparameters of a T5. Field names are the zoo's keras-hub ones (`hidden_dim` is
    Hugging Face's `d_model`, `intermediate_dim` its `d_ff`) and Hugging Face's `T5Config`
    names for the rest; `head_dim` is its `d_kv` (keras-hub's `key_value_dim`).

    Args:
        vocabulary_size: token ids, shared by encoder and decoder (32128 in T5).
        num_layers: encoder blocks.
        num_decoder_layers: decoder blocks; `num_layers` when None.
        num_heads: attention heads.
        hidden_dim: width of the residual stream (`d_model`).
        intermediate_dim: feed-forward width (`d_ff`).
        head_dim: width of one head (`d_kv`); `num_heads * head_dim` need not be `hidden_dim`.
        activation: `"relu"` (T5 v1.0) or a gated one, `"geglu_tanh"` (T5 v1.1, "gated-gelu").
        relative_attention_num_buckets, relative_attention_max_distance: of the relative
            position bias (32 and 128).
        layer_norm_epsilon: of every RMSNorm.
        dropout: on the embeddings, attention probabilities, feed-forward hidden layer, each
            sublayer's output and each stack's output.
        tie_word_embeddings: the language-model head is the token table, applied to the
            decoder output scaled by `hidden_dim ** -0.5` (v1.0); otherwise its own weights.
    """

    vocabulary_size: int = 32128
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    hidden_dim: int = 512
    intermediate_dim: int = 2048
    head_dim: int = 64
    activation: str = "relu"
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    dropout: float = 0.1
    tie_word_embeddings: bool = True

    def __post_init__(self):
        check_positive(self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim", "head_dim", "relative_attention_num_buckets",
                       "relative_attention_max_distance")
        if self.num_decoder_layers is not None:
            check_positive(self, "num_decoder_layers")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"T5Config.activation={self.activation!r} is unknown. Use 'relu' (T5 v1.0), "
                f"'geglu_tanh' (T5 v1.1) or one of {sorted(ACTIVATIONS)}."
            )
        buckets = self.relative_attention_num_buckets
        distance = self.relative_attention_max_distance
        # The decoder's exact buckets cover distances below buckets // 2, the encoder's
        # below buckets // 4 per direction; the rest grow logarithmically up to max_distance.
        if buckets < 4 or distance <= buckets // 2:
            raise ValueError(
                f"T5Config: relative_attention_num_buckets={buckets} and "
                f"relative_attention_max_distance={distance} leave no logarithmic buckets. "
                f"Use at least 4 buckets and a max distance above buckets // 2 ({buckets // 2}); "
                f"T5 uses 32 and 128."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"T5Config.dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.layer_norm_epsilon > 0:
            raise ValueError(
                f"T5Config.layer_norm_epsilon must be positive, got {self.layer_norm_epsilon!r}."
            )
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(
                f"T5Config.tie_word_embeddings must be True or False, got "
                f"{self.tie_word_embeddings!r}."
            )

    @property
    def decoder_depth(self):
        """Decoder blocks: `num_decoder_layers`, or `num_layers` when it is None (as in HF)."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers


PRESETS = {
    "tiny": T5Config(vocabulary_size=1024, num_layers=2, num_heads=2, hidden_dim=32,
                     intermediate_dim=64, head_dim=16),
    # heads * head_dim (48) differs from hidden_dim, and the decoder is deeper, as T5 allows.
    "tiny_v1_1": T5Config(vocabulary_size=1024, num_layers=2, num_decoder_layers=3,
                          num_heads=3, hidden_dim=32, intermediate_dim=64, head_dim=16,
                          activation="geglu_tanh", tie_word_embeddings=False),
    "small": T5Config(),
    "base": T5Config(num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "v1_1-small": T5Config(num_layers=8, num_heads=6, hidden_dim=512, intermediate_dim=1024,
                           activation="geglu_tanh", tie_word_embeddings=False),
}


def block_arguments(config, dtype):
    """What every T5 block shares: pre-norm RMSNorm, no biases, unscaled attention logits, and
    dropout on attention probabilities, inside the feed-forward network and on each sublayer."""
    c = config
    return dict(
        num_heads=c.num_heads, intermediate_dim=c.intermediate_dim, activation=c.activation,
        norm_first=True, norm="rms_norm", epsilon=c.layer_norm_epsilon, dropout=c.dropout,
        attention_dropout=c.dropout, feedforward_dropout=c.dropout, use_bias=False,
        head_dim=c.head_dim, attention_scale=1.0, dtype=dtype,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class T5Backbone(Backbone):
    """T5's encoder and decoder stacks, without the language-model head.

    Args:
        config: a `T5Config`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids`,
    `decoder_padding_mask` (int32 `[batch, length]`; masks 1 for real tokens); outputs
    `encoder_sequence_output` `[batch, encoder_length, hidden_dim]` and
    `decoder_sequence_output` `[batch, decoder_length, hidden_dim]`.

    Layers by name: `token_embedding` (a `TokenAndPositionEmbedding` without positions, shared
    by both stacks), `encoder_relative_position_bias`, `encoder_layer_{i}`,
    `encoder_final_norm`, `decoder_relative_position_bias`, `decoder_layer_{i}`,
    `decoder_final_norm`. `encode` and `decode` run the two stacks on their own.
    """

    family_name = "t5"
    config_class = T5Config

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.token_embedding = TokenAndPositionEmbedding(
            c.vocabulary_size, None, c.hidden_dim, position=None,
            # Unit variance, as Hugging Face's T5: the tied head scales by hidden_dim ** -0.5.
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype, name="token_embedding",
        )
        self.encoder_relative_position_bias = RelativePositionBias(
            c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance,
            bidirectional=True, dtype=dtype, name="encoder_relative_position_bias",
        )
        self.encoder_layers = [
            EncoderBlock(**block_arguments(c, dtype), name=f"encoder_layer_{i}")
            for i in range(c.num_layers)
        ]
        self.encoder_final_norm = RMSNorm(c.layer_norm_epsilon, dtype=dtype,
                                          name="encoder_final_norm")
        self.decoder_relative_position_bias = RelativePositionBias(
            c.num_heads, c.relative_attention_num_buckets, c.relative_attention_max_distance,
            bidirectional=False, dtype=dtype, name="decoder_relative_position_bias",
        )
        self.decoder_layers = [
            DecoderBlock(**block_arguments(c, dtype), use_cross_attention=True,
                         name=f"decoder_layer_{i}")
            for i in range(c.decoder_depth)
        ]
        self.decoder_final_norm = RMSNorm(c.layer_norm_epsilon, dtype=dtype,
                                          name="decoder_final_norm")
        self.dropout_layer = Dropout(c.dropout, dtype=dtype, name="dropout")

        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in INPUT_NAMES}
        encoded = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        decoded = self.decode(
            inputs["decoder_token_ids"], encoded,
            encoder_padding_mask=inputs["encoder_padding_mask"],
            padding_mask=inputs["decoder_padding_mask"],
        )
        super().__init__(
            inputs=inputs,
            outputs={"encoder_sequence_output": encoded, "decoder_sequence_output": decoded},
            config=config, dtype=dtype, **kwargs,
        )

    def encode(self, token_ids, padding_mask, training=None):
        """The encoder stack: `[batch, length]` ids -> `[batch, length, hidden_dim]`."""
        x = self.dropout_layer(self.token_embedding(token_ids), training=training)
        bias = self.encoder_relative_position_bias(x)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, attention_bias=bias, training=training)
        return self.dropout_layer(self.encoder_final_norm(x), training=training)

    def decode(self, token_ids, encoder_outputs=None, encoder_padding_mask=None,
               padding_mask=None, cache=None, cache_index=None, cross_attention_cache=None,
               training=None):
        """The decoder stack, on the whole sequence or, with `cache`, on its newest tokens.

        Without `cache`: returns `[batch, length, hidden_dim]`. With `cache` (see
        `Seq2SeqLM.make_cache`), `cache_index` and `cross_attention_cache` (see
        `Seq2SeqLM.encode`): returns the hidden states of the new tokens and the updated cache;
        `padding_mask`, if given, covers every cache position `[batch, max_length]`.
        """
        x = self.dropout_layer(self.token_embedding(token_ids), training=training)
        if cache is None:
            bias = self.decoder_relative_position_bias(x)
        else:  # the new tokens' rows of the bias over every cache position
            bias = self.decoder_relative_position_bias(x, cache[:, 0, 0], query_start=cache_index)
        x = run_decoder_layers(
            self.decoder_layers, x, encoder_outputs, encoder_padding_mask, padding_mask, cache,
            cache_index, cross_attention_cache, attention_bias=bias, training=training)
        x, cache = (x, None) if cache is None else x
        x = self.dropout_layer(self.decoder_final_norm(x), training=training)
        return x if cache is None else (x, cache)

    # --- what `zoo.seq2seq.Seq2SeqLM` asks of an encoder-decoder backbone ---

    decoder_context = None  # relative positions: no limit of the model's own

    @property
    def decoder_cache_dims(self):
        """`(decoder layers, heads, head_dim)` of the self and cross attention caches."""
        c = self.config
        return c.decoder_depth, c.num_heads, c.head_dim

    def make_lm_head(self):
        """T5 v1.1's own vocabulary projection (no bias); None when tied (v1.0)."""
        if self.config.tie_word_embeddings:
            return None
        return keras.layers.Dense(self.config.vocabulary_size, use_bias=False,
                                  dtype=self.build_dtype, name="lm_head")

    def lm_logits(self, hidden, lm_head):
        """Vocabulary logits of decoder outputs: v1.1's own head, or v1.0's tied one."""
        if lm_head is not None:
            return lm_head(hidden)
        # Divided, not multiplied by hidden_dim ** -0.5: Keras marks `KerasTensor * float`
        # sparse.
        return self.token_embedding(hidden / self.config.hidden_dim**0.5, reverse=True)


TASKS = {"seq2seq_lm": Seq2SeqLM}
FAMILY = Family("t5", T5Config, PRESETS, T5Backbone, TASKS)
