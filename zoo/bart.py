"""BART (Lewis et al., 2020): a post-norm encoder-decoder with learned positions.

The architecture of Hugging Face's `BartModel`: one token table shared by encoder and
decoder (scaled by `sqrt(hidden_dim)` only with `scale_embedding`), a learned position table
per stack whose rows start at an offset of 2 (`max_sequence_length + 2` rows, position `p`
reads row `p + 2`), a LayerNorm on each stack's embeddings, post-norm blocks with biases and
exact GELU, and no final norm. The language-model head is the token table plus
`final_logits_bias` (a buffer in the reference: zeros in its checkpoints, not trained, so
non-trainable here). The classifier reads the decoder's state at the last `</s>` of each row
(`zoo.bart_classifier.BartClassifier`).

Presets reproduce the published sizes, counted as Hugging Face's
`BartModel.num_parameters()` counts them (the shared table once, both position tables with
their 2 extra rows, `final_logits_bias` not counted): `base` 139,420,416 and `large`
406,291,456 backbone parameters; the `seq2seq_lm` task adds the 50,265 numbers of
`final_logits_bias`.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("bart", task="seq2seq_lm")
>>> inputs = {"encoder_token_ids": np.array([[0, 5, 6, 7, 2]]),
...           "encoder_padding_mask": np.ones((1, 5), "int32"),
...           "decoder_token_ids": np.array([[2, 0, 7]]),
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
    PositionEmbedding,
    TokenAndPositionEmbedding,
)
from keras_transformers.feedforward import ACTIVATIONS
from keras_transformers.initializers import truncated_normal
from zoo.backbone import Backbone
from zoo.bart_classifier import BartClassifier
from zoo.config import Family, check_forced_ids, check_heads_divide, check_positive
from zoo.heads import BiasAdd
from zoo.seq2seq import Seq2SeqLM, run_decoder_layers

PACKAGE = "zoo"
INPUT_NAMES = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
               "decoder_padding_mask")
POSITION_OFFSET = 2  # BART's position table starts at row 2 (fairseq kept 2 rows for padding)


@dataclass(frozen=True)
class BartConfig:
    """The hyperparameters of a BART. Field names are the zoo's keras-hub ones
    (`hidden_dim` is Hugging Face's `d_model`, `intermediate_dim` its `encoder_ffn_dim` and
    `decoder_ffn_dim`, `max_sequence_length` its `max_position_embeddings`).

    Args:
        vocabulary_size: int. Token ids, shared by encoder and decoder (50265 in BART).
        num_layers: int. Encoder blocks.
        num_decoder_layers: int or None. Decoder blocks; `num_layers` when None.
        num_heads: int. Attention heads of every attention layer; divides `hidden_dim`.
        hidden_dim: int. Width of the residual stream.
        intermediate_dim: int. Feed-forward width.
        max_sequence_length: int. Positions of each stack's learned table (which holds
            `max_sequence_length + 2` rows: BART's offset of 2).
        activation: str. Of the feed-forward network (`"gelu"`: exact GELU, BART's).
        dropout: float. On the embeddings and each sublayer's output.
        attention_dropout: float. On the attention probabilities.
        activation_dropout: float. Inside the feed-forward network, after the activation.
        layer_norm_epsilon: float. Of every LayerNorm (1e-5).
        scale_embedding: bool. Multiply token embeddings by `sqrt(hidden_dim)` (False in BART).
        pad_token_id, end_token_id, decoder_start_token_id: int. BART's `<pad>` (1), `</s>`
            (2), and the token its decoder starts from (`</s>`); the classifier shifts the
            source right behind `decoder_start_token_id` and pools at the last
            `end_token_id`.
        forced_bos_token_id, forced_eos_token_id: int or None. The token `generate` forces
            as the first new one and as the last one a request allows (Hugging Face's
            generation settings of the same names: bart-large-cnn forces `<s>` and `</s>`);
            None forces nothing.

    >>> BartConfig(num_heads=5)   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: BartConfig: hidden_dim=1024 is not divisible by num_heads=5. ...
    """

    vocabulary_size: int = 50265
    num_layers: int = 12
    num_decoder_layers: int | None = None
    num_heads: int = 16
    hidden_dim: int = 1024
    intermediate_dim: int = 4096
    max_sequence_length: int = 1024
    activation: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    scale_embedding: bool = False
    pad_token_id: int = 1
    end_token_id: int = 2
    decoder_start_token_id: int = 2
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None

    def __post_init__(self):
        check_positive(self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim", "max_sequence_length")
        if self.num_decoder_layers is not None:
            check_positive(self, "num_decoder_layers")
        check_heads_divide(self)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"BartConfig.activation={self.activation!r} is unknown. Use "
                             f"'gelu' (BART's) or one of {sorted(ACTIVATIONS)}.")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BartConfig.{name} must be in [0, 1), got "
                                 f"{getattr(self, name)!r}.")
        if not self.layer_norm_epsilon > 0:
            raise ValueError(f"BartConfig.layer_norm_epsilon must be positive, got "
                             f"{self.layer_norm_epsilon!r}.")
        if not isinstance(self.scale_embedding, bool):
            raise ValueError(f"BartConfig.scale_embedding must be True or False, got "
                             f"{self.scale_embedding!r}.")
        for name in ("pad_token_id", "end_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocabulary_size:
                raise ValueError(f"BartConfig.{name}={value!r} is not an id of the vocabulary "
                                 f"[0, {self.vocabulary_size}); BART uses <pad>=1, </s>=2.")
        check_forced_ids(self)

    @property
    def decoder_depth(self):
        """Decoder blocks: `num_decoder_layers`, or `num_layers` when it is None."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers


PRESETS = {
    # Heads of 8 and a deeper decoder, as the reference fixtures' odd sizes.
    "tiny": BartConfig(vocabulary_size=1024, num_layers=2, num_decoder_layers=3, num_heads=3,
                       hidden_dim=24, intermediate_dim=40, max_sequence_length=128),
    "base": BartConfig(num_layers=6, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    "large": BartConfig(),
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BartBackbone(Backbone):
    """BART's encoder and decoder stacks, without the language-model head.

    Args:
        config: a `BartConfig`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids`,
    `decoder_padding_mask` (int32 `[batch, length]`, at most `max_sequence_length`; masks 1
    for real tokens); outputs `encoder_sequence_output` `[batch, encoder_length, hidden_dim]`
    and `decoder_sequence_output` `[batch, decoder_length, hidden_dim]`.

    Layers by name: `token_embedding` (a `TokenAndPositionEmbedding` without positions, shared
    by both stacks), `encoder_position_embedding`, `encoder_embeddings_norm`,
    `encoder_layer_{i}`, `decoder_position_embedding`, `decoder_embeddings_norm`,
    `decoder_layer_{i}`. `encode` and `decode` run the two stacks on their own.
    """

    family_name = "bart"
    config_class = BartConfig

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.token_embedding = TokenAndPositionEmbedding(
            c.vocabulary_size, c.max_sequence_length, c.hidden_dim, position=None,
            scale_by_sqrt_dim=c.scale_embedding, embeddings_initializer=truncated_normal(),
            dtype=dtype, name="token_embedding",
        )
        blocks = dict(
            num_heads=c.num_heads, intermediate_dim=c.intermediate_dim,
            activation=c.activation, norm_first=False, epsilon=c.layer_norm_epsilon,
            dropout=c.dropout, attention_dropout=c.attention_dropout,
            feedforward_dropout=c.activation_dropout, kernel_initializer=truncated_normal(),
            dtype=dtype,
        )
        for stack in ("encoder", "decoder"):
            setattr(self, f"{stack}_position_embedding", PositionEmbedding(
                c.max_sequence_length + POSITION_OFFSET, initializer=truncated_normal(),
                dtype=dtype, name=f"{stack}_position_embedding"))
            setattr(self, f"{stack}_embeddings_norm", keras.layers.LayerNormalization(
                epsilon=c.layer_norm_epsilon, dtype=dtype, name=f"{stack}_embeddings_norm"))
        self.encoder_layers = [EncoderBlock(**blocks, name=f"encoder_layer_{i}")
                               for i in range(c.num_layers)]
        self.decoder_layers = [DecoderBlock(**blocks, use_cross_attention=True,
                                            name=f"decoder_layer_{i}")
                               for i in range(c.decoder_depth)]
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

    def embed(self, stack, token_ids, start_index=0, training=None):
        """Tokens plus the stack's positions (from row `start_index + 2`), normalized."""
        x = self.token_embedding(token_ids)
        positions = getattr(self, f"{stack}_position_embedding")
        x = x + positions(x, start_index=start_index + POSITION_OFFSET)
        x = getattr(self, f"{stack}_embeddings_norm")(x)
        return self.dropout_layer(x, training=training)

    def encode(self, token_ids, padding_mask, training=None):
        """The encoder stack: `[batch, length]` ids -> `[batch, length, hidden_dim]`."""
        x = self.embed("encoder", token_ids, training=training)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return x

    def decode(self, token_ids, encoder_outputs=None, encoder_padding_mask=None,
               padding_mask=None, cache=None, cache_index=None, cross_attention_cache=None,
               training=None):
        """The decoder stack, on the whole sequence or, with `cache`, on its newest tokens.

        Without `cache`: returns `[batch, length, hidden_dim]`. With `cache` (see
        `Seq2SeqLM.make_cache`), `cache_index` and `cross_attention_cache` (see
        `Seq2SeqLM.encode`): returns the hidden states of the new tokens and the updated cache;
        `padding_mask`, if given, covers every cache position `[batch, max_length]`.
        """
        start = 0 if cache is None else cache_index
        x = self.embed("decoder", token_ids, start_index=start, training=training)
        return run_decoder_layers(
            self.decoder_layers, x, encoder_outputs, encoder_padding_mask, padding_mask, cache,
            cache_index, cross_attention_cache, training=training)

    # --- what `zoo.seq2seq.Seq2SeqLM` asks of an encoder-decoder backbone ---

    @property
    def decoder_context(self):
        """The decoder's learned positions: `max_sequence_length`."""
        return self.config.max_sequence_length

    @property
    def decoder_cache_dims(self):
        """`(decoder layers, heads, head_dim)` of the self and cross attention caches."""
        c = self.config
        return c.decoder_depth, c.num_heads, c.hidden_dim // c.num_heads

    def make_lm_head(self):
        """`final_logits_bias`: added to the tied head's logits; non-trainable, as the
        reference's buffer."""
        return BiasAdd(trainable=False, dtype=self.build_dtype, name="final_logits_bias")

    def lm_logits(self, hidden, lm_head):
        """Vocabulary logits of decoder outputs: the token table, plus `final_logits_bias`."""
        return lm_head(self.token_embedding(hidden, reverse=True))

    def preprocessor_arguments(self, task_name, tokenizer):
        """What BART's preprocessors need beyond a tokenizer: `<s> text </s>` for every task,
        pairs as `<s> a </s></s> b </s>`, and the decoder started from `</s>`; a tokenizer
        whose end or padding id is not the config's is a `ValueError` saying which to set."""
        c = self.config
        fields = special_token_fields(tokenizer)
        if fields["end_token_id"] != c.end_token_id or fields["pad_token_id"] != c.pad_token_id:
            settings = ", ".join(f"{k}={v}" for k, v in fields.items())
            raise ValueError(
                f"The tokenizer's end and padding ids are {fields['end_token_id']} and "
                f"{fields['pad_token_id']}, this BART's end_token_id and pad_token_id "
                f"{c.end_token_id} and {c.pad_token_id}: build the model with {settings}.")
        if task_name == "seq2seq_lm":
            return {"add_start_token": True, "decoder_start_id": c.decoder_start_token_id}
        return {"style": "bart"} if task_name == "classifier" else {}

    @staticmethod
    def special_token_fields(tokenizer):
        """The config fields that make a BART read `tokenizer`'s texts: see
        `special_token_fields`."""
        return special_token_fields(tokenizer)


def special_token_fields(tokenizer):
    """`{end_token_id, decoder_start_token_id, pad_token_id}` of a tokenizer: its end id
    (BART's decoder starts from `</s>`) and its padding id (0 when it has none, as the
    preprocessors pad)."""
    if tokenizer.end_id is None or tokenizer.start_id is None:
        raise ValueError(f"BART packs texts as start ... end: this {type(tokenizer).__name__} "
                         "has no start or end token. Give a tokenizer with both.")
    pad = 0 if tokenizer.pad_id is None else int(tokenizer.pad_id)
    end = int(tokenizer.end_id)
    return {"end_token_id": end, "decoder_start_token_id": end, "pad_token_id": pad}


TASKS = {"seq2seq_lm": Seq2SeqLM, "classifier": BartClassifier}
FAMILY = Family("bart", BartConfig, PRESETS, BartBackbone, TASKS)
