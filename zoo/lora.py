"""LoRA (Hu et al., 2021): fine-tune a frozen backbone through low-rank updates of its
projections, with Keras' own `enable_lora` on the projection layers.

`model.backbone.enable_lora(rank)` freezes every weight of the backbone and gives each chosen
projection a trainable pair `lora_kernel_a`, `lora_kernel_b` (`b` starts at zero, so the
model starts as it was); the layer computes `kernel + lora_alpha / rank * a @ b`. The task's
head stays trainable. By default the four attention projections (`ATTENTION`) get a pair;
`target_layer_names` may add the feed-forward's (`FEEDFORWARD`). Keras factors a projection
to heads, kernel `[hidden, heads, head_dim]`, as `a` `[hidden, heads, rank]` times `b`
`[rank, head_dim]`: a rank-`rank` update per head.

What a LoRA model writes holds the merged kernels, as Keras' layers save them: a `.keras`
file loads as a plain model with the same outputs (call `enable_lora` again to go on
training with new pairs), and the exports (`export.saved_model`, `export.tflite`) and
`zoo.save_pretrained` run no LoRA ops (`merged`). A run's backups keep the pairs themselves
(`training.backup`), so a LoRA run resumes exactly.

Example:

>>> import zoo
>>> model = zoo.build("bert", task="classifier", num_classes=2)
>>> before = trainable_parameters(model)
>>> len(model.backbone.enable_lora(rank=4))             # 4 projections in each of 2 layers
8
>>> trainable_parameters(model) < before
True
"""

import tempfile
from pathlib import Path

import numpy as np

from keras_transformers.attention import MultiHeadAttention
from keras_transformers.feedforward import FeedForward

ATTENTION = ("query", "key", "value", "attention_output")
FEEDFORWARD = ("intermediate", "gate", "output")


def enable_lora(backbone, rank, lora_alpha=None, target_layer_names=None):
    """Freeze `backbone` and add a trainable rank-`rank` update to its projections.

    Args:
        backbone: a zoo backbone (a task's `.backbone`).
        rank: a positive int.
        lora_alpha: scales the update by `lora_alpha / rank`; `rank` (a scale of 1) if None.
        target_layer_names: which projections of every block: names from `ATTENTION`
            (attention's query, key, value and output) and `FEEDFORWARD` (the feed-forward's
            intermediate, gate and output); `ATTENTION` when None.

    Returns the layers that got a LoRA pair. Call before `compile` (the optimizer takes the
    trainable weights it is built with).
    """
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive int, got {rank!r}.")
    if lora_alpha is not None and (isinstance(lora_alpha, bool) or
                                   not isinstance(lora_alpha, (int, float)) or lora_alpha <= 0):
        raise ValueError(f"lora_alpha must be a positive number or None, got {lora_alpha!r}.")
    names = ATTENTION if target_layer_names is None else tuple(target_layer_names)
    unknown = sorted(set(names) - set(ATTENTION + FEEDFORWARD))
    if unknown or not names:
        raise ValueError(f"Unknown LoRA target_layer_names {unknown or names}; choose from "
                         f"{ATTENTION + FEEDFORWARD}.")
    enabled = lora_layers(backbone)
    if enabled:
        raise ValueError(f"{backbone.name} has LoRA already (rank {enabled[0].lora_rank}): "
                         "enable it once, on the float or loaded model.")
    targets = projections(backbone, names)
    if any(layer.quantization_mode == "float8" for layer in targets):
        raise ValueError("Keras' float8 layers do not run LoRA: enable LoRA on a float, int8 "
                         "or int4 model.")
    backbone.trainable = True
    for variable in backbone.weights:  # the weights, not the layers: a frozen layer's new
        variable.trainable = False     # weights would be frozen too
    for layer in targets:
        layer.enable_lora(rank, lora_alpha=lora_alpha)
    return targets


def projections(model, names=ATTENTION + FEEDFORWARD):
    """The projection layers of `model`'s attention and feed-forward layers named `names`."""
    found = []
    for layer in model._flatten_layers():
        if isinstance(layer, MultiHeadAttention):
            parts = {"query": layer.query_dense, "key": layer.key_dense,
                     "value": layer.value_dense, "attention_output": layer.output_dense}
        elif isinstance(layer, FeedForward):
            parts = {"intermediate": layer.intermediate_dense, "output": layer.output_dense}
            if layer.gated:
                parts["gate"] = layer.gate_dense
        else:
            continue
        found += [parts[name] for name in names if name in parts]
    return found


def lora_layers(model):
    """The layers of `model` with a LoRA pair."""
    return [layer for layer in model._flatten_layers() if getattr(layer, "lora_enabled", False)]


def trainable_parameters(model):
    """The number of trainable numbers of `model` (what `fit` updates)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def merged(model):
    """A copy of `model` with each LoRA update added into its kernel and no LoRA layers:
    rebuilt from its config, weights through Keras' own saved form (which merges them).
    Quantized layers stay quantized; the preprocessor and label names come along."""
    copy = type(model).from_config(model.get_config())
    with tempfile.TemporaryDirectory(prefix="kt-merge-") as folder:
        path = Path(folder) / "model.weights.h5"
        model.save_weights(path)
        copy.load_weights(path)
    return copy


def merged_if_lora(model):
    """`merged(model)` for a model with LoRA layers, else `model` itself."""
    return merged(model) if lora_layers(model) else model

