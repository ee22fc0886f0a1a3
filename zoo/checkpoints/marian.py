"""Marian checkpoints in Hugging Face's layout (`MarianModel`, `MarianMTModel`: the
Helsinki-NLP opus-mt models) as the zoo's `transformer`.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see `zoo/checkpoints/__init__.py`).

`model.shared.weight` is the one token table of both stacks and the output projection; the
copies some checkpoints also hold (`model.encoder.embed_tokens.weight`,
`model.decoder.embed_tokens.weight`, `lm_head.weight`) are read as aliases and must equal it,
and the sinusoid tables older ones saved (`*.embed_positions.weight`) are computed, not read.
`final_logits_bias` is the task's `lm_head` bias. Refused: separate source and target
vocabularies (`share_encoder_decoder_embeddings: false`), an untied output projection, and
encoder and decoder of different head counts or feed-forward widths, which the zoo's
Transformer does not have.

Token ids are the checkpoint's: `</s>` ends a sequence and `<pad>` pads and starts the
decoder (opus-mt: `pad_token_id == decoder_start_token_id == vocab_size - 1`), which the
tokenizer of the folder (`zoo.preprocessing.MarianTokenizer`) gives the preprocessor; the
config keeps `decoder_start_token_id` for a folder without tokenizer files.
"""

import numpy as np

from zoo.checkpoints.tensors import (
    CheckpointError,
    Tensor,
    alias,
    architecture,
    checkpoint_task,
    dense_layer,
    norm,
    same,
)

FAMILY_NAME = "transformer"
BASE_SIZE = "base"
PREFIX = "model."  # the backbone's tensors inside a MarianMTModel checkpoint
# architecture -> zoo task
ARCHITECTURES = {"MarianModel": None, "MarianMTModel": "seq2seq_lm"}
TASK_ARCHITECTURES = {task: name for name, task in ARCHITECTURES.items()}
# activation_function -> zoo activation ("swish" is opus-mt's, SiLU)
ACTIVATIONS = {"relu": "relu", "swish": "silu", "silu": "silu", "gelu": "gelu",
               "gelu_new": "gelu_tanh"}
ACTIVATION_FUNCTIONS = {"relu": "relu", "silu": "swish", "gelu": "gelu",
                        "gelu_tanh": "gelu_new"}
# Copies of `shared.weight` that some checkpoints hold as well.
ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
POSITION_TABLES = ("encoder.embed_positions.weight", "decoder.embed_positions.weight")
KEPT = "the zoo's Transformer has one token table, shared by both stacks and the output"
# Settings where the encoder and decoder may differ in Hugging Face, not in the zoo.
PAIRED = (("encoder_attention_heads", "decoder_attention_heads"),
          ("encoder_ffn_dim", "decoder_ffn_dim"))


def from_hf_config(hf):
    _, task = architecture(hf, ARCHITECTURES, "Marian", "MarianMTModel")
    vocabulary = hf.get("vocab_size", 58101)
    if not hf.get("share_encoder_decoder_embeddings", True) or \
            hf.get("decoder_vocab_size") not in (None, vocabulary):
        raise CheckpointError(
            "This Marian checkpoint has separate source and target vocabularies "
            "(share_encoder_decoder_embeddings false); the zoo's Transformer shares one table. "
            "Use a checkpoint with one vocabulary (most opus-mt models).")
    if not hf.get("tie_word_embeddings", True):
        raise CheckpointError("This Marian checkpoint has an output projection of its own "
                              "(tie_word_embeddings false); the zoo's Transformer ties it to "
                              "the token table.")
    for encoder, decoder in PAIRED:
        if hf.get(encoder) != hf.get(decoder):
            raise CheckpointError(
                f"This Marian checkpoint has {encoder}={hf.get(encoder)} but "
                f"{decoder}={hf.get(decoder)}; the zoo's Transformer uses one value for both.")
    activation = hf.get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        raise CheckpointError(f"Marian activation_function {activation!r} is not supported. "
                              f"Supported: {sorted(ACTIVATIONS)}.")
    # Defaults are those of Hugging Face's MarianConfig, which fills in what config.json omits.
    fields = {
        "vocabulary_size": vocabulary,
        "num_layers": hf.get("encoder_layers", 12),
        "num_decoder_layers": hf.get("decoder_layers", 12),
        "num_heads": hf.get("encoder_attention_heads", 16),
        "hidden_dim": hf.get("d_model", 1024),
        "intermediate_dim": hf.get("encoder_ffn_dim", 4096),
        "max_sequence_length": hf.get("max_position_embeddings", 1024),
        "activation": ACTIVATIONS[activation],
        "dropout": float(hf.get("dropout", 0.1)),
        "attention_dropout": float(hf.get("attention_dropout", 0.0)),
        "activation_dropout": float(hf.get("activation_dropout", 0.0)),
        "scale_embedding": bool(hf.get("scale_embedding", False)),
        "decoder_start_token_id": hf.get("decoder_start_token_id", vocabulary - 1),
        # Hugging Face's MarianConfig forces </s> (0) at the last step unless told otherwise.
        "forced_bos_token_id": hf.get("forced_bos_token_id"),
        "forced_eos_token_id": hf.get("forced_eos_token_id", 0),
    }
    return fields, task, {}


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    task = checkpoint_task(model, TASK_ARCHITECTURES, "Marian")
    if c.activation not in ACTIVATION_FUNCTIONS:
        raise CheckpointError(
            f"A Transformer with activation {c.activation!r} has no Marian "
            f"activation_function; the zoo writes {sorted(ACTIVATION_FUNCTIONS)}.")
    if c.layer_norm_epsilon != 1e-5:
        raise CheckpointError(
            f"Marian's LayerNorms use epsilon 1e-5, this Transformer {c.layer_norm_epsilon}: "
            "Hugging Face would compute other numbers. Save it as .keras instead.")
    pad = c.vocabulary_size - 1
    start = pad if c.decoder_start_token_id is None else c.decoder_start_token_id
    return {
        "architectures": [TASK_ARCHITECTURES[task]],
        "model_type": "marian",
        "vocab_size": c.vocabulary_size,
        "decoder_vocab_size": c.vocabulary_size,
        "d_model": c.hidden_dim,
        "encoder_layers": c.num_layers,
        "decoder_layers": c.decoder_depth,
        "encoder_attention_heads": c.num_heads,
        "decoder_attention_heads": c.num_heads,
        "encoder_ffn_dim": c.intermediate_dim,
        "decoder_ffn_dim": c.intermediate_dim,
        "max_position_embeddings": c.max_sequence_length,
        "activation_function": ACTIVATION_FUNCTIONS[c.activation],
        "dropout": c.dropout,
        "attention_dropout": c.attention_dropout,
        "activation_dropout": c.activation_dropout,
        "scale_embedding": c.scale_embedding,
        "share_encoder_decoder_embeddings": True,
        "tie_word_embeddings": True,
        "is_encoder_decoder": True,
        "use_cache": True,
        # opus-mt's conventions: `</s>` is 0, `<pad>` the last id and the decoder's start.
        "pad_token_id": pad,
        "decoder_start_token_id": start,
        "eos_token_id": 0,
        "forced_bos_token_id": c.forced_bos_token_id,
        "forced_eos_token_id": c.forced_eos_token_id,
    }


def backbone_tensors(backbone, prefix=""):
    table = backbone.token_embedding.token_embedding.embeddings
    specs = [same(f"{prefix}shared.weight", table)]
    specs += [alias(f"{prefix}{name}", table, f"{prefix}shared.weight", KEPT)
              for name in ALIASES]
    positions = (backbone.config.max_sequence_length, backbone.config.hidden_dim)
    specs += [ignored(f"{prefix}{name}", positions) for name in POSITION_TABLES]
    for i, block in enumerate(backbone.encoder_layers):
        name = f"{prefix}encoder.layers.{i}"
        specs += attention(f"{name}.self_attn", block.attention)
        specs += norm(f"{name}.self_attn_layer_norm", block.attention_norm)
        specs += feedforward(name, block)
    for i, block in enumerate(backbone.decoder_layers):
        name = f"{prefix}decoder.layers.{i}"
        specs += attention(f"{name}.self_attn", block.self_attention)
        specs += norm(f"{name}.self_attn_layer_norm", block.self_attention_norm)
        specs += attention(f"{name}.encoder_attn", block.cross_attention)
        specs += norm(f"{name}.encoder_attn_layer_norm", block.cross_attention_norm)
        specs += feedforward(name, block)
    return specs


def attention(name, layer):
    """`q_proj`, `k_proj`, `v_proj` and `out_proj`, each with its bias."""
    return [*dense_layer(f"{name}.q_proj", layer.query_dense),
            *dense_layer(f"{name}.k_proj", layer.key_dense),
            *dense_layer(f"{name}.v_proj", layer.value_dense),
            *dense_layer(f"{name}.out_proj", layer.output_dense, merge="in")]


def feedforward(name, block):
    """`fc1`, `fc2` and the block's last norm (`final_layer_norm`)."""
    return [*dense_layer(f"{name}.fc1", block.feedforward.intermediate_dense),
            *dense_layer(f"{name}.fc2", block.feedforward.output_dense),
            *norm(f"{name}.final_layer_norm", block.feedforward_norm)]


def ignored(name, shape):
    """A tensor of `shape` some checkpoints hold that the model computes (a sinusoid table):
    its shape checked, its values dropped, never written."""
    return Tensor(name, [], lambda array: [], lambda arrays: np.zeros(shape, "float32"),
                  optional=True, alias=True)


def head_tensors(model):
    checkpoint_task(model, TASK_ARCHITECTURES, "Marian")
    table = model.backbone.token_embedding.token_embedding.embeddings
    bias = model.lm_head.bias
    return [same("final_logits_bias", bias, hf_shape=(1, bias.shape[0])),
            alias("lm_head.weight", table, "model.shared.weight", KEPT)]
