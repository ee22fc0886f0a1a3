"""Task heads shared across families: sequence/image classification and token classification.

Example:

>>> import zoo
>>> model = zoo.build("bert", task="classifier", num_classes=3)
>>> type(model).__name__, model.backbone.config.num_layers
('Classifier', 2)
"""

import keras
from keras import ops

from keras_transformers import Dropout
from keras_transformers.initializers import truncated_normal
from zoo.config import IGNORE_LABEL
from zoo.task import Task

PACKAGE = "zoo"
POOLINGS = ("pooled", "first_token", "last_token", "mean")


def pool(outputs, inputs, pooling):
    """One vector per example from a backbone's outputs.

    `pooled`: the backbone's pooler (BERT, ViT); `first_token`: `[CLS]` or the class token;
    `last_token`: the last real token, found from `padding_mask` (GPT); `mean`: the mean over
    real tokens (sentence embeddings).
    """
    sequence = outputs["sequence_output"]
    if pooling == "pooled":
        if "pooled_output" not in outputs:
            raise ValueError(
                "pooling='pooled' needs a backbone with a pooler (use_pooler=True); use "
                "'first_token' or 'mean' instead."
            )
        return outputs["pooled_output"]
    if pooling == "first_token":
        return sequence[:, 0]
    if not isinstance(inputs, dict) or "padding_mask" not in inputs:  # images: all real
        if pooling == "mean":
            return ops.mean(sequence, axis=1)
        raise ValueError(f"pooling={pooling!r} needs a `padding_mask` input; use 'mean'.")
    mask = ops.cast(inputs["padding_mask"], sequence.dtype)
    if pooling == "last_token":
        last = ops.cast(ops.sum(mask, axis=1), "int32") - 1
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
    if pooling == "mean":
        total = ops.sum(sequence * mask[:, :, None], axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    raise ValueError(f"Unknown pooling {pooling!r}. Choose one of {POOLINGS}.")


def classification_logits(features, num_classes, dropout, dtype):
    """Dropout, then a dense layer named `logits`: the output of every classification head."""
    features = Dropout(dropout, dtype=dtype)(features)
    return keras.layers.Dense(
        num_classes, kernel_initializer=truncated_normal(),
        dtype=dtype, name="logits",
    )(features)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Classifier(Task):
    """Sequence or image classification: pool the backbone's outputs, dropout, a dense layer.

    Args:
        backbone: any zoo backbone.
        num_classes: number of labels.
        pooling: see `pool`; BERT and ViT use `"pooled"` (their pooler) or `"first_token"`,
            GPT `"last_token"`.
        dropout: before the output layer.

    Outputs logits `[batch, num_classes]`; `compile()` uses sparse categorical cross-entropy.
    """

    task_name = "classifier"

    def __init__(self, backbone, num_classes, pooling="first_token", dropout=0.1, **kwargs):
        inputs = backbone.input
        pooled = pool(backbone(inputs), inputs, pooling)
        logits = classification_logits(pooled, num_classes, dropout, backbone.build_dtype)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)
        self.num_classes, self.pooling, self.dropout = num_classes, pooling, dropout

    def task_config(self):
        return {"num_classes": self.num_classes, "pooling": self.pooling, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenClassifier(Task):
    """A label per token (NER): dropout and a dense layer on every position.

    Labels of `-100` (word pieces after the first, padding) are ignored by the default loss.

    Outputs logits `[batch, length, num_classes]`.
    """

    task_name = "token_classifier"
    IGNORE_LABEL = IGNORE_LABEL

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = classification_logits(sequence, num_classes, dropout, backbone.build_dtype)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)
        self.num_classes, self.dropout = num_classes, dropout

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=self.IGNORE_LABEL, reduction="mean_with_sample_weight"
        )

    def task_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BiasAdd(keras.layers.Layer):
    """A learned bias on the last axis (the output bias of a tied LM head)."""

    def build(self, inputs_shape):
        self.bias = self.add_weight(name="bias", shape=(inputs_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)
