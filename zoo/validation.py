"""The valid range of every integer model input, and the check that rejects the rest.

An embedding lookup does not fail on a bad id: `keras.ops.take` reads id -1 as the last row
(numpy's rule), and XLA clamps ids past the end to the last row. So a model fed id -1, or a
segment id 7, or 600 tokens through 512 learned positions, answers with numbers that mean
nothing. `input_limits(model)` says what each input may hold, from the backbone's config;
`check_inputs(model, inputs)` raises a one-line `ValueError` naming the input, the bad value,
where it is and the valid range. Tasks and backbones run it on every call with concrete
values (eager calls, `predict`, `generate`); the exported signatures run the same limits as
graph checks (`export.signatures`). Where no check runs (a compiled step, `predict` on a
`tf.data.Dataset`), an id outside its table embeds as NaN (`keras_transformers.embeddings.
lookup`), so the row's outputs are NaN, not numbers.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("gpt", task="causal_lm")
>>> input_limits(model)["token_ids"]
Limit(low=0, high=1024, what='the vocabulary (vocabulary_size)')
>>> check_inputs(model, {"token_ids": np.array([[5, -1]]),
...                      "padding_mask": np.ones((1, 2))})  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: token_ids holds -1 at [0, 1]: ids must be in [0, 1024), the vocabulary ...
"""

from typing import NamedTuple

import keras
import numpy as np


class Limit(NamedTuple):
    """Values of an input must lie in `[low, high)`; `what` names the range for errors."""

    low: int
    high: int
    what: str


class LengthLimit(NamedTuple):
    """Rows of an input may hold at most `most` positions (learned position tables)."""

    most: int
    what: str


MASK = Limit(0, 2, "a padding mask (1 for real tokens, 0 for padding)")


def input_limits(model):
    """Input name -> `Limit` (values) for the integer inputs of a zoo task or backbone, and
    `"<name>:length"` -> `LengthLimit` where positions are learned. {} for image models."""
    backbone = getattr(model, "backbone", model)
    config = getattr(backbone, "config", None)
    if config is None or not hasattr(config, "vocabulary_size"):
        return {}
    vocabulary = Limit(0, config.vocabulary_size, "the vocabulary (vocabulary_size)")
    limits = {}
    names = list(model.input) if isinstance(model.input, dict) else []
    for name in names:
        if name.endswith("token_ids"):
            limits[name] = vocabulary
        elif name.endswith("padding_mask"):
            limits[name] = MASK
        elif name == "segment_ids":
            limits[name] = Limit(0, config.num_segments, "the segments (num_segments)")
    if getattr(config, "position", "learned") == "learned" and hasattr(
            config, "max_sequence_length"):
        for name in names:
            if name != "mask_positions":
                limits[f"{name}:length"] = LengthLimit(
                    config.max_sequence_length, "the learned positions (max_sequence_length)")
    return limits


def check_inputs(model, inputs):
    """Raise a `ValueError` for a concrete input value outside `input_limits(model)`.

    Args:
        model: a zoo task or backbone.
        inputs: what the model is called with (a dict of arrays or tensors); symbolic
            tensors (inside a traced or compiled function) are skipped.
    """
    if not isinstance(inputs, dict):
        return
    limits = input_limits(model)
    for name, value in inputs.items():
        values = concrete(value)
        if values is None:
            continue
        if name in limits:
            _check_values(name, values, limits[name])
        if f"{name}:length" in limits and values.ndim >= 2:
            most, what = limits[f"{name}:length"]
            if values.shape[-1] > most:
                raise ValueError(f"{name} has {values.shape[-1]} positions: at most {most}, "
                                 f"{what}. Shorten the input (a preprocessor with "
                                 f"sequence_length <= {most} truncates it).")
        if name == "mask_positions" and "token_ids" in inputs:
            length = keras.ops.shape(inputs["token_ids"])[-1]
            if isinstance(length, int):
                _check_values(name, values, Limit(0, length, "the positions of token_ids"))


def concrete(value):
    """`value` as a numpy array when it holds concrete numbers, else None (symbolic)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple, int)):
        return np.asarray(value)
    kind = type(value).__name__
    if kind == "EagerTensor":
        return value.numpy()
    if kind == "ArrayImpl":  # a JAX array outside `jit` (tracers are other classes)
        return np.asarray(value)
    return None


def _check_values(name, values, limit):
    if values.size == 0 or values.dtype.kind not in "biuf":
        return
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(f"{name} holds {values[where]} at {list(where)}: give integers in "
                         f"[{limit.low}, {limit.high}), {limit.what}.")
    bad = (values < limit.low) | (values >= limit.high)
    if values.dtype.kind == "f":
        bad |= values != np.round(values)
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        value = values[where]
        value = int(value) if float(value).is_integer() else float(value)
        kind = "values" if limit is MASK else "ids"
        raise ValueError(f"{name} holds {value} at {list(where)}: {kind} must be in "
                         f"[{limit.low}, {limit.high}), {limit.what}.")


class ValidatedCall:
    """Mixed into `Task` and `Backbone`: a call with concrete values checks them first."""

    def __call__(self, *args, **kwargs):
        check_inputs(self, args[0] if args else kwargs.get("inputs"))
        return super().__call__(*args, **kwargs)
