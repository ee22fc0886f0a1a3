"""T5 checkpoints in Hugging Face's layout: `T5Model` and `T5ForConditionalGeneration`.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see `zoo/checkpoints/__init__.py`).

`shared.weight` is the one token table of both stacks; the copies some checkpoints also hold
(`encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`, and `lm_head.weight` where the
head is tied) are read as aliases and must equal it.

The language-model head. The zoo's `tie_word_embeddings=True` is T5 v1.0's head: the token
table, applied to decoder outputs scaled by `d_model ** -0.5`; `False` is v1.1's: its own
`lm_head`, unscaled. Hugging Face's config says the same with two flags: transformers 4 with
`tie_word_embeddings` alone, transformers 5 with `scale_decoder_outputs` (and
`tie_word_embeddings` always True: the head is `lm_head.weight` when the checkpoint has it,
else the token table). So the zoo reads `scale_decoder_outputs` (falling back on
`tie_word_embeddings`), fills an unscaled head from `lm_head.weight`, or from `shared.weight`
where there is none, and writes both flags with `lm_head.weight` for an unscaled head, which
both transformers versions read alike.

`T5EncoderModel` has no decoder, which the zoo's T5 always has, so it is refused.
"""



from zoo.checkpoints.tensors import (
    CheckpointError,
    Tensor,
    alias,
    architecture,
    checkpoint_task,
    linear,
    same,
)

FAMILY_NAME = "t5"
BASE_SIZE = "small"
PREFIX = ""  # T5 task checkpoints hold the backbone's tensors under their own names
# architecture -> zoo task
ARCHITECTURES = {
    "T5Model": None,
    "T5ForConditionalGeneration": "seq2seq_lm",
}
TASK_ARCHITECTURES = {task: name for name, task in ARCHITECTURES.items()}
# feed_forward_proj -> zoo activation. HF's "gated-gelu" is GELU with the tanh approximation.
ACTIVATIONS = {"relu": "relu", "gated-gelu": "geglu_tanh"}
FEED_FORWARD_PROJ = {activation: proj for proj, activation in ACTIVATIONS.items()}
# Copies of `shared.weight` that some checkpoints hold as well.
ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
KEPT = "the zoo's T5 has one token table (and a v1.0 head tied to it)"


def from_hf_config(hf):
    if (hf.get("architectures") or [None])[0] == "T5EncoderModel":
        raise CheckpointError(
            "T5EncoderModel checkpoints hold no decoder, and the zoo's T5 is an encoder-decoder. "
            f"Supported: {sorted(ARCHITECTURES)}."
        )
    _, task = architecture(hf, ARCHITECTURES, "T5", "T5ForConditionalGeneration")
    projection = hf.get("feed_forward_proj", "relu")
    if projection not in ACTIVATIONS:
        raise CheckpointError(
            f"T5 feed_forward_proj {projection!r} is not supported. Supported: "
            f"{sorted(ACTIVATIONS)} (T5 v1.0 and v1.1)."
        )
    # transformers 5 writes `scale_decoder_outputs`; older configs mean it by the tie flag.
    scaled = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
    # Defaults are those of Hugging Face's T5Config, which fills in what a config.json omits.
    fields = {
        "vocabulary_size": hf.get("vocab_size", 32128),
        "num_layers": hf.get("num_layers", 6),
        "num_decoder_layers": hf.get("num_decoder_layers"),
        "num_heads": hf.get("num_heads", 8),
        "hidden_dim": hf.get("d_model", 512),
        "intermediate_dim": hf.get("d_ff", 2048),
        "head_dim": hf.get("d_kv", 64),
        "activation": ACTIVATIONS[projection],
        "relative_attention_num_buckets": hf.get("relative_attention_num_buckets", 32),
        "relative_attention_max_distance": hf.get("relative_attention_max_distance", 128),
        "layer_norm_epsilon": hf.get("layer_norm_epsilon", 1e-6),
        "dropout": hf.get("dropout_rate", 0.1),
        "tie_word_embeddings": bool(scaled),
    }
    return fields, task, {}


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    task = checkpoint_task(model, TASK_ARCHITECTURES, "T5")
    if c.activation not in FEED_FORWARD_PROJ:
        raise CheckpointError(
            f"A T5 with activation {c.activation!r} has no Hugging Face feed_forward_proj; "
            f"the zoo writes {sorted(FEED_FORWARD_PROJ)} (T5 v1.0 and v1.1)."
        )
    return {
        "architectures": [TASK_ARCHITECTURES[task]],
        "model_type": "t5",
        "vocab_size": c.vocabulary_size,
        "d_model": c.hidden_dim,
        "d_kv": c.head_dim,
        "d_ff": c.intermediate_dim,
        "num_layers": c.num_layers,
        "num_decoder_layers": c.decoder_depth,
        "num_heads": c.num_heads,
        "relative_attention_num_buckets": c.relative_attention_num_buckets,
        "relative_attention_max_distance": c.relative_attention_max_distance,
        "dropout_rate": c.dropout,
        "layer_norm_epsilon": c.layer_norm_epsilon,
        "feed_forward_proj": FEED_FORWARD_PROJ[c.activation],
        # Both flags, so transformers 4 (the tie flag) and 5 (the scale flag) agree.
        "tie_word_embeddings": c.tie_word_embeddings,
        "scale_decoder_outputs": c.tie_word_embeddings,
        "is_encoder_decoder": True,
        "initializer_factor": 1.0,
        "use_cache": True,
        # T5's conventions: the decoder starts from the padding id.
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def backbone_tensors(backbone, prefix=""):
    table = backbone.token_embedding.token_embedding.embeddings
    specs = [same(f"{prefix}shared.weight", table)]
    specs += [alias(f"{prefix}{name}", table, f"{prefix}shared.weight", KEPT)
              for name in ALIASES]
    specs += stack_tensors(f"{prefix}encoder", backbone.encoder_layers,
                           backbone.encoder_relative_position_bias, backbone.encoder_final_norm)
    specs += stack_tensors(f"{prefix}decoder", backbone.decoder_layers,
                           backbone.decoder_relative_position_bias, backbone.decoder_final_norm)
    return specs


def stack_tensors(name, blocks, position_bias, final_norm):
    """One stack: its blocks, the relative position bias in block 0, the final norm."""
    specs = []
    for i, block in enumerate(blocks):
        block_name = f"{name}.block.{i}.layer"
        is_decoder = hasattr(block, "self_attention")
        self_attention = block.self_attention if is_decoder else block.attention
        self_norm = block.self_attention_norm if is_decoder else block.attention_norm
        specs += attention(f"{block_name}.0.SelfAttention", self_attention)
        specs.append(same(f"{block_name}.0.layer_norm.weight", self_norm.scale))
        sublayer = 1
        if is_decoder:
            specs += attention(f"{block_name}.1.EncDecAttention", block.cross_attention)
            specs.append(same(f"{block_name}.1.layer_norm.weight",
                              block.cross_attention_norm.scale))
            sublayer = 2
        specs += feedforward(f"{block_name}.{sublayer}.DenseReluDense", block.feedforward)
        specs.append(same(f"{block_name}.{sublayer}.layer_norm.weight",
                          block.feedforward_norm.scale))
    specs.append(same(f"{name}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      position_bias.embeddings))
    specs.append(same(f"{name}.final_layer_norm.weight", final_norm.scale))
    return specs


def attention(name, layer):
    """`q`, `k`, `v` (`[heads * d_kv, d_model]`) and `o` (`[d_model, heads * d_kv]`), no biases."""
    return [
        linear(f"{name}.q.weight", layer.query_dense.kernel, merge="out"),
        linear(f"{name}.k.weight", layer.key_dense.kernel, merge="out"),
        linear(f"{name}.v.weight", layer.value_dense.kernel, merge="out"),
        linear(f"{name}.o.weight", layer.output_dense.kernel, merge="in"),
    ]


def feedforward(name, layer):
    """`wi` and `wo`; gated: `wi_0` (through the activation, the zoo's gate) and `wi_1`."""
    if layer.gated:
        inputs = [linear(f"{name}.wi_0.weight", layer.gate_dense.kernel),
                  linear(f"{name}.wi_1.weight", layer.intermediate_dense.kernel)]
    else:
        inputs = [linear(f"{name}.wi.weight", layer.intermediate_dense.kernel)]
    return [*inputs, linear(f"{name}.wo.weight", layer.output_dense.kernel)]


def head_tensors(model):
    checkpoint_task(model, TASK_ARCHITECTURES, "T5")
    table = model.backbone.token_embedding.token_embedding.embeddings
    if model.lm_head is None:  # v1.0: the head is the token table
        return [alias("lm_head.weight", table, "shared.weight", KEPT)]
    kernel = model.lm_head.kernel
    # v1.1: `lm_head.weight`, or the token table when the checkpoint has no head of its own.
    # Listed after the backbone's `shared.weight`, whose value it writes back unchanged.
    specs = [Tensor("shared.weight", [table, kernel], lambda a: [a, a.T],
                    lambda arrays: arrays[0]),
             linear("lm_head.weight", kernel)]
    specs[-1].optional = True  # read after the table, so it replaces it where present
    return specs
