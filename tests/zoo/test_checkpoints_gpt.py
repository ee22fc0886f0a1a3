"""GPT-2 and Llama checkpoints: Hugging Face folders (`zoo/checkpoints/gpt.py`) and GGUF files
(`zoo/checkpoints/gguf.py`), against the reference fixtures of `tests/fixtures/make_reference.py`
and the real SmolLM2-135M-Instruct GGUF file (`make pretrained`)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import zoo
from tests.helpers import predict, smollm2_path
from zoo.gpt import CausalLM, GPTBackbone
from zoo.heads import Classifier

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
TINY = ["gpt2", "llama", "llama_untied"]


def reference(name):
    folder = REFERENCE / name
    return folder, dict(np.load(folder / "outputs.npz"))


def model_inputs(outputs):
    return {"token_ids": outputs["input_input_ids"].astype("int32"),
            "padding_mask": outputs["input_attention_mask"].astype("int32")}


def greedy(model, prompt, total_length):
    """Greedy decoding with the cache: the prompt in one call, then one token per call.

    Returns the ids (prompt included) and the logits of the prompt's last position."""
    prompt = np.asarray(prompt, "int32")
    cache = model.make_cache(1, total_length)
    logits, cache = model.call_with_cache(prompt, cache, cache_index=0)
    ids, prompt_logits = [int(i) for i in prompt[0]], np.asarray(logits)[:, -1]
    while True:
        ids.append(int(np.argmax(np.asarray(logits)[0, -1])))
        if len(ids) == total_length:
            return ids, prompt_logits
        logits, cache = model.call_with_cache(np.array([[ids[-1]]], "int32"), cache,
                                              cache_index=len(ids) - 1)


def copy_fixture(name, tmp_path, edit_tensors=None, edit_config=None):
    """A copy of a reference folder with its tensors and/or config changed."""
    folder = tmp_path / name
    shutil.copytree(REFERENCE / name, folder)
    if edit_tensors is not None:
        tensors = load_file(folder / "model.safetensors")
        save_file(edit_tensors(tensors) or tensors, folder / "model.safetensors")
    if edit_config is not None:
        config = json.loads((folder / "config.json").read_text())
        edit_config(config)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


# --- Hugging Face folders ------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY)
def test_reference_logits_and_sequence_output_match(name):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder)
    assert isinstance(model, CausalLM)
    hf_config = json.loads((folder / "config.json").read_text())
    assert (model.lm_head is None) == hf_config["tie_word_embeddings"]
    real = outputs["input_attention_mask"] == 1  # padded positions are not compared
    assert not real.all()
    inputs = model_inputs(outputs)
    logits = predict(model, inputs)
    np.testing.assert_allclose(logits[real], outputs["output_logits"][real], atol=1e-5, rtol=0)
    sequence = predict(model.backbone, inputs)["sequence_output"]
    np.testing.assert_allclose(sequence[real], outputs["output_sequence_output"][real],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", TINY)
def test_greedy_decoding_with_the_cache_reproduces_generate(name):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder)
    expected = outputs["output_generated"][0].tolist()
    assert greedy(model, outputs["input_prompt"], len(expected))[0] == expected


@pytest.mark.parametrize("name", TINY)
def test_save_pretrained_writes_the_reference_layout_and_reloads(name, tmp_path):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder)
    zoo.save_pretrained(model, tmp_path / "saved")

    written, original = (load_file(f / "model.safetensors") for f in (tmp_path / "saved", folder))
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in original.items()}
    for key, value in original.items():  # reshapes and transposes only: exact
        np.testing.assert_array_equal(written[key], value, err_msg=key)

    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    hf_config = json.loads((folder / "config.json").read_text())
    for key in ("model_type", "architectures", "vocab_size", "tie_word_embeddings"):
        assert config[key] == hf_config[key], key
    if name == "gpt2":
        assert config["n_positions"] == 32 and config["activation_function"] == "gelu_new"
    else:
        assert config["num_key_value_heads"] == 2 and config["head_dim"] == 8
        assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 10000.0}

    reloaded = zoo.from_pretrained(tmp_path / "saved")
    assert reloaded.backbone.config == model.backbone.config
    inputs = model_inputs(outputs)
    np.testing.assert_array_equal(predict(reloaded, inputs), predict(model, inputs))


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_tied_head_written_as_lm_head_is_accepted_and_not_written_back(name, tmp_path):
    """Some exporters write the tied table again as `lm_head.weight`; transformers ties it to
    the table after loading (the copy's values are not used), and so does the zoo."""
    folder, outputs = reference(name)
    table = "transformer.wte.weight" if name == "gpt2" else "model.embed_tokens.weight"
    copy = copy_fixture(name, tmp_path, edit_tensors=lambda t: {**t, "lm_head.weight": t[table]})
    model = zoo.from_pretrained(copy)
    assert model.lm_head is None
    real = outputs["input_attention_mask"] == 1
    logits = predict(model, model_inputs(outputs))
    np.testing.assert_allclose(logits[real], outputs["output_logits"][real], atol=1e-5, rtol=0)
    zoo.save_pretrained(model, tmp_path / "saved")
    assert "lm_head.weight" not in load_file(tmp_path / "saved" / "model.safetensors")
    misshapen = copy_fixture(name, tmp_path / "bad",
                             edit_tensors=lambda t: {**t, "lm_head.weight": t[table][:5]})
    with pytest.raises(zoo.CheckpointError, match=r"lm_head\.weight has shape \(5, 32\)"):
        zoo.from_pretrained(misshapen)


def test_bare_backbone_folder_loads_and_saves_without_prefix(tmp_path):
    """A `GPT2Model` folder (no `transformer.` prefix) builds the backbone alone."""
    folder, outputs = reference("gpt2")
    bare = copy_fixture(
        "gpt2", tmp_path,
        edit_tensors=lambda t: {k.removeprefix("transformer."): v for k, v in t.items()},
        edit_config=lambda c: c.update(architectures=["GPT2Model"]),
    )
    backbone = zoo.from_pretrained(bare)
    assert isinstance(backbone, GPTBackbone)
    assert isinstance(zoo.from_pretrained(folder, task="backbone"), GPTBackbone)
    real = outputs["input_attention_mask"] == 1
    sequence = predict(backbone, model_inputs(outputs))["sequence_output"]
    np.testing.assert_allclose(sequence[real], outputs["output_sequence_output"][real],
                               atol=1e-5, rtol=0)
    zoo.save_pretrained(backbone, tmp_path / "saved")
    written = load_file(tmp_path / "saved" / "model.safetensors")
    assert set(written) == set(load_file(bare / "model.safetensors"))
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["architectures"] == ["GPT2Model"]


@pytest.mark.parametrize("name", ["gpt2", "llama_untied"])
@pytest.mark.slow
def test_loading_as_classifier_loads_the_backbone_only(name, tmp_path):
    folder, outputs = reference(name)
    prefix = "transformer." if name == "gpt2" else "model."
    bare = copy_fixture(  # a GPT2Model / LlamaModel style folder: backbone tensors only
        name, tmp_path,
        edit_tensors=lambda t: {k.removeprefix(prefix): v for k, v in t.items()
                                if k.startswith(prefix)},
        edit_config=lambda c: c.update(architectures=["GPT2Model" if name == "gpt2"
                                                      else "LlamaModel"]),
    )
    real = outputs["input_attention_mask"] == 1
    inputs = model_inputs(outputs)
    for source in (bare, folder):  # the causal LM folder's head tensors are left out
        model = zoo.from_pretrained(source, task="classifier", num_classes=3)
        assert isinstance(model, Classifier)
        assert predict(model, inputs).shape == (2, 3)
        sequence = predict(model.backbone, inputs)["sequence_output"]
        np.testing.assert_allclose(sequence[real], outputs["output_sequence_output"][real],
                                   atol=1e-5, rtol=0)
    with pytest.raises(zoo.CheckpointError, match="Classifier"):
        zoo.save_pretrained(model, tmp_path / "classifier")


@pytest.mark.parametrize("name,edit,message", [
    ("llama", lambda t: t.pop("model.layers.1.mlp.up_proj.weight"),
     r"missing tensors \['model\.layers\.1\.mlp\.up_proj\.weight'\]"),
    ("llama_untied", lambda t: t.pop("lm_head.weight"), r"missing tensors \['lm_head\.weight'\]"),
    ("gpt2", lambda t: t.update({"transformer.h.0.ln_one.weight":
                                 t.pop("transformer.h.0.ln_1.weight")}),
     r"missing tensors \['transformer\.h\.0\.ln_1\.weight'\]; unexpected tensors "
     r"\['transformer\.h\.0\.ln_one\.weight'\]"),
    ("llama", lambda t: t.update({"model.extra.weight": np.zeros(3, "float32")}),
     r"unexpected tensors \['model\.extra\.weight'\]"),
    # Transposed: the same number of values, so only a shape check catches them.
    ("gpt2", lambda t: t.update({"transformer.h.1.attn.c_attn.weight":
                                 t["transformer.h.1.attn.c_attn.weight"].T.copy()}),
     r"transformer\.h\.1\.attn\.c_attn\.weight has shape \(96, 32\), the model needs "
     r"\(32, 96\)"),
    ("gpt2", lambda t: t.update({"transformer.h.0.attn.c_attn.bias":
                                 t["transformer.h.0.attn.c_attn.bias"][:64].copy()}),
     r"transformer\.h\.0\.attn\.c_attn\.bias has shape \(64,\), the model needs \(96,\)"),
    ("gpt2", lambda t: t.update({"transformer.h.0.mlp.c_fc.weight":
                                 t["transformer.h.0.mlp.c_fc.weight"].T.copy()}),
     r"transformer\.h\.0\.mlp\.c_fc\.weight has shape \(128, 32\)"),
    ("llama", lambda t: t.update({"model.layers.0.self_attn.k_proj.weight":
                                  t["model.layers.0.self_attn.k_proj.weight"].T.copy()}),
     r"model\.layers\.0\.self_attn\.k_proj\.weight has shape \(32, 16\), the model needs "
     r"\(16, 32\)"),
    ("llama", lambda t: t.update({"model.norm.weight": t["model.norm.weight"][:30].copy()}),
     r"model\.norm\.weight has shape \(30,\)"),
])
def test_bad_tensors_are_named(name, edit, message, tmp_path):
    folder = copy_fixture(name, tmp_path, edit_tensors=lambda t: (edit(t), t)[1])
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(folder)


@pytest.mark.parametrize("name,change,message", [
    ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
    ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}},
     "rope_parameters"),
    ("llama", {"attention_bias": True}, "attention_bias=True"),
    ("llama", {"mlp_bias": True}, "mlp_bias=True"),
    ("llama", {"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ("llama", {"head_dim": 16}, "head_dim=16"),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ("gpt2", {"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
    ("gpt2", {"activation_function": "quick_gelu"}, "activation_function='quick_gelu'"),
    ("gpt2", {"architectures": ["GPT2ForSequenceClassification"]},
     r"'GPT2ForSequenceClassification' is not supported.*'GPT2LMHeadModel'"),
    ("llama", {"num_hidden_layers": None}, "num_hidden_layers"),
])
def test_unsupported_config_features_are_refused(name, change, message, tmp_path):
    folder = copy_fixture(name, tmp_path, edit_config=lambda c: c.update(change))
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(folder)


def test_old_style_rope_theta_and_default_rope_scaling_load(tmp_path):
    """transformers 4 writes `rope_theta` at the top level, sometimes a 'default' scaling."""
    def old_style(config):
        config["rope_theta"] = config.pop("rope_parameters")["rope_theta"] * 2
        config["rope_scaling"] = {"rope_type": "default"}

    model = zoo.from_pretrained(copy_fixture("llama", tmp_path, edit_config=old_style))
    assert model.backbone.config.rotary_max_wavelength == 20000


def test_a_config_of_neither_style_cannot_be_saved(tmp_path):
    model = zoo.build("gpt", task="causal_lm", position="rotary")  # GPT-2 with rotary
    with pytest.raises(zoo.CheckpointError, match="position='rotary'"):
        zoo.save_pretrained(model, tmp_path / "mixed")


# --- GGUF ----------------------------------------------------------------------------------

try:
    import gguf
except ImportError:  # a dependency of the zoo; skip rather than fail where it is missing
    gguf = None
needs_gguf = pytest.mark.skipif(gguf is None, reason="the `gguf` package is not installed")

# Hugging Face Llama name -> llama.cpp name, written out here independently of the loader.
GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight",
              "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
GGUF_LAYER_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
                    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                    "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
                    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                    "mlp.down_proj": "ffn_down"}
TOKENS = [f"<t{i}>" for i in range(99)]
MERGES = ["Ġ t", "i n"]


def gguf_name(hf_name):
    if hf_name in GGUF_NAMES:
        return GGUF_NAMES[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{GGUF_LAYER_NAMES[rest.removesuffix('.weight')]}.weight"


def llama_cpp_permute(weights, n_head, n_head_kv):
    """llama.cpp's `convert_hf_to_gguf.py` `LlamaModel.permute`, verbatim."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(path, name="llama", qtype="F32", architecture="llama", drop=(), types=None):
    """A tiny reference Llama converted as llama.cpp does; 2-D weights whose rows are whole
    blocks of 32 are stored as `qtype`, the others (and norms) as F32; `types` forces some."""
    hf_config = json.loads((REFERENCE / name / "config.json").read_text())
    heads, kv_heads = hf_config["num_attention_heads"], hf_config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(hf_config["num_hidden_layers"])
    writer.add_context_length(hf_config["max_position_embeddings"])
    writer.add_embedding_length(hf_config["hidden_size"])
    writer.add_feed_forward_length(hf_config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(hf_config["rope_parameters"]["rope_theta"])
    writer.add_rope_dimension_count(hf_config["head_dim"])
    writer.add_layer_norm_rms_eps(hf_config["rms_norm_eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(TOKENS)
    writer.add_token_merges(MERGES)
    for hf_name, weight in sorted(load_file(REFERENCE / name / "model.safetensors").items()):
        if hf_name.endswith("q_proj.weight"):
            weight = llama_cpp_permute(weight, heads, heads)
        elif hf_name.endswith("k_proj.weight"):
            weight = llama_cpp_permute(weight, heads, kv_heads)
        target = gguf_name(hf_name)
        if target in drop:
            continue
        kind = (types or {}).get(target, qtype if weight.ndim == 2 and weight.shape[-1] % 32 == 0
                                 else "F32")
        kind = gguf.GGMLQuantizationType[kind]
        if kind == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(target, weight)
        else:
            writer.add_tensor(target, gguf.quants.quantize(weight, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@needs_gguf
@pytest.mark.parametrize("name", ["llama", "llama_untied"])
@pytest.mark.slow
def test_gguf_of_the_reference_matches_its_logits(name, tmp_path):
    """Undoing llama.cpp's query/key permutation and its names gives the reference's logits."""
    _, outputs = reference(name)
    model = zoo.from_pretrained(write_gguf(tmp_path / f"{name}.gguf", name))
    assert isinstance(model, CausalLM)
    assert (model.lm_head is None) == (name == "llama")
    real = outputs["input_attention_mask"] == 1
    logits = predict(model, model_inputs(outputs))
    np.testing.assert_allclose(logits[real], outputs["output_logits"][real], atol=1e-5, rtol=0)
    expected = outputs["output_generated"][0].tolist()
    assert greedy(model, outputs["input_prompt"], len(expected))[0] == expected

    path = tmp_path / f"{name}.gguf"
    for task, kind in [("backbone", GPTBackbone), ("classifier", Classifier)]:
        model = zoo.from_pretrained(path, task=task, num_classes=2) if task == "classifier" \
            else zoo.from_pretrained(path, task=task)
        assert isinstance(model, kind)
        backbone = getattr(model, "backbone", model)
        sequence = predict(backbone, model_inputs(outputs))["sequence_output"]
        np.testing.assert_allclose(sequence[real], outputs["output_sequence_output"][real],
                                   atol=1e-5, rtol=0)


@needs_gguf
@pytest.mark.parametrize("qtype", ["F16", "Q8_0", "Q4_0", "Q4_1"])
def test_gguf_quantized_types_dequantize_exactly(qtype, tmp_path):
    """Each weight is what gguf's own dequantization gives (quantization works row by row,
    so it commutes with llama.cpp's row permutation)."""
    model = zoo.from_pretrained(write_gguf(tmp_path / "q.gguf", qtype=qtype))
    hf = load_file(REFERENCE / "llama" / "model.safetensors")
    kind = gguf.GGMLQuantizationType[qtype]
    attention = model.backbone.transformer_layers[1].self_attention
    for hf_name, kernel in [("model.layers.1.self_attn.q_proj.weight", attention.query_dense),
                            ("model.layers.1.self_attn.k_proj.weight", attention.key_dense)]:
        expected = gguf.quants.dequantize(gguf.quants.quantize(hf[hf_name], kind), kind)
        assert np.abs(expected - hf[hf_name]).max() > 0  # the type is lossy
        loaded = np.asarray(kernel.kernel).reshape(32, -1).T
        np.testing.assert_allclose(loaded, expected, atol=1e-7, rtol=0)
    table = hf["model.embed_tokens.weight"]
    np.testing.assert_allclose(
        np.asarray(model.backbone.token_embedding.token_embedding.embeddings),
        gguf.quants.dequantize(gguf.quants.quantize(table, kind), kind), atol=1e-7, rtol=0)


@needs_gguf
def test_gguf_vocabulary_returns_tokens_and_merges(tmp_path):
    from zoo.checkpoints.gguf import gguf_vocabulary

    tokens, merges = gguf_vocabulary(write_gguf(tmp_path / "v.gguf"))
    assert tokens == TOKENS and merges == MERGES


@needs_gguf
@pytest.mark.parametrize("make,message", [
    (lambda p: write_gguf(p, types={"blk.0.attn_v.weight": "Q5_0"}),
     r"types the zoo cannot dequantize: \{'blk\.0\.attn_v\.weight': 'Q5_0'\}"),
    (lambda p: write_gguf(p, architecture="gpt2"), r"'gpt2' model.*\['llama'\]"),
    (lambda p: write_gguf(p, drop=("blk.1.ffn_up.weight",)),
     r"missing tensors \['blk\.1\.ffn_up\.weight'\]"),
    (lambda p: p.write_text("not a gguf file at all"), "cannot be read as GGUF"),
    (lambda p: p.write_bytes(write_gguf(p).read_bytes()[:2000]), "cannot be read as GGUF"),
    (lambda p: p.write_bytes(write_gguf(p).read_bytes()[:-1000]), "cannot be read as GGUF"),
])
def test_bad_gguf_files_are_refused_by_name(make, message, tmp_path):
    path = tmp_path / "bad.gguf"
    make(path)
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(path)


# --- real weights: SmolLM2-135M-Instruct (Q4_1) ---------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    return zoo.from_pretrained(smollm2_path())


@needs_gguf
@pytest.mark.pretrained
@pytest.mark.slow
def test_smollm2_gguf_says_paris(smollm2):
    """Greedy decoding matches transformers' on the same file (dequantization is the same,
    so the logits agree to float32 rounding: 4e-5 measured, of logits up to 20)."""
    reference_outputs = np.load(REFERENCE / "smollm2.npz")
    model, prompt = smollm2, reference_outputs["prompt"].astype("int32")
    assert model.backbone.config.kv_heads == 3 and model.lm_head is None
    assert model.count_params() == 134_515_008  # the `smollm2-135m` preset's size

    ids, last_logits = greedy(model, prompt, prompt.shape[1] + 3)
    np.testing.assert_allclose(last_logits, reference_outputs["last_logits"], atol=1e-4, rtol=0)
    generated = ids[prompt.shape[1]:]
    assert generated[:len(reference_outputs["paris"])] == reference_outputs["paris"].tolist()
    expected = reference_outputs["generated"][0, prompt.shape[1]:].tolist()
    assert generated == expected[:3]  # " Paris", ".", "\n"


@needs_gguf
@pytest.mark.pretrained
@pytest.mark.slow
def test_smollm2_gguf_vocabulary_spells_the_prompt():
    from zoo.checkpoints.gguf import gguf_vocabulary

    tokens, merges = gguf_vocabulary(smollm2_path())
    assert len(tokens) == 49152 and len(merges) == 48900
    prompt = np.load(REFERENCE / "smollm2.npz")["prompt"][0]
    assert [tokens[i] for i in prompt] == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"]
    assert tokens[7042] == "ĠParis" and merges[0] == "Ġ t"
