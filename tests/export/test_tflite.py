"""TFLite export: every family x task converts and runs with LiteRT; float32 equals Keras,
fp16 / dynamic / int8 within stated bounds; int8 keeps trained models' top-1."""

import keras
import numpy as np
import pytest

import export
from export.litert import INT8_FLOAT_OPS, fixed_lengths, run_tflite
from tests.export.models import (
    EXPORT_CASES,
    SEQUENCE_LENGTH,
    build,
    case_id,
    keras_outputs,
    model_inputs,
)
from tests.fixtures.make_trained import OUT, held_out

# float32 TFLite against Keras: 1e-5, except T5, whose logits are not scaled down (tied
# head times hidden_dim ** -0.5 only in v1.0) and pass through more sums in another order
# (TFLite's fused kernels): measured 1.8e-5 on random inputs.
FLOAT_BOUNDS = {"t5-seq2seq_lm": 5e-5}


@pytest.mark.slow
@pytest.mark.parametrize("case", EXPORT_CASES, ids=case_id)
def test_every_family_and_task_float32_equals_keras(case, tmp_path):
    model = build(*case)
    assert fixed_lengths(model)[0] in (SEQUENCE_LENGTH, None)
    path = export.tflite(model, tmp_path / "model.tflite")
    x = model_inputs(model, batch=3)
    outputs = run_tflite(path, x)
    for name, expected in keras_outputs(model, x).items():
        np.testing.assert_allclose(outputs[name], expected, rtol=0,
                                   atol=FLOAT_BOUNDS.get(case_id(case), 1e-5))


@pytest.mark.slow
@pytest.mark.parametrize("family,task,arguments", [
    ("bert", "classifier", {"num_classes": 3}),
    ("t5", "seq2seq_lm", {}),
    ("vit", "classifier", {"num_classes": 3}),
])
def test_quantized_variants_stay_close(family, task, arguments, tmp_path):
    model = build(family, task, arguments)
    x = model_inputs(model, batch=8)
    expected = keras_outputs(model, x)["logits"]
    scale = np.abs(expected).max()
    sizes = {}
    variants = [("fp16", 0.01), ("dynamic", 0.1)] + (
        [] if task == "seq2seq_lm" else [("int8", 0.25)])
    for quantize, bound in variants:
        path = export.tflite(model, tmp_path / f"{quantize}.tflite", quantize=quantize,
                             representative_data=[model_inputs(model, 16, seed=1)])
        logits = run_tflite(path, x)["logits"]
        assert np.isfinite(logits).all()
        assert np.abs(logits - expected).max() <= bound * scale, quantize
        sizes[quantize] = path.stat().st_size
    assert sizes["dynamic"] < sizes["fp16"]


def test_bad_arguments_say_what_to_do(tmp_path):
    model = build("vit", "classifier", {"num_classes": 3})
    with pytest.raises(ValueError, match="quantize must be one of"):
        export.tflite(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match="needs representative_data"):
        export.tflite(model, tmp_path / "m.tflite", quantize="int8")
    t5 = build("t5", "seq2seq_lm", {})
    with pytest.raises(ValueError, match=r"quantize='int8' is not offered for seq2seq_lm "
                                         r"models: .*; use quantize='dynamic'"):
        export.tflite(t5, tmp_path / "m.tflite", quantize="int8", representative_data=[{}])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "vit", "gpt_llama", "gpt2"])
def test_int8_keeps_the_answers_of_trained_models(name, tmp_path):
    """int8 quantizes the matrix products only (`INT8_FLOAT_OPS` stay float): top-1 of
    trained models as float32's, and closer than quantizing every op."""
    model = keras.models.load_model(OUT / f"{name}.keras")
    length = fixed_lengths(model)[0]

    def padded(inputs):
        if length is None:
            return inputs
        return {k: np.pad(v, ((0, 0), (0, length - v.shape[1]))) for k, v in inputs.items()}

    x, calibration = padded(held_out(name, rows=64)[0]), padded(held_out(name, 64, seed=7)[0])
    expected = keras_outputs(model, x)["logits"]
    errors = {}
    for float_ops in (INT8_FLOAT_OPS, ()):
        path = export.tflite(model, tmp_path / f"{len(float_ops)}.tflite", quantize="int8",
                             representative_data=[calibration], int8_float_ops=float_ops)
        logits = run_tflite(path, x)["logits"]
        assert (logits.argmax(-1) == expected.argmax(-1)).mean() == 1.0
        errors[float_ops] = np.abs(logits - expected).max() / np.abs(expected).max()
    assert errors[INT8_FLOAT_OPS] <= errors[()] * 1.05
