"""The Transformer of Vaswani et al. (2017), "Attention Is All You Need", in Marian's layout.

The paper's encoder-decoder (Table 3): post-norm blocks (each sublayer is
`LayerNorm(x + Dropout(sublayer(x)))`), fixed sinusoidal positions, token embeddings scaled by
`sqrt(hidden_dim)`, ReLU feed-forward layers, and one embedding table shared by the source,
the target and the output projection. Its layout is Hugging Face's `MarianMTModel` (the
Helsinki-NLP opus-mt translation models are this architecture), so `zoo.from_pretrained`
imports Marian checkpoints: the sinusoids come in two halves (sines, then cosines), the
positions are a table of `max_sequence_length` rows (longer inputs are refused), there is no
embedding norm and no final norm, and the vocabulary logits get Marian's `final_logits_bias`
(zeros, not trained, unless a checkpoint holds other values).

Parameters, counted from the shapes (tied head; `V` vocabulary, `d` width, `f` feed-forward
width, `L` encoder and `L'` decoder blocks):
`V d + L (4 d^2 + 2 d f + f + 9 d) + L' (8 d^2 + 2 d f + f + 15 d) + V` (the last `V` is the
logits bias). With the paper's shared vocabulary of 37,000 tokens that is 63,119,496 for
`base` and 214,282,376 for `big`, beside the paper's 65M and 213M (Table 3; its exact
vocabulary size is not given).

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("transformer", task="seq2seq_lm")
>>> inputs = {"encoder_token_ids": np.array([[5, 6, 7, 0]]),
...           "encoder_padding_mask": np.ones((1, 4), "int32"),
...           "decoder_token_ids": np.array([[1023, 7, 6]]),
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
    SinusoidalPositionEncoding,
    TokenAndPositionEmbedding,
)
from keras_transformers.feedforward import ACTIVATIONS
from zoo.backbone import Backbone
from zoo.config import Family, check_forced_ids, check_heads_divide, check_positive
from zoo.heads import BiasAdd
from zoo.seq2seq import Seq2SeqLM, run_decoder_layers

PACKAGE = "zoo"
INPUT_NAMES = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
               "decoder_padding_mask")
# Position-wise feed-forward activations (ungated): the paper's relu, opus-mt's silu ("swish").
FEEDFORWARD_ACTIVATIONS = tuple(name for name, (_, gated) in ACTIVATIONS.items() if not gated)


@dataclass(frozen=True)
class TransformerConfig:
    """The hyperparameters of the paper's Transformer (Marian's, with Hugging Face's names in
    brackets).

    Args:
        vocabulary_size: int. Token ids, one table for source and target (`vocab_size`);
            the paper's shared BPE vocabulary has about 37,000.
        num_layers: int. Encoder blocks (`encoder_layers`).
        num_decoder_layers: int or None. Decoder blocks (`decoder_layers`); `num_layers`
            when None.
        num_heads: int. Attention heads of every attention (`*_attention_heads`); they
            divide `hidden_dim`.
        hidden_dim: int. Width of the residual stream (`d_model`).
        intermediate_dim: int. Feed-forward width (`*_ffn_dim`).
        max_sequence_length: int. Rows of the sinusoid table (`max_position_embeddings`):
            the longest source and target the model takes.
        activation: str. Of the feed-forward layers: `"relu"` (the paper), `"silu"`
            (opus-mt's "swish"), `"gelu"`, `"gelu_tanh"` (`activation_function`).
        dropout: float. On the embeddings and each sublayer's output before the residual
            sum (`dropout`): 0.1 in the paper's base model, 0.3 in its big one (EN-DE).
        attention_dropout: float. On the attention probabilities (`attention_dropout`).
        activation_dropout: float. Inside the feed-forward layers (`activation_dropout`).
        layer_norm_epsilon: float. Of every LayerNorm (1e-5, torch's default).
        scale_embedding: bool. Multiply token embeddings by `sqrt(hidden_dim)` (the paper,
            section 3.4, and opus-mt; `scale_embedding`).
        decoder_start_token_id: int or None. The decoder's first token when the model has no
            preprocessor to say it (a Marian checkpoint's `decoder_start_token_id`, its
            `<pad>`); None leaves it to the preprocessor (else 0).
        forced_bos_token_id, forced_eos_token_id: int or None. The token `generate` forces
            as the first new one and as the last one a request allows (Hugging Face's
            generation settings of the same names: opus-mt forces `</s>`); None forces
            nothing.

    Example:

    >>> TransformerConfig(hidden_dim=256, num_heads=4).decoder_depth
    6
    """

    vocabulary_size: int = 37000
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    hidden_dim: int = 512
    intermediate_dim: int = 2048
    max_sequence_length: int = 512
    activation: str = "relu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    scale_embedding: bool = True
    decoder_start_token_id: int | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None

    def __post_init__(self):
        check_positive(self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim", "max_sequence_length")
        if self.num_decoder_layers is not None:
            check_positive(self, "num_decoder_layers")
        check_heads_divide(self)
        if self.hidden_dim % 2:
            raise ValueError(
                f"TransformerConfig.hidden_dim must be even (sines and cosines come in "
                f"pairs), got {self.hidden_dim}."
            )
        if self.activation not in FEEDFORWARD_ACTIVATIONS:
            raise ValueError(
                f"TransformerConfig.activation={self.activation!r} is unknown. Use 'relu' "
                f"(the paper), 'silu' (opus-mt's swish) or one of "
                f"{sorted(FEEDFORWARD_ACTIVATIONS)}."
            )
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"TransformerConfig.{name} must be in [0, 1), got {getattr(self, name)!r}."
                )
        if not self.layer_norm_epsilon > 0:
            raise ValueError(f"TransformerConfig.layer_norm_epsilon must be positive, got "
                             f"{self.layer_norm_epsilon!r}.")
        start = self.decoder_start_token_id
        if start is not None and not (isinstance(start, int) and 0 <= start < self.vocabulary_size):
            raise ValueError(f"TransformerConfig.decoder_start_token_id must be None or an id in "
                             f"[0, {self.vocabulary_size}), got {start!r}.")
        check_forced_ids(self)
        if not isinstance(self.scale_embedding, bool):
            raise ValueError(f"TransformerConfig.scale_embedding must be True or False, got "
                             f"{self.scale_embedding!r}.")

    @property
    def decoder_depth(self):
        """Decoder blocks: `num_decoder_layers`, or `num_layers` when it is None."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers


PRESETS = {
    "tiny": TransformerConfig(vocabulary_size=1024, num_layers=2, num_heads=2, hidden_dim=32,
                              intermediate_dim=64, max_sequence_length=128),
    # Table 3 of the paper: "base" and "big" (P_drop 0.3 for EN-DE, 0.1 for EN-FR).
    "base": TransformerConfig(),
    "big": TransformerConfig(num_heads=16, hidden_dim=1024, intermediate_dim=4096,
                             dropout=0.3),
}


def block_arguments(config, dtype):
    """What every block shares: post-norm LayerNorms with biases, ungated feed-forward."""
    c = config
    return dict(
        num_heads=c.num_heads, intermediate_dim=c.intermediate_dim, activation=c.activation,
        norm_first=False, norm="layer_norm", epsilon=c.layer_norm_epsilon, dropout=c.dropout,
        attention_dropout=c.attention_dropout, feedforward_dropout=c.activation_dropout,
        use_bias=True, dtype=dtype,
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBackbone(Backbone):
    """The paper's encoder and decoder stacks, without the output projection.

    Args:
        config: a `TransformerConfig`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.

    Inputs `encoder_token_ids`, `encoder_padding_mask`, `decoder_token_ids`,
    `decoder_padding_mask` (int32 `[batch, length]`, at most `max_sequence_length` long;
    masks 1 for real tokens); outputs `encoder_sequence_output`
    `[batch, encoder_length, hidden_dim]` and `decoder_sequence_output`
    `[batch, decoder_length, hidden_dim]`.

    Layers by name: `token_embedding` (a `TokenAndPositionEmbedding` without positions,
    scaled by `sqrt(hidden_dim)`, shared by both stacks and the output projection),
    `position_encoding` (sinusoids in two halves), `encoder_layer_{i}`, `decoder_layer_{i}`
    (post-norm blocks). `encode` and `decode` run the two stacks on their own.

    Example:

    >>> import zoo
    >>> backbone = zoo.build("transformer", num_decoder_layers=3)
    >>> len(backbone.encoder_layers), len(backbone.decoder_layers)
    (2, 3)
    """

    family_name = "transformer"
    config_class = TransformerConfig

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.max_sequence_length = c.max_sequence_length  # read while the graph is built
        self.token_embedding = TokenAndPositionEmbedding(
            c.vocabulary_size, None, c.hidden_dim, position=None,
            scale_by_sqrt_dim=c.scale_embedding,
            # Unit variance once scaled by sqrt(hidden_dim), as fairseq's Transformer.
            embeddings_initializer=keras.initializers.RandomNormal(stddev=c.hidden_dim**-0.5),
            dtype=dtype, name="token_embedding",
        )
        self.position_encoding = SinusoidalPositionEncoding(
            interleave=False, dtype=dtype, name="position_encoding")
        self.encoder_layers = [
            EncoderBlock(**block_arguments(c, dtype), name=f"encoder_layer_{i}")
            for i in range(c.num_layers)
        ]
        self.decoder_layers = [
            DecoderBlock(**block_arguments(c, dtype), use_cross_attention=True,
                         name=f"decoder_layer_{i}")
            for i in range(c.decoder_depth)
        ]
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

    def embed(self, token_ids, start_index=0, training=None):
        """Scaled token embeddings plus the sinusoids of their positions, then dropout.

        Positions past the table (`max_sequence_length`, Marian's `max_position_embeddings`)
        are a `ValueError` where the length is known when the graph is built (eager calls,
        `generate`'s compiled loop); `zoo.validation` checks the model's own inputs.
        """
        length, most = token_ids.shape[-1], self.max_sequence_length
        if isinstance(length, int) and isinstance(start_index, int) and \
                start_index + length > most:
            raise ValueError(
                f"The Transformer's sinusoid table holds {most} positions "
                f"(max_sequence_length) but was asked for positions {start_index}.."
                f"{start_index + length - 1}. Shorten the input (a preprocessor with "
                f"sequence_length <= {most} truncates it)."
            )
        x = self.token_embedding(token_ids)
        x = x + self.position_encoding(x, start_index=start_index)
        return self.dropout_layer(x, training=training)

    def encode(self, token_ids, padding_mask, training=None):
        """The encoder stack: `[batch, length]` ids -> `[batch, length, hidden_dim]`."""
        x = self.embed(token_ids, training=training)
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
        x = self.embed(token_ids, start_index=0 if cache is None else cache_index,
                       training=training)
        return run_decoder_layers(
            self.decoder_layers, x, encoder_outputs, encoder_padding_mask, padding_mask, cache,
            cache_index, cross_attention_cache, training=training)

    # --- what `zoo.seq2seq.Seq2SeqLM` asks of an encoder-decoder backbone ---

    @property
    def decoder_context(self):
        """The decoder positions the sinusoid table has: `max_sequence_length`."""
        return self.config.max_sequence_length

    @property
    def decoder_cache_dims(self):
        """`(decoder layers, heads, head_dim)` of the self and cross attention caches."""
        c = self.config
        return c.decoder_depth, c.num_heads, c.hidden_dim // c.num_heads

    def make_lm_head(self):
        """Marian's `final_logits_bias`: a bias on the vocabulary logits, not trained."""
        return BiasAdd(trainable=False, dtype=self.build_dtype, name="lm_head")

    def lm_logits(self, hidden, lm_head):
        """Vocabulary logits: the token table as the output projection, plus the bias."""
        return lm_head(self.token_embedding(hidden, reverse=True))


TASKS = {"seq2seq_lm": Seq2SeqLM}
FAMILY = Family("transformer", TransformerConfig, PRESETS, TransformerBackbone, TASKS)
