"""The limits of `zoo.validation.input_limits` inside exported graphs, and before LiteRT runs.

An embedding lookup answers for any id (`keras.ops.take` reads -1 as the last row), so the
artifacts check what the caller gives them, with the limits the Keras model checks:

- SavedModel signatures: `checked_inputs(model, inputs)` adds `tf.debugging.Assert`s that
  run before the model; a bad input fails the call with `InvalidArgumentError` (TF Serving:
  HTTP 400) whose message reads as `zoo.validation`'s, e.g. "assertion failed: [token_ids
  holds -1 at [0, 1]: ids must be in [0, 1024), the vocabulary (vocabulary_size).]".
  The signatures are traced without `jit_compile`. Under TF's XLA auto-clustering the
  Asserts still run; a `tf.function(jit_compile=True)` around these checks does not
  compile (their messages are string ops), which is safer than what XLA does with a
  plain Assert: it drops it and runs on.
- TFLite models: LiteRT has no Assert op (the converter drops it), so `screened(limits,
  inputs)` replaces bad values by valid ones and says which rows were valid, and
  `nan_rows(outputs, valid)` makes every float output of the other rows NaN: a row with a
  bad input never gets a plausible number.
- Python runners of TFLite files: `check_values(name, values, limit)` raises a one-line
  `ValueError` up front.

Example:

>>> import tensorflow as tf, zoo
>>> model = zoo.build("gpt", task="causal_lm")
>>> inputs = {"token_ids": tf.constant([[5, -1]]), "padding_mask": tf.constant([[1, 1]])}
>>> safe, valid = screened(input_limits(model), inputs)
>>> safe["token_ids"].numpy().tolist(), valid.numpy().tolist()
([[5, 0]], [False])
"""

import numpy as np
import tensorflow as tf

from zoo.validation import MASK, Limit, input_limits

ID_PARTS = ("token_ids", "padding_mask", "segment_ids")


def checked_inputs(model, inputs):
    """`inputs` (a dict of int tensors, as the Keras model takes them) passed through the
    graph checks of `model`'s limits: values in range, rows no longer than a learned position
    table, each mask and segment tensor of its token ids' shape, `mask_positions` inside the
    sequence and of the same batch. Anything else (image `pixels`) is returned unchanged.

    Example (inside a `tf.function`):

        outputs = model(checked_inputs(model, {"token_ids": ids, "padding_mask": mask}))
    """
    if not isinstance(inputs, dict):
        return inputs
    limits = input_limits(model)
    checks = []
    for name, values in inputs.items():
        limit = _limit(name, inputs, limits)
        if limit is not None:
            checks.append(_assert_values(name, values, limit))
        if f"{name}:length" in limits:
            checks.append(_assert_length(name, values, limits[f"{name}:length"]))
        partner = _partner(name, inputs)
        if partner is not None:
            checks.append(_assert_shape(name, values, partner, inputs[partner]))
    if not checks:
        return inputs
    with tf.control_dependencies(checks):  # the model's first op waits for every check
        return {name: tf.identity(values) for name, values in inputs.items()}


def screened(limits, inputs):
    """`(inputs with each bad value replaced by the low end of its range, valid)`: `valid`
    is a bool `[batch]` tensor, False for a row with any value outside its limit (a scalar
    input, such as a decode step's index, counts for every row). The graph form of the
    checks for TFLite, where Assert ops do not run.

    Args:
        limits: input name -> `zoo.validation.Limit`; names without one pass unchanged
            (`mask_positions` is limited to the width of `token_ids`).
        inputs: a dict of int tensors of static shapes.
    """
    safe, valid = {}, tf.constant(True)
    for name, values in inputs.items():
        limit = _limit(name, inputs, limits)
        if limit is None:
            safe[name] = values
            continue
        bad = (values < limit.low) | (values >= limit.high)
        safe[name] = tf.where(bad, tf.cast(limit.low, values.dtype), values)
        row_bad = tf.reduce_any(bad, axis=list(range(1, bad.shape.rank))) \
            if bad.shape.rank > 1 else bad
        valid = valid & ~row_bad
    return safe, valid


def nan_rows(outputs, valid):
    """`outputs` (a dict of tensors `[batch, ...]`) with every float value of the rows where
    `valid` (bool `[batch]` or a scalar) is False set to NaN; other dtypes pass unchanged."""
    nan_outputs = {}
    for name, value in outputs.items():
        if value.dtype.is_floating:
            shape = [-1] + [1] * (value.shape.rank - 1) if valid.shape.rank else []
            keep = tf.reshape(valid, shape)
            value = tf.where(keep, value, tf.constant(float("nan"), value.dtype))
        nan_outputs[name] = value
    return nan_outputs


def check_values(name, values, limit):
    """Raise a one-line `ValueError` when an int array holds a value outside `limit`.

    Example:

    >>> check_values("token_ids", [[3, 20]], Limit(0, 20, "the vocabulary"))
    Traceback (most recent call last):
    ValueError: token_ids holds 20 at [0, 1]: ids must be in [0, 20), the vocabulary.
    """
    values = np.asarray(values)
    if values.size and values.dtype.kind not in "iu":
        raise ValueError(f"{name} holds {values.dtype} values: give integer {_kind(limit)} in "
                         f"[{limit.low}, {limit.high}), {limit.what}.")
    bad = (values < limit.low) | (values >= limit.high)
    if np.any(bad):
        where = [int(i) for i in np.argwhere(bad)[0]]
        raise ValueError(f"{name} holds {values[tuple(where)]} at {where}: {_kind(limit)} must "
                         f"be in [{limit.low}, {limit.high}), {limit.what}.")


def _limit(name, inputs, limits):
    if name == "mask_positions" and "token_ids" in inputs:
        return Limit(0, tf.shape(inputs["token_ids"])[-1], "the positions of token_ids")
    return limits.get(name)


def _partner(name, inputs):
    """The token ids input whose shape `name` (a mask or segment ids; `mask_positions`:
    whose rows) must have."""
    if name == "mask_positions":
        return "token_ids" if "token_ids" in inputs else None
    for part in ID_PARTS:
        if name.endswith(part):
            partner = name[:-len(part)] + "token_ids"
            return partner if partner != name and partner in inputs else None
    return None


def _assert_values(name, values, limit):
    bad = (values < limit.low) | (values >= limit.high)
    ok = ~tf.reduce_any(bad)

    def message():  # built only when a check fails
        where = tf.where(bad)[0]
        return tf.strings.join([
            f"{name} holds ", _text(tf.gather_nd(values, where)), " at ", _text(where),
            f": {_kind(limit)} must be in [{limit.low}, ", _text(limit.high),
            f"), {limit.what}."])

    return tf.debugging.Assert(ok, [tf.cond(ok, lambda: tf.constant(""), message)])


def _assert_length(name, values, limit):
    length = tf.shape(values)[-1]
    ok = length <= limit.most
    return tf.debugging.Assert(ok, [tf.strings.join([
        f"{name} has ", _text(length), f" positions: at most {limit.most}, {limit.what}. "
        f"Shorten the input (a preprocessor with sequence_length <= {limit.most} truncates "
        "it)."])])


def _assert_shape(name, values, partner, partner_values):
    shape, expected = tf.shape(values), tf.shape(partner_values)
    if name == "mask_positions":  # [batch, masks]: only the rows must agree
        ok, must = tf.equal(shape[0], expected[0]), "as many rows as"
    else:
        ok, must = tf.reduce_all(tf.equal(shape, expected)), "the shape of"  # ranks are fixed
    return tf.debugging.Assert(ok, [tf.strings.join([
        f"{name} has the shape ", _text(shape), f": it must have {must} {partner}, ",
        _text(expected), "."])])


def _text(value):
    """A string tensor of an int, or of a vector written as `[0, 1]`."""
    if isinstance(value, int):
        return str(value)
    value = tf.strings.as_string(value)
    if value.shape.rank == 0:
        return value
    return tf.strings.join(["[", tf.strings.reduce_join(value, separator=", "), "]"])


def _kind(limit):
    return "values" if limit is MASK else "ids"


__all__ = ["checked_inputs", "screened", "nan_rows", "check_values"]
