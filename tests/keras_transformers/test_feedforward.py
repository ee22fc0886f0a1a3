"""FeedForward against numpy formulas on the layer's own weights, for every activation."""

import math

import numpy as np
import pytest

from keras_transformers.feedforward import ACTIVATIONS, FeedForward
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test

erf = np.vectorize(math.erf)


def relu(x):
    return np.maximum(x, 0.0)


def gelu_exact(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


# activation -> (numpy function, gated)
NUMPY_ACTIVATIONS = {
    "relu": (relu, False),
    "gelu": (gelu_exact, False),
    "gelu_tanh": (gelu_tanh, False),
    "silu": (silu, False),
    "geglu": (gelu_exact, True),
    "geglu_tanh": (gelu_tanh, True),
    "swiglu": (silu, True),
}


def dense(layer, x):
    out = x @ as_numpy(layer.kernel).astype("float64")
    if layer.use_bias:
        out = out + as_numpy(layer.bias)
    return out


def test_every_activation_has_a_numpy_reference():
    assert set(NUMPY_ACTIVATIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("activation", sorted(NUMPY_ACTIVATIONS))
def test_feedforward_matches_numpy_formula(activation):
    act, gated = NUMPY_ACTIVATIONS[activation]
    layer = FeedForward(intermediate_dim=7, activation=activation,
                        bias_initializer="random_normal")
    x = random_inputs(2, 3, 4) * 2.0
    out = as_numpy(layer(x))
    assert out.shape == (2, 3, 4)
    x = x.astype("float64")
    if gated:
        hidden = act(dense(layer.gate_dense, x)) * dense(layer.intermediate_dense, x)
    else:
        assert not hasattr(layer, "gate_dense")
        hidden = act(dense(layer.intermediate_dense, x))
    assert_close(out, dense(layer.output_dense, hidden), atol=1e-5, rtol=1e-4)


def test_gate_and_up_projections_start_different():
    # One shared unseeded Keras initializer would give every projection the same values,
    # and act(x W) * (x W) cannot tell the gate from the up projection.
    layer = FeedForward(intermediate_dim=6, activation="swiglu",
                        bias_initializer="random_normal")
    layer(random_inputs(1, 2, 6))
    gate, up = layer.gate_dense, layer.intermediate_dense
    assert not np.allclose(as_numpy(gate.kernel), as_numpy(up.kernel))
    assert not np.allclose(as_numpy(gate.bias), as_numpy(up.bias))
    assert not np.allclose(as_numpy(up.kernel), as_numpy(layer.output_dense.kernel).T)


def test_exact_and_tanh_gelu_differ():
    # The two GELUs must not be the same function, or the tests above could not tell them apart.
    x = np.linspace(-3, 3, 13)
    assert np.max(np.abs(gelu_exact(x) - gelu_tanh(x))) > 1e-4


def test_use_bias_false_has_no_bias_weights():
    layer = FeedForward(intermediate_dim=6, activation="swiglu", use_bias=False)
    x = random_inputs(2, 3, 4)
    out = as_numpy(layer(x))
    names = sorted(w.path.split("/")[-1] for w in layer.weights)
    assert names == ["kernel", "kernel", "kernel"]
    x = x.astype("float64")
    hidden = silu(dense(layer.gate_dense, x)) * dense(layer.intermediate_dense, x)
    assert_close(out, dense(layer.output_dense, hidden), atol=1e-5, rtol=1e-4)
    # Biased, the same layer has three biases too.
    biased = FeedForward(intermediate_dim=6, activation="swiglu")
    biased(x)
    assert len(biased.weights) == 6


def test_output_dim_sets_output_width():
    layer = FeedForward(intermediate_dim=6, activation="relu", output_dim=9)
    out = layer(random_inputs(2, 3, 4))
    assert tuple(out.shape) == (2, 3, 9)
    assert tuple(layer.intermediate_dense.kernel.shape) == (4, 6)
    assert tuple(layer.output_dense.kernel.shape) == (6, 9)


def test_unknown_activation_raises_listing_choices():
    with pytest.raises(ValueError, match="Unknown activation 'tanh'") as info:
        FeedForward(intermediate_dim=4, activation="tanh")
    for name in ACTIVATIONS:
        assert f"'{name}'" in str(info.value)


def test_dropout_only_in_training():
    layer = FeedForward(intermediate_dim=64, activation="relu", dropout=0.5,
                        bias_initializer="random_normal")
    x = random_inputs(2, 3, 4)
    inference = as_numpy(layer(x))
    assert_close(layer(x, training=False), inference, atol=0, rtol=0)
    assert not np.allclose(as_numpy(layer(x, training=True)), inference, atol=1e-3)


@pytest.mark.parametrize("activation", ["gelu", "swiglu"], ids=["plain", "gated"])
def test_feedforward_layer_contract(activation, tmp_path):
    run_layer_test(
        lambda **kw: FeedForward(intermediate_dim=6, activation=activation, **kw),
        {"x": random_inputs(2, 3, 4)},
        expected_shape=(2, 3, 4),
        tmp_path=tmp_path,
    )
