"""Argument checks that run before anything is written, each a one-line `ValueError` naming
the `kt` flag, the bad value and what it may be.

`check_settings(settings)` checks a whole `TrainSettings` (`kt train`'s flags) against the
zoo and the datasets before `train` makes the run folder; the small checks (`at_least`,
`positive`, `fraction`, `existing`, `writable_folder`, `not_empty`) serve every command.

Example:

>>> at_least("--epochs", 0)
Traceback (most recent call last):
ValueError: --epochs must be an int >= 1, got 0.
>>> positive("--lr", float("nan"))
Traceback (most recent call last):
ValueError: --lr must be > 0, got nan.
"""

import math
import os
from pathlib import Path

import zoo
from training import datasets, distribute, features, recipes
from zoo.config import field_names

# What each role set of features.FEATURES can feed.
LM_TASKS = ("causal_lm", "masked_lm")
# SentencePiece needs room for its special pieces and the characters of the text.
MIN_VOCABULARY_SIZE = 16


def at_least(flag, value, low=1):
    """`value` must be an int >= `low` (None, an unset optional flag, passes)."""
    if value is None:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{flag} must be an int >= {low}, got {value!r}.")
    return value


def positive(flag, value):
    """`value` must be a finite number > 0 (None passes)."""
    if value is not None and not (_number(value) and value > 0):
        raise ValueError(f"{flag} must be > 0, got {value!r}.")
    return value


def not_negative(flag, value):
    """`value` must be a finite number >= 0 (None passes)."""
    if value is not None and not (_number(value) and value >= 0):
        raise ValueError(f"{flag} must be >= 0, got {value!r}.")
    return value


def fraction(flag, value):
    """`value` must be in [0, 1) (None passes)."""
    if value is not None and not (_number(value) and 0 <= value < 1):
        raise ValueError(f"{flag} must be in [0, 1), got {value!r}.")
    return value


def not_empty(flag, text):
    """`text` must hold more than whitespace."""
    if text is None or not str(text).strip():
        raise ValueError(f"{flag} is empty: give some text.")
    return text


def existing(flag, path):
    """`path` must exist."""
    if path is not None and not Path(path).exists():
        raise FileNotFoundError(f"{flag} {path} does not exist.")
    return path


def existing_model(flag, path_or_name):
    """`path_or_name` must be a path that exists or a Hugging Face name the hub or its cache
    has (resolved now, so a bad name fails before anything is written; see `zoo.hub`)."""
    from zoo import hub

    if not hub.is_name(path_or_name):
        return existing(flag, path_or_name)
    try:
        hub.resolve(path_or_name)
    except ValueError as error:
        raise ValueError(f"{flag} {error}") from None
    return path_or_name


def writable_folder(flag, path):
    """`path` must be a folder that exists or can be made: no part of it a file, and the
    nearest existing folder above it writable. Nothing is created."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise ValueError(f"{flag} {path} cannot be a folder: {part} is a file. "
                                 "Choose another path.")
            if not os.access(part, os.W_OK | os.X_OK):
                raise ValueError(f"{flag} {path} cannot be written: {part} is not writable. "
                                 "Choose another path.")
            return path
    return path


def check_settings(settings):
    """Check a `training.train.TrainSettings` before its run folder is touched.

    Raises a `ValueError` (or `FileNotFoundError` for a missing `--from-pretrained` path) that
    names the flag, for every value `kt train` would fail on later: counts and rates out of
    range, an unknown model, size, dataset, split, strategy or `--set` field, a model that
    cannot read the dataset, a sequence longer than the model's positions, an `--out` that
    cannot be a folder.
    """
    at_least("--epochs", settings.epochs)
    at_least("--batch-size", settings.batch_size)
    at_least("--steps-per-epoch", settings.steps_per_epoch)
    at_least("--patience", settings.patience)
    at_least("--sequence-length", settings.sequence_length)
    at_least("--vocabulary-size", settings.vocabulary_size, MIN_VOCABULARY_SIZE)
    at_least("--seed", settings.seed, 0)
    at_least("--lora-rank", settings.lora_rank)
    positive("--lr", settings.learning_rate)
    positive("--clipnorm", settings.clipnorm)
    not_negative("--weight-decay", settings.weight_decay)
    fraction("--warmup-ratio", settings.warmup_ratio)
    fraction("--label-smoothing", settings.label_smoothing)
    existing_model("--from-pretrained", settings.from_pretrained)
    if settings.recipe is not None and settings.recipe not in recipes.NAMED:
        raise ValueError(f"--recipe {settings.recipe!r} is unknown. Recipes: "
                         f"{sorted(recipes.NAMED)}.")
    writable_folder("--out", settings.out)
    if settings.strategy is not None and settings.strategy not in distribute.NAMES:
        raise ValueError(f"--strategy: unknown strategy {settings.strategy!r}. Choose one of "
                         f"{', '.join(distribute.NAMES)}.")

    zoo.sizes(settings.model)  # an unknown model names the zoo's models
    task = resolve_task(settings.model, settings.task, settings.dataset)
    if settings.size not in zoo.sizes(settings.model):
        raise ValueError(f"--size: unknown size {settings.size!r} for {settings.model!r}. "
                         f"Sizes: {sorted(zoo.sizes(settings.model))}.")
    _check_overrides(settings, task)
    for flag, split in (("--split", settings.split),
                        ("--validation-split", settings.validation_split)):
        if split not in (None, "auto"):
            try:
                datasets.check_split(settings.dataset, split)
            except ValueError as error:
                raise ValueError(f"{flag}: {error}") from None
    return task


def tasks_for(dataset):
    """The tasks a dataset can feed, in order of preference."""
    roles = features.roles_of(dataset)
    if roles is None:
        raise ValueError(f"Unknown dataset {dataset!r}. Datasets: {sorted(features.FEATURES)}.")
    if "source" in roles:
        return ["seq2seq_lm"]
    if "question" in roles:
        return ["question_answering"]
    if "image" in roles:
        return ["classifier"]
    if "label" in roles:
        label = datasets.info(dataset).features[roles["label"]]
        if hasattr(label, "feature"):  # a label per word
            return ["token_classifier"]
        return ["classifier", *LM_TASKS]
    return list(LM_TASKS)


def datasets_for(task):
    """The project's offline datasets that feed `task` (for error messages)."""
    fits = []
    for name in datasets.names(offline=True):
        try:
            if task in tasks_for(name):
                fits.append(name)
        except (ValueError, FileNotFoundError):
            continue
    return fits


def resolve_task(model, task, dataset):
    """The task to train: `task` checked against the model and the dataset, or the first
    task of the dataset that the model has."""
    family_tasks = zoo.tasks(model)
    feeds = tasks_for(dataset)
    check_modality(model, dataset)
    if task is None:
        common = [t for t in feeds if t in family_tasks]
        if not common:
            raise ValueError(f"{model!r} has the tasks {family_tasks}, and {dataset!r} feeds "
                             f"{feeds}: none in common. Pick another model or dataset.")
        return common[0]
    if task not in family_tasks:
        raise ValueError(f"Unknown task {task!r} for {model!r}. Tasks: {family_tasks}.")
    if task not in feeds:
        raise ValueError(f"Dataset {dataset!r} cannot feed the task {task!r}: it feeds {feeds}. "
                         f"Datasets for {task}: {datasets_for(task)}.")
    return task


def reads_images(model):
    """Whether the zoo family `model` reads images (else text)."""
    return hasattr(zoo.config(model), "image_shape")


def check_modality(model, dataset):
    """Refuse an image dataset for a text model and the other way round, naming what fits."""
    images = "image" in features.roles_of(dataset)
    if images == reads_images(model):
        return
    kind, reads = ("images", "text") if images else ("text", "images")
    models = [m for m in zoo.names() if reads_images(m) == images]
    fits = [d for d in datasets.names(offline=True)
            if ("image" in (features.roles_of(d) or {})) != images]
    raise ValueError(f"{dataset!r} holds {kind} and {model!r} reads {reads}: train "
                     f"{' or '.join(models)} on it, or {model} on --dataset {', '.join(fits)}.")


def _check_overrides(settings, task):
    """`--set` fields must be config fields or task arguments, with values the config takes."""
    if settings.from_pretrained:
        return  # the checkpoint's config decides; its import checks the fields
    config_class = type(zoo.config(settings.model, settings.size))
    fields = field_names(config_class)
    arguments = zoo.task_arguments(settings.model, task)
    for name in settings.overrides:
        if name not in fields and name not in arguments:
            raise ValueError(f"--set {name}: unknown for {settings.model} {task}. Config "
                             f"fields: {fields}; task arguments: {arguments}.")
    config = zoo.config(settings.model, settings.size, **{
        k: v for k, v in from_scratch(settings.overrides).items() if k in fields})
    if "num_classes" in settings.overrides:
        at_least("--set num_classes", settings.overrides["num_classes"])
    longest = getattr(config, "max_sequence_length", None)
    learned = getattr(config, "position", "learned") == "learned"
    if settings.sequence_length and longest and learned and settings.sequence_length > longest:
        raise ValueError(f"--sequence-length {settings.sequence_length} is longer than the "
                         f"model's max_sequence_length {longest}: lower it, or --set "
                         f"max_sequence_length={settings.sequence_length}.")


def from_scratch(overrides):
    """The `--set` fields of a model trained from scratch: a ViT given an `image_shape` lays
    its position table out for those images (a preset's is for its own)."""
    if "image_shape" in overrides:
        return {"position_image_size": tuple(overrides["image_shape"][:2]), **overrides}
    return dict(overrides)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)
