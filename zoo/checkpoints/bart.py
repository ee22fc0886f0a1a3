"""BART checkpoints in Hugging Face's layout: `BartModel`, `BartForConditionalGeneration` and
`BartForSequenceClassification`.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see
`zoo/checkpoints/__init__.py`).

`shared.weight` is the one token table of both stacks and of the tied head; the copies some
checkpoints also hold (`encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`,
`lm_head.weight`) are read as aliases and must equal it. Each stack's `embed_positions.weight`
has `max_position_embeddings + 2` rows (BART's offset). `final_logits_bias` (`[1,
vocab_size]`, a buffer the reference may leave out) fills the zoo's non-trainable bias of the
same name. Task checkpoints hold the backbone under `model.`.

Configs the zoo's BART cannot express are refused: encoder and decoder with different head
counts or feed-forward widths, mBART's pre-norm flags, an unknown activation.
"""

from zoo.checkpoints.tensors import (
    CheckpointError,
    Tensor,
    alias,
    architecture,
    checkpoint_task,
    dense_layer,
    label_maps,
    norm,
    same,
)

FAMILY_NAME = "bart"
BASE_SIZE = "large"  # BartConfig's defaults are bart-large's
PREFIX = "model."
ARCHITECTURES = {
    "BartModel": None,
    "BartForConditionalGeneration": "seq2seq_lm",
    "BartForSequenceClassification": "classifier",
}
TASK_ARCHITECTURES = {task: name for name, task in ARCHITECTURES.items()}
# activation_function -> zoo activation; BART's "gelu" is the exact one.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "relu": "relu", "silu": "silu"}
HF_ACTIVATIONS = {activation: name for name, activation in ACTIVATIONS.items()}
ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
KEPT = "the zoo's BART has one token table, which its head reads too"
NUM_LABELS = 3  # BartConfig's default when a checkpoint names no labels


def from_hf_config(hf):
    _, task = architecture(hf, ARCHITECTURES, "BART", "BartModel")
    for setting, default in (("attention_heads", 16), ("ffn_dim", 4096)):
        encoder = hf.get(f"encoder_{setting}", default)
        decoder = hf.get(f"decoder_{setting}", default)
        if encoder != decoder:
            raise CheckpointError(
                f"BART config has encoder_{setting}={encoder} but decoder_{setting}={decoder}; "
                "the zoo's BART uses one value for both stacks."
            )
    if hf.get("normalize_before") or hf.get("add_final_layer_norm"):
        raise CheckpointError("This config has mBART's pre-norm blocks (normalize_before, "
                              "add_final_layer_norm); the zoo's BART is post-norm.")
    activation = hf.get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"BART activation_function {activation!r} is not supported. "
                              f"Supported: {sorted(ACTIVATIONS)}.")
    # Defaults are those of Hugging Face's BartConfig (bart-large's sizes).
    fields = {
        "vocabulary_size": hf.get("vocab_size", 50265),
        "num_layers": hf.get("encoder_layers", 12),
        "num_decoder_layers": hf.get("decoder_layers", 12),
        "num_heads": hf.get("encoder_attention_heads", 16),
        "hidden_dim": hf.get("d_model", 1024),
        "intermediate_dim": hf.get("encoder_ffn_dim", 4096),
        "max_sequence_length": hf.get("max_position_embeddings", 1024),
        "activation": ACTIVATIONS[activation],
        "dropout": hf.get("dropout", 0.1),
        "attention_dropout": hf.get("attention_dropout", 0.0),
        "activation_dropout": hf.get("activation_dropout", 0.0),
        "scale_embedding": bool(hf.get("scale_embedding", False)),
        "pad_token_id": hf.get("pad_token_id", 1),
        "end_token_id": hf.get("eos_token_id", 2),
        "decoder_start_token_id": hf.get("decoder_start_token_id", 2),
        # Hugging Face's BartConfig forces </s> at the last step unless told otherwise.
        "forced_bos_token_id": hf.get("forced_bos_token_id"),
        "forced_eos_token_id": hf.get("forced_eos_token_id", 2),
    }
    task_arguments = {}
    if task == "classifier":
        task_arguments = {"num_classes": len(hf.get("id2label") or range(NUM_LABELS)),
                          "dropout": hf.get("classifier_dropout") or 0.0}
    return fields, task, task_arguments


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    task = checkpoint_task(model, TASK_ARCHITECTURES, "BART")
    if c.activation not in HF_ACTIVATIONS:
        raise CheckpointError(
            f"A BART with activation {c.activation!r} has no Hugging Face activation_function; "
            f"the zoo writes {sorted(HF_ACTIVATIONS)}."
        )
    config = {
        "architectures": [TASK_ARCHITECTURES[task]],
        "model_type": "bart",
        "vocab_size": c.vocabulary_size,
        "d_model": c.hidden_dim,
        "encoder_layers": c.num_layers,
        "decoder_layers": c.decoder_depth,
        "encoder_attention_heads": c.num_heads,
        "decoder_attention_heads": c.num_heads,
        "encoder_ffn_dim": c.intermediate_dim,
        "decoder_ffn_dim": c.intermediate_dim,
        "max_position_embeddings": c.max_sequence_length,
        "activation_function": HF_ACTIVATIONS[c.activation],
        "dropout": c.dropout,
        "attention_dropout": c.attention_dropout,
        "activation_dropout": c.activation_dropout,
        "scale_embedding": c.scale_embedding,
        "is_encoder_decoder": True,
        "tie_word_embeddings": True,
        "pad_token_id": c.pad_token_id,
        "bos_token_id": 0,
        "eos_token_id": c.end_token_id,
        "decoder_start_token_id": c.decoder_start_token_id,
        "forced_bos_token_id": c.forced_bos_token_id,
        "forced_eos_token_id": c.forced_eos_token_id,
    }
    if task == "classifier":
        config.update(label_maps(model.num_classes), classifier_dropout=model.dropout)
    return config


def backbone_tensors(backbone, prefix=""):
    table = backbone.token_embedding.token_embedding.embeddings
    specs = [same(f"{prefix}shared.weight", table)]
    specs += [alias(f"{prefix}{name}", table, f"{prefix}shared.weight", KEPT)
              for name in ALIASES]
    for stack in ("encoder", "decoder"):
        name = f"{prefix}{stack}"
        specs.append(same(f"{name}.embed_positions.weight",
                          getattr(backbone, f"{stack}_position_embedding").embeddings))
        specs += norm(f"{name}.layernorm_embedding",
                      getattr(backbone, f"{stack}_embeddings_norm"))
        for i, block in enumerate(getattr(backbone, f"{stack}_layers")):
            specs += block_tensors(f"{name}.layers.{i}", block)
    return specs


def block_tensors(name, block):
    """One encoder or decoder layer: `self_attn` (+ `encoder_attn`), `fc1`, `fc2` and their
    LayerNorms."""
    is_decoder = hasattr(block, "self_attention")
    self_attention = block.self_attention if is_decoder else block.attention
    self_norm = block.self_attention_norm if is_decoder else block.attention_norm
    specs = attention(f"{name}.self_attn", self_attention)
    specs += norm(f"{name}.self_attn_layer_norm", self_norm)
    if is_decoder:
        specs += attention(f"{name}.encoder_attn", block.cross_attention)
        specs += norm(f"{name}.encoder_attn_layer_norm", block.cross_attention_norm)
    specs += dense_layer(f"{name}.fc1", block.feedforward.intermediate_dense)
    specs += dense_layer(f"{name}.fc2", block.feedforward.output_dense)
    return specs + norm(f"{name}.final_layer_norm", block.feedforward_norm)


def attention(name, layer):
    """`q_proj`, `k_proj`, `v_proj` and `out_proj`, each a weight and a bias."""
    return [
        *dense_layer(f"{name}.q_proj", layer.query_dense, merge="out"),
        *dense_layer(f"{name}.k_proj", layer.key_dense, merge="out"),
        *dense_layer(f"{name}.v_proj", layer.value_dense, merge="out"),
        *dense_layer(f"{name}.out_proj", layer.output_dense, merge="in"),
    ]


def head_tensors(model):
    task = checkpoint_task(model, TASK_ARCHITECTURES, "BART")
    if task == "classifier":
        head = model.get_layer("classification_head")
        return [*dense_layer("classification_head.dense", head.dense),
                *dense_layer("classification_head.out_proj", head.out_proj)]
    table = model.backbone.token_embedding.token_embedding.embeddings
    bias = model.lm_head.bias
    final_logits_bias = Tensor("final_logits_bias", [bias], lambda a: [a.reshape(-1)],
                               lambda arrays: arrays[0].reshape(1, -1), optional=True)
    return [final_logits_bias, alias("lm_head.weight", table, f"{PREFIX}shared.weight", KEPT)]

