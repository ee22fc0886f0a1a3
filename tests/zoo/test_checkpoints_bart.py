"""BART against the Hugging Face reference fixtures: logits and encoder outputs of
`BartForConditionalGeneration`, logits of `BartForSequenceClassification` (3 heads of 8,
encoder 2 / decoder 3 layers, padded batches), `generate`'s greedy and beam tokens, BART's
tokenizer (GPT-2's BPE with BART's special tokens) from a checkpoint folder, and the
round trip through `zoo.save_pretrained`."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import zoo
from tests.fixtures.bart_vocabulary import write_bart_vocabulary
from zoo import paths
from zoo.bart import BartBackbone
from zoo.bart_classifier import BartClassifier
from zoo.seq2seq import Seq2SeqLM

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def reference(name):
    return REFERENCE / name, np.load(REFERENCE / name / "outputs.npz")


def seq2seq_inputs(outputs):
    return {"encoder_token_ids": outputs["input_encoder_input_ids"].astype("int32"),
            "encoder_padding_mask": outputs["input_encoder_attention_mask"].astype("int32"),
            "decoder_token_ids": outputs["input_decoder_input_ids"].astype("int32"),
            "decoder_padding_mask": outputs["input_decoder_attention_mask"].astype("int32")}


def classifier_inputs(outputs):
    return {"token_ids": outputs["input_input_ids"].astype("int32"),
            "padding_mask": outputs["input_attention_mask"].astype("int32")}


def run(model, inputs):
    result = model(inputs, training=False)
    if isinstance(result, dict):
        return {k: np.asarray(v) for k, v in result.items()}
    return np.asarray(result)


def shapes(path):
    return {k: v.shape for k, v in load_file(path).items()}


@pytest.fixture(scope="module")
def bart():
    """The fixture's `BartForConditionalGeneration`, with its tokenizer."""
    return zoo.from_pretrained(REFERENCE / "bart")


def test_seq2seq_lm_matches_the_reference(bart):
    _, outputs = reference("bart")
    assert isinstance(bart, Seq2SeqLM) and isinstance(bart.backbone, BartBackbone)
    config = bart.backbone.config
    assert (config.num_layers, config.decoder_depth, config.num_heads) == (2, 3, 3)
    assert config.max_sequence_length == 40  # the table holds 42 rows
    inputs = seq2seq_inputs(outputs)
    mask = inputs["decoder_padding_mask"] == 1
    np.testing.assert_allclose(run(bart, inputs)[mask], outputs["output_logits"][mask],
                               atol=1e-5, rtol=1e-5)
    encoded = run(bart.backbone, inputs)["encoder_sequence_output"]
    real = inputs["encoder_padding_mask"] == 1
    np.testing.assert_allclose(encoded[real], outputs["output_encoder_sequence_output"][real],
                               atol=1e-5, rtol=1e-5)


def test_classifier_matches_the_reference_and_round_trips(tmp_path):
    folder, outputs = reference("bart_classifier")
    model = zoo.from_pretrained(folder)
    assert isinstance(model, BartClassifier) and model.num_classes == 3
    inputs = classifier_inputs(outputs)
    logits = run(model, inputs)
    np.testing.assert_allclose(logits, outputs["output_logits"], atol=1e-5, rtol=1e-5)
    # The preprocessor packs text as BartTokenizer does: `<s> text </s>`, `<pad>` after.
    x = model.preprocessor(["The quick brown fox.", "Hello there, the <mask> world!", "a"])
    np.testing.assert_array_equal(x["token_ids"].numpy()[:, :18], inputs["token_ids"])

    zoo.save_pretrained(model, tmp_path / "saved")
    assert shapes(tmp_path / "saved" / "model.safetensors") == \
        shapes(folder / "model.safetensors")
    np.testing.assert_array_equal(run(zoo.from_pretrained(tmp_path / "saved"), inputs), logits)


@pytest.mark.slow
def test_seq2seq_lm_round_trips_through_save_pretrained(bart, tmp_path):
    folder, outputs = reference("bart")
    inputs = seq2seq_inputs(outputs)
    zoo.save_pretrained(bart, tmp_path / "saved")
    written = shapes(tmp_path / "saved" / "model.safetensors")
    assert written == shapes(folder / "model.safetensors")
    assert written["final_logits_bias"] == (1, 301)
    assert written["model.encoder.embed_positions.weight"] == (42, 24)
    again = zoo.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(run(again, inputs), run(bart, inputs))
    backbone = zoo.from_pretrained(tmp_path / "saved", task="backbone")
    assert isinstance(backbone, BartBackbone)
    np.testing.assert_array_equal(run(backbone, inputs)["decoder_sequence_output"],
                                  run(bart.backbone, inputs)["decoder_sequence_output"])


def generate_inputs(outputs):
    return {"encoder_token_ids": outputs["input_generate_input_ids"].astype("int32"),
            "encoder_padding_mask": outputs["input_generate_attention_mask"].astype("int32")}


@pytest.mark.parametrize("case,arguments", [
    ("greedy", {}),
    ("beam", {"sampler": "beam", "num_beams": 3, "length_penalty": 0.6}),
    ("beam_constrained", {"sampler": "beam", "num_beams": 3, "length_penalty": 0.6,
                          "min_length": 5, "no_repeat_ngram_size": 2}),
])
@pytest.mark.slow
def test_generate_equals_the_references_generate(bart, case, arguments):
    """Hugging Face starts the decoder from `</s>` (decoder_start_token_id), as the zoo's
    preprocessor does, and returns it first; the zoo returns the new tokens."""
    _, outputs = reference("bart")
    expected = outputs[f"output_{case}"]
    assert (expected[:, 0] == 2).all()
    result = bart.generate(generate_inputs(outputs), max_new_tokens=8, **arguments)
    np.testing.assert_array_equal(result["token_ids"], expected[:, 1:])


def test_preprocessor_packs_seq2seq_text_as_bart_does(bart):
    """The source `<s> text </s>`; the target `<s> text </s>`, the decoder reading it behind
    `</s>` (Hugging Face's `shift_tokens_right` of the labels)."""
    _, outputs = reference("bart")
    preprocessor = bart.preprocessor
    assert (preprocessor.start_id, preprocessor.end_id, preprocessor.pad_id,
            preprocessor.decoder_start_id) == (0, 2, 1, 2)
    x = preprocessor(["The quick brown fox.", "Hello there, the <mask> world!", "a"])
    np.testing.assert_array_equal(x["encoder_token_ids"].numpy()[:, :18],
                                  outputs["input_generate_input_ids"])
    x, y, weights = preprocessor((["The quick brown fox.", "Hello there, the <mask> world!"],
                                  ["Fox quick.", "the world"]))
    decoder = outputs["input_decoder_input_ids"]
    length = decoder.shape[1]
    np.testing.assert_array_equal(x["decoder_token_ids"].numpy()[:, :length], decoder)
    np.testing.assert_array_equal(x["decoder_padding_mask"].numpy()[:, :length],
                                  outputs["input_decoder_attention_mask"])
    np.testing.assert_array_equal(y.numpy()[:, :length - 1], decoder[:, 1:])
    np.testing.assert_array_equal(weights.numpy()[:, :length],
                                  outputs["input_decoder_attention_mask"])
    assert (y.numpy()[[0, 1], weights.numpy().sum(axis=1).astype(int) - 1] == 2).all()


def test_tokenizer_of_a_bart_folder_equals_bart_tokenizer(tmp_path):
    """GPT-2's whole vocabulary in BART's layout (50,260 tokens): ids as Hugging Face's
    BartTokenizer gives them, specials written in text included, and pairs."""
    from zoo import preprocessing

    size = write_bart_vocabulary(tmp_path, paths.data_file("gpt2"))
    reference_ids = np.load(REFERENCE / "bart_tokenizer.npz")
    tokenizer = preprocessing.tokenizer_from_folder(tmp_path)
    assert tokenizer.vocabulary_size() == size
    assert (tokenizer.start_id, tokenizer.end_id, tokenizer.pad_id) == (0, 2, 1)
    assert tokenizer.token_to_id("<mask>") == size - 1
    texts = [str(t) for t in reference_ids["texts"]]
    ids = tokenizer(texts, add_special_tokens=True).to_list()
    assert ids == [[int(i) for i in row if i >= 0] for row in reference_ids["ids"]]
    classifier = zoo.build("bart", task="classifier", num_classes=2, vocabulary_size=size)
    packer = preprocessing.preprocessor_for(classifier, tokenizer, sequence_length=32)
    x = packer((texts[:2], texts[2:4]))
    for row, expected in zip(x["token_ids"].numpy(), reference_ids["pairs"], strict=True):
        expected = [int(i) for i in expected if i >= 0]
        assert row[:len(expected)].tolist() == expected
        assert set(row[len(expected):].tolist()) <= {1}


def copy_fixture(tmp_path, edit_config=None, edit_tensors=None):
    folder = tmp_path / "bart"
    shutil.copytree(REFERENCE / "bart", folder)
    config = json.loads((folder / "config.json").read_text())
    tensors = load_file(folder / "model.safetensors")
    if edit_config:
        edit_config(config)
    if edit_tensors:
        edit_tensors(tensors)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_embedding_copies_are_accepted_when_equal_and_refused_when_not(tmp_path):
    _, outputs = reference("bart")

    def add_copies(tensors):
        for name in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                     "lm_head.weight"):
            tensors[name] = tensors["model.shared.weight"].copy()
        del tensors["final_logits_bias"]  # optional: the reference may leave it out

    model = zoo.from_pretrained(copy_fixture(tmp_path / "same", edit_tensors=add_copies),
                                task="backbone")
    inputs = seq2seq_inputs(outputs)
    real = inputs["encoder_padding_mask"] == 1
    np.testing.assert_allclose(run(model, inputs)["encoder_sequence_output"][real],
                               outputs["output_encoder_sequence_output"][real], atol=1e-5)

    def add_other_head(tensors):
        tensors["lm_head.weight"] = tensors["model.shared.weight"] + 1.0

    with pytest.raises(zoo.CheckpointError, match=r"lm_head\.weight differs from "
                                                  r"model\.shared\.weight"):
        zoo.from_pretrained(copy_fixture(tmp_path / "other", edit_tensors=add_other_head))


@pytest.mark.parametrize("values,message", [
    ({"decoder_attention_heads": 4}, "encoder_attention_heads=3 but decoder_attention_heads=4"),
    ({"decoder_ffn_dim": 48}, "encoder_ffn_dim=40 but decoder_ffn_dim=48"),
    ({"normalize_before": True}, "mBART's pre-norm"),
    ({"activation_function": "tanh"}, "activation_function 'tanh'"),
    ({"architectures": ["BartForQuestionAnswering"]}, "BartForQuestionAnswering"),
])
def test_unsupported_configs_are_refused(values, message, tmp_path):
    folder = copy_fixture(tmp_path, edit_config=lambda config: config.update(values))
    with pytest.raises(zoo.CheckpointError, match=message):
        zoo.from_pretrained(folder)


def test_a_missing_position_table_is_named(tmp_path):
    def remove(tensors):
        del tensors["model.decoder.embed_positions.weight"]

    with pytest.raises(zoo.CheckpointError,
                       match=r"missing tensors \['model\.decoder\.embed_positions\.weight'\]"):
        zoo.from_pretrained(copy_fixture(tmp_path, edit_tensors=remove))
