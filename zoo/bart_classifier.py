"""BART's sentence classifier: Hugging Face's `BartForSequenceClassification`.

Both stacks of a `BartBackbone` read the text (the decoder shifted right), and the decoder's
state at the last `</s>` of each row goes through `BartClassificationHead`.

Built by `zoo.build("bart", task="classifier", num_classes=...)` (example on the class).
"""

import keras
from keras import ops

from keras_transformers import Dropout
from keras_transformers.initializers import truncated_normal
from zoo.task import Task

PACKAGE = "zoo"


def shift_right(token_ids, start_id):
    """`[start, ids[:-1]]` per row: the decoder's input when it reads its own source."""
    start = ops.full_like(token_ids[:, :1], start_id)
    return ops.concatenate([start, token_ids[:, :-1]], axis=1)


def last_token_of(token_ids, token_id, padding_mask):
    """Position of the last `token_id` in each row; the last real token in a row without one.

    >>> import keras, numpy as np
    >>> positions = last_token_of(np.array([[0, 5, 2, 2, 1], [0, 7, 1, 1, 1]]), 2,
    ...                           np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]))
    >>> keras.ops.convert_to_numpy(positions).tolist()
    [3, 1]
    """
    positions = ops.cumsum(ops.ones_like(token_ids, dtype="int32"), axis=1)  # 1, 2, ...
    found = ops.max(ops.where(ops.equal(token_ids, token_id), positions, 0), axis=1) - 1
    last_real = ops.cast(ops.sum(ops.cast(padding_mask, "int32"), axis=1), "int32") - 1
    return ops.where(found >= 0, found, ops.maximum(last_real, 0))


@keras.saving.register_keras_serializable(package=PACKAGE)
class BartClassifier(Task):
    """Sequence classification as Hugging Face's `BartForSequenceClassification`.

    Both stacks read the text: the encoder `token_ids`, the decoder the same ids shifted right
    behind `decoder_start_token_id` (with no decoder padding mask, as the reference). The
    decoder's state at the last `</s>` (`end_token_id`) of each row goes through
    `BartClassificationHead`: dropout, `classification_dense` (hidden -> hidden) and tanh,
    dropout, `logits`. A row without `</s>` (which the reference refuses) is read at its last
    real token.

    Args:
        backbone: a `BartBackbone`.
        num_classes: int. Number of labels.
        dropout: float. Before each of the head's two dense layers (Hugging Face's
            `classifier_dropout`, 0.0 by default).

    Inputs `token_ids` and `padding_mask` (`<s> text </s>`, as the preprocessor packs them);
    outputs logits `[batch, num_classes]`.

    >>> import numpy as np, zoo
    >>> model = zoo.build("bart", task="classifier", num_classes=3)
    >>> tuple(model.predict({"token_ids": np.array([[0, 9, 8, 2, 1]]),
    ...                      "padding_mask": np.array([[1, 1, 1, 1, 0]])}, verbose=0).shape)
    (1, 3)
    """

    task_name = "classifier"

    def __init__(self, backbone, num_classes, dropout=0.0, **kwargs):
        c = backbone.config
        dtype = backbone.build_dtype
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        outputs = backbone(read_twice(token_ids, padding_mask, c.decoder_start_token_id))
        hidden = outputs["decoder_sequence_output"]  # [batch, length, hidden_dim]
        last = last_token_of(token_ids, c.end_token_id, padding_mask)
        pooled = ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
        logits = BartClassificationHead(c.hidden_dim, num_classes, dropout, dtype=dtype,
                                        name="classification_head")(pooled)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=logits, backbone=backbone, **kwargs)
        self.num_classes, self.dropout = num_classes, dropout

    def backbone_inputs(self, inputs):
        """The backbone's inputs for the classifier's `{token_ids, padding_mask}` (what
        `zoo.attention_maps` feeds the backbone)."""
        return read_twice(inputs["token_ids"], inputs["padding_mask"],
                          self.backbone.config.decoder_start_token_id)

    def task_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout}


def read_twice(token_ids, padding_mask, decoder_start_token_id):
    """The classifier's text for both stacks: the encoder's as it is, the decoder's shifted
    right behind `decoder_start_token_id`, with no decoder padding mask (as the reference)."""
    return {"encoder_token_ids": token_ids, "encoder_padding_mask": padding_mask,
            "decoder_token_ids": shift_right(token_ids, decoder_start_token_id),
            "decoder_padding_mask": ops.ones_like(padding_mask)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BartClassificationHead(keras.layers.Layer):
    """`logits(dropout(tanh(dense(dropout(x)))))`: BART's sentence classification head.

    Args:
        inner_dim: int. Width of `dense` (the model's `hidden_dim`).
        num_classes: int. Outputs of `out_proj`.
        dropout: float. Before each dense layer.

    Sublayers `dense` and `out_proj`, as in Hugging Face's `BartClassificationHead`.
    """

    def __init__(self, inner_dim, num_classes, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int (the number of labels), "
                             f"got {num_classes!r}.")
        self.inner_dim, self.num_classes, self.dropout = inner_dim, num_classes, dropout
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(inner_dim, activation="tanh",
                                        kernel_initializer=truncated_normal(),
                                        dtype=self.dtype_policy, name="dense")
        self.out_proj = keras.layers.Dense(num_classes, kernel_initializer=truncated_normal(),
                                           dtype=self.dtype_policy, name="out_proj")

    def build(self, inputs_shape):
        self.dense.build(inputs_shape)
        self.out_proj.build((*inputs_shape[:-1], self.inner_dim))

    def call(self, inputs, training=None):
        x = self.dense(self.dropout_layer(inputs, training=training))
        return self.out_proj(self.dropout_layer(x, training=training))

    def get_config(self):
        return {**super().get_config(), "inner_dim": self.inner_dim,
                "num_classes": self.num_classes, "dropout": self.dropout}
