"""Before and after of the performance fixes, side by side in one run.

The fixes replaced code that is still at hand, so the old way is timed against the new one
on the same data, interleaved:

- `compare_dropout`: `keras.layers.Dropout` (Keras' mask: `stateless_uniform`) against
  `keras_transformers.Dropout` (a hashed mask), training mode, compiled with XLA as in a
  training step, on a tensor the size of BERT's attention probabilities in the benchmark
  (`[16, 4, 128, 128]`, one million numbers). TensorFlow only.
- `compare_predict`: `keras.Model.predict` (a tf.data pipeline built per call) against
  `Task.predict` (arrays sliced in Python), one BERT-workload request of one example.
- `compare_unfused_kernels`: `model.generate` of one prompt with the attention kernels fused
  into XLA's naive loops (before) and kept apart by `keras_transformers.fusion.unfused`
  (after), greedy; milliseconds per new token. TensorFlow only.
- `compare_savedmodel_size`: the version folder of `export.saved_model` written by Keras'
  `ExportArchive.write_out` (before: every weight twice) and by `export.archive.write_archive`
  (after), in MB.

The pipeline's fix (tf.data's autotuner off) is timed in `bench.training.compare_pipeline`,
beside the in-memory figures it is judged by.

Example:

>>> record = compare_dropout(shape=(4, 64), repeats=1)
>>> sorted(record), record["numbers"]
(['keras', 'numbers', 'ours', 'shape'], 256)
"""

import tempfile
from pathlib import Path

import numpy as np

from bench import configs, timing
from bench.training import release

ATTENTION_PROBABILITIES = (16, 4, 128, 128)


def compare_dropout(shape=ATTENTION_PROBABILITIES, rate=0.1, repeats=5):
    """Milliseconds per call of each dropout layer on a `shape` tensor, training mode,
    compiled with XLA (TensorFlow: where Keras' mask is slow).

    Returns `{"shape", "numbers", "keras": {"ms", "runs"}, "ours": {"ms", "runs"}}`.
    """
    import keras
    import tensorflow as tf

    from keras_transformers import Dropout

    x = keras.ops.convert_to_tensor(
        np.random.default_rng(0).random(shape, dtype="float32"))
    layers = {"keras": keras.layers.Dropout(rate, seed=0), "ours": Dropout(rate, seed=0)}
    runners = {}
    for name, layer in layers.items():
        step = tf.function(lambda x, layer=layer: layer(x, training=True), jit_compile=True)
        runners[name] = lambda step=step: keras.ops.convert_to_numpy(step(x))
    runs = timing.interleave(runners, repeats)
    record = {"shape": list(shape), "numbers": int(np.prod(shape))}
    for name, seconds in runs.items():
        record[name] = {"ms": 1000 * timing.median(seconds),
                        "runs": [1000 * s for s in seconds]}
    return record


def compare_predict(w, requests=50):
    """Milliseconds per one-example `predict` call of our model of workload `w`, through
    `keras.Model.predict` and through `Task.predict`.

    Returns `{"family", "keras": {"ms", "runs"}, "ours": {"ms", "runs"}}`.
    """
    import keras

    from bench.training import compile_for_benchmark

    model = compile_for_benchmark(configs.ours(w), jit_compile=True)
    x, _ = configs.batch(w)
    one = keras.tree.map_structure(lambda a: a[:1], x)
    runners = {"keras": lambda: keras.Model.predict(model, one, verbose=0),
               "ours": lambda: model.predict(one, verbose=0)}
    runs = timing.interleave(runners, requests, warmup=3)
    record = {"family": w.family}
    for name, seconds in runs.items():
        record[name] = {"ms": 1000 * timing.median(seconds),
                        "runs": [1000 * s for s in seconds]}
    release({"ours": model})
    return record


def compare_unfused_kernels(model, prompt_length=32, new_tokens=128, repeats=3):
    """Milliseconds per new token of `model.generate` for one prompt, greedy: the attention
    kernels as XLA fuses them (`unfused` bypassed, the loop before the fix) and kept out of the
    fusion; each way with its own compiled loop.

    Returns `{"new_tokens", "before": {"ms", "runs"}, "after": {"ms", "runs"}}`.
    """
    from keras_transformers import attention
    from zoo.generation import loop

    barrier = attention.unfused
    vocabulary = model.backbone.config.vocabulary_size
    ids = np.random.default_rng(0).integers(100, vocabulary, (1, prompt_length), "int32")
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    compiled_loops = {"before": {}, "after": {}}

    def runner(way):
        def run():
            loop._COMPILED[model] = compiled_loops[way]
            if way == "before":
                attention.unfused = _unchanged
            try:
                model.generate(x, new_tokens)
            finally:
                attention.unfused = barrier

        return run

    runs = timing.interleave({way: runner(way) for way in compiled_loops}, repeats)
    loop._COMPILED.pop(model, None)
    record = {"new_tokens": new_tokens}
    for way, seconds in runs.items():
        ms = [1000 * s / new_tokens for s in seconds]
        record[way] = {"ms": timing.median(ms), "runs": ms}
    return record


def _unchanged(x):
    return x


def compare_savedmodel_size(w):
    """MB of the SavedModel version folder of workload `w`'s model, written by Keras'
    `ExportArchive.write_out` (before) and by `export.archive.write_archive` (after).

    Returns `{"family", "before": {"mb"}, "after": {"mb"}}`.
    """
    import export
    from export import savedmodel

    model = configs.ours(w)
    record = {"family": w.family}
    write = savedmodel.write_archive
    for way in ("before", "after"):
        if way == "before":
            savedmodel.write_archive = _keras_write_out
        try:
            folder = Path(export.saved_model(model, tempfile.mkdtemp(prefix="bench-fix-")))
        finally:
            savedmodel.write_archive = write
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        record[way] = {"mb": size / 1e6}
    release({"ours": model})
    return record


def _keras_write_out(archive, folder):
    archive.write_out(folder, verbose=False)
