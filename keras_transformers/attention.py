"""Scaled dot-product attention and the one `MultiHeadAttention` layer every model uses.

Example:

>>> import numpy as np
>>> x = np.random.rand(2, 6, 32).astype("float32")
>>> attention = MultiHeadAttention(num_heads=4, num_kv_heads=2, use_rotary=True)
>>> out, scores = attention(x, use_causal_mask=True, return_attention_scores=True)
>>> tuple(out.shape), tuple(scores.shape)
((2, 6, 32), (2, 4, 6, 6))
>>> with recording_scores([attention]):                 # keep them on the layer instead
...     out = attention(x, use_causal_mask=True)
...     tuple(attention.recorded_scores.shape)
(2, 4, 6, 6)
>>> attention.recorded_scores is None                   # cleared when the context ends
True
"""

import contextlib

import keras
from keras import ops

from keras_transformers.dropout import Dropout
from keras_transformers.fusion import unfused
from keras_transformers.initializers import clone_initializer
from keras_transformers.masks import merge_masks
from keras_transformers.positions import RotaryEmbedding

PACKAGE = "keras_transformers"
# Large enough to zero a probability, small enough not to overflow bfloat16 / float16.
MASKED_LOGIT = -1e9


def dot_product_attention(query, key, value, mask=None, bias=None, scale=None,
                          return_scores=False, dropout=None):
    """`softmax(query @ key^T * scale + bias, masked) @ value`, for all heads at once.

    Args:
        query: `[batch, query_length, num_heads, head_dim]`.
        key, value: `[batch, key_length, num_kv_heads, head_dim]`; `num_heads` must be a
            multiple of `num_kv_heads` (grouped-query attention: query head `h` reads key
            head `h // (num_heads // num_kv_heads)`).
        mask: boolean, broadcastable to `[batch, num_heads, query_length, key_length]`,
            True where attending is allowed.
        bias: additive, broadcastable like `mask` (T5's relative position bias).
        scale: multiplies the logits; `1 / sqrt(head_dim)` when None.
        return_scores: also return the attention probabilities
            `[batch, num_heads, query_length, key_length]`.
        dropout: a function (a `Dropout` layer's call) applied to the probabilities (training only).

    Without `return_scores` or dropout this is `keras.ops.dot_product_attention`, which the
    JAX backend fuses (flash attention on GPU). Softmax is computed in float32.
    """
    num_heads, num_kv_heads = query.shape[2], key.shape[2]
    if num_heads % num_kv_heads:
        raise ValueError(
            f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})."
        )
    if not return_scores and dropout is None:
        if num_kv_heads != num_heads:
            # The TensorFlow backend does not broadcast a single shared head (MQA).
            key = ops.repeat(key, num_heads // num_kv_heads, axis=2)
            value = ops.repeat(value, num_heads // num_kv_heads, axis=2)
        return ops.dot_product_attention(query, key, value, bias=bias, mask=mask, scale=scale)

    if scale is None:
        scale = 1.0 / float(query.shape[-1]) ** 0.5
    groups = num_heads // num_kv_heads
    batch, query_length = ops.shape(query)[0], ops.shape(query)[1]
    if scale != 1.0:  # on the queries: fewer numbers than the logits
        query = ops.multiply(query, ops.cast(scale, query.dtype))
    if groups == 1:  # plain multi-head: 4-D einsums, which TensorFlow runs as one batch matmul
        logits = ops.einsum("bqhd,bkhd->bhqk", query, key)
    else:
        grouped = ops.reshape(query, (batch, query_length, num_kv_heads, groups,
                                      query.shape[-1]))
        logits = ops.einsum("bqkgd,bskd->bkgqs", grouped, key)
        logits = ops.reshape(logits, (batch, num_heads, query_length, ops.shape(key)[1]))
    logits = ops.cast(logits, "float32")
    if bias is not None:
        logits = logits + ops.cast(bias, "float32")
    if mask is not None:
        logits = ops.where(mask, logits, MASKED_LOGIT)
    scores = ops.softmax(logits, axis=-1)
    probabilities = ops.cast(scores, value.dtype)
    if dropout is not None:
        probabilities = dropout(probabilities)
    if groups == 1:
        output = ops.einsum("bhqk,bkhd->bqhd", probabilities, value)
    else:
        probabilities = ops.reshape(
            probabilities, (batch, num_kv_heads, groups, query_length, ops.shape(key)[1])
        )
        output = ops.einsum("bkgqs,bskd->bqkgd", probabilities, value)
        output = ops.reshape(output, (batch, query_length, num_heads, value.shape[-1]))
    return (output, scores) if return_scores else output


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention: self or cross, grouped KV heads, rotary, KV cache.

    Its weights have the shapes and order of `keras.layers.MultiHeadAttention`
    (`query`, `key`, `value`, `attention_output`, each a kernel and a bias), so weights
    move between the two with `set_weights`.

    Args:
        num_heads: query heads.
        head_dim: width of one head; `hidden_dim // num_heads` when None.
        num_kv_heads: key/value heads (GQA); `num_heads` when None, 1 for MQA.
        output_dim: width of the output; the query's width when None.
        use_bias: biases in the four projections.
        dropout: dropout rate on the attention probabilities.
        scale: logit scale; `1 / sqrt(head_dim)` when None (T5 uses 1.0).
        use_rotary: rotate queries and keys with `RotaryEmbedding`.
        rotary_max_wavelength: rotary base.
        kernel_initializer, bias_initializer: for the projections.

    Call arguments:
        query: `[batch, query_length, dim]`.
        value: `[batch, key_length, dim]` for cross attention; `query` when None.
        key: `value` when None.
        padding_mask: `[batch, key_length]`, True for real tokens.
        attention_mask: `[batch, query_length, key_length]`, True where attending is allowed.
        use_causal_mask: mask future keys.
        attention_bias: additive, broadcastable to `[batch, heads, query_length, key_length]`.
        cache: with `cache_index`, a self-attention cache
            `[batch, 2, max_length, num_kv_heads, head_dim]` (keys, values) into which this
            call's keys and values are written at `cache_index`; the queries then attend to
            all cache positions before their own. Without `cache_index`, precomputed cross
            attention keys and values in the same layout (see `compute_cache`).
        cache_index: position of the first query in the sequence (an int or int32 scalar).
        return_attention_scores: also return `[batch, heads, query_length, key_length]`.

    Returns:
        `output`, then the attention scores if asked for, then the updated cache if one was
        given: `output`, `(output, scores)`, `(output, cache)` or `(output, scores, cache)`.

    Inside `recording_scores([layer, ...])`, an eager call also keeps its scores (those that
    `return_attention_scores=True` returns) in `recorded_scores`, whatever it returns; traced
    calls (`tf.function`, `jax.jit`, building a functional model) keep nothing.
    """

    def __init__(self, num_heads, head_dim=None, num_kv_heads=None, output_dim=None,
                 use_bias=True, dropout=0.0, scale=None, use_rotary=False,
                 rotary_max_wavelength=10000, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads}): "
                f"each key/value head serves the same number of query heads. Pick num_kv_heads "
                f"from the divisors of {num_heads}."
            )
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_kv_heads = num_kv_heads
        self.output_dim = output_dim
        self.use_bias = use_bias
        self.dropout = dropout
        self.scale = scale
        self.use_rotary = use_rotary
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.rotary = RotaryEmbedding(rotary_max_wavelength, dtype=self.dtype_policy,
                                      name="rotary") if use_rotary else None
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy) \
            if dropout else None
        self.recording = False  # set by `recording_scores`
        self.recorded_scores = None

    def _projection(self, name, equation, output_shape, bias_axes):
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        hidden_dim = query_shape[-1]
        if self.head_dim is None:
            if hidden_dim % self.num_heads:
                raise ValueError(
                    f"hidden_dim ({hidden_dim}) is not divisible by num_heads "
                    f"({self.num_heads}). Choose num_heads among the divisors of {hidden_dim}, "
                    f"or pass head_dim explicitly."
                )
            self.head_dim = hidden_dim // self.num_heads
        heads, kv_heads, depth = self.num_heads, self.num_kv_heads, self.head_dim
        output_dim = self.output_dim or hidden_dim
        self.query_dense = self._projection("query", "abc,cde->abde", (None, heads, depth), "de")
        self.key_dense = self._projection("key", "abc,cde->abde", (None, kv_heads, depth), "de")
        self.value_dense = self._projection(
            "value", "abc,cde->abde", (None, kv_heads, depth), "de"
        )
        self.output_dense = self._projection(
            "attention_output", "abcd,cde->abe", (None, output_dim), "e"
        )
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense.build((query_shape[0], query_shape[1], heads, depth))

    def compute_cache(self, value, key=None):
        """Keys and values of `value` as a cache `[batch, 2, length, num_kv_heads, head_dim]`.

        For cross attention: computed once from the encoder outputs, then passed as `cache`
        (without `cache_index`) at every decoding step.
        """
        key = value if key is None else key
        return ops.stack([self._heads(self.key_dense, key), self._heads(self.value_dense, value)],
                         axis=1)

    def _heads(self, dense, x, decoding=False):
        """`dense(x)` for a projection to heads, `[batch, length, heads, head_dim]`, as one
        2-D matrix product: XLA on CPU turns the 3-D kernel's einsum into an element-wise
        loop when the length is 1 (decoding), about 25 times slower per layer. `decoding`
        (a step with a cache) also keeps the reshaped kernel out of XLA's fusion (`unfused`).

        A quantized projection runs its own call (its kernel holds integers, not the
        weights); `dense.kernel` includes a LoRA delta (`enable_lora`)."""
        if dense.quantization_mode is not None:
            return dense(x)
        kernel = dense.kernel
        heads, depth = kernel.shape[1], kernel.shape[2]
        matrix = ops.reshape(kernel, (kernel.shape[0], heads * depth))
        out = ops.matmul(x, unfused(matrix) if decoding else matrix)
        if dense.bias is not None:
            out = out + ops.reshape(dense.bias, (heads * depth,))
        return ops.reshape(out, (*ops.shape(x)[:-1], heads, depth))

    def _merge_heads(self, x, decoding=False):
        """`output_dense(x)` for `x` `[batch, length, heads, head_dim]`, as one 2-D product
        (a quantized projection runs its own call; `decoding` as in `_heads`)."""
        if self.output_dense.quantization_mode is not None:
            return self.output_dense(x)
        kernel = self.output_dense.kernel
        width = kernel.shape[0] * kernel.shape[1]
        matrix = ops.reshape(kernel, (width, kernel.shape[2]))
        out = ops.matmul(ops.reshape(x, (*ops.shape(x)[:-2], width)),
                         unfused(matrix) if decoding else matrix)
        if self.output_dense.bias is not None:
            out = out + self.output_dense.bias
        return out

    def call(self, query, value=None, key=None, padding_mask=None, attention_mask=None,
             use_causal_mask=False, attention_bias=None, cache=None, cache_index=None,
             return_attention_scores=False, training=None):
        is_self_attention = value is None and key is None
        value = query if value is None else value
        key = value if key is None else key
        query_start = 0 if cache_index is None else cache_index
        decoding = cache is not None

        queries = self._heads(self.query_dense, query, decoding)
        if cache is not None and cache_index is None:  # precomputed cross attention K/V
            keys, values = cache[:, 0], cache[:, 1]
        else:
            keys = self._heads(self.key_dense, key, decoding)
            values = self._heads(self.value_dense, value, decoding)
            if self.rotary is not None:
                queries = self.rotary(queries, start_index=query_start)
                keys = self.rotary(keys, start_index=query_start)
        if cache is not None and cache_index is not None:
            if not is_self_attention:
                raise ValueError(
                    "`cache_index` is for self-attention caches. For cross attention pass the "
                    "encoder's keys and values as `cache` (from `compute_cache`) without "
                    "`cache_index`."
                )
            self._check_cache(cache, query, cache_index)
            start = [0, 0, cache_index, 0, 0]
            cache = ops.slice_update(cache, start, ops.stack([keys, values], axis=1))
            keys, values = cache[:, 0], cache[:, 1]
            # Positions beyond the newest query are empty: causal masking hides them.
            use_causal_mask = True

        query_length, key_length = query.shape[1], keys.shape[1]
        if query_length is None:
            query_length = ops.shape(query)[1]
        if key_length is None:
            key_length = ops.shape(keys)[1]
        mask = merge_masks(padding_mask, attention_mask, use_causal_mask,
                           query_length, key_length, query_start)
        dropout = None
        if training and self.dropout_layer is not None:
            def dropout(probabilities):
                return self.dropout_layer(probabilities, training=True)
        record = self.recording and is_eager(queries)
        with_scores = return_attention_scores or record
        result = dot_product_attention(
            queries, keys, values, mask=mask, bias=attention_bias, scale=self.scale,
            return_scores=with_scores, dropout=dropout,
        )
        attended, scores = result if with_scores else (result, None)
        if record:
            self.recorded_scores = scores
        output = self._merge_heads(attended, decoding)

        outputs = (output,)
        if return_attention_scores:
            outputs += (scores,)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _check_cache(self, cache, query, cache_index):
        expected = (None, 2, None, self.num_kv_heads, self.head_dim)
        shape = tuple(cache.shape)
        if len(shape) != 5 or any(
            e is not None and s is not None and s != e for s, e in zip(shape, expected,
                                                                       strict=True)
        ):
            raise ValueError(
                f"cache has shape {shape}, expected [batch, 2, max_length, "
                f"{self.num_kv_heads}, {self.head_dim}] (keys and values per KV head)."
            )
        cache_length, new_tokens = shape[2], query.shape[1]
        if cache_length is None or new_tokens is None:
            return
        first = cache_index if isinstance(cache_index, int) else 0
        if first + new_tokens > cache_length:
            raise ValueError(
                f"The cache holds {cache_length} positions but this call writes positions "
                f"{first}..{first + new_tokens - 1} (cache_index {first} + {new_tokens} new "
                f"tokens). Allocate a cache with max_length >= prompt length + new tokens."
            )

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "num_kv_heads": self.num_kv_heads,
            "output_dim": self.output_dim,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "scale": self.scale,
            "use_rotary": self.use_rotary,
            "rotary_max_wavelength": self.rotary_max_wavelength,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@contextlib.contextmanager
def recording_scores(layers):
    """Within the context, each `MultiHeadAttention` of `layers` keeps the attention
    probabilities `[batch, heads, query_length, key_length]` of its last eager call in
    `recorded_scores` (computed as with `return_attention_scores=True`).

    Outside it (the default) calls compute and keep nothing more. Traced calls never record.
    On exit, also on error, recording stops and `recorded_scores` is cleared. Yields the
    layers.
    """
    layers = list(layers)
    for layer in layers:
        if not isinstance(layer, MultiHeadAttention):
            raise TypeError(f"recording_scores takes MultiHeadAttention layers, got a "
                            f"{type(layer).__name__}.")
    previous = [layer.recording for layer in layers]
    for layer in layers:
        layer.recording = True
    try:
        yield layers
    finally:
        for layer, was_recording in zip(layers, previous, strict=True):
            layer.recording = was_recording
            if not was_recording:
                layer.recorded_scores = None


def is_eager(x):
    """Whether `x` is a concrete tensor: not inside `tf.function`, `jax.jit` or a symbolic
    (functional model) build."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling() and x.device.type != "meta"
    return True
