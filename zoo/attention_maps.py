"""Attention maps: the attention weights of every layer of any zoo model, and their pictures.

`attention_maps(model, inputs)` runs a model's backbone layer by layer, asking each block for
its attention probabilities (`return_attention_scores=True`, the same `MultiHeadAttention`
that computes the outputs), and returns them by kind, one array per layer, each
`[batch, heads, queries, keys]`:

| family | kinds |
|---|---|
| BERT | `"encoder"` (self attention over the tokens) |
| GPT (GPT-2, Llama) | `"decoder"` (causal self attention) |
| T5 | `"encoder"`, `"decoder"` (causal self attention), `"cross"` (decoder over encoder) |
| ViT | `"encoder"` over the class token (first) and the patches, row by row |

Every row is a probability distribution over the keys: padded keys get weight 0, and a causal
map is lower-triangular. The plotting helpers return `matplotlib.figure.Figure`s (no pyplot,
so they work on machines without a display): `plot_heads` (one panel per head),
`plot_attention` (the matrix with a colorbar, and the mean attention each position receives as
bars) and `plot_rollout` (ViT: attention rollout over the image).

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
>>> figure = plot_attention(maps["encoder"][1][0].mean(0), labels=list("abcde"))
>>> len(figure.axes)                                     # matrix, its colorbar, the bars
3
"""

import math

import numpy as np
from keras import ops

from zoo.bert import BertBackbone
from zoo.gpt import GPTBackbone
from zoo.t5 import T5Backbone
from zoo.vit import ViTBackbone

KINDS = ("encoder", "decoder", "cross")
PANEL_INCHES = 2.4  # side of one heatmap panel
DPI = 100
MAX_LABELS = 40  # label every token up to this many; beyond, every k-th


def attention_maps(model, inputs):
    """The attention probabilities of every layer of a zoo model, by kind.

    Args:
        model: a zoo task (`zoo.build(name, task=...)`, `training.runs.load_model(...)`) or
            a backbone.
        inputs: what the model takes: for text models the dict its preprocessor makes
            (`token_ids`, `padding_mask`, BERT's `segment_ids`; T5's `encoder_*` and
            `decoder_*`), extra entries (`mask_positions`) ignored; for ViT the images
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
    """`(maps, outputs)`: the maps of `attention_maps`, and the backbone's sequence outputs
    computed by the same walk (`sequence_output`; T5's `encoder_sequence_output` and
    `decoder_sequence_output`), which equal the backbone's own: the proof that the walk
    mirrors the model."""
    backbone = getattr(model, "backbone", model)
    walk = next((w for cls, w in WALKS.items() if isinstance(backbone, cls)), None)
    if walk is None:
        raise ValueError(
            f"attention_maps takes a zoo model (bert, gpt, t5, vit), got a "
            f"{type(model).__name__}."
        )
    maps, outputs = walk(backbone, _checked_inputs(backbone, inputs))
    as_numpy = {kind: [_numpy(m) for m in layers] for kind, layers in maps.items()}
    return as_numpy, outputs


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float32")


def _bert(backbone, x):
    h = backbone.token_embedding(x["token_ids"]) + backbone.segment_embedding(x["segment_ids"])
    h = backbone.embeddings_norm(h)
    maps = []
    for layer in backbone.transformer_layers:
        h, scores = layer(h, padding_mask=x["padding_mask"], return_attention_scores=True)
        maps.append(scores)
    return {"encoder": maps}, {"sequence_output": h}


def _gpt(backbone, x):
    h = backbone.token_embedding(x["token_ids"])
    maps = []
    for layer in backbone.transformer_layers:
        h, (scores, _) = layer(h, padding_mask=x["padding_mask"], return_attention_scores=True)
        maps.append(scores)
    return {"decoder": maps}, {"sequence_output": backbone.final_norm(h)}


def _t5(backbone, x):
    h = backbone.token_embedding(x["encoder_token_ids"])
    bias = backbone.encoder_relative_position_bias(h)
    encoder = []
    for layer in backbone.encoder_layers:
        h, scores = layer(h, padding_mask=x["encoder_padding_mask"], attention_bias=bias,
                          return_attention_scores=True)
        encoder.append(scores)
    encoded = backbone.encoder_final_norm(h)

    h = backbone.token_embedding(x["decoder_token_ids"])
    bias = backbone.decoder_relative_position_bias(h)
    decoder, cross = [], []
    for layer in backbone.decoder_layers:
        h, (self_scores, cross_scores) = layer(
            h, encoded, padding_mask=x["decoder_padding_mask"],
            encoder_padding_mask=x["encoder_padding_mask"], attention_bias=bias,
            return_attention_scores=True,
        )
        decoder.append(self_scores)
        cross.append(cross_scores)
    outputs = {"encoder_sequence_output": encoded,
               "decoder_sequence_output": backbone.decoder_final_norm(h)}
    return {"encoder": encoder, "decoder": decoder, "cross": cross}, outputs


def _vit(backbone, images):
    h = backbone.patch_embedding(images)
    maps = []
    for layer in backbone.transformer_layers:
        h, scores = layer(h, return_attention_scores=True)
        maps.append(scores)
    return {"encoder": maps}, {"sequence_output": backbone.final_norm(h)}


WALKS = {BertBackbone: _bert, GPTBackbone: _gpt, T5Backbone: _t5, ViTBackbone: _vit}


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


def grid_shape(num_heads):
    """`(rows, columns)` of `plot_heads`' panels: at most 4 a row."""
    columns = min(num_heads, 4)
    return math.ceil(num_heads / columns), columns


def heads_figure_inches(num_heads):
    """`(width, height)` of `plot_heads`' figure, in inches (pixels: times `DPI`)."""
    rows, columns = grid_shape(num_heads)
    return columns * PANEL_INCHES + 0.8, rows * PANEL_INCHES + 0.5


def plot_heads(scores, query_labels=None, key_labels=None, title=None):
    """One heatmap per head, on one shared color scale.

    Args:
        scores: `[heads, queries, keys]`, one example of one layer.
        query_labels, key_labels: the tokens, for the axes (None: positions).
        title: above the grid.

    Returns:
        A `matplotlib.figure.Figure` of `heads_figure_inches(heads)`, with one axes per head
        and a colorbar.
    """
    from matplotlib.figure import Figure

    scores = np.asarray(scores, dtype="float32")
    if scores.ndim != 3:
        raise ValueError(f"scores must be [heads, queries, keys], got shape {scores.shape}.")
    heads = scores.shape[0]
    rows, columns = grid_shape(heads)
    figure = Figure(figsize=heads_figure_inches(heads), dpi=DPI, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    vmax = float(scores.max()) or 1.0
    for head, axes in enumerate(grid.flat):
        if head >= heads:
            axes.set_axis_off()
            continue
        image = axes.imshow(scores[head], cmap="viridis", vmin=0.0, vmax=vmax)
        axes.set_title(f"head {head}", fontsize=8)
        _label_axes(axes, query_labels, key_labels, scores.shape[1:], fontsize=5)
    figure.colorbar(image, ax=grid, shrink=0.8).ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def attention_figure_inches():
    """`(width, height)` of `plot_attention`'s figure, in inches."""
    return 2 * PANEL_INCHES * 1.6 + 0.8, PANEL_INCHES * 1.6 + 0.5


def plot_attention(matrix, labels=None, key_labels=None, title=None):
    """The two panels of the lesson this project grew from: the attention matrix with a
    colorbar, and the mean attention each position receives (the matrix's column means) as
    bars.

    Args:
        matrix: `[queries, keys]`, e.g. one layer's map averaged over heads.
        labels: the query tokens; also the keys' unless `key_labels` is given.
        key_labels: the key tokens (cross attention).
        title: above the panels.

    Returns:
        A `matplotlib.figure.Figure` of `attention_figure_inches()` with three axes: the
        matrix, its colorbar and the bars.
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype="float32")
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be [queries, keys], got shape {matrix.shape}.")
    key_labels = labels if key_labels is None else key_labels
    figure = Figure(figsize=attention_figure_inches(), dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2)
    image = left.imshow(matrix, cmap="viridis", vmin=0.0)
    left.set_title("attention (query row, key column)", fontsize=8)
    _label_axes(left, labels, key_labels, matrix.shape, fontsize=6)
    figure.colorbar(image, ax=left, shrink=0.8).ax.tick_params(labelsize=6)

    received = matrix.mean(axis=0)
    right.bar(np.arange(len(received)), received, color="tab:blue")
    right.set_title("mean attention received", fontsize=8)
    right.set_xlim(-0.5, len(received) - 0.5)
    _label_axis(right.set_xticks, key_labels, len(received), fontsize=6, rotation=90)
    right.tick_params(axis="y", labelsize=6)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def rollout_figure_inches():
    """`(width, height)` of `plot_rollout`'s figure, in inches."""
    return 2 * PANEL_INCHES * 1.4 + 0.3, PANEL_INCHES * 1.4 + 0.5


def plot_rollout(image, weights, title=None):
    """An image beside itself under a heatmap of `weights` (e.g. the class token's rollout
    over the patches), upsampled to the image's size.

    Args:
        image: `[height, width, channels]`; any range (scaled to [0, 1] for display).
        weights: `[patch_rows, patch_columns]`.
        title: above the panels.

    Returns:
        A `matplotlib.figure.Figure` of `rollout_figure_inches()` with two axes.
    """
    from matplotlib.figure import Figure

    image = np.asarray(image, dtype="float32")
    weights = np.asarray(weights, dtype="float32")
    if image.ndim != 3 or weights.ndim != 2:
        raise ValueError(
            f"image must be [height, width, channels] and weights [rows, columns], got "
            f"{image.shape} and {weights.shape}."
        )
    shown = (image - image.min()) / max(float(image.max() - image.min()), 1e-12)
    if shown.shape[-1] == 1:
        shown = np.repeat(shown, 3, axis=-1)
    height, width = image.shape[:2]
    figure = Figure(figsize=rollout_figure_inches(), dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(shown)
    left.set_title("image", fontsize=8)
    right.imshow(shown)
    right.imshow(weights, cmap="inferno", alpha=0.6, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                 interpolation="bilinear")
    right.set_title("attention rollout", fontsize=8)
    for axes in (left, right):
        axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def _label_axes(axes, query_labels, key_labels, shape, fontsize):
    _label_axis(axes.set_yticks, query_labels, shape[0], fontsize)
    _label_axis(axes.set_xticks, key_labels, shape[1], fontsize, rotation=90)


def _label_axis(set_ticks, labels, count, fontsize, rotation=0):
    """Tick every token (every k-th past `MAX_LABELS`), named by `labels` when given."""
    step = max(1, math.ceil(count / MAX_LABELS))
    positions = list(range(0, count, step))
    names = [str(labels[i]) if labels is not None else str(i) for i in positions]
    set_ticks(positions, names, fontsize=fontsize, rotation=rotation)
