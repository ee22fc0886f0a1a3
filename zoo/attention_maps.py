"""Attention maps: the attention weights of every layer of any zoo model.

`attention_maps(model, inputs)` calls a model's backbone once, eagerly, with every attention
layer of its blocks recording its probabilities (`keras_transformers.attention.
recording_scores`: the same `MultiHeadAttention` calls that compute the outputs), and returns
them by kind, one array per layer, each `[batch, heads, queries, keys]`. The kind is the
block's: an `EncoderBlock`'s attention is `"encoder"`, a `DecoderBlock`'s self attention
`"decoder"` and its cross attention `"cross"`:

| family | kinds |
|---|---|
| BERT | `"encoder"` (self attention over the tokens) |
| GPT (GPT-2, Llama) | `"decoder"` (causal self attention) |
| T5, BART | `"encoder"`, `"decoder"` (causal self attention), `"cross"` (decoder over encoder) |
| ViT | `"encoder"` over the class token (first) and the patches, row by row |

Every row is a probability distribution over the keys: padded keys get weight 0, and a causal
map is lower-triangular. The pictures of them are `zoo.attention_plots`'.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("bert", task="classifier", num_classes=2)
>>> inputs = {"token_ids": np.array([[2, 7, 9, 3, 0]]), "segment_ids": np.zeros((1, 5), "int32"),
...           "padding_mask": np.array([[1, 1, 1, 1, 0]])}
>>> maps = attention_maps(model, inputs)
>>> list(maps), len(maps["encoder"]), maps["encoder"][0].shape      # 2 layers, 2 heads
(['encoder'], 2, (1, 2, 5, 5))
>>> float(maps["encoder"][0][..., 4].max())                            # the padded key
0.0
"""

import numpy as np
from keras import ops

from keras_transformers import DecoderBlock, EncoderBlock
from keras_transformers.attention import recording_scores
from zoo.backbone import Backbone
from zoo.vit import ViTBackbone

KINDS = ("encoder", "decoder", "cross")


def attention_maps(model, inputs):
    """The attention probabilities of every layer of a zoo model, by kind.

    Args:
        model: a zoo task (`zoo.build(name, task=...)`, `training.runs.load_model(...)`) or
            a backbone.
        inputs: what the model takes: for text models the dict its preprocessor makes
            (`token_ids`, `padding_mask`, BERT's `segment_ids`; T5's `encoder_*` and
            `decoder_*`; BART's classifier reads `token_ids` with both stacks: its
            `backbone_inputs`), extra entries (`mask_positions`) ignored; for ViT the images
            `[batch, height, width, channels]` of its `image_shape`.

    Returns:
        A dict from kind (`"encoder"`, `"decoder"`, `"cross"`; see the module docstring) to a
        list with one float32 numpy array `[batch, heads, queries, keys]` per layer.

    Raises:
        ValueError: inputs the model cannot take (images for a text model, text for ViT,
        missing entries, a wrong image size, ids outside the vocabulary, too many tokens).
    """
    maps, _ = trace(model, inputs)
    return maps


def trace(model, inputs):
    """`(maps, outputs)`: the maps of `attention_maps`, and the backbone's outputs of the same
    call (a dict: `sequence_output`, ...; T5's `encoder_sequence_output` and
    `decoder_sequence_output`)."""
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, Backbone):
        raise ValueError(
            f"attention_maps takes a zoo model (a family of zoo.names()), got a "
            f"{type(model).__name__}."
        )
    to_backbone = getattr(model, "backbone_inputs", None)  # a task that feeds it otherwise
    if to_backbone is not None and isinstance(inputs, dict) and set(model.input) <= set(inputs):
        inputs = {k: np.asarray(v) for k, v in to_backbone(inputs).items()}
    x = _checked_inputs(backbone, inputs)
    layers = attention_layers(backbone)
    with recording_scores(layer for _, layer in layers):
        outputs = backbone(x)
        maps = {kind: [_recorded(layer) for k, layer in layers if k == kind] for kind in KINDS}
    return {kind: scores for kind, scores in maps.items() if scores}, outputs


def attention_layers(backbone):
    """`(kind, MultiHeadAttention)` for every attention layer of the backbone's blocks, in the
    order the blocks run."""
    found = []
    for block in backbone.layers:
        if isinstance(block, EncoderBlock):
            found.append(("encoder", block.attention))
        elif isinstance(block, DecoderBlock):
            found.append(("decoder", block.self_attention))
            if block.use_cross_attention:
                found.append(("cross", block.cross_attention))
    return found


def _recorded(layer):
    """A recording layer's scores of the call just made, as float32 numpy."""
    if layer.recorded_scores is None:
        raise RuntimeError(f"The attention layer {layer.path!r} recorded nothing: the backbone "
                           f"did not call it eagerly.")
    return np.asarray(ops.convert_to_numpy(layer.recorded_scores), dtype="float32")


def _checked_inputs(backbone, inputs):
    """The inputs as tensors, or a ValueError saying what the model takes instead."""
    family = type(backbone).__name__.removesuffix("Backbone")
    if isinstance(backbone, ViTBackbone):
        expected = tuple(backbone.config.image_shape)
        if isinstance(inputs, dict):
            raise ValueError(
                f"This {family} model reads images [batch, height, width, channels] of shape "
                f"{expected}, not text inputs (got a dict with {sorted(inputs)})."
            )
        images = np.asarray(inputs, dtype="float32")
        if images.ndim == 3:
            raise ValueError(
                f"Got one image of shape {images.shape}: pass a batch, e.g. images[None]."
            )
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"This {family} model takes images of shape {expected} (a batch "
                f"[batch, {', '.join(map(str, expected))}]), got an array of shape "
                f"{images.shape}. Resize them (its preprocessor does: "
                f"zoo.preprocessing.ImageClassifierPreprocessor)."
            )
        return ops.convert_to_tensor(images)

    names = list(backbone.input)
    if not isinstance(inputs, dict):
        shape = getattr(inputs, "shape", None)
        raise ValueError(
            f"This {family} model reads text: pass the dict of {names} its preprocessor makes "
            f"(model.preprocessor(['some text'])), got {type(inputs).__name__}"
            f"{f' of shape {tuple(shape)}' if shape is not None else ''}."
        )
    missing = [name for name in names if name not in inputs]
    if missing:
        raise ValueError(
            f"The inputs lack {missing}: this {family} model takes {names} "
            f"(got {sorted(inputs)})."
        )
    config = backbone.config
    tensors = {}
    for name in names:
        value = np.asarray(inputs[name])
        if value.ndim != 2:
            raise ValueError(f"`{name}` must be [batch, length], got shape {value.shape}.")
        if name.endswith("token_ids") and value.size and not (
            0 <= value.min() and value.max() < config.vocabulary_size
        ):
            raise ValueError(
                f"`{name}` holds ids outside the model's vocabulary [0, "
                f"{config.vocabulary_size}) (min {value.min()}, max {value.max()}): the "
                f"tokenizer does not match the model."
            )
        limit = getattr(config, "max_sequence_length", None)
        if limit is not None and value.shape[1] > limit:
            raise ValueError(
                f"`{name}` has {value.shape[1]} positions but the model has {limit}: "
                f"use at most {limit} tokens."
            )
        tensors[name] = ops.convert_to_tensor(value.astype("int32"))
    return tensors


def layer_count(maps, kind):
    """Layers of one kind in `maps`; a ValueError naming the kinds there if it is absent."""
    if kind not in maps:
        raise ValueError(f"This model has no {kind!r} attention; it has {sorted(maps)}.")
    return len(maps[kind])


def check_layer(maps, kind, layer):
    """`layer` as an index in `[0, layers)` (negative counts from the end), or a ValueError."""
    count = layer_count(maps, kind)
    if not -count <= layer < count:
        raise ValueError(
            f"Layer {layer} is out of range: this model has {count} {kind} layers "
            f"(0 to {count - 1}, or -1 for the last)."
        )
    return layer % count


def attention_rollout(layers, residual=0.5):
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each
    input token through all the layers.

    Each layer's map, averaged over heads, is mixed with the identity for the residual
    connection (`residual * I + (1 - residual) * A`, rows renormalized), and the layers are
    multiplied, first layer rightmost.

    Args:
        layers: the maps of one kind, `[batch, heads, tokens, tokens]` per layer, first first.
        residual: the weight of the residual path.

    Returns:
        `[batch, tokens, tokens]`; row `i` sums to 1.
    """
    rollout = None
    for scores in layers:
        a = np.asarray(scores, dtype="float64").mean(axis=1)
        a = residual * np.eye(a.shape[-1]) + (1.0 - residual) * a
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    return rollout.astype("float32")


def patch_grid(backbone):
    """`(rows, columns)` of a ViT's patches."""
    c = backbone.config
    return c.image_shape[0] // c.patch_size, c.image_shape[1] // c.patch_size
