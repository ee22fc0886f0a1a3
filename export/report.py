"""`verify(model, artifacts, inputs)`: the Keras model against its SavedModel and TFLite files.

Each artifact runs on the same model inputs as the Keras model: a SavedModel through its
model-input signature (`token_ids` / `pixels`) in a fresh Python process that imports only
TensorFlow and tf-text (`export/standalone.py`: what TF Serving sees), a `.tflite` file with
LiteRT. The `Report` holds, per artifact, the largest absolute difference of the outputs,
the top-1 agreement (argmax over the last axis, at every position for token-level outputs),
the size on disk and the latency of one batch.

Example:

>>> import tempfile, numpy as np, zoo, export
>>> model = zoo.build("vit", task="classifier", num_classes=3)
>>> folder = tempfile.mkdtemp()
>>> lite = export.tflite(model, folder + "/vit.tflite")
>>> report = verify(model, lite, np.zeros((2, *model.input.shape[1:]), "float32"))
>>> report.checks[0].kind, report.checks[0].max_abs_diff < 1e-5, report.checks[0].top1_agreement
('tflite', True, 1.0)
"""

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from export.litert import interpreter_for, run_tflite
from export.signatures import model_input_specs, named_outputs, task_of
from zoo.preprocessing.for_model import default_image_preprocessor, is_image_model
from zoo.validation import check_inputs

STANDALONE = Path(__file__).with_name("standalone.py")


@dataclass
class Check:
    """One artifact against the Keras model."""

    kind: str  # "savedmodel" or "tflite"
    path: str
    size_bytes: int
    max_abs_diff: float
    top1_agreement: float
    latency_ms: float


@dataclass(frozen=True)
class SignatureError:
    """A signature call that raised in `run_saved_models`' fresh process."""

    type: str  # the error's class name, e.g. "InvalidArgumentError"
    message: str


@dataclass
class Report:
    """What `verify` measured; `str(report)` is a table."""

    model: str
    examples: int
    keras_latency_ms: float
    checks: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)

    def __str__(self):
        rows = [("artifact", "size", "max |diff|", "top-1", "ms/batch"),
                ("keras", "", "", "", f"{self.keras_latency_ms:.1f}")]
        for check in self.checks:
            rows.append((f"{check.kind} {check.path}", _size(check.size_bytes),
                         f"{check.max_abs_diff:.2e}", f"{100 * check.top1_agreement:.2f}%",
                         f"{check.latency_ms:.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [f"{self.model}: {self.examples} examples, the same inputs for each"]
        for row in rows:
            lines.append("  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        return "\n".join(lines)


def verify(model, artifact, inputs, repeats=5):
    """Compare the Keras model with each artifact on `inputs`; returns a `Report`.

    Args:
        model: the zoo model the artifacts were exported from.
        artifact: a SavedModel version folder or a `.tflite` file, or a list of them.
        inputs: model inputs (a dict of arrays, or images `[batch, h, w, c]`), or raw inputs
            (a list or array of strings / image bytes; `(question, context)` pairs for
            question answering) that `model.preprocessor` turns into model inputs first. An
            input outside `zoo.validation.input_limits` is a `ValueError` before anything runs.
        repeats: timed runs per artifact (after one warming run).
    """
    artifacts = [artifact] if isinstance(artifact, (str, os.PathLike)) else list(artifact)
    x = model_inputs(model, inputs)
    check_inputs(model, x)  # the artifacts would fail (SavedModel) or give NaN (TFLite)
    expected, keras_seconds = _timed(lambda: _keras_outputs(model, x), repeats)
    report = Report(model=model.name, examples=len(next(iter(_flat(x)))),
                    keras_latency_ms=1000 * keras_seconds)
    for path in artifacts:
        path = Path(path)
        if (path / "saved_model.pb").is_file():
            kind = "savedmodel"
            signature = "pixels" if is_image_model(model) else "token_ids"
            outputs, seconds = run_saved_model(path, signature, _as_dict(x), repeats)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        elif path.suffix == ".tflite" and path.is_file():
            kind = "tflite"
            interpreter = interpreter_for(path)
            outputs, seconds = _timed(lambda i=interpreter: run_tflite(i, x), repeats)
            size = path.stat().st_size
        else:
            raise FileNotFoundError(f"{path} is neither a SavedModel folder (saved_model.pb) "
                                    "nor a .tflite file.")
        report.checks.append(Check(kind, str(path), size, *_compare(expected, outputs),
                                   latency_ms=1000 * seconds))
    return report


def model_inputs(model, inputs):
    """`inputs` as the Keras model's inputs (numpy), preprocessing raw strings or bytes."""
    raw = isinstance(inputs, (list, tuple)) or (
        isinstance(inputs, np.ndarray) and inputs.dtype.kind in "OSU")
    if not raw:
        return inputs
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None and is_image_model(model):
        preprocessor = default_image_preprocessor(model)
    if preprocessor is None:
        raise ValueError("raw inputs need model.preprocessor; give model inputs (token ids) "
                         "or attach a preprocessor (zoo.preprocessing.preprocessor_for).")
    if task_of(model) == "question_answering":  # (question, context) pairs
        questions, contexts = zip(*inputs, strict=True)
        x = preprocessor((list(questions), list(contexts)))
    else:
        x = preprocessor(tf.constant(list(inputs)))
    if isinstance(x, tuple):  # LM preprocessors return (x, y, sample_weight)
        x = x[0]
    return tf.nest.map_structure(lambda t: t.numpy(), x)


def run_saved_model(path, signature, inputs, repeats=1):
    """Run `signature` of the SavedModel at `path` on `inputs` (a dict of arrays) in a fresh
    process that imports only TensorFlow and tf-text; returns `(outputs, seconds per call)`.

    Raises RuntimeError with the process's error output when it fails, and when the process
    imported any project module (it must stand alone, as under TF Serving).
    """
    return run_saved_models([(path, signature, inputs)], repeats)[0]


def run_saved_models(jobs, repeats=1, keep_errors=False):
    """`run_saved_model` for several `(path, signature, inputs)` jobs in one fresh process
    (one TensorFlow start); returns their `(outputs, seconds per call)` in order.

    With `keep_errors`, a job whose call raises gives `(SignatureError, None)` (the error's
    class name and message) and the other jobs still run; without, it is a RuntimeError.

    Example:

        [(outputs, seconds), (error, _)] = run_saved_models(
            [(path, "token_ids", good), (path, "token_ids", bad)], keep_errors=True)
        error.type  # 'InvalidArgumentError'
    """
    with tempfile.TemporaryDirectory() as folder:
        arguments, outputs_paths = [], []
        for index, (path, signature, inputs) in enumerate(jobs):
            inputs_path = Path(folder) / f"inputs-{index}.npz"
            outputs_paths.append(Path(folder) / f"outputs-{index}.npz")
            np.savez(inputs_path, **{k: _storable(v) for k, v in inputs.items()})
            # The path made absolute: the process runs in the temporary folder.
            arguments += [str(Path(path).resolve()), signature, str(inputs_path),
                          str(outputs_paths[-1])]
        # The source through `-c`, run in the temporary folder: `python export/standalone.py`
        # would put export/ first on sys.path, where its modules shadow others.
        command = [sys.executable, "-c", STANDALONE.read_text(), str(repeats), *arguments]
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        environment.pop("PYTHONPATH", None)
        done = subprocess.run(command, capture_output=True, text=True, env=environment,
                              cwd=folder)
        if done.returncode != 0:
            paths = ", ".join(str(path) for path, _, _ in jobs)
            raise RuntimeError(f"the SavedModel(s) {paths} failed in a fresh process:\n"
                               f"{done.stderr[-3000:]}")
        results = []
        for (path, signature, _), outputs_path in zip(jobs, outputs_paths, strict=True):
            with np.load(outputs_path, allow_pickle=False) as data:
                outputs = {name: data[name] for name in data.files}
            project = outputs.pop("__project_modules").tolist()
            if project:
                raise RuntimeError(f"the fresh process imported project modules {project}.")
            if "__error" not in outputs:
                results.append((outputs, float(outputs.pop("__latency_s"))))
                continue
            error = SignatureError(str(outputs["__error_type"]), str(outputs["__error"]))
            if not keep_errors:
                raise RuntimeError(f"the signature {signature!r} of {path} failed in a fresh "
                                   f"process: {error.type}: {error.message}")
            results.append((error, None))
    return results


def _storable(value):
    value = np.asarray(value)
    return value.astype(bytes) if value.dtype.kind in "OU" else value


def _keras_outputs(model, x):
    outputs = model.predict_on_batch(x)  # a compiled graph, as the artifacts are
    return {k: np.asarray(v) for k, v in named_outputs(model, outputs).items()}


def _compare(expected, actual):
    """(max |diff| over every output the Keras model has, top-1 agreement of the first)."""
    difference = 0.0
    for name, value in expected.items():
        if name not in actual:
            raise ValueError(f"the artifact has no output {name!r}; it has {sorted(actual)}.")
        difference = max(difference, float(np.max(np.abs(actual[name] - value), initial=0.0)))
    name = next(iter(expected))
    agree = np.argmax(actual[name], axis=-1) == np.argmax(expected[name], axis=-1)
    return difference, float(np.mean(agree)) if agree.size else 1.0


def _timed(function, repeats):
    result = function()
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    return result, (time.perf_counter() - start) / max(repeats, 1)


def _as_dict(x):
    return x if isinstance(x, dict) else {"pixels": x}


def _flat(x):
    return list(x.values()) if isinstance(x, dict) else [x]


def _size(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


__all__ = ["verify", "Report", "Check", "SignatureError", "run_saved_model", "run_saved_models",
           "model_inputs", "model_input_specs"]
