"""The tensor helpers every checkpoint format shares: a `Tensor` (a checkpoint name, the
Keras variables it fills and how), the common kinds of tensor, and `assign`, which fills a
model from a dict of arrays with every name and shape checked."""

from dataclasses import dataclass, field

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: the message says what is wrong and what to do."""


@dataclass
class Tensor:
    """One tensor of a checkpoint and the Keras variables it fills.

    `to_keras(array) -> list of arrays` (one per variable) and `to_hf(arrays) -> array` are
    inverses. The helpers below make the common kinds.
    """

    name: str
    variables: list
    to_keras: object
    to_hf: object
    optional: bool = field(default=False)  # absent in some checkpoints (a tied LM head)
    alias: bool = field(default=False)  # a copy of another tensor: read, never written


def same(name, variable, hf_shape=None):
    """Stored as Keras stores it (embedding tables, class tokens), up to a reshape."""
    return Tensor(name, [variable], lambda a: [a.reshape(variable.shape)],
                  lambda arrays: arrays[0] if hf_shape is None else arrays[0].reshape(hf_shape))


def linear(name, variable, merge="out"):
    """A torch `Linear` weight `[out, in]` into a Keras kernel `[in, ...out...]`.

    Attention kernels split one axis into `(heads, head_dim)`: the output of the query, key
    and value projections (`merge="out"`), the input of the output projection (`merge="in"`).
    """

    def to_hf(arrays):
        kernel = arrays[0]
        matrix = kernel.reshape(kernel.shape[0], -1) if merge == "out" else \
            kernel.reshape(-1, kernel.shape[-1])
        return matrix.T

    return Tensor(name, [variable], lambda a: [a.T.reshape(variable.shape)], to_hf)


def vector(name, variable):
    """A bias or norm scale, reshaped to the variable (attention biases are `[heads, dim]`)."""
    return Tensor(name, [variable], lambda a: [a.reshape(variable.shape)],
                  lambda arrays: arrays[0].reshape(-1))


def conv(name, variable):
    """A torch `Conv2d` weight `[out, in, kh, kw]` into a Keras `Conv2D` kernel
    `[kh, kw, in, out]`."""
    return Tensor(name, [variable], lambda a: [a.transpose(2, 3, 1, 0)],
                  lambda arrays: arrays[0].transpose(3, 2, 0, 1))


def dense_layer(name, dense, merge="out"):
    """A torch `Linear` (`weight`, `bias`) into a Keras `Dense` or `EinsumDense`."""
    specs = [linear(f"{name}.weight", dense.kernel, merge=merge)]
    if dense.bias is not None:
        specs.append(vector(f"{name}.bias", dense.bias))
    return specs


def encoder_layer_tensors(name, block, attention, attention_norm, feedforward_norm):
    """One layer of Hugging Face's BERT-style encoders (BERT, ViT) into an `EncoderBlock`:
    `{name}.attention.{attention}.query|key|value`, `{name}.attention.output.dense`,
    `{name}.intermediate.dense`, `{name}.output.dense`, and the two norms by their names."""
    specs = []
    for part in ("query", "key", "value"):
        dense = getattr(block.attention, f"{part}_dense")
        specs += dense_layer(f"{name}.attention.{attention}.{part}", dense, merge="out")
    specs += dense_layer(f"{name}.attention.output.dense", block.attention.output_dense,
                         merge="in")
    specs += norm(f"{name}.{attention_norm}", block.attention_norm)
    specs += dense_layer(f"{name}.intermediate.dense", block.feedforward.intermediate_dense)
    specs += dense_layer(f"{name}.output.dense", block.feedforward.output_dense)
    return specs + norm(f"{name}.{feedforward_norm}", block.feedforward_norm)


def norm(name, layer):
    """A torch `LayerNorm` (`weight`, `bias`) into a Keras `LayerNormalization`."""
    return [vector(f"{name}.weight", layer.gamma), vector(f"{name}.bias", layer.beta)]


def architecture(hf, architectures, family, default):
    """The checkpoint's architecture (config.json `architectures[0]`, else `default`) and its
    entry in `architectures`; an unknown one is a `CheckpointError` listing the supported."""
    name = (hf.get("architectures") or [default])[0]
    if name not in architectures:
        raise CheckpointError(
            f"{family} architecture {name!r} is not supported. Supported: "
            f"{sorted(architectures)}."
        )
    return name, architectures[name]


def num_labels(hf):
    """Classes of a classification checkpoint (Hugging Face's default is 2)."""
    return len(hf.get("id2label") or {0: 0, 1: 1})


def label_maps(num_classes):
    """`id2label` and `label2id` of a config.json, with Hugging Face's default names."""
    return {
        "id2label": {str(i): f"LABEL_{i}" for i in range(num_classes)},
        "label2id": {f"LABEL_{i}": i for i in range(num_classes)},
    }


def assign(tensors, specs, source):
    """Fill the variables of `specs` from `tensors`: every tensor used, every non-optional
    spec found, every shape as the model needs it (in the checkpoint's own layout, before any
    reshape, so a transposed weight of the right size is caught too)."""
    unused = set(tensors)
    missing, misshapen = [], []
    for spec in specs:
        if spec.name not in tensors:
            if not spec.optional:
                missing.append(spec.name)
            continue
        unused.discard(spec.name)
        array = np.asarray(tensors[spec.name], dtype="float32")
        expected = spec.to_hf([np.asarray(keras_value(v)) for v in spec.variables]).shape
        if tuple(array.shape) != tuple(expected):
            misshapen.append(f"{spec.name} has shape {tuple(array.shape)}, the model needs "
                             f"{tuple(expected)}")
            continue
        for variable, value in zip(spec.variables, spec.to_keras(array), strict=True):
            variable.assign(value)
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unused:
        problems.append(f"unexpected tensors {sorted(unused)}")
    if misshapen:
        problems.append(f"tensors of the wrong shape: {'; '.join(misshapen)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit the model its config describes: " + "; ".join(problems)
            + ". Check that config.json belongs to these weights."
        )


def keras_value(variable):
    """A variable's value as a numpy array."""
    import keras

    return keras.ops.convert_to_numpy(variable)


def checkpoint_task(model, supported, family):
    """The `task_name` of `model` when the checkpoint format has a layout for it (a
    backbone is None), else a `CheckpointError` naming the model and the supported tasks."""
    if getattr(model, "backbone", model) is model:
        return None
    task = model.task_name
    if task not in supported:
        raise CheckpointError(
            f"No {family} checkpoint layout for {type(model).__name__} (task {task!r}); there "
            f"are layouts for the backbone and the tasks {sorted(filter(None, supported))}. "
            "Save the backbone (`save_pretrained(model.backbone, path)`), or the model as "
            "`.keras`."
        )
    return task


def alias(name, variable, original, kept):
    """An optional copy of `original` (already read into `variable`); it must equal it, else
    a `CheckpointError` that says why with `kept` (what the zoo keeps once: "the zoo's T5
    has one token table"). `save_pretrained` does not write it.
    """
    # Row 0 before loading: still equal after it means `original` was missing (and is
    # reported as such); then the copy fills the variable instead of being compared.
    before = np.array(keras_value(variable[0]))

    def to_keras(array):
        current = np.asarray(keras_value(variable), dtype="float32")
        if array.shape == current.shape and not np.array_equal(current[0], before) \
                and not np.array_equal(array, current):
            raise CheckpointError(
                f"{name} differs from {original}, of which it should be a copy: {kept}. "
                "Check the checkpoint."
            )
        return [array]

    return Tensor(name, [variable], to_keras, lambda arrays: arrays[0], optional=True,
                  alias=True)
