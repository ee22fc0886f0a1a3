"""The sequence-to-sequence language model task, shared by every encoder-decoder family.

`Seq2SeqLM` is the backbone plus its vocabulary head. What differs between families (T5's
head scaled by `hidden_dim ** -0.5` or untied, BART's and Marian's tied head plus a
`final_logits_bias`) is the backbone's; the task asks it through a small interface:

- `backbone.encode(token_ids, padding_mask, training=None)` -> encoder outputs;
- `backbone.decode(token_ids, encoder_outputs=None, encoder_padding_mask=None,
  padding_mask=None, cache=None, cache_index=None, cross_attention_cache=None,
  training=None)`: the decoder, on the whole sequence or (with `cache`) its newest tokens;
- `backbone.decoder_layers`: `DecoderBlock`s with cross attention;
- `backbone.make_lm_head()` -> a layer or None (owned by the task, named `lm_head`), and
  `backbone.lm_logits(hidden, lm_head)` -> vocabulary logits;
- `backbone.decoder_cache_dims` -> `(decoder layers, heads, head_dim)`;
- `backbone.decoder_context` -> the decoder positions the model has (learned or tabled
  positions), or None (T5's relative positions have no limit).

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("t5", task="seq2seq_lm")
>>> encoded, cross = model.encode(np.array([[5, 6, 1]]), np.ones((1, 3), "int32"))
>>> cache = model.make_cache(batch_size=1, max_length=4)
>>> logits, cache = model.call_with_cache(np.array([[0]]), cache, 0, cross)
>>> tuple(logits.shape)
(1, 1, 1024)
"""

import keras
from keras import ops

from zoo.task import GenerativeTask

PACKAGE = "zoo"


def run_decoder_layers(layers, x, encoder_outputs=None, encoder_padding_mask=None,
                       padding_mask=None, cache=None, cache_index=None,
                       cross_attention_cache=None, attention_bias=None, training=None):
    """A decoder stack's blocks on embedded tokens `x`, for every family's `decode`.

    Without `cache`: returns `[batch, length, hidden_dim]`. With `cache`
    (`[batch, layers, 2, max_length, heads, head_dim]`), `cache_index` and
    `cross_attention_cache`: returns the new tokens' hidden states and the updated cache.
    `attention_bias` (T5's relative positions) goes to every block.
    """
    if cache is None:
        for layer in layers:
            x = layer(x, encoder_outputs, padding_mask=padding_mask,
                      encoder_padding_mask=encoder_padding_mask, attention_bias=attention_bias,
                      training=training)
        return x
    layer_caches = []
    for i, layer in enumerate(layers):
        x, layer_cache = layer(
            x, padding_mask=padding_mask, encoder_padding_mask=encoder_padding_mask,
            attention_bias=attention_bias, cache=cache[:, i], cache_index=cache_index,
            cross_attention_cache=cross_attention_cache[:, i], training=training,
        )
        layer_caches.append(layer_cache)
    return x, ops.stack(layer_caches, axis=1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Seq2SeqLM(GenerativeTask):
    """Sequence to sequence language modelling: next-token logits of the decoder.

    Args:
        backbone: an encoder-decoder backbone (`T5Backbone`, `BartBackbone`, ...).

    Inputs are the backbone's; outputs logits `[batch, decoder_length, vocabulary_size]`.
    Train with teacher forcing: `decoder_token_ids` the targets shifted right behind a start
    token, `y` the targets, `sample_weight` the `decoder_padding_mask`.

    Cached decoding (for generation) uses three methods: `encode` runs the encoder once and
    returns its outputs and the cross attention keys and values; `make_cache` allocates the
    self attention cache; `call_with_cache` runs the decoder on the newest tokens. Caches
    stack every decoder layer:
      - self attention: `[batch, num_decoder_layers, 2, max_length, num_heads, head_dim]`,
        keys at `[:, i, 0]` and values at `[:, i, 1]` for layer `i`; position `p` holds the
        token at `p` once it has been decoded, zeros before (causal masking hides them).
      - cross attention: `[batch, num_decoder_layers, 2, encoder_length, num_heads, head_dim]`,
        the same layout over the encoder positions.
    """

    task_name = "seq2seq_lm"

    def __init__(self, backbone, **kwargs):
        self.lm_head = backbone.make_lm_head()
        hidden = backbone(backbone.input)["decoder_sequence_output"]
        logits = backbone.lm_logits(hidden, self.lm_head)
        super().__init__(inputs=backbone.input, outputs=logits, backbone=backbone, **kwargs)

    @property
    def context(self):
        """Decoder positions the model has, or None where positions are relative (T5)."""
        return self.backbone.decoder_context

    def encode(self, encoder_token_ids, encoder_padding_mask):
        """`(encoder_outputs, cross_attention_cache)` of a batch of source sequences.

        `encoder_outputs` is `[batch, encoder_length, hidden_dim]`; `cross_attention_cache`
        holds each decoder layer's keys and values of them (layout in the class docstring).
        """
        encoder_outputs = self.backbone.encode(
            encoder_token_ids, encoder_padding_mask, training=False
        )
        return encoder_outputs, self.cross_attention_cache(encoder_outputs)

    def cross_attention_cache(self, encoder_outputs):
        """Each decoder layer's cross attention keys and values of `encoder_outputs`."""
        return ops.stack(
            [layer.cross_attention.compute_cache(encoder_outputs)
             for layer in self.backbone.decoder_layers],
            axis=1,
        )

    def make_cache(self, batch_size, max_length):
        """An empty self attention cache for `max_length` decoder positions."""
        layers, heads, head_dim = self.backbone.decoder_cache_dims
        return ops.zeros((batch_size, layers, 2, max_length, heads, head_dim),
                         dtype=self.backbone.build_dtype.compute_dtype)

    def call_with_cache(self, decoder_token_ids, cache, cache_index, cross_attention_cache=None,
                        encoder_padding_mask=None, encoder_outputs=None,
                        decoder_padding_mask=None):
        """Logits of the newest decoder tokens, and the cache with their keys and values.

        Args:
            decoder_token_ids: `[batch, new_tokens]`, at positions `cache_index ...`.
            cache: from `make_cache` or the previous call.
            cache_index: position of the first new token (an int or int32 scalar).
            cross_attention_cache: from `encode`; computed from `encoder_outputs` when None.
            encoder_padding_mask: `[batch, encoder_length]`, 1 for real source tokens.
            encoder_outputs: used only when `cross_attention_cache` is None.
            decoder_padding_mask: optional, `[batch, max_length]` over all cache positions.

        Returns:
            `(logits [batch, new_tokens, vocabulary_size], cache)`.
        """
        if cross_attention_cache is None:
            if encoder_outputs is None:
                raise ValueError(
                    "call_with_cache needs the encoder's `cross_attention_cache` (from "
                    "`encode`) or its `encoder_outputs`."
                )
            cross_attention_cache = self.cross_attention_cache(encoder_outputs)
        self._check_cache(cache, "cache")
        self._check_cache(cross_attention_cache, "cross_attention_cache")
        hidden, cache = self.backbone.decode(
            decoder_token_ids, encoder_padding_mask=encoder_padding_mask,
            padding_mask=decoder_padding_mask, cache=cache, cache_index=cache_index,
            cross_attention_cache=cross_attention_cache, training=False,
        )
        return self.backbone.lm_logits(hidden, self.lm_head), cache

    def _check_cache(self, cache, name):
        layers, heads, head_dim = self.backbone.decoder_cache_dims
        expected = (None, layers, 2, None, heads, head_dim)
        shape = tuple(cache.shape)
        if len(shape) != len(expected) or any(
            e is not None and s is not None and s != e
            for s, e in zip(shape, expected, strict=True)
        ):
            raise ValueError(
                f"`{name}` has shape {shape}, expected [batch, {layers}, 2, length, "
                f"{heads}, {head_dim}] (per decoder layer: keys and values per head). "
                f"Make it with `make_cache` or `encode`."
            )
