"""The model zoo: BERT, GPT (GPT-2 and Llama style), T5 and ViT from `keras_transformers`.

Example:

>>> import zoo
>>> zoo.names()
['bert', 'gpt', 't5', 'vit']
>>> model = zoo.build("bert", size="tiny", task="classifier", num_classes=3)
>>> zoo.count_params("bert", "base")                    # no weights allocated
109482240
"""

import inspect

import keras

from zoo.attention_maps import attention_maps
from zoo.checkpoints import CheckpointError, from_pretrained, save_pretrained
from zoo.config import field_names, preset
from zoo.registry import FAMILIES, family, import_all

import_all()  # registers every model class, so `keras.models.load_model` finds them


def names():
    """The model families, e.g. `["bert", "gpt", "t5", "vit"]`."""
    return sorted(FAMILIES)


def sizes(name):
    """The presets of a family, e.g. `sizes("bert") == ["base", "large", "mini", "tiny"]`."""
    return sorted(family(name).presets)


def tasks(name):
    """The tasks a family supports, e.g. `tasks("gpt") == ["causal_lm", "classifier"]`."""
    return sorted(family(name).tasks)


def config(name, size="tiny", **overrides):
    """The frozen config of preset `size`, with `overrides` replacing fields."""
    return preset(family(name).presets, name, size, **overrides)


def task_arguments(name, task):
    """The arguments a task takes besides the backbone, e.g. `["num_classes", ...]`."""
    parameters = inspect.signature(_task(name, task)).parameters
    return [p for p in parameters if p not in ("backbone", "kwargs")]


def build(name, size="tiny", task=None, dtype=None, **overrides):
    """Build a model: the backbone when `task` is None, else a task model around it.

    Args:
        name: a family from `names()`.
        size: a preset from `sizes(name)`.
        task: None, or a task from `tasks(name)`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.
        **overrides: config fields (`num_layers=6`) and task arguments (`num_classes=3`);
            a name that is both (`dropout`) sets both.

    Unknown names, sizes, tasks and fields are `ValueError`s listing the valid ones.
    """
    spec = family(name)
    task_fn = _task(name, task) if task is not None else None
    task_kwargs = {}
    if task_fn is not None:  # a name both kinds take (`dropout`) goes to both
        accepted = task_arguments(name, task)
        task_kwargs = {k: v for k, v in overrides.items() if k in accepted}
        fields = field_names(spec.config_class)
        overrides = {k: v for k, v in overrides.items() if k not in accepted or k in fields}
    overrides = {**spec.task_defaults.get(task, {}), **overrides}
    try:
        family_config = config(name, size, **overrides)
    except ValueError as error:
        if task_fn is not None and "Unknown" in str(error) and "field" in str(error):
            raise ValueError(f"{error} Task {task!r} arguments: {task_arguments(name, task)}.") \
                from None
        raise
    backbone = spec.backbone(family_config, dtype=dtype)
    return backbone if task_fn is None else task_fn(backbone, **task_kwargs)


def count_params(name, size="tiny", task=None, **overrides):
    """Parameters of a model, counted from its shapes without allocating any weights."""
    with keras.StatelessScope(initialize_variables=False):
        return build(name, size, task, **overrides).count_params()


def _task(name, task):
    available = family(name).tasks
    if task not in available:
        raise ValueError(f"Unknown task {task!r} for {name!r}. Tasks: {sorted(available)}.")
    return available[task]


__all__ = [
    "CheckpointError",
    "attention_maps",
    "build",
    "config",
    "count_params",
    "from_pretrained",
    "names",
    "save_pretrained",
    "sizes",
    "task_arguments",
    "tasks",
]
