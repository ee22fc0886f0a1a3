"""Training throughput through `model.fit`: ours against keras-hub, and ours through the data
pipeline against in-memory tensors.

`compare_fit(w, ...)` builds both models of workload `w`, compiles them alike (AdamW 1e-3,
weight decay 0.01, sparse cross-entropy from logits, no metrics, `jit_compile` as asked),
and times `model.fit` over the same in-memory batches, the two interleaved. Each timed run is
one `fit` call of `steps` steps; the figure is the median run. FLOPs per step come from
`bench.flops`, so MFU follows from the machine's peak.

`compare_pipeline(w, ...)` trains our model on batches from `training.pipelines.pipeline`
(an offline dataset, tokenized in the tf.data graph, cached after the first epoch) and on the
very same batches held as numpy arrays, interleaved: a ratio near 1 means the input pipeline
keeps up with the model.

Example:

>>> from bench import configs
>>> record = compare_fit(configs.QUICK["vit"], jit_compile=True, steps=2, repeats=1,
...                      keras_hub=False)
>>> record["family"], record["ours"]["examples_per_second"] > 0, record["keras_hub"]
('vit', True, None)
"""

import gc
import re
from collections import Counter

import keras
import numpy as np

from bench import configs, flops, timing

# The offline dataset each family trains on through the pipeline, and its text features.
PIPELINE_DATASETS = {"bert": "fortunes", "gpt": "botchan", "t5": "gettext_translations/de",
                     "vit": "fashion_mnist_local"}
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.01


def compile_for_benchmark(model, jit_compile):
    """The same `compile` for ours and keras-hub's: plain AdamW and cross-entropy."""
    keras.Model.compile(
        model,
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def fit_once(model, x, y, batch_size, sample_weight=None):
    """A runner: one epoch of `model.fit` over the in-memory arrays, silent."""
    return lambda: model.fit(x, y, sample_weight=sample_weight, batch_size=batch_size,
                             epochs=1, shuffle=False, verbose=0)


def throughput(w, step_seconds, peak=None):
    """Examples/s, tokens/s, FLOPs per step and (with `peak` FLOP/s) MFU of a step time."""
    step_flops = flops.training_flops(w)
    achieved = step_flops / step_seconds
    return {
        "step_seconds": step_seconds,
        "examples_per_second": w.batch_size / step_seconds,
        "tokens_per_second": w.batch_size * configs.tokens_per_example(w) / step_seconds,
        "flops_per_step": step_flops,
        "achieved_flops_per_second": achieved,
        "mfu": achieved / peak if peak else None,
    }


def compare_fit(w, jit_compile, steps, repeats, keras_hub=True, peak=None):
    """Training throughput of ours and (when `keras_hub`) keras-hub's on workload `w`.

    Returns a record: `family`, `jit_compile`, `steps`, `repeats`, and for `ours` and
    `keras_hub` (None when not measured) the `throughput` figures plus the seconds of each
    run (`runs`).
    """
    x, y = configs.batch(w, num_batches=steps)
    models = {"ours": compile_for_benchmark(configs.ours(w), jit_compile)}
    if keras_hub:
        models["keras_hub"] = compile_for_benchmark(configs.keras_hub_model(w), jit_compile)
    runners = {name: fit_once(model, x, y, w.batch_size) for name, model in models.items()}
    runs = timing.interleave(runners, repeats)
    record = {"family": w.family, "task": w.task, "jit_compile": jit_compile, "steps": steps,
              "repeats": repeats, "batch_size": w.batch_size,
              "tokens_per_example": configs.tokens_per_example(w), "keras_hub": None}
    for name, seconds in runs.items():
        record[name] = {**throughput(w, timing.median(seconds) / steps, peak), "runs": seconds}
    release(models)
    return record


def compare_pipeline(w, steps, repeats, jit_compile=True, peak=None):
    """Our model trained through `training.pipelines.pipeline` and on the same batches in
    memory; returns a record with `pipeline` and `in_memory` throughput figures, and
    `autotuned`: the pipeline with tf.data's autotuner on, as before its fix."""
    import tensorflow as tf

    from training import pipelines

    model = compile_for_benchmark(configs.ours(w), jit_compile)
    dataset_name = PIPELINE_DATASETS[w.family]
    options = {}
    if not w.is_image:
        options = dict(tokenizer=tokenizer_for(dataset_name, w.vocabulary_size),
                       sequence_length=w.sequence_length)
        if w.family == "t5":
            options["decoder_sequence_length"] = w.decoder_length
    # Exactly `steps` batches, so each epoch reads the whole split and the cache fills once.
    split = f"train[:{steps * w.batch_size}]"
    data = pipelines.pipeline(model, dataset_name, split, w.batch_size, drop_remainder=True,
                              seed=0, **options)
    autotuned = autotuned_pipeline(model, dataset_name, split, w.batch_size,
                                   drop_remainder=True, seed=0, **options)
    batches = list(data.as_numpy_iterator())
    if len(batches) != steps:
        raise ValueError(f"{dataset_name} gave {len(batches)} batches of {w.batch_size}, not "
                         f"{steps}: ask for fewer steps.")
    arrays = tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)
    x, y, sample_weight = (*arrays, None)[:3]
    runners = {
        "pipeline": lambda: model.fit(data, epochs=1, shuffle=False, verbose=0),
        "in_memory": fit_once(model, x, y, w.batch_size, sample_weight),
        "autotuned": lambda: model.fit(autotuned, epochs=1, shuffle=False, verbose=0),
    }
    runs = timing.interleave(runners, repeats)
    record = {"family": w.family, "dataset": dataset_name, "jit_compile": jit_compile,
              "steps": steps, "repeats": repeats, "batch_size": w.batch_size}
    for name, seconds in runs.items():
        record[name] = {**throughput(w, timing.median(seconds) / steps, peak), "runs": seconds}
    release({"ours": model})
    return record


def autotuned_pipeline(*args, **kwargs):
    """`training.pipelines.pipeline` as it was before its fix: tf.data's autotuner on and an
    autotuned prefetch (the fixes table's "before")."""
    import tensorflow as tf

    from training import pipelines

    fixed, prefetch = pipelines.fixed_parallelism, pipelines.PREFETCH
    pipelines.fixed_parallelism, pipelines.PREFETCH = tf.data.Options, tf.data.AUTOTUNE
    try:
        return pipelines.pipeline(*args, **kwargs)
    finally:
        pipelines.fixed_parallelism, pipelines.PREFETCH = fixed, prefetch


def tokenizer_for(dataset_name, vocabulary_size, num_texts=2000):
    """A WordPiece tokenizer over the most frequent words of a dataset's first texts.

    A whole-word vocabulary (plus every character, alone and as `##` continuation) is
    enough to measure the pipeline, and takes no time to make, unlike learning word pieces.
    """
    from training import datasets
    from training.features import FEATURES
    from zoo.preprocessing import WORDPIECE_RESERVED_TOKENS, WordPieceTokenizer

    features = FEATURES[dataset_name]
    text_features = [features[role] for role in ("text", "source", "target") if role in features]
    counts = Counter()
    for element in datasets.load(dataset_name, "train").take(num_texts).as_numpy_iterator():
        for feature in text_features:
            counts.update(re.findall(r"\w+|[^\w\s]", element[feature].decode().lower()))
    characters = sorted({c for word in counts for c in word})
    vocabulary = list(WORDPIECE_RESERVED_TOKENS) + characters + [f"##{c}" for c in characters]
    room = vocabulary_size - len(vocabulary)
    vocabulary += [word for word, _ in counts.most_common() if len(word) > 1][:max(room, 0)]
    return WordPieceTokenizer(vocabulary[:vocabulary_size])


def release(models):
    """Drop the models and Keras' global state, so the next workload starts clean."""
    models.clear()
    keras.backend.clear_session()
    gc.collect()
