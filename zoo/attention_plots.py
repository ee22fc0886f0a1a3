"""Pictures of attention maps (`zoo.attention_maps`): `matplotlib.figure.Figure`s, made
without pyplot so they work on machines without a display.

`plot_heads` draws one panel per head, `plot_attention` the matrix with a colorbar and the mean
attention each position receives as bars, and `plot_rollout` (ViT) an attention rollout over
the image. matplotlib is imported when a figure is made, not with this module.

Example:

>>> import numpy as np
>>> figure = plot_attention(np.full((5, 5), 0.2), labels=list("abcde"))
>>> len(figure.axes)                                     # matrix, its colorbar, the bars
3
>>> [round(side * DPI) for side in heads_figure_inches(6)]     # 2 rows of at most 4 panels
[1040, 530]
"""

import math

import numpy as np

PANEL_INCHES = 2.4  # side of one heatmap panel
DPI = 100
MAX_LABELS = 40  # label every token up to this many; beyond, every k-th


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
