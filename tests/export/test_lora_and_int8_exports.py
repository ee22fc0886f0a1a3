"""Exports of LoRA and Keras-quantized models: a LoRA model's SavedModel and TFLite file hold
the merged kernels (no LoRA variables) and equal it; an int8 model's SavedModel keeps int8
weights and equals the in-memory int8 model on every family; TFLite refuses a quantized
model in one line."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import export
import zoo
from export.litert import run_tflite
from tests.export.models import build, keras_outputs, model_inputs
from tests.fixtures.make_trained import MODELS, OUT, held_out
from zoo import lora

pytestmark = pytest.mark.slow  # every test writes SavedModels or TFLite files


def signature_outputs(path, x):
    """The model-input signature of the SavedModel at `path` on `x`, as numpy."""
    loaded = tf.saved_model.load(str(path))
    if isinstance(x, dict):
        outputs = loaded.signatures["token_ids"](**{k: tf.constant(v) for k, v in x.items()})
    else:
        outputs = loaded.signatures["pixels"](pixels=tf.constant(x))
    return {name: value.numpy() for name, value in outputs.items()}, loaded


def weight_bytes(loaded):
    return sum(v.numpy().nbytes for v in loaded.variables)


@pytest.mark.parametrize("case", [("gpt", "causal_lm", {}), ("bert", "classifier",
                                                               {"num_classes": 3})])
def test_a_lora_model_exports_merged_and_equals_itself(case, tmp_path):
    model = build(*case)
    model.backbone.enable_lora(4)
    rng = np.random.default_rng(0)
    for layer in lora.lora_layers(model):
        layer.lora_kernel_b.assign(rng.normal(0, 0.2, layer.lora_kernel_b.shape))
    x = model_inputs(model)
    expected = keras_outputs(model, x)

    outputs, loaded = signature_outputs(export.saved_model(model, tmp_path), x)
    assert not [v.name for v in loaded.variables if "lora" in v.name]
    tflite = run_tflite(export.tflite(model, tmp_path / "m.tflite"), x)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, atol=1e-6)
        np.testing.assert_allclose(tflite[name], value, atol=1e-5)
    assert lora.lora_layers(model)  # the model itself keeps its pairs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_int8_savedmodel_keeps_int8_weights_and_equals_the_int8_model(name, tmp_path):
    model = keras.models.load_model(OUT / f"{name}.keras")
    x, _ = held_out(name, rows=8)
    fp32_bytes = weight_bytes(signature_outputs(export.saved_model(model, tmp_path / "f"),
                                                x)[1])
    model.quantize("int8")
    expected = keras_outputs(model, x)
    outputs, loaded = signature_outputs(export.saved_model(model, tmp_path / "q"), x)
    for key, value in expected.items():
        np.testing.assert_allclose(outputs[key], value, atol=1e-6)
    assert any(v.dtype == tf.int8 for v in loaded.variables)
    assert weight_bytes(loaded) < 0.6 * fp32_bytes


def test_tflite_refuses_a_quantized_model_in_one_line(tmp_path):
    model = zoo.build("bert", task="classifier", num_classes=2)
    model.quantize("int8")
    with pytest.raises(ValueError, match=r"export.tflite \(which quantizes with quantize="
                                         r"'dynamic' or 'int8'\) needs float weights") as error:
        export.tflite(model, tmp_path / "m.tflite")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "m.tflite").exists()
