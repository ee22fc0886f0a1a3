"""Train a zoo model on a dataset into a run folder, resuming an interrupted run.

`train(settings)` is what `kt train` does: check that the model, task and dataset fit, build
the model (or load pretrained weights), give it a tokenizer (learned from the training split
for text, unless the checkpoint has one), compile it with the task's recipe, and `model.fit`
it with the run callbacks (`training.callbacks`). The run folder (`training.runs`) then holds
everything needed to evaluate, export or resume.

Running the same settings again on the same folder resumes after the last finished epoch
exactly: with the optimizer's and the random state (`training.backup`), on the batches the
uninterrupted run would have read (`pipelines.training_stream`); other settings on a folder
that holds a run are refused unless `overwrite=True`.

Example:

>>> import tempfile
>>> from training.train import TrainSettings, train
>>> settings = TrainSettings(model="vit", dataset="digits", epochs=1, batch_size=64,
...                          overrides={"image_shape": (8, 8, 1), "patch_size": 2},
...                          out=tempfile.mkdtemp() + "/run")
>>> result = train(settings, verbose=0)
>>> result.epochs_trained, sorted(result.history[-1])[:3]
(1, ['accuracy', 'epoch', 'loss'])
"""

import contextlib
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

import zoo
from training import backup, checks, datasets, distribute, features, pipelines, recipes, runs
from training import callbacks as run_callbacks
from zoo import lora
from zoo.files import atomic_write, remove, write_text


@dataclass(frozen=True)
class TrainSettings:
    """The settings of a run, stored as its config.json.

    Args:
        model: a zoo family (`zoo.names()`).
        dataset: a dataset name (`training.datasets.names()`).
        out: the run folder.
        size: a preset of the family.
        task: a task of the family; the first the dataset feeds when None.
        split: the training split.
        validation_split: "auto" (the dataset's validation or dev split, else the last 10% of
            `split`), a split, or None for none.
        epochs, batch_size: as `model.fit`'s.
        steps_per_epoch: stop each epoch after this many batches (the data repeats).
        recipe: a recipe of `training.recipes.NAMED` (`"transformer_paper"`), for the
            model's width; None: the task's default.
        learning_rate, weight_decay, warmup_ratio, decay, label_smoothing, clipnorm: the
            recipe's (`training.recipes.Recipe`); None keeps the recipe's value.
        mixed_precision: build the model in `mixed_bfloat16`.
        sequence_length: text: the padded length (`min(128, max_sequence_length)` if None).
        vocabulary_size: text from scratch: the size of the vocabulary learned from `split`.
        from_pretrained: a checkpoint (HF folder or .gguf) to start from.
        lora_rank: train a LoRA update of this rank on the backbone's attention projections,
            the rest of the backbone frozen (`zoo.lora`); None trains every weight.
        overrides: config fields and task arguments for `zoo.build` (`num_layers=4`).
        patience: early stopping on the validation loss after this many epochs without gain.
        seed: seeds the weights, the shuffling and the preprocessing.
        strategy: a `training.distribute` strategy name ("mirrored", "multi_worker", ...), or
            None for TensorFlow's default. `batch_size` is then the global batch; every worker
            runs the same settings, each backs up to its own folder, and only the chief writes
            the run folder's model, checkpoints, history and logs.
    """

    model: str
    dataset: str
    out: str
    size: str = "tiny"
    task: str | None = None
    split: str = "train"
    validation_split: str | None = "auto"
    epochs: int = 3
    batch_size: int = 32
    steps_per_epoch: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_ratio: float | None = None
    decay: str | None = None
    label_smoothing: float | None = None
    clipnorm: float | None = None
    recipe: str | None = None
    mixed_precision: bool = False
    sequence_length: int | None = None
    vocabulary_size: int = 8000
    from_pretrained: str | None = None
    lora_rank: int | None = None
    overrides: dict = field(default_factory=dict)
    patience: int | None = None
    seed: int = 0
    strategy: str | None = None

    def to_json(self):
        return {"kind": "kt-run", **json.loads(json.dumps(dataclasses.asdict(self)))}

    @classmethod
    def from_json(cls, values):
        values = {k: v for k, v in values.items() if k != "kind"}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainResult:
    """What `train` did: the run folder, the epochs it trained in this call, the epoch it
    resumed from (0 for a fresh run), the whole history, the seconds it took, the
    `(epoch, batch)` where the loss became NaN (None when it did not), and the validation
    figures before training (a fresh run with a validation split; also kept in the run's
    results.json)."""

    run_dir: Path
    model: keras.Model
    resumed_from: int
    epochs_trained: int
    history: list
    seconds: float
    stopped_on_nan: tuple | None = None
    already_complete: bool = False
    initial: dict | None = None


def validation_split(settings):
    """The validation split "auto" stands for, and the training split that goes with it."""
    if settings.validation_split != "auto":
        return settings.split, settings.validation_split
    splits = datasets.info(settings.dataset).splits
    for name in ("validation", "dev"):
        if name in splits:
            return settings.split, name
    if "[" in settings.split:  # already a slice: no room to carve a validation part
        return settings.split, None
    return f"{settings.split}[:90%]", f"{settings.split}[90%:]"


def train(settings, overwrite=False, verbose=1, restart=False, notify=None):
    """Train (or resume) the run `settings` describes. See the module docstring.

    Args:
        settings: a `TrainSettings`.
        overwrite: replace a folder that holds another run.
        verbose: `model.fit`'s.
        restart: train this run again from the start, dropping what its folder holds.
        notify: called with one line where a resumed run resumes, and with the count of
            trainable parameters of a LoRA run (the library prints nothing; `kt train`
            prints them).

    Raises ValueError for settings that do not fit (unknown model, task, dataset; a dataset
    that cannot feed the task), FileExistsError for a folder holding another run, and a
    `training.backup.BackupError` when the run's backups cannot be read.
    """
    run_dir = Path(settings.out)
    task = checks.check_settings(settings)  # before anything is written
    settings = dataclasses.replace(settings, task=task)
    if _prepare_folder(run_dir, settings, overwrite, restart):
        model = runs.load_model(run_dir)
        history = json.loads((run_dir / runs.HISTORY).read_text())
        return TrainResult(run_dir, model, len(history), 0, history, 0.0,
                           already_complete=True)

    keras.utils.set_random_seed(settings.seed)
    train_split, val_split = validation_split(settings)
    strategy = _strategy(settings.strategy)
    chief = distribute.is_chief() if strategy is not None else True
    backup_dir = distribute.worker_dir(run_dir, runs.BACKUP) if strategy else run_dir / runs.BACKUP
    with strategy.scope() if strategy else contextlib.nullcontext():
        if strategy is not None:  # the batch is the global one: it splits over the replicas
            distribute.per_replica_batch_size(settings.batch_size, strategy)
        model = _build(settings, run_dir, train_split)
        if settings.lora_rank:
            all_trainable = lora.trainable_parameters(model)
            model.backbone.enable_lora(settings.lora_rank)
            if notify is not None:
                notify(f"LoRA rank {settings.lora_rank}: {lora.trainable_parameters(model):,} "
                       f"trainable parameters (of {all_trainable:,} without LoRA).")
        per_pass = pipelines.batches_per_pass(model, settings.dataset, train_split,
                                              settings.batch_size, seed=settings.seed)
        steps = settings.steps_per_epoch or per_pass
        val_data = None
        if val_split:
            val_data = pipelines.pipeline(model, settings.dataset, val_split,
                                          settings.batch_size)
        recipe = recipes.recipe_for(
            task, pretrained=bool(settings.from_pretrained), name=settings.recipe,
            hidden_dim=getattr(model.backbone.config, "hidden_dim", None),
            learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
            warmup_ratio=settings.warmup_ratio, decay=settings.decay,
            label_smoothing=settings.label_smoothing, clipnorm=settings.clipnorm,
            mixed_precision=settings.mixed_precision,
        )
        recipes.compile(model, recipe, total_steps=steps * settings.epochs,
                        jit_compile=strategy is None or distribute.can_jit_compile(strategy))
        restored = _restore(model, backup_dir, run_dir, settings, notify)
        train_data, _ = pipelines.training_stream(
            model, settings.dataset, train_split, settings.batch_size,
            steps_per_epoch=steps, first_epoch=restored.epoch, epochs=settings.epochs,
            seed=settings.seed, per_pass=per_pass)
        if strategy is not None:
            train_data = distribute.shard_by_batch(train_data)
            val_data = val_data and distribute.shard_by_batch(val_data)

    initial = None
    if val_data is not None and not restored.epoch:  # the figures before training
        initial = {k: float(v) for k, v in model.evaluate(
            val_data, return_dict=True, verbose=0).items()}
        if chief:
            results = runs.read_results(run_dir)
            results[f"{settings.dataset}:{val_split}:before_training"] = initial
            runs.write_json(runs.results_path(run_dir), results)
    callbacks = run_callbacks.run_callbacks(run_dir, settings.patience, backup_dir=backup_dir,
                                            chief=chief)
    nan_stop = callbacks[0]
    start = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=settings.epochs,
              initial_epoch=restored.epoch, steps_per_epoch=steps, callbacks=callbacks,
              shuffle=False, verbose=verbose)  # the stream is shuffled already
    seconds = time.perf_counter() - start
    history = next(c for c in callbacks if isinstance(c, run_callbacks.RunHistory)).epochs
    trained = len(history) - restored.epoch
    if nan_stop.stopped_at is None:
        if chief:  # only the chief writes the model
            atomic_write(run_dir / runs.MODEL, model.save)
        remove(backup_dir)  # the run is complete: nothing to resume
    return TrainResult(run_dir, model, restored.epoch, trained, history, seconds,
                       stopped_on_nan=nan_stop.stopped_at, initial=initial)


def _restore(model, backup_dir, run_dir, settings, notify):
    """Load the run's newest readable backup; tell `notify` where the run resumes."""
    try:
        restored = backup.restore(model, backup_dir)
    except backup.BackupError as error:
        checkpoint = run_dir / runs.CHECKPOINTS / runs.LAST_CHECKPOINT
        history = run_dir / runs.HISTORY
        last = (f", or use the last good model {checkpoint} (epoch "
                f"{len(json.loads(history.read_text()))}) as it is"
                if checkpoint.is_file() and history.is_file() else "")
        raise backup.BackupError(f"{run_dir}: {error}. Run the same command with --restart to "
                                 f"train it again from the start{last}.") from None
    if restored.epoch and notify is not None:
        skipped = "".join(f" (the newer backup {path} cannot be read: {why})"
                          for path, why in restored.skipped)
        notify(f"Resuming {run_dir} after epoch {restored.epoch} of {settings.epochs}"
               f"{skipped}.")
    return restored


def _prepare_folder(run_dir, settings, overwrite, restart=False):
    """Make the run folder; True when it holds this very run, finished (and not
    `restart`)."""
    config_path = run_dir / runs.CONFIG
    if config_path.exists():
        if runs.is_run(run_dir):
            existing = runs.read_config(run_dir)
            differs = sorted(k for k, v in settings.to_json().items()
                             if existing.get(k) != v and k != "out")  # a moved run is the same
        else:
            differs = ["(not a kt run)"]
        if differs and not overwrite:
            raise FileExistsError(
                f"{run_dir} holds another run (its settings differ in {', '.join(differs)}). "
                "Pass --overwrite to replace it, or choose another --out."
            )
        if differs or restart:
            shutil.rmtree(run_dir)
        elif (run_dir / runs.MODEL).exists():
            return True
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{run_dir} exists and is not a run folder: choose another --out, "
                              "or pass --overwrite to replace it.")
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(config_path, settings.to_json())
    return False


def _strategy(name):
    return None if name is None else distribute.strategy(name)


def _build(settings, run_dir, train_split):
    """The model with its preprocessor: pretrained, or built with a learned tokenizer."""
    from zoo import preprocessing

    task, overrides = settings.task, dict(settings.overrides)
    if settings.mixed_precision:
        overrides["dtype"] = "mixed_bfloat16"
    classes = label_names(settings.dataset)
    if classes and "num_classes" in zoo.task_arguments(settings.model, task):
        overrides.setdefault("num_classes", len(classes))
    if task == "question_answering" and has_unanswerable(settings.dataset):
        overrides.setdefault("allow_no_answer", True)
    if settings.from_pretrained:
        model = zoo.from_pretrained(settings.from_pretrained, task=task,
                                    sequence_length=settings.sequence_length, **overrides)
        if model.preprocessor is None and isinstance(model.input, dict):
            raise ValueError(f"{settings.from_pretrained} has no tokenizer files (vocab.txt, "
                             "spiece.model, vocab.json + merges.txt) to read text with.")
    else:
        tokenizer = _tokenizer(settings, run_dir, train_split)
        if tokenizer is not None:
            overrides["vocabulary_size"] = tokenizer.vocabulary_size()
            # A family whose config names special tokens (BART's end and padding ids).
            fields = getattr(zoo.registry.family(settings.model).backbone,
                             "special_token_fields", None)
            if fields is not None:
                overrides = {**fields(tokenizer), **overrides}
        overrides = checks.from_scratch(overrides)
        model = zoo.build(settings.model, settings.size, task=task, **overrides)
        if model.preprocessor is None:
            model.preprocessor = preprocessing.preprocessor_for(
                model, tokenizer, settings.sequence_length)
    model.label_names = classes
    return model


def has_unanswerable(dataset):
    """Whether a QA dataset has questions without an answer (SQuAD 2.0's `is_impossible`)."""
    return "is_impossible" in datasets.info(dataset).features


def label_names(dataset):
    """The class names of a dataset's labels, or None."""
    roles = features.roles_of(dataset)
    if not roles or "label" not in roles:
        return None
    label = datasets.info(dataset).features[roles["label"]]
    label = getattr(label, "feature", label)
    return list(label.names) if hasattr(label, "names") else None


TOKENIZER_FILE = "tokenizer.json"


def _tokenizer(settings, run_dir, train_split):
    """The run's tokenizer: read back from the run folder, or learned from the training split
    (WordPiece for BERT, SentencePiece unigram for GPT and T5) and stored there."""
    from training import vocabulary
    from zoo import preprocessing

    roles = features.roles_of(settings.dataset)
    if "image" in roles:
        return None
    path = run_dir / TOKENIZER_FILE
    if path.exists():
        return keras.saving.deserialize_keras_object(json.loads(path.read_text()))
    texts = _texts(settings.dataset, train_split, roles)
    if settings.model == "bert":
        tokens = vocabulary.train_wordpiece(texts, settings.vocabulary_size)
        tokenizer = preprocessing.WordPieceTokenizer(tokens)
    else:
        proto = vocabulary.train_sentencepiece(texts, settings.vocabulary_size,
                                               hard_vocab_limit=False)
        tokenizer = preprocessing.SentencePieceTokenizer(proto)
    write_text(path, json.dumps(keras.saving.serialize_keras_object(tokenizer)))
    return tokenizer


def _texts(dataset, split, roles):
    """The strings of a split to learn a vocabulary from: every text role, words joined."""
    import tensorflow as tf

    data = datasets.load(dataset, split)
    keys = [roles[r] for r in ("text", "text_pair", "source", "target", "question", "context")
            if r in roles]

    def strings(element):
        parts = []
        for key in keys:
            value = element[key]
            if value.shape.rank == 1:  # the words of a sentence
                value = tf.strings.reduce_join(value, separator=" ")
            parts.append(value)
        return tf.data.Dataset.from_tensor_slices(tf.stack(parts))

    return data.flat_map(strings)
