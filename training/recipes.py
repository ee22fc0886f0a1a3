"""Compile defaults per task: AdamW, warmup then decay, clipping, label smoothing, metrics.

A `Recipe` is the handful of numbers a training run needs beyond the model and the data;
`RECIPES` has one per task (from scratch) and `FINE_TUNING` the learning rates for a model that
starts from pretrained weights. `compile(model, recipe, total_steps)` turns it into
`model.compile(...)`:

- AdamW, with weight decay on matrices only: biases, norm scales and offsets (every variable of
  rank below 2) are excluded, as in BERT's and nanoGPT's recipes;
- the learning rate warms up linearly from 0 over `warmup_ratio` of the steps (or
  `warmup_steps`), then decays (`"cosine"` or `"linear"`) to `min_learning_rate_ratio` of its
  peak, stays (`"constant"`), or falls as the inverse square root of the step
  (`"inverse_sqrt"`, Vaswani et al. 2017);
- gradients clipped to a global norm;
- label smoothing in the loss (padding and ignored labels stay ignored);
- metrics per task: accuracy, and perplexity for the language models;
- `jit_compile=True` set explicitly (Keras' "auto" turns XLA off on CPU machines).

Mixed precision is chosen when the model is built (`zoo.build(..., dtype="mixed_bfloat16")`);
`Recipe.mixed_precision` records that choice for `kt train`.

Example:

>>> import zoo
>>> from training import recipes
>>> model = zoo.build("bert", task="classifier", num_classes=2)
>>> recipe = recipes.recipe_for("classifier", learning_rate=3e-4)
>>> recipes.compile(model, recipe, total_steps=1000)
>>> learning_rate = recipes.schedule(recipe, total_steps=1000)
>>> [round(float(learning_rate(step)), 6) for step in (0, 50, 100, 550, 1000)]
[0.0, 0.00015, 0.0003, 0.00015, 0.0]
"""

import dataclasses
import math
from dataclasses import dataclass

import keras
from keras import ops

from training.metrics import Perplexity

DECAYS = ("cosine", "linear", "constant", "inverse_sqrt")


@dataclass(frozen=True)
class Recipe:
    """How to train.

    Args:
        learning_rate: the peak learning rate.
        weight_decay: AdamW's decoupled weight decay, on matrices only.
        warmup_ratio: the fraction of the steps spent warming up from 0.
        decay: "cosine", "linear" or "constant" after the warmup.
        min_learning_rate_ratio: where the decay ends, as a fraction of the peak.
        clipnorm: clip the gradients to this global norm; None for no clipping.
        label_smoothing: mix this much of the uniform distribution into the targets.
        mixed_precision: train in `mixed_bfloat16` (the model is built with that policy).
        warmup_steps: warm up over this many steps instead of `warmup_ratio` of them.
        beta_2, epsilon: Adam's (Keras' defaults 0.999 and 1e-7).
    """

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    decay: str = "cosine"
    min_learning_rate_ratio: float = 0.0
    clipnorm: float | None = 1.0
    label_smoothing: float = 0.0
    mixed_precision: bool = False
    warmup_steps: int | None = None
    beta_2: float = 0.999
    epsilon: float = 1e-7

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.decay not in DECAYS:
            raise ValueError(f"Unknown decay {self.decay!r}. Decays: {list(DECAYS)}.")
        for name in ("warmup_ratio", "min_learning_rate_ratio", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"clipnorm must be > 0 or None, got {self.clipnorm}.")
        if self.warmup_steps is not None and not (
                isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0 or None, got "
                             f"{self.warmup_steps!r}.")
        if not (0.0 < self.beta_2 < 1.0 and self.epsilon > 0):
            raise ValueError(f"beta_2 must be in (0, 1) and epsilon > 0, got {self.beta_2} and "
                             f"{self.epsilon}.")


# From scratch, per task. Small models on small data: a high peak, short warmup.
RECIPES = {
    "classifier": Recipe(learning_rate=1e-3, label_smoothing=0.1),
    "token_classifier": Recipe(learning_rate=1e-3),
    "question_answering": Recipe(learning_rate=1e-3),
    "masked_lm": Recipe(learning_rate=1e-3),
    "causal_lm": Recipe(learning_rate=1e-3),
    "seq2seq_lm": Recipe(learning_rate=1e-3),
}


def transformer_paper(hidden_dim=512, warmup_steps=4000):
    """The recipe of "Attention Is All You Need" (Vaswani et al. 2017, section 5.3-5.4): Adam
    with beta_2 0.98 and epsilon 1e-9 (no weight decay, no clipping), the learning rate
    `hidden_dim ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)` (its peak, at
    `warmup_steps`, is `learning_rate`), label smoothing 0.1. Decode with
    `PAPER_GENERATION`: beam search, 4 beams, length penalty 0.6.

    >>> round(transformer_paper().learning_rate, 7)
    0.0006988
    """
    return Recipe(learning_rate=hidden_dim**-0.5 * warmup_steps**-0.5, weight_decay=0.0,
                  warmup_steps=warmup_steps, decay="inverse_sqrt", clipnorm=None,
                  label_smoothing=0.1, beta_2=0.98, epsilon=1e-9)


# The paper's decoding (section 6.1), as `generate` arguments: `model.generate(x, n,
# **PAPER_GENERATION)`, `kt evaluate --num-beams 4`.
PAPER_GENERATION = {"sampler": "beam", "num_beams": 4, "length_penalty": 0.6}
# Named recipes beside the per-task defaults: name -> a function of the model's width
# (`kt train --recipe transformer_paper`).
NAMED = {"transformer_paper": transformer_paper}
# From pretrained weights: BERT's fine-tuning range.
FINE_TUNING_LEARNING_RATE = 5e-5


def recipe_for(task, pretrained=False, name=None, hidden_dim=None, **changes):
    """The default recipe of `task` (a fine-tuning learning rate when `pretrained`), or the
    recipe `name` of `NAMED` for a model of width `hidden_dim`, with `changes` replacing
    fields (None values are ignored)."""
    if task not in RECIPES:
        raise ValueError(f"Unknown task {task!r}. Tasks: {sorted(RECIPES)}.")
    recipe = RECIPES[task]
    if name is not None:
        if name not in NAMED:
            raise ValueError(f"Unknown recipe {name!r}. Recipes: {sorted(NAMED)}.")
        recipe = NAMED[name](hidden_dim=hidden_dim) if hidden_dim else NAMED[name]()
    elif pretrained:
        recipe = dataclasses.replace(recipe, learning_rate=FINE_TUNING_LEARNING_RATE)
    unknown = set(changes) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"Unknown recipe fields {sorted(unknown)}. Fields: "
                         f"{[f.name for f in dataclasses.fields(Recipe)]}.")
    return dataclasses.replace(recipe, **{k: v for k, v in changes.items() if v is not None})


@keras.saving.register_keras_serializable(package="keras_transformers")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then `decay` to `peak * floor`
    at `total_steps` (and stays there); `"inverse_sqrt"`: `peak * sqrt(warmup_steps / step)`
    after the warmup, whatever `total_steps` and `floor`."""

    def __init__(self, peak, total_steps, warmup_steps=0, decay="cosine", floor=0.0):
        if decay not in DECAYS:
            raise ValueError(f"Unknown decay {decay!r}. Decays: {list(DECAYS)}.")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
        self.peak, self.total_steps, self.warmup_steps = peak, total_steps, warmup_steps
        self.decay, self.floor = decay, floor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        span = ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "linear":
            shape = 1.0 - progress
        elif self.decay == "inverse_sqrt":
            return ops.where(step < self.warmup_steps, self.peak * step / warmup,
                             self.peak * ops.sqrt(warmup / ops.maximum(step, 1.0)))
        else:
            shape = ops.ones_like(progress)
        decayed = self.peak * (self.floor + (1.0 - self.floor) * shape)
        warming = self.peak * step / warmup
        return ops.where(step < self.warmup_steps, warming, decayed)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay, "floor": self.floor}


@keras.saving.register_keras_serializable(package="keras_transformers")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels, with label smoothing:
    `(1 - s) * -log p[label] + s * mean over classes of -log p`. Labels equal to
    `ignore_class` (and sample weight 0) do not count."""

    def __init__(self, label_smoothing=0.0, ignore_class=None,
                 reduction="mean_with_sample_weight", name="smoothed_crossentropy", **kwargs):
        super().__init__(reduction=reduction, name=name, **kwargs)
        self.label_smoothing, self.ignore_class = label_smoothing, ignore_class

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.cast(y_true, "int32")
        keep = None
        if self.ignore_class is not None:
            keep = ops.not_equal(labels, self.ignore_class)
            labels = ops.where(keep, labels, 0)
        picked = ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)[..., 0]
        loss = -(1.0 - self.label_smoothing) * picked
        loss = loss - self.label_smoothing * ops.mean(log_probs, axis=-1)
        if keep is not None:
            loss = ops.where(keep, loss, 0.0)
        return loss

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "ignore_class": self.ignore_class}


def schedule(recipe, total_steps):
    """The recipe's learning rate per step: warmup, then decay over `total_steps`."""
    warmup_steps = recipe.warmup_steps
    if warmup_steps is None:
        warmup_steps = int(round(recipe.warmup_ratio * total_steps))
    return WarmupDecay(recipe.learning_rate, total_steps, warmup_steps=warmup_steps,
                       decay=recipe.decay, floor=recipe.min_learning_rate_ratio)


def optimizer(model, recipe, total_steps):
    """AdamW with the recipe's schedule and clipping; weight decay skips rank < 2 variables."""
    adamw = keras.optimizers.AdamW(schedule(recipe, total_steps),
                                   weight_decay=recipe.weight_decay, beta_2=recipe.beta_2,
                                   epsilon=recipe.epsilon, global_clipnorm=recipe.clipnorm)
    adamw.exclude_from_weight_decay(
        var_list=[v for v in model.trainable_variables if len(v.shape) < 2]
    )
    return adamw


def task_name(model):
    """The zoo task name of a task model (`"classifier"`, `"causal_lm"`, ...)."""
    task = getattr(model, "task_name", None)
    if task is None:
        raise ValueError(f"{type(model).__name__} is not a zoo task model: build one with "
                         "zoo.build(name, task=...).")
    return task


def loss(model, recipe):
    """The task's loss with the recipe's label smoothing."""
    task = task_name(model)
    ignore = model.IGNORE_LABEL if task == "token_classifier" else None
    return SmoothedSparseCrossentropy(recipe.label_smoothing, ignore_class=ignore)


def metrics(model):
    """Metrics per task, weighted by the sample weights (padding does not count)."""
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if task_name(model) in ("masked_lm", "causal_lm", "seq2seq_lm"):
        metrics.append(Perplexity(name="perplexity"))
    return metrics


def compile(model, recipe, total_steps, **kwargs):
    """`model.compile` with the recipe: AdamW + schedule + clipping, the task's loss with
    label smoothing, its metrics, `jit_compile=True`. `kwargs` go to `compile` too."""
    kwargs.setdefault("jit_compile", True)
    keras.Model.compile(
        model, optimizer=optimizer(model, recipe, total_steps), loss=loss(model, recipe),
        weighted_metrics=metrics(model), **kwargs,
    )
