"""The one dict from model name to the module of its family, and building models from it;
nothing else registers anything.

Each family module defines `FAMILY` (a `zoo.config.Family`): its config dataclass, presets,
backbone and tasks. `import zoo` imports them all, so `.keras` files load after `import zoo`.
`zoo.build`, `zoo.names`, ... are the functions below.
"""

import importlib
import inspect

import keras

from zoo.config import field_names, preset

FAMILIES = {
    "bart": "zoo.bart",
    "bert": "zoo.bert",
    "gpt": "zoo.gpt",
    "t5": "zoo.t5",
    "transformer": "zoo.transformer",
    "vit": "zoo.vit",
}


def family(name):
    """The `Family` of `name`; an unknown name is a `ValueError` listing the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown model {name!r}. Models: {sorted(FAMILIES)}.")
    return importlib.import_module(FAMILIES[name]).FAMILY


def import_all():
    """Import every family module (their classes register for `.keras` loading)."""
    for module in FAMILIES.values():
        importlib.import_module(module)


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
