"""Serving latency: one request at a time, p50 and p99, per way of serving a model.

The model is the BERT classifier workload (token ids in, logits out). Ways of serving it:

- `keras_predict`: our Keras model's `predict` (what a notebook does);
- `savedmodel`: our `export.saved_model` folder loaded with `tf.saved_model.load`, its
  model-input signature called (what TF Serving runs);
- `tflite_fp32`, `tflite_int8`, `tflite_dynamic`: our `export.tflite` files (int8
  calibrated on a few random batches; dynamic: int8 weights, float activations) run by the
  LiteRT interpreter with every core;
- `keras_hub_predict`, `keras_hub_savedmodel`: keras-hub's `BertTextClassifier`, its
  `predict` and its `model.export()` SavedModel (`serve` endpoint).

Requests of each batch size go round-robin over the ways (one call each, in turn) after a
warmup, so they share the machine's slow spells; latency percentiles are over the calls.
Artifact sizes are in bytes. When `export.saved_model` / `export.tflite` cannot be imported,
or an export fails, that way is skipped and the record says why (`skipped`), so one broken
export does not lose the rest of a long run.

Example:

>>> from bench import configs
>>> record = compare_serving(configs.QUICK["bert"], batch_sizes=(1,), requests=3,
...                          ways=("keras_predict",), keras_hub=False)
>>> sorted(record["latency"]["keras_predict"]["1"]), record["skipped"]
(['p50_ms', 'p99_ms', 'runs_ms'], {})
"""

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from bench import configs, timing
from bench.training import release

WAYS = ("keras_predict", "savedmodel", "tflite_fp32", "tflite_int8", "tflite_dynamic",
        "keras_hub_predict", "keras_hub_savedmodel")
CALIBRATION_BATCHES = 4


def compare_serving(w, batch_sizes=(1, 32), requests=100, warmup=5, ways=WAYS, keras_hub=True,
                    folder=None):
    """Latency of each way of serving workload `w`'s model (see the module docstring).

    Args:
        w: a text workload (BERT classifier).
        batch_sizes: examples per request.
        requests: timed requests per way and batch size.
        warmup: untimed requests first.
        ways: a subset of `WAYS`.
        keras_hub: include keras-hub's ways.
        folder: where artifacts go; a temporary folder (deleted) when None.

    Returns `{"latency": {way: {batch_size: {"p50_ms", "p99_ms", "runs_ms"}}},
    "artifact_bytes": {way: bytes}, "skipped": {way: reason}, ...}`.
    """
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        raise ValueError(f"Unknown serving ways {unknown}. Ways: {list(WAYS)}.")
    if not keras_hub:
        ways = [way for way in ways if not way.startswith("keras_hub")]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        folder = Path(folder or scratch)
        models = {"ours": configs.ours(w)}
        if any(way.startswith("keras_hub") for way in ways):
            models["keras_hub"] = configs.keras_hub_model(w)
        servers, sizes, skipped = {}, {}, {}
        for way in ways:
            try:
                servers[way], sizes[way] = _SERVERS[way](models, w, folder)
            except _Unavailable as reason:
                skipped[way] = str(reason)
            except Exception as error:  # noqa: BLE001 - one broken export must not end the run
                skipped[way] = f"failed: {type(error).__name__}: {error}"
        latency = {way: {} for way in servers}
        for batch_size in batch_sizes:
            x, _ = configs.batch(dataclasses.replace(w, batch_size=batch_size))
            runners = {way: (lambda serve=serve, x=x: serve(x)) for way, serve in servers.items()}
            runs = timing.interleave(runners, requests, warmup=warmup)
            for way, seconds in runs.items():
                ms = [1000 * s for s in seconds]
                latency[way][str(batch_size)] = {"p50_ms": timing.percentile(ms, 50),
                                                 "p99_ms": timing.percentile(ms, 99),
                                                 "runs_ms": ms}
        release(models)
    return {"family": w.family, "task": w.task, "requests": requests, "warmup": warmup,
            "sequence_length": w.sequence_length, "latency": latency,
            "artifact_bytes": {way: size for way, size in sizes.items() if size is not None},
            "skipped": skipped, "litert_threads": os.cpu_count()}


class _Unavailable(Exception):
    """A way of serving that cannot run here (its module is missing)."""


def folder_bytes(path):
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _export_module():
    try:
        import export
    except ImportError as error:
        raise _Unavailable(f"export is not importable ({error})") from error
    return export


def _keras_predict(model):
    return lambda x: model.predict(x, verbose=0)


def _serve_keras(models, w, folder):
    return _keras_predict(models["ours"]), None


def _serve_keras_hub(models, w, folder):
    return _keras_predict(models["keras_hub"]), None


def _serve_savedmodel(models, w, folder):
    import tensorflow as tf

    export = _export_module()
    if not hasattr(export, "saved_model"):
        raise _Unavailable("export.saved_model is missing")
    path = export.saved_model(models["ours"], folder / "savedmodel", name="bert", overwrite=True)
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["token_ids"]  # the model-input one (no tokenizer attached)

    def call(x, loaded=loaded):  # `loaded` owns the variables: keep it alive
        outputs = signature(**{name: tf.constant(value) for name, value in x.items()})
        return outputs["logits"].numpy()

    return call, folder_bytes(path)


def _serve_keras_hub_savedmodel(models, w, folder):
    import tensorflow as tf

    path = folder / "keras_hub_savedmodel"
    models["keras_hub"].export(str(path), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(path))

    def call(x):
        return loaded.serve({name: tf.constant(value) for name, value in x.items()}).numpy()

    return call, folder_bytes(path)


def _serve_tflite(quantize):
    def make(models, w, folder):
        export = _export_module()
        if not hasattr(export, "tflite"):
            raise _Unavailable("export.tflite is missing")
        from ai_edge_litert.interpreter import Interpreter

        calibration = None
        if quantize == "int8":
            calibration = [configs.batch(w, seed=i)[0] for i in range(CALIBRATION_BATCHES)]
        path = export.tflite(models["ours"], folder / f"bert_{quantize or 'fp32'}.tflite",
                             quantize=quantize, representative_data=calibration)
        interpreters = {}  # one per batch size: resizing inputs on every call is not serving

        def call(x):
            batch_size = len(next(iter(x.values())))
            if batch_size not in interpreters:
                interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
                interpreters[batch_size] = interpreter.get_signature_runner("serving_default")
            runner = interpreters[batch_size]
            return runner(**{name: np.asarray(value, "int32") for name, value in x.items()})

        return call, folder_bytes(path)

    return make


_SERVERS = {
    "keras_predict": _serve_keras,
    "savedmodel": _serve_savedmodel,
    "tflite_fp32": _serve_tflite(None),
    "tflite_int8": _serve_tflite("int8"),
    "tflite_dynamic": _serve_tflite("dynamic"),
    "keras_hub_predict": _serve_keras_hub,
    "keras_hub_savedmodel": _serve_keras_hub_savedmodel,
}
