"""BERT checkpoints in Hugging Face's layout: `BertModel` and its task heads.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see `zoo/checkpoints/__init__.py`).
"""

import numpy as np

from zoo.checkpoints.tensors import (
    CheckpointError,
    Tensor,
    architecture,
    checkpoint_task,
    dense_layer,
    encoder_layer_tensors,
    label_maps,
    norm,
    num_labels,
    same,
    vector,
)

FAMILY_NAME = "bert"
BASE_SIZE = "base"
PREFIX = "bert."  # the backbone's tensors inside a task checkpoint
# architecture -> (zoo task, has a pooler)
ARCHITECTURES = {
    "BertModel": (None, True),
    "BertForSequenceClassification": ("classifier", True),
    "BertForTokenClassification": ("token_classifier", False),
    "BertForMaskedLM": ("masked_lm", False),
    "BertForQuestionAnswering": ("question_answering", False),
}
TASK_ARCHITECTURES = {task: name for name, (task, _) in ARCHITECTURES.items()}


def from_hf_config(hf):
    _, (task, has_pooler) = architecture(hf, ARCHITECTURES, "BERT", "BertModel")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"hidden_act {hf['hidden_act']!r} is not supported; BERT uses gelu.")
    fields = {
        "vocabulary_size": hf["vocab_size"],
        "num_layers": hf["num_hidden_layers"],
        "num_heads": hf["num_attention_heads"],
        "hidden_dim": hf["hidden_size"],
        "intermediate_dim": hf["intermediate_size"],
        "max_sequence_length": hf["max_position_embeddings"],
        "num_segments": hf["type_vocab_size"],
        "dropout": hf.get("hidden_dropout_prob", 0.1),
        "layer_norm_epsilon": hf.get("layer_norm_eps", 1e-12),
    }
    # A checkpoint's pooler is kept (BertConfig's default) unless the task builds none (its
    # TASK_DEFAULTS): `BertForQuestionAnswering.from_pretrained(<a BertModel>)` drops it too.
    if not has_pooler:
        fields["use_pooler"] = False
    task_arguments = {}
    if task in ("classifier", "token_classifier"):
        task_arguments["num_classes"] = num_labels(hf)
    return fields, task, task_arguments


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    task = checkpoint_task(model, TASK_ARCHITECTURES, "BERT")
    config = {
        "architectures": [TASK_ARCHITECTURES[task]],
        "model_type": "bert",
        "vocab_size": c.vocabulary_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "hidden_size": c.hidden_dim,
        "intermediate_size": c.intermediate_dim,
        "max_position_embeddings": c.max_sequence_length,
        "type_vocab_size": c.num_segments,
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout,
        "layer_norm_eps": c.layer_norm_epsilon,
        "hidden_act": "gelu",
        "pad_token_id": 0,
    }
    if task in ("classifier", "token_classifier"):
        config.update(label_maps(model.num_classes))
    return config


def backbone_tensors(backbone, prefix=""):
    embedding = backbone.token_embedding
    specs = [
        same(f"{prefix}embeddings.word_embeddings.weight", embedding.token_embedding.embeddings),
        same(f"{prefix}embeddings.position_embeddings.weight",
             embedding.position_embedding.embeddings),
        same(f"{prefix}embeddings.token_type_embeddings.weight",
             backbone.segment_embedding.embeddings),
        *norm(f"{prefix}embeddings.LayerNorm", backbone.embeddings_norm),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        specs += encoder_layer_tensors(f"{prefix}encoder.layer.{i}", block, "self",
                                       "attention.output.LayerNorm", "output.LayerNorm")
    if backbone.pooler is not None:
        specs += dense_layer(f"{prefix}pooler.dense", backbone.pooler)
    else:  # a checkpoint's pooler that this model leaves out (a new head): read, dropped
        hidden = backbone.config.hidden_dim
        specs += [ignored(f"{prefix}pooler.dense.weight", (hidden, hidden)),
                  ignored(f"{prefix}pooler.dense.bias", (hidden,))]
    return specs


def ignored(name, shape):
    """A tensor read (its shape checked) and dropped, never written."""
    return Tensor(name, [], lambda a: [], lambda arrays: np.zeros(shape, "float32"),
                  optional=True, alias=True)


def head_tensors(model):
    task = checkpoint_task(model, TASK_ARCHITECTURES, "BERT")
    if task in ("classifier", "token_classifier"):
        return dense_layer("classifier", model.get_layer("logits"))
    if task == "question_answering":  # `[2, hidden]`: start and end logits
        return dense_layer("qa_outputs", model.get_layer("qa_outputs"))
    if task == "masked_lm":
        return [
            *dense_layer("cls.predictions.transform.dense", model.get_layer("mlm_dense")),
            *norm("cls.predictions.transform.LayerNorm", model.get_layer("mlm_norm")),
            vector("cls.predictions.bias", model.get_layer("mlm_bias").bias),
        ]
    raise CheckpointError(f"No BERT checkpoint layout for task {task!r}.")
