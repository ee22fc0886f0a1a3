"""Before and after of the performance fixes, side by side in one run.

The fixes replaced code that is still at hand, so the old way is timed against the new one
on the same data, interleaved:

- `compare_dropout`: `keras.layers.Dropout` (Keras' mask: `stateless_uniform`) against
  `keras_transformers.Dropout` (a hashed mask), training mode, compiled with XLA as in a
  training step, on a tensor the size of BERT's attention probabilities in the benchmark
  (`[16, 4, 128, 128]`, one million numbers). TensorFlow only.
- `compare_predict`: `keras.Model.predict` (a tf.data pipeline built per call) against
  `Task.predict` (arrays sliced in Python), one BERT-workload request of one example.

Example:

>>> record = compare_dropout(shape=(4, 64), repeats=1)
>>> sorted(record), record["numbers"]
(['keras', 'numbers', 'ours', 'shape'], 256)
"""

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
