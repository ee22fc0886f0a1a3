"""Pretrained weights: Hugging Face folders (config.json + model.safetensors) and GGUF files.

`load_checkpoint(path)` reads the reference implementation's config, maps it to a family's
`Config`, builds the model, and assigns every tensor by name, checking that each tensor is used
once and each shape fits. `save_pretrained(model, path)` writes the same layout back, so the
reference implementation loads it.

Each family describes its Hugging Face checkpoints in `zoo/checkpoints/<family>.py`:
`from_hf_config(json)` -> `(config fields, task, task arguments)`, `to_hf_config(model)` ->
json, and `backbone_tensors(backbone, prefix)` / `head_tensors(task)` -> lists of `Tensor`s
(a Hugging Face name, the Keras variables it fills, and how: `tensors.py`). Reading and
checking a folder is `folder.py`; GGUF files (llama.cpp) are `gguf.py`.

`zoo.from_pretrained` (zoo/pretrained.py) is `load_checkpoint` plus the preprocessor of the
tokenizer the checkpoint carries.

Example:

>>> import zoo
>>> model = zoo.from_pretrained("tests/fixtures/reference/bert_classifier")
>>> type(model).__name__, model.num_classes
('Classifier', 3)
"""

import json
from pathlib import Path

import numpy as np

from zoo.checkpoints import bart, bert, gguf, gpt, marian, t5, vit
from zoo.checkpoints.folder import PICKLE_SUFFIXES, read_folder
from zoo.checkpoints.tensors import CheckpointError, assign, keras_value
from zoo.files import atomic_write
from zoo.quantization import check_float
from zoo.registry import build

# config.json "model_type" -> the module describing its checkpoints.
HF_FAMILIES = {"bart": bart, "bert": bert, "gpt2": gpt, "llama": gpt, "marian": marian, "t5": t5,
               "vit": vit}


def family_module(model_type):
    """The module describing the checkpoints of config.json's `model_type`."""
    if model_type not in HF_FAMILIES:
        raise CheckpointError(
            f"config.json has model_type {model_type!r}, which the zoo cannot import. "
            f"Supported: {sorted(HF_FAMILIES)}."
        )
    return HF_FAMILIES[model_type]


def load_checkpoint(path, task=None, **overrides):
    """Build a zoo model from a local checkpoint and load its weights: `zoo.from_pretrained`
    without the preprocessor (the arguments and errors are that function's)."""
    path = Path(path)
    if path.suffix == ".gguf":
        return gguf.from_gguf(path, task=task, **overrides)
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
    model = build(hf.FAMILY_NAME, size=hf.BASE_SIZE, task=task, **{**fields, **overrides})
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
    replaced only with `overwrite=True`. A LoRA model writes its merged kernels (a LoRA
    layer's `kernel` is the merged one); a quantized model is refused (Hugging Face reads
    float weights).
    """
    from safetensors.numpy import save_file

    check_float(model, "save_pretrained")
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

    def write(folder):
        (folder / "config.json").write_text(json.dumps(hf.to_hf_config(model), indent=2))
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    return atomic_write(path, write, folder=True)


def _model_type(backbone):
    for model_type, module in HF_FAMILIES.items():
        if module.FAMILY_NAME == backbone.family_name:
            return model_type
    raise CheckpointError(f"The zoo has no checkpoint format for {type(backbone).__name__}.")


__all__ = ["CheckpointError", "load_checkpoint", "save_pretrained"]
