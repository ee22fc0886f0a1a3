"""Hugging Face model folders (`config.json` + `*.safetensors`): reading them with clear
errors (pickles are refused, never unpickled)."""

import json
from pathlib import Path

from zoo.checkpoints.tensors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Buffers older transformers versions saved beside the weights (position indices, GPT-2's
# causal mask, rotary frequencies); nothing to load.
BUFFER_SUFFIXES = ("position_ids", ".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


def read_folder(path):
    """`(config json, {name: array})` of a Hugging Face folder, with clear errors."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"{folder} does not exist. Pass a folder in Hugging Face layout "
                              "(config.json + model.safetensors) or a .gguf file.")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder. Pass a folder in Hugging Face layout "
                              "(config.json + model.safetensors) or a .gguf file.")
    config_file = folder / "config.json"
    if not config_file.exists():
        raise CheckpointError(f"{folder} has no config.json: it is not a Hugging Face model "
                              "folder, or the file was not downloaded.")
    config = read_config(config_file)
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


def read_config(config_file):
    """A checkpoint's config.json, which must hold a JSON object."""
    try:
        config = json.loads(Path(config_file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_file} is not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file} holds a JSON {type(config).__name__}, not an "
                              "object of model settings: download the checkpoint again.")
    return config


