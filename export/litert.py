"""`tflite(model, path, quantize=...)`: a zoo model as a TFLite flatbuffer for LiteRT.

The TFLite model takes the Keras model's inputs (`token_ids`, `padding_mask`, ... int32 of a
fixed length: the preprocessor's `sequence_length`, else `min(128, max_sequence_length)`; or
float32 `pixels`) with any batch size, under its one signature `serving_default`, and returns
`logits` (a backbone: its outputs; question answering: `start_logits` and `end_logits`).
Tokenize in the app, or with the model's preprocessor.

LiteRT runs no Assert ops, so bad inputs cannot fail the call: every float output of a row
with an input outside `zoo.validation.input_limits` (an id outside the vocabulary, a mask
value other than 0 / 1, a segment id outside the segments, a mask position outside the
sequence) is NaN (`export.input_checks.screened`), the other rows are unaffected. Check for
NaN in the app, or check the ids before the call.

Quantization, one string:

| quantize | weights | activations | needs |
|---|---|---|---|
| None | float32 | float32 | |
| "fp16" | float16 | float32 | |
| "dynamic" | int8 | float32 (int8 matmuls on the fly) | |
| "int8" | int8 | int8 in matrix products (calibrated), float elsewhere | `representative_data` |

All four families convert (T5 too: keras-hub's `T5Seq2SeqLM` fails here at a StridedSlice),
in every mode but T5's "int8" (refused: its activations' outliers defeat per-tensor int8 scales;
a trained T5's int8 file agreed with float on 93% of the tokens, "dynamic" on 100%).
A LoRA model converts with its updates merged (`zoo.lora.merged`); a Keras-quantized model
(`model.quantize`) does not convert (the converter has no integer matmul for it): convert
the float model with one of the quantizations above.
The conversion goes through a temporary SavedModel: converting the concrete function
directly gives NaNs with Keras 3's variables.

Example:

>>> import tempfile, numpy as np, zoo
>>> model = zoo.build("vit", task="classifier", num_classes=3)
>>> path = tflite(model, tempfile.mkdtemp() + "/vit.tflite")
>>> pixels = np.zeros((2, *model.input.shape[1:]), "float32")
>>> run_tflite(path, pixels)["logits"].shape
(2, 3)
"""

import math
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export.archive import write_archive
from export.input_checks import nan_rows, screened
from export.signatures import model_input_specs, named_outputs, structure, task_of
from zoo.files import write_bytes
from zoo.lora import merged_if_lora
from zoo.preprocessing.for_model import is_image_model
from zoo.quantization import check_float
from zoo.validation import input_limits

QUANTIZATIONS = (None, "fp16", "dynamic", "int8")
# "int8" quantizes the matrix products (FULLY_CONNECTED, CONV_2D) with calibrated activation
# scales and keeps these ops in float. Quantizing them too (the converter's default) made BERT
# slower than float32 (LiteRT's int8 layer norm, MEAN / SQUARED_DIFFERENCE / RSQRT, and
# attention's int8 BATCH_MATMUL cost the most: bench/int8_ops.py measures each op group) and
# trained ViT and GPT models less accurate; and LiteRT aborts the process (SIGABRT, no
# message) in an int8 ADD of T5's graph.
INT8_FLOAT_OPS = ("ADD", "SUB", "MUL", "NEG", "SQUARE", "SQUARED_DIFFERENCE", "MEAN", "RSQRT",
                  "SOFTMAX", "GELU", "TANH", "LOGISTIC", "BATCH_MATMUL")
# Tasks refused "int8", and why.
INT8_REFUSED = {"seq2seq_lm": "per-tensor int8 activations give T5 wrong tokens (93% of a "
                              "trained model's agreed with float32)"}
DEFAULT_SEQUENCE_LENGTH = 128
MAX_REPRESENTATIVE_EXAMPLES = 200


def tflite(model, path, quantize=None, representative_data=None, int8_float_ops=INT8_FLOAT_OPS):
    """Convert `model` to TFLite at `path` (written atomically); returns the path.

    Args:
        model: a zoo model.
        path: the `.tflite` file to write.
        quantize: None, "fp16", "dynamic" or "int8" (see the module docstring).
        representative_data: for "int8": batches of model inputs (dicts of arrays, or image
            arrays; `(x, y)` tuples as `training.pipelines` yields are fine), an iterable or
            a `tf.data.Dataset`; up to 200 examples calibrate the activation ranges.
        int8_float_ops: for "int8": the TFLite op types kept in float (`INT8_FLOAT_OPS`);
            `()` quantizes every op that has an int8 kernel.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}.")
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "quantize='int8' needs representative_data: a few batches of model inputs (e.g. "
            "`training.pipelines.pipeline(model, dataset, 'train[:200]')`), to calibrate the "
            "activation ranges."
        )
    if quantize == "int8":
        check_int8(model)
    check_float(model, "export.tflite (which quantizes with quantize='dynamic' or 'int8')")
    model = merged_if_lora(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = model_input_specs(model, *fixed_lengths(model))
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tflite-") as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", _model_fn(model, list(specs)),
                             input_signature=list(specs.values()))
        write_archive(archive, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            folder, signature_keys=["serving_default"])
        _configure(converter, quantize, representative_data, specs)
        if quantize == "int8" and int8_float_ops:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=lambda: _examples(representative_data, specs),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=list(int8_float_ops)),
            )
            flatbuffer = debugger.get_nondebug_quantized_model()
        else:
            flatbuffer = converter.convert()
    return write_bytes(path, flatbuffer)


def check_int8(model):
    """Raise a one-line `ValueError` when "int8" is refused for `model`'s task."""
    refused = INT8_REFUSED.get(task_of(model))
    if refused:
        raise ValueError(f"quantize='int8' is not offered for {task_of(model)} models: {refused}; "
                         "use quantize='dynamic' (int8 weights) or 'fp16'.")


def fixed_lengths(model):
    """`(sequence_length, num_masks)` of the TFLite inputs (None, None for images)."""
    if is_image_model(model):
        return None, None
    preprocessor = getattr(model, "preprocessor", None)
    length = getattr(preprocessor, "sequence_length", None)
    if length is None:
        config = getattr(model, "backbone", model).config
        limit = getattr(config, "max_sequence_length", None) or DEFAULT_SEQUENCE_LENGTH
        length = min(DEFAULT_SEQUENCE_LENGTH, limit)
    masks = getattr(preprocessor, "max_predictions", None) or math.ceil(0.15 * length)
    return length, masks


def _model_fn(model, names):
    limits = input_limits(model)

    def call(*tensors):
        inputs = structure(names, tensors)
        if not limits:
            return named_outputs(model, model(inputs, training=False))
        inputs, valid = screened(limits, inputs)
        return nan_rows(named_outputs(model, model(inputs, training=False)), valid)

    return call


def _configure(converter, quantize, representative_data, specs):
    if quantize is None:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: _examples(representative_data, specs)
        # int8 kernels where TFLite has them, float for the rest (GELU, layer norm, ...).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]


def _examples(data, specs, limit=MAX_REPRESENTATIVE_EXAMPLES):
    """One-example dicts {input name: array [1, ...]} from batches of model inputs."""
    count = 0
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    for batch in data:
        if isinstance(batch, tuple):
            batch = batch[0]
        if not isinstance(batch, dict):
            batch = {"pixels": batch}
        batch = {name: np.asarray(value) for name, value in batch.items()}
        missing = set(specs) - set(batch)
        if missing:
            raise ValueError(f"representative_data lacks the inputs {sorted(missing)}; give "
                             f"batches of the model's inputs {sorted(specs)}.")
        for i in range(len(next(iter(batch.values())))):
            yield {name: batch[name][i:i + 1].astype(spec.dtype.as_numpy_dtype)
                   for name, spec in specs.items()}
            count += 1
            if count >= limit:
                return


def run_tflite(path_or_interpreter, inputs):
    """Run a TFLite model from `tflite` with `ai_edge_litert`: `inputs` a dict of model
    inputs (or an image array); returns the dict of outputs (NaN in the rows with an input
    outside its range: see the module docstring; `export.verify` checks the inputs first)."""
    interpreter = path_or_interpreter
    if not hasattr(interpreter, "get_signature_runner"):
        interpreter = interpreter_for(path_or_interpreter)
    runner = interpreter.get_signature_runner("serving_default")
    if not isinstance(inputs, dict):
        inputs = {"pixels": inputs}
    details = runner.get_input_details()
    unknown = set(inputs) - set(details)
    if unknown:
        raise ValueError(f"the TFLite model has no inputs {sorted(unknown)}; it takes "
                         f"{sorted(details)}.")
    return runner(**{name: np.asarray(value).astype(details[name]["dtype"])
                     for name, value in inputs.items()})


def interpreter_for(path):
    """A LiteRT interpreter for a `.tflite` file."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


__all__ = ["tflite", "run_tflite", "interpreter_for", "fixed_lengths"]
