"""Pretrained weights: Hugging Face folders (config.json + model.safetensors) and GGUF files.

`from_pretrained(path)` reads the reference implementation's config, maps it to a family's
`Config`, builds the model, and assigns every tensor by name, checking that each tensor is used
once and each shape fits. `save_pretrained(model, path)` writes the same layout back, so the
reference implementation loads it.

Each family describes its checkpoints in `zoo/hf_<family>.py`: `from_hf_config(json)` ->
`(config fields, task, task arguments)`, `to_hf_config(model)` -> json, and
`backbone_tensors(backbone, prefix)` / `head_tensors(task)` -> lists of `Tensor`s (a Hugging
Face name, the Keras variables it fills, and how).

Example:

>>> import zoo
>>> model = zoo.from_pretrained("tests/fixtures/reference/bert_classifier")
>>> type(model).__name__, model.num_classes
('Classifier', 3)
"""

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# config.json "model_type" -> family module describing its checkpoints.
HF_FAMILIES = {
    "bert": "zoo.hf_bert",
    "gpt2": "zoo.hf_gpt",
    "llama": "zoo.hf_gpt",
    "t5": "zoo.hf_t5",
    "vit": "zoo.hf_vit",
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Buffers older transformers versions saved beside the weights (position indices, GPT-2's
# causal mask, rotary frequencies); nothing to load.
BUFFER_SUFFIXES = ("position_ids", ".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


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


def family_module(model_type):
    if model_type not in HF_FAMILIES:
        raise CheckpointError(
            f"config.json has model_type {model_type!r}, which the zoo cannot import. "
            f"Supported: {sorted(HF_FAMILIES)}."
        )
    return importlib.import_module(HF_FAMILIES[model_type])


def read_folder(path):
    """`(config json, {name: array})` of a Hugging Face folder, with clear errors."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder. Pass a folder in Hugging Face layout "
                              "(config.json + model.safetensors) or a .gguf file.")
    config_file = folder / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{folder} has no config.json: it is not a Hugging Face model "
                              "folder, or the file was not downloaded.")
    weight_files = sorted(folder.glob("*.safetensors"))
    if not weight_files:
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(
                f"{folder} holds only pickle checkpoints {pickles}, which the zoo refuses to "
                "unpickle (a pickle can run any code). Convert them to safetensors where torch "
                "is installed: `transformers.AutoModel.from_pretrained(folder)."
                "save_pretrained(folder, safe_serialization=True)`."
            )
        raise CheckpointError(f"{folder} has no model.safetensors: download the weights too.")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}).") from None
    tensors = {}
    for file in weight_files:
        try:
            tensors.update(load_file(file))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"{file} cannot be read ({error}); it is truncated or corrupt: download it again."
            ) from None
    tensors = {k: v for k, v in tensors.items() if not k.endswith(BUFFER_SUFFIXES)}
    return config, tensors


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


def from_pretrained(path, task=None, **overrides):
    """Build a zoo model from a local checkpoint and load its weights.

    Args:
        path: a Hugging Face folder (`config.json` + `model.safetensors`) or a `.gguf` file.
        task: the zoo task to build. None builds what the checkpoint's architecture is
            (`BertModel` -> the backbone, `BertForSequenceClassification` -> `classifier`);
            `"backbone"` the backbone alone; another task loads the backbone's weights and
            starts the new head from scratch (fine-tuning a pretrained encoder).
        **overrides: config fields and task arguments, as in `zoo.build` (`dropout=0.0`,
            `num_classes=5`).

    Errors (`CheckpointError`, a `ValueError`) name what is wrong: no config.json or weights,
    an architecture the zoo does not have, missing, unexpected or misshapen tensors (by name),
    a truncated file, a pickle checkpoint (refused, never unpickled).
    """
    import zoo

    path = Path(path)
    if path.suffix == ".gguf":
        from zoo import gguf_checkpoint

        return gguf_checkpoint.from_gguf(path, task=task, **overrides)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path} is a pickle checkpoint, which the zoo refuses to unpickle (a pickle can run "
            "any code). Convert it to safetensors where torch is installed: "
            "`transformers.AutoModel.from_pretrained(folder).save_pretrained(folder, "
            "safe_serialization=True)`."
        )
    hf_config, tensors = read_folder(path)
    hf = family_module(hf_config.get("model_type"))
    fields, checkpoint_task, task_arguments = hf.from_hf_config(hf_config)
    if task == "backbone":
        task = None
    elif task is None:
        task = checkpoint_task
    if task == checkpoint_task:
        fields = {**fields, **task_arguments}
    model = zoo.build(hf.FAMILY_NAME, size=hf.BASE_SIZE, task=task, **{**fields, **overrides})
    backbone = model if task is None else model.backbone

    prefix = hf.PREFIX if any(name.startswith(hf.PREFIX) for name in tensors) else ""
    specs = hf.backbone_tensors(backbone, prefix)
    if task == checkpoint_task:
        if task is not None:
            specs += hf.head_tensors(model)
    else:  # another head than the checkpoint's (or none): its head tensors are not wanted
        wanted = {spec.name for spec in specs}
        tensors = {k: v for k, v in tensors.items()
                   if k in wanted or (prefix and k.startswith(prefix))}
    assign(tensors, specs, path)
    return model


def save_pretrained(model, path, overwrite=False):
    """Write a zoo model as a Hugging Face folder (`config.json` + `model.safetensors`) that
    the reference implementation loads.

    Written to a temporary sibling folder and renamed into place whole; an existing folder is
    replaced only with `overwrite=True`.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already; pass overwrite=True to replace it.")
    backbone = getattr(model, "backbone", model)
    hf = family_module(_model_type(backbone))
    specs = hf.backbone_tensors(backbone, "")
    if backbone is not model:
        specs = hf.backbone_tensors(backbone, hf.PREFIX) + hf.head_tensors(model)
    tensors = {}
    for spec in specs:
        if spec.alias:
            continue
        arrays = [np.asarray(keras_value(v), dtype="float32") for v in spec.variables]
        tensors[spec.name] = np.ascontiguousarray(spec.to_hf(arrays))

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / "config.json").write_text(json.dumps(hf.to_hf_config(model), indent=2))
        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def keras_value(variable):
    import keras

    return keras.ops.convert_to_numpy(variable)


def _model_type(backbone):
    for model_type, module in HF_FAMILIES.items():
        if importlib.import_module(module).FAMILY_NAME == _family_of(backbone):
            return model_type
    raise CheckpointError(f"The zoo has no checkpoint format for {type(backbone).__name__}.")


def _family_of(backbone):
    from zoo.registry import FAMILIES, family

    for name in FAMILIES:
        if isinstance(backbone, family(name).backbone):
            return name
    return None
