"""Marian checkpoints (the zoo's `transformer`) against Hugging Face's tiny random
`MarianMTModel` fixture: logits, `generate`, the tokenizer, the way back, refusals, and the
attention maps (`zoo.attention_maps`, `kt attention`)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import zoo
from tests.training.test_attention_command import assert_picture, kt
from tests.zoo.test_attention_maps import assert_probabilities
from tests.zoo.test_checkpoints_t5_vit import copy_fixture, run, set_config, shapes
from zoo import generation, paths
from zoo.attention_maps import trace
from zoo.attention_plots import heads_figure_inches
from zoo.seq2seq import Seq2SeqLM
from zoo.transformer import TransformerBackbone

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
OUTPUTS = np.load(REFERENCE / "marian" / "outputs.npz")
# Copies of `model.shared.weight` a Marian checkpoint may hold.
ALIASES = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
           "lm_head.weight")


def inputs(prefix="", outputs=OUTPUTS):
    """The fixture's model inputs (`prefix` "generate_": the 3 sources alone)."""
    names = {"encoder_token_ids": "encoder_input_ids",
             "encoder_padding_mask": "encoder_attention_mask",
             "decoder_token_ids": "decoder_input_ids",
             "decoder_padding_mask": "decoder_attention_mask"}
    if prefix:
        names = {"encoder_token_ids": "input_ids", "encoder_padding_mask": "attention_mask"}
    return {ours: outputs[f"input_{prefix}{theirs}"].astype("int32")
            for ours, theirs in names.items()}


def with_tokenizer(tmp_path, target="botchan_en_unigram_1000.model"):
    """The fixture with its SentencePiece models: botchan's unigram model as `source.spm` and
    `target.spm` (from `make data`, not committed; `target` another), `vocab.json` committed."""
    folder = tmp_path / "marian"
    shutil.copytree(REFERENCE / "marian", folder)
    for name, model in (("source.spm", "botchan_en_unigram_1000.model"), ("target.spm", target)):
        shutil.copy(paths.data_file("sentencepiece", model), folder / name)
    return folder


@pytest.mark.slow
def test_marian_matches_the_reference_and_round_trips(tmp_path):
    model = zoo.from_pretrained(REFERENCE / "marian")
    assert isinstance(model, Seq2SeqLM)
    config = model.backbone.config
    assert (config.num_layers, config.decoder_depth, config.num_heads) == (2, 3, 3)
    assert (config.activation, config.scale_embedding, config.max_sequence_length) == \
        ("silu", True, 40)
    assert generation.decoder_start_id_of(model) == 994  # <pad>, with no tokenizer files
    x = inputs()
    logits = run(model, x)
    real = x["decoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(logits[real], OUTPUTS["output_logits"][real], atol=1e-5)
    encoded = np.asarray(model.backbone.encode(x["encoder_token_ids"],
                                               x["encoder_padding_mask"], training=False))
    source = x["encoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(encoded[source],
                               OUTPUTS["output_encoder_sequence_output"][source], atol=1e-5)

    # The way back: the reference's names and shapes, and a checkpoint that loads alike.
    zoo.save_pretrained(model, tmp_path / "saved")
    assert shapes(tmp_path / "saved" / "model.safetensors") == \
        shapes(REFERENCE / "marian" / "model.safetensors")
    written = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert written["architectures"] == ["MarianMTModel"]
    assert (written["activation_function"], written["decoder_start_token_id"]) == ("swish", 994)
    again = zoo.from_pretrained(tmp_path / "saved")
    assert again.backbone.config == config
    np.testing.assert_array_equal(run(again, x), logits)

    # The backbone alone is a MarianModel: no prefix, no final_logits_bias.
    zoo.save_pretrained(again.backbone, tmp_path / "backbone")
    written = json.loads((tmp_path / "backbone" / "config.json").read_text())
    assert written["architectures"] == ["MarianModel"]
    saved = load_file(tmp_path / "backbone" / "model.safetensors")
    assert "final_logits_bias" not in saved and "shared.weight" in saved
    backbone = zoo.from_pretrained(tmp_path / "backbone")
    assert isinstance(backbone, TransformerBackbone)
    np.testing.assert_array_equal(run(backbone, x)["decoder_sequence_output"],
                                  run(again.backbone, x)["decoder_sequence_output"])


@pytest.mark.slow
@pytest.mark.parametrize("name,settings", [
    ("greedy", {}),
    ("beam", {"sampler": "beam", "num_beams": 3, "length_penalty": 0.6}),
])
def test_generate_equals_the_references_generate(name, settings, tmp_path):
    """From `<pad>` (994, the decoder's start), until `</s>` (0; the fixture's logits bias
    favours it, so one beam ends after one token) or 8 new tokens; then padding."""
    model = zoo.from_pretrained(with_tokenizer(tmp_path))
    out = model.generate(inputs("generate_"), max_new_tokens=8, **settings)
    expected = OUTPUTS[f"output_{name}"][:, 1:]
    np.testing.assert_array_equal(np.asarray(out["token_ids"]), expected)
    ended = (expected == 0).cumsum(axis=1) - (expected == 0) > 0  # after the end token
    np.testing.assert_array_equal(np.asarray(out["padding_mask"]), (~ended).astype("int32"))


def test_the_folders_tokenizer_is_hugging_faces_marian_tokenizer(tmp_path):
    model = zoo.from_pretrained(with_tokenizer(tmp_path))
    tokenizer = model.preprocessor.tokenizer
    assert type(tokenizer).__name__ == "MarianTokenizer"
    assert (tokenizer.end_id, tokenizer.unk_id, tokenizer.pad_id) == (0, 1, 994)
    assert model.preprocessor.decoder_start_id == 994
    sources = [str(s) for s in OUTPUTS["input_sources"]]
    x = model.preprocessor(sources)
    expected = OUTPUTS["input_generate_input_ids"]
    mask = OUTPUTS["input_generate_attention_mask"]
    np.testing.assert_array_equal(x["encoder_token_ids"].numpy()[:, :expected.shape[1]] * mask,
                                  expected * mask)
    assert [t.decode() for t in tokenizer.detokenize(expected).numpy()] == \
        [str(s) for s in OUTPUTS["input_decoded"]]
    again = type(tokenizer).from_config(tokenizer.get_config())  # as a .keras file keeps it
    assert again(sources).to_list() == tokenizer(sources).to_list()
    assert again.get_vocabulary() == tokenizer.get_vocabulary()
    targets = tokenizer.tokenize_target(["Nothing was said.", "home"]).to_list()
    assert [[*row, 0] for row in targets] == \
        [row[:row.index(0) + 1] for row in OUTPUTS["input_target_input_ids"].tolist()]
    # vocab.json leaves out some of source.spm's pieces ("▁name", "▁study"): they are <unk>.
    vocabulary = json.loads((REFERENCE / "marian" / "vocab.json").read_text())
    assert tokenizer("a name to study").numpy().tolist() == [vocabulary["▁a"], 1,
                                                            vocabulary["▁to"], 1]
    assert tokenizer.detokenize([vocabulary["▁a"], 1, 0]).numpy() == "a \u2047".encode()


def test_training_pairs_are_hugging_faces_labels_and_targets_use_target_spm(tmp_path):
    """Teacher forcing as Hugging Face's `text_target` labels shifted right behind `<pad>`;
    targets are cut by `target.spm` (here botchan's BPE model, sources by its unigram one)."""
    model = zoo.from_pretrained(with_tokenizer(tmp_path))
    preprocessor = model.preprocessor
    preprocessor.decoder_sequence_length = 7
    x, y, weights = preprocessor((["This is a test.", "a"], ["Nothing was said.", "home"]))
    expected = OUTPUTS["input_decoder_input_ids"]
    np.testing.assert_array_equal(x["decoder_token_ids"].numpy(), expected)
    np.testing.assert_array_equal(y.numpy(), OUTPUTS["input_target_input_ids"])
    assert weights.numpy().sum(axis=1).tolist() == [7, 2]

    (tmp_path / "bpe").mkdir()
    bpe = zoo.from_pretrained(with_tokenizer(tmp_path / "bpe", "botchan_en_bpe_1000.model"))
    tokenizer = bpe.preprocessor.tokenizer
    source, target = tokenizer("Nothing was said."), tokenizer.tokenize_target("Nothing was said.")
    assert source.numpy().tolist() != target.numpy().tolist()
    _, y, _ = bpe.preprocessor(("a", "Nothing was said."))
    assert y.numpy()[:len(target) + 1].tolist() == [*target.numpy().tolist(), 0]


def test_embedding_copies_and_position_tables_are_read(tmp_path):
    def add_copies(tensors):
        for name in ALIASES:
            tensors[name] = tensors["model.shared.weight"].copy()
        for stack in ("encoder", "decoder"):
            tensors[f"model.{stack}.embed_positions.weight"] = np.zeros((40, 24), "float32")

    model = zoo.from_pretrained(copy_fixture("marian", tmp_path, add_copies))
    x = inputs()
    real = x["decoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(run(model, x)[real], OUTPUTS["output_logits"][real], atol=1e-5)

    def add_other_head(tensors):
        tensors["lm_head.weight"] = tensors["model.shared.weight"] + 1.0

    (tmp_path / "other").mkdir()
    with pytest.raises(zoo.CheckpointError, match=r"lm_head\.weight differs"):
        zoo.from_pretrained(copy_fixture("marian", tmp_path / "other", add_other_head))


@pytest.mark.parametrize("values,message", [
    ({"share_encoder_decoder_embeddings": False}, "separate source and target vocabularies"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings false"),
    ({"decoder_attention_heads": 1}, "encoder_attention_heads=3 but decoder_attention_heads=1"),
    ({"activation_function": "tanh"}, "activation_function 'tanh'"),
    ({"architectures": ["MarianForCausalLM"]}, "MarianForCausalLM"),
])
def test_unsupported_marian_configs_are_refused(values, message, tmp_path):
    folder = copy_fixture("marian", tmp_path, edit_config=set_config(**values))
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(folder)


def test_a_source_longer_than_the_position_table_is_refused():
    model = zoo.from_pretrained(REFERENCE / "marian")
    x = {"encoder_token_ids": np.full((1, 41), 5, "int32"),
         "encoder_padding_mask": np.ones((1, 41), "int32")}
    with pytest.raises(ValueError, match="encoder_token_ids has 41 positions: at most 40"):
        model(dict(x, decoder_token_ids=x["encoder_token_ids"][:, :2],
                   decoder_padding_mask=x["encoder_padding_mask"][:, :2]))
    with pytest.raises(ValueError, match=r"holds 40 positions \(max_sequence_length\) but "
                                         r"was asked for positions 0\.\.40"):
        model.generate(x, max_new_tokens=4)
    with pytest.raises(ValueError, match="does not fit the model's context of 40"):
        model.generate(inputs("generate_"), max_new_tokens=40)


def test_attention_maps_come_from_the_layers_that_give_the_reference_outputs():
    model = zoo.from_pretrained(REFERENCE / "marian")
    x = inputs()
    maps, outputs = trace(model, x)
    source = x["encoder_padding_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(outputs["encoder_sequence_output"])[source],
                               OUTPUTS["output_encoder_sequence_output"][source], atol=1e-5)
    assert {kind: [m.shape for m in layers] for kind, layers in maps.items()} == {
        "encoder": [(2, 3, 11, 11)] * 2, "decoder": [(2, 3, 7, 7)] * 3,
        "cross": [(2, 3, 7, 11)] * 3}
    for layers in maps.values():
        for scores in layers:
            assert_probabilities(scores)
    assert np.triu(maps["decoder"][0], k=1).max() == 0.0  # causal
    assert maps["cross"][2][0, :, :, 8:].max() == 0.0  # the first source's 3 padded tokens


@pytest.mark.slow
def test_kt_attention_draws_encoder_decoder_and_cross_maps_of_a_marian_folder(tmp_path):
    out = tmp_path / "out"
    folder = with_tokenizer(tmp_path)
    assert kt(folder, "--text", "This is a test.", "--target", "a test", "--layer", "2",
              "--kind", "cross", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cross_layer_2.png",
                                                      "cross_layer_2_heads.png"]
    assert_picture(out / "cross_layer_2_heads.png", heads_figure_inches(3))
