"""Attention masks: padding, causal, and their merge.

Every mask here is boolean and `True` where a query may attend to a key. Masks are
broadcastable to `[batch, num_heads, query_length, key_length]`, the layout that
`keras.ops.dot_product_attention` takes.

Example:

>>> import numpy as np
>>> padding = np.array([[1, 1, 0]], dtype=bool)          # [batch, key_length]
>>> mask = merge_masks(padding_mask=padding, use_causal_mask=True,
...                    query_length=3, key_length=3)
>>> tuple(mask.shape)
(1, 1, 3, 3)
"""

from keras import ops


def causal_mask(query_length, key_length, query_start=0):
    """`[query_length, key_length]`: query `i` (at position `query_start + i`) sees keys `<= it`.

    `query_start` is the position of the first query, as when the queries are the newest
    tokens of a sequence whose earlier keys sit in a cache.
    """
    query_positions = ops.arange(query_length, dtype="int32") + ops.cast(query_start, "int32")
    key_positions = ops.arange(key_length, dtype="int32")
    return ops.expand_dims(query_positions, 1) >= ops.expand_dims(key_positions, 0)


def check_mask_shape(mask, name, expected):
    """Raise a `ValueError` unless `mask`'s static shape matches `expected` (None = any)."""
    shape = tuple(mask.shape)
    matches = len(shape) == len(expected) and all(
        not isinstance(e, int) or s is None or s == e
        for s, e in zip(shape, expected, strict=True)
    )
    if not matches:
        readable = ", ".join(str(e) if isinstance(e, int) else "?" for e in expected)
        raise ValueError(
            f"`{name}` has shape {shape}, expected ({readable}). "
            f"Pass `padding_mask` as [batch, key_length] (True for real tokens) and "
            f"`attention_mask` as [batch, query_length, key_length] (True where a query may "
            f"attend to a key)."
        )


def merge_masks(
    padding_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    query_length=None,
    key_length=None,
    query_start=0,
):
    """Combine a key padding mask, a full attention mask and causal masking into one.

    Args:
        padding_mask: `[batch, key_length]`, True (or 1) for real tokens.
        attention_mask: `[batch, query_length, key_length]`, True where attending is allowed.
        use_causal_mask: mask keys after each query's position.
        query_length, key_length: needed for causal masking and shape checks.
        query_start: position of the first query (for decoding with a cache).

    Returns:
        A boolean mask broadcastable to `[batch, 1, query_length, key_length]`, or None
        when there is nothing to mask.
    """
    mask = None
    if padding_mask is not None:
        check_mask_shape(padding_mask, "padding_mask", (None, key_length))
        mask = ops.cast(padding_mask, "bool")[:, None, None, :]
    if attention_mask is not None:
        check_mask_shape(attention_mask, "attention_mask", (None, query_length, key_length))
        full = ops.cast(attention_mask, "bool")[:, None, :, :]
        mask = full if mask is None else ops.logical_and(mask, full)
    if use_causal_mask:
        causal = causal_mask(query_length, key_length, query_start)[None, None, :, :]
        mask = causal if mask is None else ops.logical_and(mask, causal)
    return mask
