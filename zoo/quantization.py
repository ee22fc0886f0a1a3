"""Keras quantization of zoo models: `model.quantize(mode)` on a task or a backbone.

Keras quantizes its own dense, einsum-dense and embedding layers in place (`Dense`,
`EinsumDense`, `Embedding`, `ReversibleEmbedding`):

| mode | weights | matmuls |
|---|---|---|
| "int8" | int8, a scale per output channel (tables: per row) | inputs int8 per row, on the fly |
| "int4" | int4, two to a byte, a scale per 128 inputs | float (weights dequantized) |
| "float8" | float, cast to float8 (dense layers only) | float8 inputs and weights |

The zoo's layers run a quantized projection's own call (`keras_transformers.attention` reads
float kernels directly only for speed), so a quantized model computes what Keras' quantized
layers compute. The other weights stay float: norms, position tables and biases, ViT's patch
convolution. A `.keras` file records each quantized layer's policy by its path (a
`keras.dtype_policies.DTypePolicyMap` as the backbone's dtype), so loading rebuilds the
integer weights and reads them back.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("gpt", task="causal_lm")
>>> ids = {"token_ids": np.array([[5, 9, 2]]), "padding_mask": np.ones((1, 3), "int32")}
>>> before = model.predict(ids, verbose=0)
>>> model.quantize("int8")
>>> quantization_modes(model)
['int8']
>>> bool((model.predict(ids, verbose=0).argmax(-1) == before.argmax(-1)).all())
True
"""

import contextlib
import gc
import re

import keras

MODES = ("int8", "int4", "float8")
DENSE = (keras.layers.Dense, keras.layers.EinsumDense)
TABLES = (keras.layers.Embedding, keras.layers.ReversibleEmbedding)


def quantize(model, mode=None, config=None, filters=None):
    """`keras.Model.quantize` for a zoo task or backbone: what `model.quantize` runs.

    Quantizes the layers Keras can (see the module docstring; `filters` as Keras' to choose
    among them); the rest keep float weights without a warning each. Refuses what would
    compute something else than asked, in one line: a mode Keras has no kernel for here,
    a model quantized already, float8 with LoRA, and a `config` whose quantizers a
    `.keras` file would not keep.
    """
    mode = mode if config is None else config.mode
    if mode not in MODES:
        raise ValueError(
            f"quantize mode {mode!r} is not supported for zoo models; choose one of {MODES} "
            "(gptq and awq need a calibration structure the zoo does not describe)."
        )
    if config is not None:
        _check_config(config)
    done = quantization_modes(model)
    if done:
        raise ValueError(
            f"{model.name} is quantized already ({', '.join(done)}); quantize the float model "
            "(zoo.build / zoo.from_pretrained it again)."
        )
    if mode == "float8" and any(getattr(layer, "lora_enabled", False)
                                for layer in model._flatten_layers()):
        raise ValueError("Keras' float8 layers do not run LoRA: quantize to int8 or int4, or "
                         "merge the LoRA weights first (zoo.lora.merged).")
    kinds = DENSE if mode == "float8" else DENSE + TABLES

    def chosen(layer):
        return type(layer) in kinds and _matches(layer, filters)

    with _one_collection():
        keras.Model.quantize(model, mode, config=config, filters=chosen)


@contextlib.contextmanager
def _one_collection():
    """One `gc.collect()` at the end instead of Keras' one per float kernel it deletes (in
    `Layer.__delattr__`): each scans the whole heap, 0.2-0.4 s with TensorFlow loaded, which
    made SmolLM2's 211 layers take 83 s."""
    collect = gc.collect
    gc.collect = lambda generation=2: 0
    try:
        yield
    finally:
        gc.collect = collect
        gc.collect()


def _check_config(config):
    """Refuse a `config` (Keras makes one from the mode) whose quantizers a `.keras` file
    would not keep: a policy records the mode and int4's block size only."""
    default = type(config)()
    kept = config.weight_quantizer is None and (
        keras.saving.serialize_keras_object(config.activation_quantizer)
        == keras.saving.serialize_keras_object(default.activation_quantizer))
    if not kept:
        raise ValueError(
            "zoo models take quantize(mode), or a config with the default quantizers (int4's "
            "block size may change): custom quantizers are not kept in .keras files, so a "
            "loaded model would compute differently."
        )


def _matches(layer, filters):
    """Keras' `filters`: None, a regex or list of regexes searched in the layer's name, or
    a callable."""
    if filters is None:
        return True
    if callable(filters):
        return bool(filters(layer))
    patterns = [filters] if isinstance(filters, str) else list(filters)
    return any(re.search(pattern, layer.name) for pattern in patterns)


def own_policy(layer):
    """The dtype policy of `layer` itself (a layer built from a policy map holds the map)."""
    policy = layer.dtype_policy
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap) and layer.path:
        return policy[layer.path]
    return policy


def quantization_modes(model):
    """The sorted quantization modes of `model`'s layers (`[]` for a float model)."""
    return sorted({own_policy(layer).quantization_mode for layer in model._flatten_layers()
                   if own_policy(layer).quantization_mode is not None})


def saved_policy(model, policy):
    """The dtype to store in a config: `policy` (the model's float policy, or a map holding
    it), or a `DTypePolicyMap` of it and every quantized layer of `model` by path."""
    default = getattr(policy, "default_policy", policy)
    quantized = {layer.path: own_policy(layer) for layer in model._flatten_layers()
                 if own_policy(layer).quantization_mode is not None}
    if not quantized:
        return default
    return keras.dtype_policies.DTypePolicyMap(default_policy=default, policy_map=quantized)


def check_float(model, what):
    """Raise a one-line `ValueError` when `model` is quantized: `what` needs float weights."""
    modes = quantization_modes(model)
    if modes:
        raise ValueError(
            f"{what} needs float weights, and {model.name} is quantized ({', '.join(modes)}): "
            "use the float model it was quantized from."
        )
