"""GPT-2 and Llama checkpoints in Hugging Face's layout, for the zoo's `gpt` family.

Read by `zoo.from_pretrained`, written by `zoo.save_pretrained` (see `zoo/checkpoints/__init__.py`).
`config.json`'s `model_type` picks the layout: `"gpt2"` (`GPT2Model`, `GPT2LMHeadModel`) or
`"llama"` (`LlamaModel`, `LlamaForCausalLM`); on saving, the backbone's style picks it.

GPT-2 stores `Conv1D` weights `[in, out]` (no transpose) and fuses the query, key and value
projections into one `c_attn` (`[hidden, 3 * hidden]`, bias `[3 * hidden]`). Llama stores
torch `Linear` weights `[out, in]`; its query and key rows are already in the rotate-half
order of `RotaryEmbedding` (llama.cpp's GGUF files are not: see `zoo/checkpoints/gguf.py`).
A tied language-model head is the token table: it is not written, and a copy of it under
`lm_head.weight` (some exporters write one) is accepted and ignored, as `transformers` does.

Config features the zoo does not implement (rope scaling, attention or MLP biases in Llama,
GPT-2's per-layer attention scaling, ...) are refused with a `CheckpointError` naming them.

Example:

>>> import zoo
>>> model = zoo.from_pretrained("tests/fixtures/reference/llama")
>>> type(model).__name__, model.backbone.config.position, model.backbone.config.kv_heads
('CausalLM', 'rotary', 2)
"""

import numpy as np

from zoo.checkpoints.tensors import (
    CheckpointError,
    Tensor,
    checkpoint_task,
    keras_value,
    linear,
    norm,
    same,
    vector,
)

FAMILY_NAME = "gpt"
BASE_SIZE = "gpt2"  # every field is set from the config, so the preset only names the family
# The backbone's tensors inside a task checkpoint: `transformer.` for GPT-2, `model.` for
# Llama. A tuple, which `str.startswith` accepts: `from_pretrained` detects either prefix, and
# `backbone_tensors` turns it into the one of the backbone's style.
STYLE_PREFIXES = {"gpt2": "transformer.", "llama": "model."}
PREFIX = tuple(STYLE_PREFIXES.values())
# architecture -> (model_type, zoo task)
ARCHITECTURES = {
    "GPT2Model": ("gpt2", None),
    "GPT2LMHeadModel": ("gpt2", "causal_lm"),
    "LlamaModel": ("llama", None),
    "LlamaForCausalLM": ("llama", "causal_lm"),
}
TASK_ARCHITECTURES = {
    ("gpt2", None): "GPT2Model", ("gpt2", "causal_lm"): "GPT2LMHeadModel",
    ("llama", None): "LlamaModel", ("llama", "causal_lm"): "LlamaForCausalLM",
}
TASKS = {task for _, task in TASK_ARCHITECTURES}
# Hugging Face `activation_function` of GPT-2 -> zoo activation.
GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                    "relu": "relu", "silu": "silu", "swish": "silu"}
GPT2_ACTIVATION_NAMES = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu",
                         "silu": "silu"}
# What each checkpoint style fixes in `GPTConfig` (besides the sizes).
STYLES = {
    "gpt2": dict(position="learned", norm="layer_norm", use_bias=True),
    "llama": dict(position="rotary", norm="rms_norm", activation="swiglu", use_bias=False),
}


# --- config.json <-> GPTConfig -------------------------------------------------------------


def from_hf_config(hf):
    model_type = hf.get("model_type")
    default = "GPT2Model" if model_type == "gpt2" else "LlamaModel"
    architecture = (hf.get("architectures") or [default])[0]
    if ARCHITECTURES.get(architecture, (None,))[0] != model_type:
        supported = sorted(a for a, (t, _) in ARCHITECTURES.items() if t == model_type)
        raise CheckpointError(
            f"{model_type} architecture {architecture!r} is not supported. Supported: "
            f"{supported}."
        )
    fields = gpt2_fields(hf) if model_type == "gpt2" else llama_fields(hf)
    return fields, ARCHITECTURES[architecture][1], {}


def gpt2_fields(hf):
    unsupported = []
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn",
                 "add_cross_attention"):
        if hf.get(flag):
            unsupported.append(f"{flag}=True")
    if not hf.get("scale_attn_weights", True):
        unsupported.append("scale_attn_weights=False")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in GPT2_ACTIVATIONS:
        unsupported.append(f"activation_function={activation!r} (supported: "
                           f"{sorted(GPT2_ACTIVATIONS)})")
    refuse("GPT-2", unsupported)
    hidden = required(hf, "n_embd")
    return {
        "vocabulary_size": required(hf, "vocab_size"),
        "num_layers": required(hf, "n_layer"),
        "num_heads": required(hf, "n_head"),
        "num_kv_heads": None,
        "hidden_dim": hidden,
        "intermediate_dim": hf.get("n_inner") or 4 * hidden,
        "max_sequence_length": required(hf, "n_positions"),
        "dropout": hf.get("resid_pdrop", 0.1),
        "layer_norm_epsilon": hf.get("layer_norm_epsilon", 1e-5),
        "rotary_max_wavelength": 10000,
        "activation": GPT2_ACTIVATIONS[activation],
        "tie_word_embeddings": hf.get("tie_word_embeddings", True),
        **STYLES["gpt2"],
    }


def llama_fields(hf):
    hidden, heads = required(hf, "hidden_size"), required(hf, "num_attention_heads")
    unsupported = []
    for flag in ("attention_bias", "mlp_bias"):
        if hf.get(flag):
            unsupported.append(f"{flag}=True")
    if hf.get("hidden_act", "silu") != "silu":
        unsupported.append(f"hidden_act={hf['hidden_act']!r} (Llama uses silu)")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        unsupported.append(f"head_dim={head_dim} (the zoo uses hidden_size / "
                           f"num_attention_heads = {hidden / heads:g})")
    theta, rope_problems = rope_theta(hf)
    refuse("Llama", unsupported + rope_problems)
    return {
        "vocabulary_size": required(hf, "vocab_size"),
        "num_layers": required(hf, "num_hidden_layers"),
        "num_heads": heads,
        "num_kv_heads": hf.get("num_key_value_heads") or heads,
        "hidden_dim": hidden,
        "intermediate_dim": required(hf, "intermediate_size"),
        "max_sequence_length": hf.get("max_position_embeddings", 2048),
        "dropout": 0.0,
        "layer_norm_epsilon": hf.get("rms_norm_eps", 1e-6),
        "rotary_max_wavelength": int(theta) if float(theta).is_integer() else float(theta),
        "tie_word_embeddings": hf.get("tie_word_embeddings", False),  # LlamaConfig's default
        **STYLES["llama"],
    }


def rope_theta(hf):
    """`(rope_theta, problems)`: transformers 4 writes `rope_theta` and `rope_scaling`,
    transformers 5 `rope_parameters` (`{"rope_type": ..., "rope_theta": ...}`)."""
    problems = []
    scaling = hf.get("rope_scaling")
    if scaling is not None and _rope_type(scaling) != "default":
        problems.append(f"rope_scaling={scaling!r}")
    parameters = hf.get("rope_parameters") or {}
    if _rope_type(parameters) != "default":
        problems.append(f"rope_parameters={parameters!r} (rope_type must be 'default')")
    return parameters.get("rope_theta", hf.get("rope_theta", 10000.0)), problems


def _rope_type(parameters):
    return parameters.get("rope_type", parameters.get("type", "default")) \
        if isinstance(parameters, dict) else parameters


def refuse(name, unsupported):
    if unsupported:
        raise CheckpointError(
            f"This {name} config uses features the zoo's GPT does not implement: "
            f"{'; '.join(unsupported)}. Its outputs would differ from the reference, so it is "
            "not loaded."
        )


def required(hf, key):
    if key not in hf or hf[key] is None:
        raise CheckpointError(f"config.json lacks {key!r}; it is incomplete or not this kind "
                              "of model.")
    return hf[key]


def style(config):
    """`"gpt2"` or `"llama"`: the checkpoint layout a `GPTConfig` can be written in."""
    mismatches = {}
    for name, fixed in STYLES.items():
        wrong = [f"{k}={getattr(config, k)!r}" for k, v in fixed.items()
                 if getattr(config, k) != v]
        if name == "gpt2":
            if config.activation not in GPT2_ACTIVATION_NAMES:
                wrong.append(f"activation={config.activation!r}")
            if config.kv_heads != config.num_heads:
                wrong.append(f"num_kv_heads={config.num_kv_heads}")
        if not wrong:
            return name
        mismatches[name] = wrong
    raise CheckpointError(
        "This GPT config is neither GPT-2 nor Llama style, so no Hugging Face layout fits it: "
        + "; ".join(f"{name} needs {STYLES[name]} but it has {', '.join(wrong)}"
                    for name, wrong in mismatches.items()) + "."
    )


def to_hf_config(model):
    backbone = getattr(model, "backbone", model)
    c = backbone.config
    kind = style(c)
    task = checkpoint_task(model, TASKS, "GPT-2 or Llama")
    common = {"architectures": [TASK_ARCHITECTURES[kind, task]], "model_type": kind,
              "vocab_size": c.vocabulary_size, "tie_word_embeddings": c.tie_word_embeddings}
    if kind == "gpt2":
        return {
            **common,
            "n_layer": c.num_layers,
            "n_head": c.num_heads,
            "n_embd": c.hidden_dim,
            "n_inner": c.intermediate_dim,
            "n_positions": c.max_sequence_length,
            "activation_function": GPT2_ACTIVATION_NAMES[c.activation],
            "layer_norm_epsilon": c.layer_norm_epsilon,
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": c.dropout,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
        }
    theta = float(c.rotary_max_wavelength)
    return {
        **common,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "hidden_size": c.hidden_dim,
        "intermediate_size": c.intermediate_dim,
        "max_position_embeddings": c.max_sequence_length,
        "rms_norm_eps": c.layer_norm_epsilon,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": c.dropout,
        "rope_theta": theta,  # transformers 4
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": theta},  # transformers 5
    }


# --- tensors -------------------------------------------------------------------------------


def fused_qkv(name, attention, part):
    """GPT-2's `c_attn.weight` `[hidden, 3 * hidden]` or `c_attn.bias` `[3 * hidden]`: the
    query, key and value projections side by side on the last axis."""
    denses = (attention.query_dense, attention.key_dense, attention.value_dense)
    variables = [getattr(dense, part) for dense in denses]
    sizes = [int(np.prod(v.shape[-2:])) for v in variables]  # heads * head_dim
    leading = tuple(variables[0].shape[:-2])  # (hidden,) for the kernel, () for the bias

    def to_keras(array):
        parts = np.split(array, np.cumsum(sizes)[:-1], axis=-1)
        return [p.reshape(v.shape) for p, v in zip(parts, variables, strict=True)]

    def to_hf(arrays):
        return np.concatenate([a.reshape(*leading, -1) for a in arrays], axis=-1)

    return Tensor(name, variables, to_keras, to_hf)


def backbone_tensors(backbone, prefix=""):
    kind = style(backbone.config)
    if isinstance(prefix, tuple):  # `PREFIX`: the backbone inside a task checkpoint
        prefix = STYLE_PREFIXES[kind]
    return gpt2_tensors(backbone, prefix) if kind == "gpt2" else llama_tensors(backbone, prefix)


def gpt2_tensors(backbone, prefix):
    c = backbone.config
    embedding = backbone.token_embedding
    specs = [
        same(f"{prefix}wte.weight", embedding.token_embedding.embeddings),
        same(f"{prefix}wpe.weight", embedding.position_embedding.embeddings),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        name = f"{prefix}h.{i}"
        attention, feedforward = block.self_attention, block.feedforward
        specs += norm(f"{name}.ln_1", block.self_attention_norm)
        specs += [
            fused_qkv(f"{name}.attn.c_attn.weight", attention, "kernel"),
            fused_qkv(f"{name}.attn.c_attn.bias", attention, "bias"),
            same(f"{name}.attn.c_proj.weight", attention.output_dense.kernel,
                 (c.hidden_dim, c.hidden_dim)),  # Conv1D: [in, out] as Keras holds it
            vector(f"{name}.attn.c_proj.bias", attention.output_dense.bias),
        ]
        specs += norm(f"{name}.ln_2", block.feedforward_norm)
        specs += [
            same(f"{name}.mlp.c_fc.weight", feedforward.intermediate_dense.kernel),
            vector(f"{name}.mlp.c_fc.bias", feedforward.intermediate_dense.bias),
            same(f"{name}.mlp.c_proj.weight", feedforward.output_dense.kernel),
            vector(f"{name}.mlp.c_proj.bias", feedforward.output_dense.bias),
        ]
    return specs + norm(f"{prefix}ln_f", backbone.final_norm)


# Llama's tensors: (Hugging Face name, GGUF name, the variable, how it is stored). Shared with
# `zoo/checkpoints/gguf.py`, which reads the same weights under llama.cpp's names.
LLAMA_LAYER = (
    ("input_layernorm.weight", "attn_norm.weight",
     lambda block: block.self_attention_norm.scale, "vector"),
    ("self_attn.q_proj.weight", "attn_q.weight",
     lambda block: block.self_attention.query_dense.kernel, "out"),
    ("self_attn.k_proj.weight", "attn_k.weight",
     lambda block: block.self_attention.key_dense.kernel, "out"),
    ("self_attn.v_proj.weight", "attn_v.weight",
     lambda block: block.self_attention.value_dense.kernel, "out"),
    ("self_attn.o_proj.weight", "attn_output.weight",
     lambda block: block.self_attention.output_dense.kernel, "in"),
    ("post_attention_layernorm.weight", "ffn_norm.weight",
     lambda block: block.feedforward_norm.scale, "vector"),
    ("mlp.gate_proj.weight", "ffn_gate.weight",
     lambda block: block.feedforward.gate_dense.kernel, "out"),
    ("mlp.up_proj.weight", "ffn_up.weight",
     lambda block: block.feedforward.intermediate_dense.kernel, "out"),
    ("mlp.down_proj.weight", "ffn_down.weight",
     lambda block: block.feedforward.output_dense.kernel, "out"),
)


def llama_tensors(backbone, prefix="", gguf_names=False):
    """Llama's backbone tensors, by Hugging Face names (after `prefix`) or GGUF names."""
    embed, final = ("token_embd.weight", "output_norm.weight") if gguf_names else \
        (f"{prefix}embed_tokens.weight", f"{prefix}norm.weight")
    specs = [same(embed, backbone.token_embedding.token_embedding.embeddings)]
    for i, block in enumerate(backbone.transformer_layers):
        for hf_name, gguf_name, variable_of, kind in LLAMA_LAYER:
            name = f"blk.{i}.{gguf_name}" if gguf_names else f"{prefix}layers.{i}.{hf_name}"
            variable = variable_of(block)
            specs.append(vector(name, variable) if kind == "vector" else
                         linear(name, variable, merge=kind))
    return specs + [vector(final, backbone.final_norm.scale)]


def head_tensors(model, gguf_names=False):
    """The language-model head: `lm_head.weight` (GGUF `output.weight`) when untied.

    A tied head is the token table. A copy of it under `lm_head.weight`, which some exporters
    write, is accepted and ignored, as `transformers` ties it to the table after loading; it
    is not written back (Hugging Face does not save the shared table twice).
    """
    checkpoint_task(model, TASKS, "GPT-2 or Llama")
    name = "output.weight" if gguf_names else "lm_head.weight"
    if model.lm_head is None:
        if gguf_names:  # llama.cpp writes `output.weight` only for an untied head
            return []
        table = model.backbone.token_embedding.token_embedding.embeddings
        return [Tensor(name, [table], lambda array: [keras_value(table)],
                       lambda arrays: arrays[0], optional=True, alias=True)]
    return [linear(name, model.lm_head.kernel)]
