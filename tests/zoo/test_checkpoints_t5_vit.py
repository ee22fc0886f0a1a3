"""T5 and ViT checkpoints against the Hugging Face reference fixtures, and the generic errors of
`zoo.from_pretrained` / `zoo.save_pretrained` (on a copy of the T5 fixture)."""

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import zoo
from zoo.checkpoints.t5 import ALIASES as T5_EMBEDDING_ALIASES
from zoo.t5 import Seq2SeqLM, T5Backbone

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
EOS = 1  # T5's end of sequence; the reference generated with min_new_tokens, which bans it
# Copies of `shared.weight` a T5 checkpoint may hold; compared to the reference without them.
T5_ALIASES = {*T5_EMBEDDING_ALIASES, "lm_head.weight"}


def reference(name):
    return REFERENCE / name, np.load(REFERENCE / name / "outputs.npz")


def t5_inputs(outputs):
    return {"encoder_token_ids": outputs["input_encoder_input_ids"].astype("int32"),
            "encoder_padding_mask": outputs["input_encoder_attention_mask"].astype("int32"),
            "decoder_token_ids": outputs["input_decoder_input_ids"].astype("int32"),
            "decoder_padding_mask": outputs["input_decoder_attention_mask"].astype("int32")}


def images(outputs):
    return outputs["input_pixel_values"].transpose(0, 2, 3, 1)  # NCHW -> NHWC


def run(model, inputs):
    result = model(inputs, training=False)
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    return np.asarray(result)


def greedy(model, inputs, new_tokens):
    """Greedy decoding with `encode` + `call_with_cache` from start id 0, end of sequence
    banned (the reference's `min_new_tokens`); the start token first, as Hugging Face's."""
    mask = inputs["encoder_padding_mask"]
    _, cross_attention_cache = model.encode(inputs["encoder_token_ids"], mask)
    batch = len(mask)
    tokens = np.zeros((batch, new_tokens + 1), "int32")
    cache = model.make_cache(batch, new_tokens + 1)
    for step in range(new_tokens):
        logits, cache = model.call_with_cache(tokens[:, step:step + 1], cache, step,
                                              cross_attention_cache, encoder_padding_mask=mask)
        logits = np.array(logits)[:, -1]
        logits[:, EOS] = -np.inf
        tokens[:, step + 1] = logits.argmax(-1)
    return tokens


def shapes(path, ignore=()):
    return {k: v.shape for k, v in load_file(path).items() if k not in ignore}


def copy_fixture(name, tmp_path, edit_tensors=None, edit_config=None):
    """A copy of a fixture folder, its tensors and config changed by the given functions."""
    folder = tmp_path / name
    folder.mkdir()
    config = json.loads((REFERENCE / name / "config.json").read_text())
    tensors = load_file(REFERENCE / name / "model.safetensors")
    if edit_config:
        edit_config(config)
    if edit_tensors:
        edit_tensors(tensors)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


# --- T5 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,tied,activation", [("t5", True, "relu"),
                                                  ("t5_v1_1", False, "geglu_tanh")])
@pytest.mark.slow
def test_t5_matches_the_reference_and_round_trips(name, tied, activation, tmp_path):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder)
    assert isinstance(model, Seq2SeqLM)
    config = model.backbone.config
    assert (config.tie_word_embeddings, config.activation) == (tied, activation)
    assert (model.lm_head is None) == tied
    inputs = t5_inputs(outputs)

    logits = run(model, inputs)
    real = inputs["decoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(logits[real], outputs["output_logits"][real], atol=1e-5)
    encoded = np.asarray(model.backbone.encode(inputs["encoder_token_ids"],
                                               inputs["encoder_padding_mask"], training=False))
    source = inputs["encoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(encoded[source],
                               outputs["output_encoder_sequence_output"][source], atol=1e-5)

    generated = outputs["output_generated"]
    np.testing.assert_array_equal(greedy(model, inputs, generated.shape[1] - 1), generated)

    # The way back: the reference's names and shapes (copies of the table aside), and a
    # checkpoint that loads into the same model.
    zoo.save_pretrained(model, tmp_path / "saved")
    assert shapes(tmp_path / "saved" / "model.safetensors", T5_ALIASES) == \
        shapes(folder / "model.safetensors", T5_ALIASES)
    written = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert written["architectures"] == ["T5ForConditionalGeneration"]
    assert written["scale_decoder_outputs"] is tied
    again = zoo.from_pretrained(tmp_path / "saved")
    assert again.backbone.config == config
    np.testing.assert_array_equal(run(again, inputs), logits)

    # The backbone alone is a T5Model: no head.
    zoo.save_pretrained(again.backbone, tmp_path / "backbone")
    written = json.loads((tmp_path / "backbone" / "config.json").read_text())
    assert written["architectures"] == ["T5Model"]
    assert "lm_head.weight" not in load_file(tmp_path / "backbone" / "model.safetensors")
    backbone = zoo.from_pretrained(tmp_path / "backbone")
    assert isinstance(backbone, T5Backbone)
    expected = run(again.backbone, inputs)
    result = run(backbone, inputs)
    for key in ("encoder_sequence_output", "decoder_sequence_output"):
        np.testing.assert_array_equal(result[key], expected[key])


def test_t5_embedding_copies_are_accepted_when_equal_and_refused_when_not(tmp_path):
    _, outputs = reference("t5")

    def add_copies(tensors):
        for name in T5_ALIASES:
            tensors[name] = tensors["shared.weight"].copy()

    model = zoo.from_pretrained(copy_fixture("t5", tmp_path, add_copies))
    np.testing.assert_allclose(run(model, t5_inputs(outputs)), outputs["output_logits"],
                               atol=1e-5)

    def add_other_table(tensors):
        tensors["decoder.embed_tokens.weight"] = tensors["shared.weight"] + 1.0

    (tmp_path / "other").mkdir()
    folder = copy_fixture("t5", tmp_path / "other", add_other_table)
    with pytest.raises(zoo.CheckpointError, match=r"decoder\.embed_tokens\.weight differs"):
        zoo.from_pretrained(folder)


def test_t5_v1_1_reads_its_own_lm_head_and_transformers_4_configs(tmp_path):
    """A v1.1 head is `lm_head.weight` where the checkpoint has one (flan-t5), else the token
    table (transformers 5 ties it); a transformers 4 config (`tie_word_embeddings: false`, no
    `scale_decoder_outputs`) means the same unscaled head."""
    _, outputs = reference("t5_v1_1")
    head = np.random.default_rng(0).normal(size=(99, 32)).astype("float32")

    def add_head(tensors):
        tensors["lm_head.weight"] = head

    def transformers_4(config):
        config.pop("scale_decoder_outputs")
        config["tie_word_embeddings"] = False

    model = zoo.from_pretrained(copy_fixture("t5_v1_1", tmp_path, add_head, transformers_4))
    assert model.backbone.config.tie_word_embeddings is False
    np.testing.assert_array_equal(model.lm_head.kernel.numpy(), head.T)
    np.testing.assert_array_equal(
        model.backbone.token_embedding.token_embedding.embeddings.numpy(),
        load_file(REFERENCE / "t5_v1_1" / "model.safetensors")["shared.weight"])
    inputs = t5_inputs(outputs)
    hidden = np.asarray(model.backbone(inputs, training=False)["decoder_sequence_output"])
    np.testing.assert_allclose(run(model, inputs), hidden @ head.T, atol=1e-5)


# --- ViT ----------------------------------------------------------------------------------


def test_vit_model_matches_the_reference_and_round_trips(tmp_path):
    folder, outputs = reference("vit")
    model = zoo.from_pretrained(folder)
    assert type(model).__name__ == "ViTBackbone" and model.config.use_pooler
    assert model.config.image_shape == (32, 32, 3) and model.config.patch_size == 8
    result = run(model, images(outputs))
    np.testing.assert_allclose(result["sequence_output"], outputs["output_sequence_output"],
                               atol=1e-5)
    np.testing.assert_allclose(result["pooled_output"], outputs["output_pooled_output"],
                               atol=1e-5)

    zoo.save_pretrained(model, tmp_path / "saved")
    assert shapes(tmp_path / "saved" / "model.safetensors") == shapes(folder / "model.safetensors")
    again = run(zoo.from_pretrained(tmp_path / "saved"), images(outputs))
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(again[key], result[key])


def test_vit_classifier_matches_the_reference_and_round_trips(tmp_path):
    folder, outputs = reference("vit_classifier")
    model = zoo.from_pretrained(folder)
    assert type(model).__name__ == "Classifier" and model.num_classes == 4
    assert model.backbone.config.use_pooler is False
    logits = run(model, images(outputs))
    np.testing.assert_allclose(logits, outputs["output_logits"], atol=1e-5)

    zoo.save_pretrained(model, tmp_path / "saved")
    assert shapes(tmp_path / "saved" / "model.safetensors") == shapes(folder / "model.safetensors")
    np.testing.assert_array_equal(run(zoo.from_pretrained(tmp_path / "saved"),
                                      images(outputs)), logits)


def test_vit_model_loads_as_a_backbone_under_a_new_classifier(tmp_path):
    folder, outputs = reference("vit")
    model = zoo.from_pretrained(folder, task="classifier", num_classes=7)
    assert type(model).__name__ == "Classifier" and model.num_classes == 7
    assert model.get_layer("logits").kernel.shape == (32, 7)
    backbone = zoo.from_pretrained(folder)
    for ours, theirs in zip(model.backbone.weights, backbone.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert run(model, images(outputs)).shape == (2, 7)
    # It pools through the pooler, which ViTForImageClassification has not.
    with pytest.raises(zoo.CheckpointError, match="first_token"):
        zoo.save_pretrained(model, tmp_path / "pooled")
    assert not (tmp_path / "pooled").exists()

    # Classifying the class token, it is a ViTForImageClassification (the pooler left out).
    model = zoo.from_pretrained(folder, task="classifier", num_classes=7, pooling="first_token")
    logits = run(model, images(outputs))
    zoo.save_pretrained(model, tmp_path / "saved")
    written = shapes(tmp_path / "saved" / "model.safetensors")
    assert written["classifier.weight"] == (7, 32)
    assert not [k for k in written if "pooler" in k or not k.startswith(("vit.", "classifier"))]
    np.testing.assert_array_equal(run(zoo.from_pretrained(tmp_path / "saved"),
                                      images(outputs)), logits)


# --- Bad checkpoints ----------------------------------------------------------------------


def remove(name):
    def edit(tensors):
        del tensors[name]
    return edit


def rename(name, new_name):
    def edit(tensors):
        tensors[new_name] = tensors.pop(name)
    return edit


def reshape(name, shape):
    def edit(tensors):
        tensors[name] = np.ascontiguousarray(tensors[name].reshape(shape))
    return edit


@pytest.mark.parametrize("fixture,edit,message", [
    ("t5", remove("decoder.block.1.layer.2.DenseReluDense.wo.weight"),
     r"missing tensors \['decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight'\]"),
    ("vit", rename("encoder.layer.1.layernorm_after.bias", "encoder.layer.1.layernorm.bias"),
     r"missing tensors \['encoder\.layer\.1\.layernorm_after\.bias'\]; unexpected tensors "
     r"\['encoder\.layer\.1\.layernorm\.bias'\]"),
    # The right size, the wrong shape: would load scrambled without the shape check.
    ("t5_v1_1", reshape("decoder.block.0.layer.2.DenseReluDense.wi_0.weight", (32, 48)),
     r"decoder\.block\.0\.layer\.2\.DenseReluDense\.wi_0\.weight has shape \(32, 48\)"),
    ("vit", reshape("embeddings.patch_embeddings.projection.weight", (8, 8, 3, 32)),
     r"embeddings\.patch_embeddings\.projection\.weight has shape \(8, 8, 3, 32\)"),
    ("vit", reshape("embeddings.position_embeddings", (17, 32)),
     r"embeddings\.position_embeddings has shape \(17, 32\)"),
    ("vit_classifier", remove("classifier.bias"), r"missing tensors \['classifier\.bias'\]"),
])
def test_bad_tensors_are_named(fixture, edit, message, tmp_path):
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(copy_fixture(fixture, tmp_path, edit))


def set_config(**values):
    def edit(config):
        config.update(values)
    return edit


@pytest.mark.parametrize("fixture,values,message", [
    ("t5", {"feed_forward_proj": "gated-silu"}, r"feed_forward_proj 'gated-silu'"),
    ("t5", {"architectures": ["T5EncoderModel"]}, "T5EncoderModel"),
    ("t5", {"architectures": ["T5ForQuestionAnswering"]}, "T5ForQuestionAnswering"),
    ("vit", {"hidden_act": "gelu_new"}, "hidden_act 'gelu_new'"),
    ("vit", {"qkv_bias": False}, "qkv_bias=False"),
    ("vit", {"architectures": ["ViTForMaskedImageModeling"]}, "ViTForMaskedImageModeling"),
])
def test_unsupported_configs_are_refused(fixture, values, message, tmp_path):
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(copy_fixture(fixture, tmp_path, edit_config=set_config(**values)))


def test_a_t5_without_a_hugging_face_feed_forward_is_not_written(tmp_path):
    model = zoo.build("t5", task="seq2seq_lm", activation="swiglu", vocabulary_size=50,
                      num_layers=1)
    with pytest.raises(zoo.CheckpointError, match="swiglu"):
        zoo.save_pretrained(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # nothing left behind, staging included


# --- Generic errors, on a copy of the T5 fixture --------------------------------------------


def t5_copy(tmp_path, *files):
    folder = tmp_path / "t5"
    folder.mkdir()
    for file in files:
        shutil.copy(REFERENCE / "t5" / file, folder / file)
    return folder


def test_a_folder_without_config_json(tmp_path):
    with pytest.raises(zoo.CheckpointError, match="no config.json"):
        zoo.from_pretrained(t5_copy(tmp_path, "model.safetensors"))


def test_a_folder_without_weights(tmp_path):
    with pytest.raises(zoo.CheckpointError, match="no model.safetensors"):
        zoo.from_pretrained(t5_copy(tmp_path, "config.json"))


class Trap:
    """Unpickling this writes a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_checkpoint_is_refused_unread(tmp_path):
    folder = t5_copy(tmp_path, "config.json")
    sprung = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Trap(sprung)))
    for path in (folder, folder / "pytorch_model.bin"):
        with pytest.raises(zoo.CheckpointError, match="safetensors"):
            zoo.from_pretrained(path)
    assert not sprung.exists()


def test_an_unknown_model_type_lists_the_supported(tmp_path):
    folder = copy_fixture("t5", tmp_path, edit_config=set_config(model_type="xlnet"))
    with pytest.raises(zoo.CheckpointError, match=r"'xlnet'.*Supported: \[.*'t5'.*'vit'"):
        zoo.from_pretrained(folder)


def test_a_truncated_safetensors_file(tmp_path):
    folder = t5_copy(tmp_path, "config.json")
    data = (REFERENCE / "t5" / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(zoo.CheckpointError, match="truncated or corrupt"):
        zoo.from_pretrained(folder)


def test_save_pretrained_does_not_overwrite_by_default(tmp_path):
    model = zoo.from_pretrained(REFERENCE / "vit")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save_pretrained(model, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    zoo.save_pretrained(model, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
