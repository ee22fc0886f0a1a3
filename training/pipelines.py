"""A dataset split -> batches of a zoo task's inputs, ready for `model.fit`.

`pipeline(model, "fortunes", "train", 32, tokenizer=tokenizer)` loads the split
(`training.datasets.load`, or takes a `tf.data.Dataset` you made), picks the features the task
reads (`training.features`: `FEATURES`, or `features=`), applies the task's preprocessor
(`preprocessing.preprocessor_for`) in a parallel map, caches, shuffles, batches (optionally
in length buckets) and prefetches. Elements are `(x, y)` or `(x, y, sample_weight)` tuples:
`x` a dict named as the model's inputs (a float tensor for images), ids and masks int32.

The order of the steps:

    load -> select features -> [cache] -> preprocess -> [cache] -> shuffle
         -> [preprocess with a per-example seed] -> batch or bucket -> prefetch

with tf.data's autotuner off (`fixed_parallelism`): it competed with training for the cores.

A deterministic text preprocessor runs once, before the cache, so later epochs read token
ids; random ones (masked LM, image augmentation) and image decoding run after it, on the
cached raw records (decoded images are larger than their bytes), with a fresh seed per
example and epoch (`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`), so
`seed=` makes the whole pipeline reproducible, parallel map included.

Length bucketing (`bucket_boundaries=(16, 32, 64)`) groups examples by their real length and
cuts each batch's padding to the smallest boundary that holds it (or the full
`sequence_length`), so a batch of short texts is short; there are at most
`len(bucket_boundaries) + 1` shapes, each compiled once under XLA.

Bad records: text never fails (an empty string is a sequence of special tokens; bytes that
are not UTF-8 become the unknown token). Image bytes that are not an image fail the iterator
with an `InvalidArgumentError` naming the problem; `ignore_errors=True` drops them instead
(`tf.data.Dataset.ignore_errors`), as it drops any record the preprocessor rejects.

Example:

>>> import zoo
>>> from training import pipelines
>>> model = zoo.build("vit", task="classifier", num_classes=10)
>>> data = pipelines.pipeline(model, "fashion_mnist_local", "test[:64]", batch_size=16)
>>> images, labels = next(iter(data))
>>> tuple(images.shape), images.dtype.name, tuple(labels.shape)
((16, 32, 32, 3), 'float32', (16,))
"""

import tensorflow as tf

from training import datasets
from training.features import selector
from zoo.preprocessing import ImageClassifierPreprocessor, preprocessor_for

AUTOTUNE = tf.data.AUTOTUNE


def pipeline(model, dataset, split=None, batch_size=32, *, sequence_length=None,
             tokenizer=None, preprocessor=None, features=None, training=None, shuffle=None,
             shuffle_buffer_size=10_000, cache=True, bucket_boundaries=None,
             ignore_errors=False, drop_remainder=False, seed=None, first_pass=None,
             **preprocessor_options):
    """A `tf.data.Dataset` of batches for `model.fit` / `evaluate` / `predict`.

    Args:
        model: a zoo task model (`zoo.build(name, task=...)`).
        dataset: a name for `training.datasets.load`, or a `tf.data.Dataset` of feature dicts,
            of `(input, label)` tuples (`(source, target)` for translation), or of single
            strings or images.
        split: for a name: the split ("train", "test[:10%]"); "train" when None.
        batch_size: examples per batch.
        sequence_length: text tasks: the padded length; see `preprocessor_for`.
        tokenizer: text tasks: a `zoo.preprocessing` tokenizer.
        preprocessor: use this preprocessor; else `model.preprocessor`, else
            `preprocessor_for(model, tokenizer, sequence_length, **preprocessor_options)`.
        features: `{role: feature name}` over `FEATURES`' entry (roles listed there).
        training: augment images (with `augment=True`) and shuffle by default; true for a
            split that starts with "train" or a dataset given without a split.
        shuffle: shuffle the examples each epoch; `training` when None.
        shuffle_buffer_size: examples in the shuffle buffer.
        cache: keep the records in memory after the first epoch (see the module docstring
            for where).
        bucket_boundaries: text tasks: lengths to cut padding to, e.g. `(16, 32, 64)`.
        ignore_errors: drop records the preprocessor fails on (corrupt images) instead of
            failing the iteration.
        drop_remainder: drop the last, smaller batch (one shape for XLA).
        seed: seeds the shuffle and the random preprocessing.
        first_pass: None: one pass over the split, reshuffled each time it is iterated. An
            int p: the endless stream of passes p, p + 1, ..., pass q shuffled and randomly
            preprocessed with seeds made from `seed` and q alone, so the stream from pass p
            is the same whether the passes before it were read or not (`training_stream`).
        **preprocessor_options: passed to `preprocessor_for` (`augment=True`, `mask_rate`...).

    Raises ValueError when a feature the task needs cannot be found (the message lists the
    dataset's features and the `features=` to pass).
    """
    name = dataset if isinstance(dataset, str) else None
    if name is not None:
        split = split or "train"
        dataset = datasets.load(name, split)
    elif not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"dataset must be a dataset name or a tf.data.Dataset, got "
                         f"{type(dataset).__name__}.")
    if training is None:
        training = split is None or str(split).startswith("train")
    shuffle = training if shuffle is None else shuffle
    if preprocessor is None:
        preprocessor = getattr(model, "preprocessor", None) or preprocessor_for(
            model, tokenizer, sequence_length, **preprocessor_options
        )
    select = selector(preprocessor, dataset.element_spec, name, features)
    random = bool(getattr(preprocessor, "random", False))
    image = isinstance(preprocessor, ImageClassifierPreprocessor)

    def apply(element, seed=None):
        x, y = select(element)
        kwargs = {}
        if image:
            kwargs["training"] = training
        if random:
            kwargs["seed"] = seed
        return preprocessor(x, y, **kwargs)

    def unpack(*element):  # tuples arrive as separate arguments
        return apply(element if len(element) > 1 else element[0])

    cache_raw = cache and (random or image)
    if cache_raw:
        dataset = dataset.cache()
    if not random:
        dataset = dataset.map(unpack, num_parallel_calls=AUTOTUNE)
        if ignore_errors:
            dataset = dataset.ignore_errors()
        if getattr(preprocessor, "windows_per_example", False):  # QA: windows of a context
            dataset = dataset.unbatch()
        if cache and not cache_raw:
            dataset = dataset.cache()
    def one_pass(records, pass_seed=None):
        # `pass_seed` None: a new order and new random draws each time the pass is iterated.
        again = pass_seed is None
        if not again:
            # The seeds of this pass's graph: a fixed graph seed beside the pass's own, so
            # the draws depend on the pass alone (and a global seed of 0 does not make TF
            # compare the tensor `pass_seed` as a Python bool).
            tf.random.set_seed(PASS_GRAPH_SEED)
        if shuffle:
            records = records.shuffle(shuffle_buffer_size, seed=seed if again else pass_seed,
                                      reshuffle_each_iteration=again)
        if random:
            seeds = tf.data.Dataset.random(seed=seed if again else pass_seed,
                                           rerandomize_each_iteration=again).batch(2)
            records = tf.data.Dataset.zip((records, seeds)).map(apply,
                                                                 num_parallel_calls=AUTOTUNE)
            if ignore_errors:
                records = records.ignore_errors()
        if bucket_boundaries:
            return _bucket(records, preprocessor, bucket_boundaries, batch_size, drop_remainder)
        return records.batch(batch_size, drop_remainder=drop_remainder,
                             num_parallel_calls=AUTOTUNE)

    if first_pass is None:
        dataset = one_pass(dataset)
    else:
        base = _base_seed(seed)
        dataset = tf.data.Dataset.range(first_pass, PASSES_END).flat_map(
            lambda index: one_pass(dataset, base * PASS_SEED_STRIDE + index))
    return dataset.prefetch(PREFETCH).with_options(fixed_parallelism())


def fixed_parallelism():
    """tf.data options that turn its autotuner off: the parallel maps then use every core and
    the prefetch keeps `PREFETCH` batches. On a 2-core machine the autotuner took a core from
    the training step (BERT workload: 8 steps of cached batches in 2.55 s with it, 1.65 s
    without; the step alone 1.61 s)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


PREFETCH = 2  # batches ready ahead of the training step

# Pass q of a stream is seeded with seed * PASS_SEED_STRIDE + q: distinct for every seed and
# every pass below the stride.
PASS_SEED_STRIDE = 1_000_003
PASS_GRAPH_SEED = 1
PASSES_END = 2**62  # an endless stream of passes, as far as training goes


def batches_per_pass(model, dataset, split, batch_size, seed=None, **options):
    """The whole batches of one pass over `split` (counted once where tf.data cannot know
    it: question answering's windows). Raises a `ValueError` when there is none."""
    one = with_cardinality(pipeline(model, dataset, split, batch_size, drop_remainder=True,
                                    seed=seed, **options))
    count = int(one.cardinality())
    if count <= 0:
        raise ValueError(f"The split {split!r} of {dataset!r} has fewer than "
                         f"batch_size={batch_size} examples: lower --batch-size.")
    return count


def training_stream(model, dataset, split, batch_size, *, steps_per_epoch=None,
                    first_epoch=0, epochs=1, seed=0, per_pass=None, **options):
    """The batches `model.fit` reads from epoch `first_epoch` to `epochs`, the same whether
    the run started at epoch 0 or resumes at `first_epoch`.

    Epochs are `steps_per_epoch` batches (one pass over `split` when None, whole batches
    only); they cross pass boundaries when that is not a whole pass. Epoch e starts at batch
    `e * steps_per_epoch` of the endless stream of passes (`pipeline(first_pass=...)`), so a
    resumed run reads exactly the batches the uninterrupted run would have, in the same
    order with the same random draws, reading only the rest of the pass it starts in.

    Args:
        model, dataset, split, batch_size, seed, **options: as `pipeline`'s.
        steps_per_epoch: batches an epoch; one pass when None.
        first_epoch: the epochs already trained (0 for a new run).
        epochs: the epoch training ends after.
        per_pass: `batches_per_pass(...)`, when the caller has it (else counted here).

    Returns `(data, steps_per_epoch)`: a dataset of exactly `(epochs - first_epoch) *
    steps_per_epoch` batches (its cardinality known, so `fit` reads it through once), and
    the steps per epoch.

    Example:

    >>> import zoo
    >>> model = zoo.build("vit", task="classifier", num_classes=10, image_shape=(8, 8, 1),
    ...                   patch_size=2)
    >>> data, steps = training_stream(model, "digits", "train[:64]", 16, first_epoch=1,
    ...                               epochs=3)
    >>> steps, int(data.cardinality())
    (4, 8)
    """
    per_pass = per_pass or batches_per_pass(model, dataset, split, batch_size, seed=seed,
                                            **options)
    steps = steps_per_epoch or per_pass
    start = first_epoch * steps
    count = max(0, epochs - first_epoch) * steps
    stream = pipeline(model, dataset, split, batch_size, drop_remainder=True, seed=seed,
                      first_pass=start // per_pass, **options)
    stream = stream.skip(start % per_pass).take(count)
    return stream.apply(tf.data.experimental.assert_cardinality(count)), steps


def _base_seed(seed):
    """The seed of a stream of passes: `seed`, or one drawn at random when None."""
    if seed is not None:
        return int(seed)
    import secrets

    return secrets.randbelow(2**31)


def with_cardinality(data):
    """`data` with its batch count known: counted once where tf.data cannot know it
    (question answering: a context's window count depends on its length). Keras restarts a
    dataset each epoch only when it knows where the dataset ends."""
    if int(data.cardinality()) != int(tf.data.UNKNOWN_CARDINALITY):
        return data
    count = int(data.reduce(0, lambda total, _: total + 1))
    return data.apply(tf.data.experimental.assert_cardinality(count))


def _get(element, path):
    index, key = path
    return element[index] if key is None else element[index][key]


def _bucket(dataset, preprocessor, boundaries, batch_size, drop_remainder):
    """Batch examples of similar real length, then cut each batch's padding to a boundary."""
    groups = preprocessor.sequence_groups()
    if not groups:
        raise ValueError(f"bucket_boundaries is for text; {type(preprocessor).__name__} has no "
                         "sequences to bucket.")
    spec = dataset.element_spec
    limits = [int(_get(spec, mask).shape[-1]) for mask, _ in groups]
    boundaries = sorted({int(b) for b in boundaries if 0 < int(b) < max(limits)})

    def length(*element):
        lengths = [tf.reduce_sum(_get(element, mask)) for mask, _ in groups]
        return tf.cast(tf.reduce_max(tf.stack(lengths)), tf.int32)

    # TF puts length L in bucket i when boundaries[i - 1] <= L < boundaries[i].
    dataset = dataset.bucket_by_sequence_length(
        length, [b + 1 for b in boundaries], [batch_size] * (len(boundaries) + 1),
        no_padding=True, drop_remainder=drop_remainder,
    )

    def trim(*element):
        element = [dict(part) if isinstance(part, dict) else part for part in element]
        for (mask, members), limit in zip(groups, limits, strict=True):
            cuts = tf.constant([b for b in boundaries if b < limit] + [limit], tf.int32)
            real = tf.reduce_max(tf.reduce_sum(_get(element, mask), axis=1))
            cut = tf.gather(cuts, tf.searchsorted(cuts, real[tf.newaxis], side="left"))[0]
            for index, key in members:
                if key is None:
                    element[index] = element[index][:, :cut]
                elif key in element[index]:
                    element[index][key] = element[index][key][:, :cut]
        return tuple(element)

    return dataset.map(trim, num_parallel_calls=AUTOTUNE)
