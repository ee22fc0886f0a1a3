"""Dropout: its hashed mask against a numpy reference, its statistics, its contract."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_transformers.dropout import Dropout, dropout, hash_uniform_bits
from tests.helpers import as_numpy, random_inputs, run_layer_test


def numpy_fmix32(h):
    h = h.astype(np.uint64)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def numpy_bits(shape, seed):
    seed = np.asarray(seed, np.uint64)
    key = numpy_fmix32((seed[0] * 0x9E3779B1) & 0xFFFFFFFF ^ numpy_fmix32(seed[1:2])[0])
    index = np.arange(int(np.prod(shape)), dtype=np.uint64)
    return numpy_fmix32((index * 0x9E3779B1) & 0xFFFFFFFF ^ key).reshape(shape)


def test_bits_equal_the_numpy_reference():
    seed = np.array([12345, 7], "int32")
    bits = ops.convert_to_numpy(hash_uniform_bits((3, 50), ops.convert_to_tensor(seed)))
    assert bits.dtype == np.uint32
    np.testing.assert_array_equal(bits.astype(np.uint64), numpy_bits((3, 50), seed))


def test_bits_are_uniform_and_independent():
    bits = ops.convert_to_numpy(hash_uniform_bits((1 << 20,), ops.convert_to_tensor([3, 0])))
    bits = bits / 2.0**32
    assert abs(bits.mean() - 0.5) < 0.002  # sd of the mean: 0.29 / 1024
    counts = np.histogram(bits, bins=16, range=(0, 1))[0]
    assert np.abs(counts / len(bits) * 16 - 1).max() < 0.02
    # Neighbours (index i and i + 1, and i and i + row) are uncorrelated.
    for lag in (1, 256):
        assert abs(np.corrcoef(bits[:-lag], bits[lag:])[0, 1]) < 0.005


def test_seeds_give_different_masks():
    masks = [ops.convert_to_numpy(hash_uniform_bits((4096,), ops.convert_to_tensor(seed))) > 2**31
             for seed in ([0, 0], [0, 1], [1, 0], [2**31 - 2, 5])]
    for i in range(len(masks)):
        for j in range(i):
            agreement = (masks[i] == masks[j]).mean()
            assert 0.45 < agreement < 0.55, (i, j, agreement)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_zeroes_the_rate_and_scales_the_rest(rate):
    x = random_inputs(64, 1024) + 3.0  # no zeros of its own
    out = as_numpy(dropout(x, rate, ops.convert_to_tensor([4, 2])))
    dropped = out == 0
    n = dropped.size
    assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)


def test_layer_masks_change_each_call_and_repeat_with_the_seed():
    x = np.ones((8, 128), "float32")

    def masks(seed):
        layer = Dropout(0.5, seed=seed)
        return [as_numpy(layer(x, training=True)) == 0 for _ in range(3)]

    first, again, other = masks(1), masks(1), masks(2)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (first[0] != first[1]).mean() > 0.4
    assert (first[0] != other[0]).mean() > 0.4


def test_not_training_and_rate_zero_are_the_identity():
    x = random_inputs(2, 5)
    np.testing.assert_array_equal(as_numpy(Dropout(0.3)(x)), x)
    np.testing.assert_array_equal(as_numpy(Dropout(0.0)(x, training=True)), x)


def test_noise_shape_broadcasts_one_mask():
    out = as_numpy(Dropout(0.5, noise_shape=(None, 1), seed=0)(np.ones((64, 7), "float32"),
                                                                 training=True))
    assert set(np.unique(out)) == {0.0, 2.0}
    assert (out == out[:, :1]).all()  # whole rows kept or dropped


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        Dropout(1.0)


def test_dropout_layer_contract(tmp_path):
    run_layer_test(lambda dtype="float32": Dropout(0.2, seed=3, dtype=dtype),
                   {"x": random_inputs(2, 4, 8)}, expected_shape=(2, 4, 8), tmp_path=tmp_path)


def test_dropout_trains_under_xla():
    inputs = keras.Input((16,))
    outputs = keras.layers.Dense(1)(Dropout(0.5, seed=0)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    history = model.fit(random_inputs(32, 16), np.zeros((32, 1), "float32"), epochs=2,
                        batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
