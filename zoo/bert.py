"""BERT (Devlin et al., 2019): a post-norm transformer encoder with a pooler.

The architecture of Hugging Face's `BertModel`: token + position + segment embeddings,
LayerNorm (epsilon 1e-12), post-norm encoder blocks with exact GELU, and a tanh pooler on
`[CLS]`. Presets reproduce the published sizes; `base` has 109,482,240 parameters.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("bert", task="masked_lm")
>>> inputs = {"token_ids": np.array([[2, 5, 4, 3]]), "segment_ids": np.zeros((1, 4), "int32"),
...           "padding_mask": np.ones((1, 4), bool), "mask_positions": np.array([[2]])}
>>> tuple(model.predict(inputs, verbose=0).shape)       # logits at the masked position
(1, 1, 1024)
"""

from dataclasses import dataclass

import keras
from keras import ops

from keras_transformers import Dropout, EncoderBlock, TokenAndPositionEmbedding
from keras_transformers.embeddings import lookup
from keras_transformers.initializers import truncated_normal
from zoo.backbone import Backbone
from zoo.config import Family, check_heads_divide, check_positive
from zoo.heads import BiasAdd, Classifier, QuestionAnswering, TokenClassifier
from zoo.task import Task

PACKAGE = "zoo"


@dataclass(frozen=True)
class BertConfig:
    vocabulary_size: int = 30522
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    intermediate_dim: int = 3072
    max_sequence_length: int = 512
    num_segments: int = 2
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-12
    activation: str = "gelu"
    use_pooler: bool = True

    def __post_init__(self):
        check_positive(self, "vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim", "max_sequence_length", "num_segments")
        check_heads_divide(self)


PRESETS = {
    "tiny": BertConfig(vocabulary_size=1024, num_layers=2, num_heads=2, hidden_dim=32,
                       intermediate_dim=64, max_sequence_length=128),
    "mini": BertConfig(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "base": BertConfig(),
    "large": BertConfig(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class BertBackbone(Backbone):
    """Inputs `token_ids`, `segment_ids`, `padding_mask` (`[batch, length]`); outputs
    `sequence_output` `[batch, length, hidden_dim]` and `pooled_output` `[batch, hidden_dim]`
    (when `use_pooler`).

    Layers by name: `token_embedding` (a `TokenAndPositionEmbedding`), `segment_embedding`,
    `embeddings_norm`, `transformer_layer_{i}`, `pooler`.
    """

    family_name = "bert"
    config_class = BertConfig

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.token_embedding = TokenAndPositionEmbedding(
            c.vocabulary_size, c.max_sequence_length, c.hidden_dim, position="learned",
            embeddings_initializer=truncated_normal(), dtype=dtype, name="token_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            c.num_segments, c.hidden_dim, embeddings_initializer=truncated_normal(), dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_norm = keras.layers.LayerNormalization(
            epsilon=c.layer_norm_epsilon, dtype=dtype, name="embeddings_norm"
        )
        self.embeddings_dropout = Dropout(c.dropout, dtype=dtype)
        self.transformer_layers = [
            EncoderBlock(
                c.num_heads, c.intermediate_dim, activation=c.activation, norm_first=False,
                epsilon=c.layer_norm_epsilon, dropout=c.dropout, attention_dropout=c.dropout,
                kernel_initializer=truncated_normal(), dtype=dtype, name=f"transformer_layer_{i}",
            )
            for i in range(c.num_layers)
        ]
        self.pooler = keras.layers.Dense(
            c.hidden_dim, activation="tanh", kernel_initializer=truncated_normal(), dtype=dtype,
            name="pooler",
        ) if c.use_pooler else None

        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        segments = lookup(self.segment_embedding, segment_ids, c.num_segments)
        x = self.token_embedding(token_ids) + segments
        x = self.embeddings_dropout(self.embeddings_norm(x))
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=padding_mask)
        outputs = {"sequence_output": x}
        if self.pooler is not None:
            outputs["pooled_output"] = self.pooler(x[:, 0])
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                    "padding_mask": padding_mask},
            outputs=outputs, config=config, dtype=dtype, **kwargs,
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class BertMaskedLM(Task):
    """Masked language modelling: predict the tokens at `mask_positions`.

    BERT's head: dense + GELU + LayerNorm, then logits through the (tied) token table plus a
    bias. Inputs are the backbone's plus `mask_positions` `[batch, num_masks]`; outputs
    logits `[batch, num_masks, vocabulary_size]`. Train with `y` the original tokens at those
    positions and `sample_weight` 0 for unused mask slots.
    """

    task_name = "masked_lm"

    def __init__(self, backbone, **kwargs):
        c = backbone.config
        dtype = backbone.build_dtype
        inputs = {**backbone.input,
                  "mask_positions": keras.Input((None,), dtype="int32", name="mask_positions")}
        sequence = backbone({k: inputs[k] for k in backbone.input})["sequence_output"]
        x = ops.take_along_axis(sequence, inputs["mask_positions"][:, :, None], axis=1)
        x = keras.layers.Dense(c.hidden_dim, activation=keras.activations.gelu,
                               kernel_initializer=truncated_normal(), dtype=dtype,
                               name="mlm_dense")(x)
        x = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, dtype=dtype,
                                            name="mlm_norm")(x)
        logits = backbone.token_embedding(x, reverse=True)
        logits = BiasAdd(dtype=dtype, name="mlm_bias")(logits)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)


def classifier(backbone, num_classes, pooling="pooled", dropout=0.1):
    if not backbone.config.use_pooler and pooling == "pooled":
        pooling = "first_token"
    return Classifier(backbone, num_classes, pooling=pooling, dropout=dropout)


TASKS = {
    "classifier": classifier,
    "token_classifier": TokenClassifier,
    "masked_lm": BertMaskedLM,
    "question_answering": QuestionAnswering,
}
# As in Hugging Face's BertForMaskedLM, BertForTokenClassification and
# BertForQuestionAnswering: no pooler.
TASK_DEFAULTS = {task: {"use_pooler": False}
                 for task in ("masked_lm", "token_classifier", "question_answering")}
FAMILY = Family("bert", BertConfig, PRESETS, BertBackbone, TASKS, TASK_DEFAULTS)
