"""Position layers against the formulas of their papers, computed by hand."""

import math

import keras
import numpy as np
import pytest

from keras_transformers.positions import (
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
    relative_position_bucket,
)
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test


def paper_sinusoids(length, hidden_dim, start=0, max_wavelength=10000):
    """Vaswani et al. (2017), section 3.5, one entry at a time."""
    table = np.zeros((length, hidden_dim))
    for row in range(length):
        pos = start + row
        for i in range(hidden_dim // 2):
            angle = pos / max_wavelength ** (2 * i / hidden_dim)
            table[row, 2 * i] = math.sin(angle)
            table[row, 2 * i + 1] = math.cos(angle)
    return table


# --- SinusoidalPositionEncoding ---------------------------------------------------------


def test_sinusoidal_encoding_matches_paper_formula():
    x = np.zeros((2, 7, 12), "float32")
    out = as_numpy(SinusoidalPositionEncoding()(x))
    assert out.shape == (2, 7, 12)
    expected = paper_sinusoids(7, 12)
    assert_close(out[0], expected)
    assert_close(out[1], expected)


def test_sinusoidal_encoding_start_index_shifts_positions():
    x = np.zeros((1, 4, 8), "float32")
    out = SinusoidalPositionEncoding(max_wavelength=100)(x, start_index=5)
    assert_close(out[0], paper_sinusoids(4, 8, start=5, max_wavelength=100))


def test_sinusoidal_encoding_in_halves_is_marians_layout():
    """Marian (and fairseq): the paper's sines in the first half, its cosines in the second."""
    x = np.zeros((1, 6, 10), "float32")
    out = as_numpy(SinusoidalPositionEncoding(interleave=False)(x, start_index=3))
    paper = paper_sinusoids(6, 10, start=3)
    assert_close(out[0], np.concatenate([paper[:, 0::2], paper[:, 1::2]], axis=1))
    config = SinusoidalPositionEncoding(interleave=False).get_config()
    assert SinusoidalPositionEncoding.from_config(config).interleave is False


def test_sinusoidal_encoding_rejects_odd_hidden_dim():
    with pytest.raises(ValueError, match="even hidden_dim"):
        SinusoidalPositionEncoding()(np.zeros((1, 3, 5), "float32"))


def test_sinusoidal_encoding_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: SinusoidalPositionEncoding(**kw),
        {"x": random_inputs(2, 3, 8)},
        expected_shape=(2, 3, 8),
        tmp_path=tmp_path,
    )


# --- PositionEmbedding ------------------------------------------------------------------


def test_position_embedding_returns_table_rows():
    layer = PositionEmbedding(sequence_length=6)
    x = np.zeros((2, 4, 3), "float32")
    layer.build(x.shape)
    table = np.arange(18, dtype="float32").reshape(6, 3) / 10
    layer.embeddings.assign(table)
    out = as_numpy(layer(x))
    assert out.shape == (2, 4, 3)
    assert_close(out[0], table[:4], atol=0, rtol=0)
    assert_close(out[1], table[:4], atol=0, rtol=0)
    assert_close(layer(x[:, :3], start_index=3)[0], table[3:6], atol=0, rtol=0)


def test_position_embedding_rejects_too_long_input():
    layer = PositionEmbedding(sequence_length=4)
    with pytest.raises(ValueError, match="sequence_length"):
        layer(np.zeros((1, 5, 3), "float32"))
    with pytest.raises(ValueError, match="sequence_length"):
        layer(np.zeros((1, 3, 3), "float32"), start_index=2)


def test_position_embedding_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: PositionEmbedding(sequence_length=5, **kw),
        {"x": random_inputs(2, 3, 4)},
        expected_shape=(2, 3, 4),
        tmp_path=tmp_path,
    )


# --- relative_position_bucket -----------------------------------------------------------

# T5: bucket = max_exact + int(log(n / max_exact) / log(max_distance / max_exact)
#                                * (num_buckets - max_exact)), capped at num_buckets - 1.
# Bidirectional, 8 buckets: 4 per direction, max_exact 2, log base 16 / 2 = 8:
#   n=3: 2 + int(2 log 1.5 / log 8) = 2 + int(0.39) = 2;  n=4: 2 + int(2/3) = 2;
#   n=8: 2 + int(4/3) = 3;  n=16: 2 + 2 = 4 -> capped 3.  Keys after the query: + 4.
BIDIRECTIONAL_BUCKETS = {
    0: 0, -1: 1, -2: 2, -3: 2, -4: 2, -8: 3, -16: 3, -100: 3,
    1: 5, 2: 6, 4: 6, 8: 7, 100: 7,
}
# Causal, 8 buckets, max_exact 4, log base 16 / 4 = 4; keys after the query share bucket 0:
#   n=5: 4 + int(4 log 1.25 / log 4) = 4 + int(0.64) = 4;  n=6: 4 + int(1.17) = 5;
#   n=8: 4 + int(2.0) = 6;  n=16: 4 + 4 = 8 -> capped 7.
CAUSAL_BUCKETS = {
    3: 0, 1: 0, 0: 0, -1: 1, -3: 3, -4: 4, -5: 4, -6: 5, -8: 6, -16: 7, -100: 7,
}


@pytest.mark.parametrize(
    "bidirectional, table",
    [(True, BIDIRECTIONAL_BUCKETS), (False, CAUSAL_BUCKETS)],
    ids=["bidirectional", "causal"],
)
def test_relative_position_bucket_matches_hand_computed_t5_table(bidirectional, table):
    relative = np.array(list(table), "int32")
    buckets = keras.ops.convert_to_numpy(
        relative_position_bucket(relative, bidirectional, num_buckets=8, max_distance=16)
    )
    np.testing.assert_array_equal(buckets, np.array(list(table.values())))


# --- RelativePositionBias ---------------------------------------------------------------


def hand_bias(embeddings, buckets_of, query_length, key_length, query_start=0):
    """`[1, heads, q, k]` with entry `embeddings[bucket(key - query), head]`."""
    heads = embeddings.shape[1]
    bias = np.zeros((1, heads, query_length, key_length), "float32")
    for h in range(heads):
        for i in range(query_length):
            for j in range(key_length):
                bias[0, h, i, j] = embeddings[buckets_of[j - (query_start + i)], h]
    return bias


def bias_layer(**kwargs):
    layer = RelativePositionBias(num_heads=2, num_buckets=8, max_distance=16, **kwargs)
    layer.build((None, None, 4))
    embeddings = np.arange(16, dtype="float32").reshape(8, 2) + 0.5
    embeddings[:, 1] *= -1
    layer.embeddings.assign(embeddings)
    return layer, embeddings


def test_relative_position_bias_gathers_bucket_embeddings_per_head():
    layer, embeddings = bias_layer()
    query = np.zeros((2, 3, 4), "float32")
    key = np.zeros((2, 5, 4), "float32")
    out = as_numpy(layer(query, key))
    assert out.shape == (1, 2, 3, 5)
    # key - query runs from -2 to 4; +3: 2 + int(2 log 1.5 / log 8) = 2, plus 4 = 6.
    buckets = {-2: 2, -1: 1, 0: 0, 1: 5, 2: 6, 3: 6, 4: 6}
    assert_close(out, hand_bias(embeddings, buckets, 3, 5), atol=0, rtol=0)
    # key defaults to the query.
    assert_close(layer(query), hand_bias(embeddings, buckets, 3, 3), atol=0, rtol=0)


def test_relative_position_bias_query_start_shifts_queries():
    layer, embeddings = bias_layer(bidirectional=False)
    query = np.zeros((1, 2, 4), "float32")
    key = np.zeros((1, 6, 4), "float32")
    out = as_numpy(layer(query, key, query_start=4))
    assert out.shape == (1, 2, 2, 6)
    # key - query runs from -5 to 1.
    buckets = {-5: 4, -4: 4, -3: 3, -2: 2, -1: 1, 0: 0, 1: 0}
    expected = hand_bias(embeddings, buckets, 2, 6, query_start=4)
    assert_close(out, expected, atol=0, rtol=0)
    # Query 0 sits at position 4: it sees key 4 in bucket 0 and key 0 in bucket 4.
    assert out[0, 0, 0, 4] == embeddings[0, 0] and out[0, 0, 0, 0] == embeddings[4, 0]


def test_relative_position_bias_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: RelativePositionBias(num_heads=2, num_buckets=8, max_distance=16, **kw),
        {"query": random_inputs(2, 3, 4), "key": random_inputs(2, 5, 4, seed=1)},
        expected_shape=(1, 2, 3, 5),
        tmp_path=tmp_path,
    )


# --- RotaryEmbedding --------------------------------------------------------------------


def test_rotary_matches_hand_computed_rotate_half_case():
    # head_dim 4, max_wavelength 100: inverse frequencies 100 ** (-2j / 4) = [1, 0.1].
    # Pairs are channels (0, 2) at angle 1 and (1, 3) at angle 0.1.
    x = np.zeros((1, 2, 1, 4), "float32")
    x[0, 1, 0] = [1, 2, 3, 4]
    out = as_numpy(RotaryEmbedding(max_wavelength=100)(x))
    c1, s1, c01, s01 = math.cos(1), math.sin(1), math.cos(0.1), math.sin(0.1)
    expected = [1 * c1 - 3 * s1, 2 * c01 - 4 * s01, 3 * c1 + 1 * s1, 4 * c01 + 2 * s01]
    assert_close(out[0, 1, 0], expected)
    assert_close(out[0, 0, 0], np.zeros(4))


def test_rotary_position_zero_is_identity():
    x = random_inputs(2, 1, 3, 8)
    assert_close(RotaryEmbedding()(x), x, atol=0, rtol=0)


def test_rotary_start_index_equals_later_positions_of_longer_sequence():
    x = random_inputs(1, 6, 2, 8)
    rotary = RotaryEmbedding(max_wavelength=50)
    full = as_numpy(rotary(x))
    assert_close(rotary(x[:, 4:], start_index=4), full[:, 4:])
    # And start_index is not ignored: a shifted rotation differs from the unshifted one.
    assert not np.allclose(as_numpy(rotary(x[:, 4:])), full[:, 4:], atol=1e-3)


def test_rotary_scaling_factor_divides_positions():
    x = np.zeros((1, 3, 1, 4), "float32")
    x[0, 2, 0] = [1, 2, 3, 4]
    out = as_numpy(RotaryEmbedding(max_wavelength=100, scaling_factor=2.0)(x))
    # Position 2 / 2 = 1: the same as the hand-computed case above.
    c1, s1, c01, s01 = math.cos(1), math.sin(1), math.cos(0.1), math.sin(0.1)
    assert_close(out[0, 2, 0], [c1 - 3 * s1, 2 * c01 - 4 * s01, 3 * c1 + s1, 4 * c01 + 2 * s01])


def test_rotary_dot_product_depends_only_on_relative_offset():
    rotary = RotaryEmbedding(max_wavelength=100)
    head_dim, length = 8, 12
    q = random_inputs(head_dim, seed=1)
    k = random_inputs(head_dim, seed=2)
    # The same q and k at every position, so position p holds rotation by p.
    rotated_q = as_numpy(rotary(np.tile(q, (1, length, 1, 1))))[0, :, 0]
    rotated_k = as_numpy(rotary(np.tile(k, (1, length, 1, 1))))[0, :, 0]
    scores = rotated_q @ rotated_k.T  # scores[m, n] = <R_m q, R_n k>
    for m, n in [(0, 0), (1, 3), (4, 2), (6, 0), (0, 6)]:
        np.testing.assert_allclose(scores[m + 5, n + 5], scores[m, n], atol=1e-4)
    # ... and does depend on it.
    assert abs(scores[1, 3] - scores[3, 1]) > 1e-3
    assert abs(scores[0, 0] - scores[0, 1]) > 1e-3


def test_rotary_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="even head_dim"):
        RotaryEmbedding()(np.zeros((1, 2, 1, 5), "float32"))


def test_rotary_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: RotaryEmbedding(max_wavelength=100, **kw),
        {"x": random_inputs(2, 3, 2, 4)},
        expected_shape=(2, 3, 2, 4),
        tmp_path=tmp_path,
    )
