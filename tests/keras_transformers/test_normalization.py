"""RMSNorm against numpy, in float32 and under mixed_bfloat16."""

import keras
import numpy as np

from keras_transformers.normalization import RMSNorm
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test

SCALE = np.linspace(-2.0, 3.0, 8).astype("float32")


def numpy_rms_norm(x, scale, epsilon):
    x = np.asarray(x, "float64")
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + epsilon) * scale


def bfloat16(x):
    """Round to bfloat16 and back to float32 (round to nearest even)."""
    return as_numpy(keras.ops.cast(keras.ops.cast(np.asarray(x, "float32"), "bfloat16"),
                                   "float32"))


def built_rms_norm(**kwargs):
    layer = RMSNorm(**kwargs)
    layer.build((None, 8))
    layer.scale.assign(SCALE)
    return layer


def test_rms_norm_matches_numpy_with_scale():
    x = random_inputs(2, 3, 8) * 3.0 + 0.5
    out = built_rms_norm(epsilon=1e-6)(x)
    assert tuple(out.shape) == (2, 3, 8)
    assert_close(out, numpy_rms_norm(x, SCALE, 1e-6))


def test_rms_norm_epsilon_is_added_to_mean_square():
    # mean(x ** 2) = 0.01, so epsilon = 0.03 divides by sqrt(0.04) = 0.2, not 0.1.
    x = np.full((1, 8), 0.1, "float32")
    out = built_rms_norm(epsilon=0.03)(x)
    assert_close(out, 0.5 * SCALE[None])


def test_rms_norm_under_mixed_bfloat16_computes_in_float32():
    x = random_inputs(4, 8, 8, seed=1) * 20.0 + 5.0
    layer = built_rms_norm(epsilon=1e-6, dtype="mixed_bfloat16")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert layer.scale.dtype == "float32"
    # Only the input, the scale and the output are rounded to bfloat16: the result is the
    # float32 one rounded once (half a bfloat16 step, 2 ** -9, plus the scale's rounding).
    reference = numpy_rms_norm(bfloat16(x), bfloat16(SCALE), 1e-6)
    assert_close(out, reference, atol=1e-6, rtol=2.0**-8)
    # Close to the float32 layer within bfloat16 precision.
    assert_close(out, built_rms_norm(epsilon=1e-6)(x), atol=1e-6, rtol=2.0**-6)


def test_rms_norm_layer_contract(tmp_path):
    run_layer_test(
        lambda **kw: RMSNorm(**kw),
        {"x": random_inputs(2, 3, 8)},
        expected_shape=(2, 3, 8),
        tmp_path=tmp_path,
    )
