"""Masks against boolean arrays written out by hand."""

import numpy as np
import pytest
from keras import ops

from keras_transformers.masks import causal_mask, merge_masks

T, F = True, False


def as_bool(mask):
    return np.asarray(ops.convert_to_numpy(mask))


def test_causal_mask_square():
    expected = np.array([
        [T, F, F, F],
        [T, T, F, F],
        [T, T, T, F],
        [T, T, T, T],
    ])
    mask = as_bool(causal_mask(4, 4))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, expected)


def test_causal_mask_with_query_start_sees_cached_keys():
    # Two new queries at positions 3 and 4 against five keys (three of them cached).
    expected = np.array([
        [T, T, T, T, F],
        [T, T, T, T, T],
    ])
    np.testing.assert_array_equal(as_bool(causal_mask(2, 5, query_start=3)), expected)


def test_causal_mask_single_query_at_query_start():
    np.testing.assert_array_equal(
        as_bool(causal_mask(1, 6, query_start=2)), [[T, T, T, F, F, F]]
    )


def test_merge_masks_returns_none_when_nothing_to_mask():
    assert merge_masks(query_length=3, key_length=3) is None
    assert merge_masks() is None


def test_merge_masks_padding_only_broadcasts_over_queries():
    padding = np.array([[1, 1, 0], [1, 0, 0]])
    mask = as_bool(merge_masks(padding_mask=padding, query_length=2, key_length=3))
    assert mask.shape == (2, 1, 1, 3)
    np.testing.assert_array_equal(mask[:, 0, 0], [[T, T, F], [T, F, F]])


def test_merge_masks_causal_only():
    mask = as_bool(merge_masks(use_causal_mask=True, query_length=3, key_length=3))
    assert mask.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(mask[0, 0], [[T, F, F], [T, T, F], [T, T, T]])


def test_merge_masks_combines_padding_causal_and_attention_mask():
    padding = np.array([
        [T, T, T, F],
        [T, T, F, F],
    ])
    attention = np.array([
        [[T, T, T, T], [F, T, T, T], [T, F, T, T], [T, T, T, T]],
        [[T, T, T, T], [T, T, T, T], [T, T, T, T], [F, T, T, F]],
    ])
    mask = as_bool(merge_masks(
        padding_mask=padding, attention_mask=attention, use_causal_mask=True,
        query_length=4, key_length=4,
    ))
    assert mask.shape == (2, 1, 4, 4)
    expected = np.array([
        [[T, F, F, F],
         [F, T, F, F],
         [T, F, T, F],
         [T, T, T, F]],
        [[T, F, F, F],
         [T, T, F, F],
         [T, T, F, F],
         [F, T, F, F]],
    ])
    np.testing.assert_array_equal(mask[:, 0], expected)


def test_merge_masks_causal_with_query_start_and_padding():
    padding = np.array([[F, T, T, T, T]])  # a left-padded cache
    mask = as_bool(merge_masks(
        padding_mask=padding, use_causal_mask=True, query_length=2, key_length=5,
        query_start=3,
    ))
    np.testing.assert_array_equal(mask[0, 0], [[F, T, T, T, F], [F, T, T, T, T]])


def test_merge_masks_padding_of_wrong_length_raises_with_shape():
    with pytest.raises(ValueError, match=r"padding_mask") as info:
        merge_masks(padding_mask=np.ones((2, 5), bool), query_length=3, key_length=4)
    assert "(2, 5)" in str(info.value)


def test_merge_masks_attention_mask_of_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"`attention_mask` has shape \(1, 3, 3\)"):
        merge_masks(attention_mask=np.ones((1, 3, 3), bool), query_length=3, key_length=4)
