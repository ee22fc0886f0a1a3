"""What every family shares: its description (`Family`), config validation and presets."""

import dataclasses
from collections.abc import Callable

IGNORE_LABEL = -100  # the label of positions a token classifier's loss skips


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family, as the registry sees it.

    Attributes:
        name: as in `zoo.build(name)`.
        config_class: the frozen `Config` dataclass.
        presets: size name -> config.
        backbone: the `Backbone` subclass, called as `backbone(config, dtype=...)`.
        tasks: task name -> a callable `(backbone, **task_arguments) -> Task`.
        task_defaults: task name -> config fields the task changes unless the user sets
            them (BERT's masked LM head has no use for the pooler, as in the reference).
    """

    name: str
    config_class: type
    presets: dict
    backbone: type
    tasks: dict[str, Callable]
    task_defaults: dict = dataclasses.field(default_factory=dict)


def check_positive(config, *names):
    """Raise a `ValueError` naming each field of `names` that is not a positive int."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(
                f"{type(config).__name__}.{name} must be a positive int, got {value!r}."
            )


def check_forced_ids(config):
    """Raise a `ValueError` unless `forced_bos_token_id` and `forced_eos_token_id` are None or
    ids of the vocabulary (what `generate` forces at the first and last new token)."""
    for name in ("forced_bos_token_id", "forced_eos_token_id"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value < config.vocabulary_size):
            raise ValueError(
                f"{type(config).__name__}.{name}={value!r} is not an id of the vocabulary "
                f"[0, {config.vocabulary_size}); use None to force nothing."
            )


def check_heads_divide(config, width_name="hidden_dim"):
    """Raise a `ValueError` unless `num_heads` divides the width (and `num_kv_heads` the heads)."""
    width, heads = getattr(config, width_name), config.num_heads
    if width % heads:
        divisors = [d for d in range(1, width + 1) if width % d == 0 and d <= 64]
        raise ValueError(
            f"{type(config).__name__}: {width_name}={width} is not divisible by "
            f"num_heads={heads}. Pick num_heads from {divisors}, or change {width_name}."
        )
    kv_heads = getattr(config, "num_kv_heads", None)
    if kv_heads is not None and heads % kv_heads:
        raise ValueError(
            f"{type(config).__name__}: num_heads={heads} is not a multiple of "
            f"num_kv_heads={kv_heads}. Pick num_kv_heads among the divisors of {heads}."
        )


def field_names(config_class):
    return [field.name for field in dataclasses.fields(config_class)]


def preset(presets, family, size, **overrides):
    """The preset `size` of `presets` with `overrides` replacing fields.

    Unknown sizes and fields are `ValueError`s that list the valid ones.
    """
    if size not in presets:
        raise ValueError(f"Unknown size {size!r} for {family!r}. Sizes: {sorted(presets)}.")
    config = presets[size]
    unknown = sorted(set(overrides) - set(field_names(type(config))))
    if unknown:
        raise ValueError(
            f"Unknown {family} config field(s) {unknown}. Fields: {field_names(type(config))}."
        )
    return dataclasses.replace(config, **overrides)


def to_dict(config):
    return dataclasses.asdict(config)


def from_dict(config_class, values):
    """Inverse of `to_dict`; JSON turns tuples into lists, so turn them back."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_class(**values)
