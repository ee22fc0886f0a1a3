"""Transformer blocks: an encoder block and a decoder block, pre- or post-norm.

Example:

>>> import numpy as np
>>> x = np.random.rand(2, 5, 32).astype("float32")
>>> encoder = EncoderBlock(num_heads=4, intermediate_dim=64)
>>> decoder = DecoderBlock(num_heads=4, intermediate_dim=64, use_cross_attention=True)
>>> tuple(decoder(x[:, :3], encoder_outputs=encoder(x)).shape)
(2, 3, 32)
"""

import keras

from keras_transformers.attention import MultiHeadAttention
from keras_transformers.dropout import Dropout
from keras_transformers.feedforward import FeedForward
from keras_transformers.normalization import RMSNorm

PACKAGE = "keras_transformers"
NORMS = ("layer_norm", "rms_norm")


def make_norm(kind, epsilon, use_bias, dtype, name):
    """A LayerNorm (with or without its bias) or an RMSNorm."""
    if kind == "layer_norm":
        return keras.layers.LayerNormalization(
            epsilon=epsilon, center=use_bias, dtype=dtype, name=name
        )
    if kind == "rms_norm":
        return RMSNorm(epsilon=epsilon, dtype=dtype, name=name)
    raise ValueError(f"Unknown norm {kind!r}. Choose one of {NORMS}.")


def unpack_attention(result, with_scores, has_cache=False):
    """`MultiHeadAttention`'s result as `(output, scores or None, cache or None)`."""
    result = result if isinstance(result, tuple) else (result,)
    output, rest = result[0], list(result[1:])
    scores = rest.pop(0) if with_scores else None
    cache = rest.pop(0) if has_cache else None
    return output, scores, cache


class TransformerBlock(keras.layers.Layer):
    """What encoder and decoder blocks share: arguments, sublayer factories, residuals.

    Args:
        num_heads: attention heads.
        intermediate_dim: feed-forward width.
        activation: feed-forward activation (see `FeedForward`).
        norm_first: pre-norm (GPT-2, T5, ViT, Llama) when True, post-norm (BERT) when False.
        norm: `"layer_norm"` or `"rms_norm"`.
        epsilon: of the norms.
        dropout: on each sublayer's output, before the residual sum.
        attention_dropout: on the attention probabilities.
        feedforward_dropout: inside the feed-forward network, after the activation (T5 has
            it; BERT, GPT-2 and ViT do not).
        use_bias: biases in projections and norms.
        num_kv_heads: key/value heads (grouped-query attention).
        head_dim: width of a head; `hidden_dim // num_heads` when None.
        attention_scale: logit scale; `1 / sqrt(head_dim)` when None, 1.0 for T5.
        use_rotary: rotary positions in self attention.
        rotary_max_wavelength: rotary base.
        kernel_initializer: for every projection.
    """

    def __init__(self, num_heads, intermediate_dim, activation="gelu", norm_first=False,
                 norm="layer_norm", epsilon=1e-5, dropout=0.0, attention_dropout=0.0,
                 feedforward_dropout=0.0, use_bias=True, num_kv_heads=None, head_dim=None,
                 attention_scale=None, use_rotary=False, rotary_max_wavelength=10000,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if norm not in NORMS:
            raise ValueError(f"Unknown norm {norm!r}. Choose one of {NORMS}.")
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.norm_first = norm_first
        self.norm = norm
        self.epsilon = epsilon
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.feedforward_dropout = feedforward_dropout
        self.use_bias = use_bias
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.attention_scale = attention_scale
        self.use_rotary = use_rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def make_attention(self, name, rotary):
        return MultiHeadAttention(
            self.num_heads, head_dim=self.head_dim, num_kv_heads=self.num_kv_heads,
            use_bias=self.use_bias, dropout=self.attention_dropout, scale=self.attention_scale,
            use_rotary=rotary, rotary_max_wavelength=self.rotary_max_wavelength,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name,
        )

    def make_norm(self, name):
        return make_norm(self.norm, self.epsilon, self.use_bias, self.dtype_policy, name)

    def make_feedforward(self):
        return FeedForward(
            self.intermediate_dim, activation=self.activation, use_bias=self.use_bias,
            dropout=self.feedforward_dropout, kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="feedforward",
        )

    def before(self, x, norm):
        """The sublayer's input: normalized first in a pre-norm block."""
        return norm(x) if self.norm_first else x

    def after(self, residual, x, norm, training):
        """Add the residual; a post-norm block normalizes the sum."""
        x = residual + self.dropout_layer(x, training=training)
        return x if self.norm_first else norm(x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "activation": self.activation,
            "norm_first": self.norm_first,
            "norm": self.norm,
            "epsilon": self.epsilon,
            "dropout": self.dropout,
            "attention_dropout": self.attention_dropout,
            "feedforward_dropout": self.feedforward_dropout,
            "use_bias": self.use_bias,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "attention_scale": self.attention_scale,
            "use_rotary": self.use_rotary,
            "rotary_max_wavelength": self.rotary_max_wavelength,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class EncoderBlock(TransformerBlock):
    """Self attention then feed-forward, each with a residual and a norm.

    Takes the arguments of `TransformerBlock`.

    Call arguments:
        inputs: `[batch, length, hidden_dim]`.
        padding_mask: `[batch, length]`, True for real tokens.
        attention_mask: `[batch, length, length]`.
        attention_bias: additive logits bias (T5's relative positions).
        return_attention_scores: also return `[batch, heads, length, length]`.
    """

    def build(self, inputs_shape):
        self.attention = self.make_attention("attention", self.use_rotary)
        self.attention.build(inputs_shape)
        self.attention_norm = self.make_norm("attention_norm")
        self.attention_norm.build(inputs_shape)
        self.feedforward = self.make_feedforward()
        self.feedforward.build(inputs_shape)
        self.feedforward_norm = self.make_norm("feedforward_norm")
        self.feedforward_norm.build(inputs_shape)

    def call(self, inputs, padding_mask=None, attention_mask=None, attention_bias=None,
             return_attention_scores=False, training=None):
        x = self.before(inputs, self.attention_norm)
        x, scores, _ = unpack_attention(
            self.attention(
                x, padding_mask=padding_mask, attention_mask=attention_mask,
                attention_bias=attention_bias,
                return_attention_scores=return_attention_scores, training=training,
            ),
            return_attention_scores,
        )
        x = self.after(inputs, x, self.attention_norm, training)

        y = self.feedforward(self.before(x, self.feedforward_norm), training=training)
        x = self.after(x, y, self.feedforward_norm, training)
        return (x, scores) if return_attention_scores else x


@keras.saving.register_keras_serializable(package=PACKAGE)
class DecoderBlock(TransformerBlock):
    """Causal self attention, optional cross attention, then feed-forward.

    Takes the arguments of `TransformerBlock`, and:
        use_cross_attention: attend to `encoder_outputs` (encoder-decoder models).

    Call arguments:
        inputs: `[batch, length, hidden_dim]`.
        encoder_outputs: `[batch, encoder_length, hidden_dim]` (cross attention).
        padding_mask: `[batch, length]` for the decoder tokens (`[batch, max_length]` with a
            cache: every cache position).
        encoder_padding_mask: `[batch, encoder_length]`.
        attention_bias: additive bias for self attention (T5's causal relative positions).
        cache: self attention cache `[batch, 2, max_length, kv_heads, head_dim]`.
        cache_index: where this call's tokens start in the sequence.
        cross_attention_cache: the encoder's keys and values, from
            `cross_attention.compute_cache(encoder_outputs)`, to skip recomputing them.
        return_attention_scores: also return `(self_scores, cross_scores)`.

    Returns:
        `output`, then `(self_scores, cross_scores)` if asked for, then the updated cache if
        one was given.
    """

    def __init__(self, *args, use_cross_attention=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.use_cross_attention = use_cross_attention

    def build(self, inputs_shape, encoder_outputs_shape=None):
        self.self_attention = self.make_attention("self_attention", self.use_rotary)
        self.self_attention.build(inputs_shape)
        self.self_attention_norm = self.make_norm("self_attention_norm")
        self.self_attention_norm.build(inputs_shape)
        if self.use_cross_attention:
            encoder_outputs_shape = encoder_outputs_shape or inputs_shape
            self.cross_attention = self.make_attention("cross_attention", rotary=False)
            self.cross_attention.build(inputs_shape, encoder_outputs_shape)
            self.cross_attention_norm = self.make_norm("cross_attention_norm")
            self.cross_attention_norm.build(inputs_shape)
        self.feedforward = self.make_feedforward()
        self.feedforward.build(inputs_shape)
        self.feedforward_norm = self.make_norm("feedforward_norm")
        self.feedforward_norm.build(inputs_shape)

    def call(self, inputs, encoder_outputs=None, padding_mask=None, encoder_padding_mask=None,
             attention_bias=None, cache=None, cache_index=None, cross_attention_cache=None,
             return_attention_scores=False, training=None):
        if self.use_cross_attention and encoder_outputs is None and cross_attention_cache is None:
            raise ValueError(
                "This DecoderBlock has cross attention: pass `encoder_outputs` (or "
                "`cross_attention_cache`)."
            )
        x = self.before(inputs, self.self_attention_norm)
        x, self_scores, cache = unpack_attention(
            self.self_attention(
                x, padding_mask=padding_mask, use_causal_mask=True,
                attention_bias=attention_bias, cache=cache, cache_index=cache_index,
                return_attention_scores=return_attention_scores, training=training,
            ),
            return_attention_scores, has_cache=cache is not None,
        )
        x = self.after(inputs, x, self.self_attention_norm, training)

        cross_scores = None
        if self.use_cross_attention:
            y = self.before(x, self.cross_attention_norm)
            y, cross_scores, _ = unpack_attention(
                self.cross_attention(
                    y, encoder_outputs, padding_mask=encoder_padding_mask,
                    cache=cross_attention_cache,
                    return_attention_scores=return_attention_scores, training=training,
                ),
                return_attention_scores, has_cache=cross_attention_cache is not None,
            )
            x = self.after(x, y, self.cross_attention_norm, training)

        y = self.feedforward(self.before(x, self.feedforward_norm), training=training)
        x = self.after(x, y, self.feedforward_norm, training)

        outputs = (x,)
        if return_attention_scores:
            outputs += ((self_scores, cross_scores),)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        return {**super().get_config(), "use_cross_attention": self.use_cross_attention}
