import numpy as np
import pytest

import zoo
from tests.helpers import predict, run_backbone_test, run_task_test
from zoo import catalog

BATCH, LENGTH = 4, 12


def text_inputs(vocabulary_size=1024, seed=0):
    rng = np.random.default_rng(seed)
    padding_mask = np.ones((BATCH, LENGTH), "int32")
    padding_mask[1, 8:] = 0
    padding_mask[3, 5:] = 0
    return {
        "token_ids": rng.integers(1, vocabulary_size, (BATCH, LENGTH)).astype("int32")
        * padding_mask,
        "segment_ids": (np.arange(LENGTH)[None] >= 6).astype("int32").repeat(BATCH, 0),
        "padding_mask": padding_mask,
    }


@pytest.mark.slow
def test_backbone_outputs_and_padding_invariance(tmp_path):
    inputs = text_inputs()
    backbone, outputs = run_backbone_test(
        "bert", "tiny", inputs,
        {"sequence_output": (BATCH, LENGTH, 32), "pooled_output": (BATCH, 32)}, tmp_path)
    changed = {**inputs, "token_ids": inputs["token_ids"].copy()}
    changed["token_ids"][1, 8:] = 7  # padded tokens: real positions must not move
    again = predict(backbone, changed)["sequence_output"]
    np.testing.assert_allclose(again[1, :8], outputs["sequence_output"][1, :8], atol=1e-5)


@pytest.mark.slow
def test_classifier_round_trips_and_overfits_a_batch(tmp_path):
    model = zoo.build("bert", task="classifier", num_classes=3, dropout=0.0)
    run_task_test(model, text_inputs(), np.array([0, 1, 2, 1]), tmp_path, (BATCH, 3),
                  steps=40, max_loss=0.05)


@pytest.mark.slow
def test_token_classifier_ignores_minus_100_labels_and_overfits(tmp_path):
    model = zoo.build("bert", task="token_classifier", num_classes=5, dropout=0.0)
    inputs = text_inputs()
    labels = np.random.default_rng(1).integers(0, 5, (BATCH, LENGTH))
    labels[inputs["padding_mask"] == 0] = -100
    run_task_test(model, inputs, labels, tmp_path, (BATCH, LENGTH, 5), steps=60, max_loss=0.1)


@pytest.mark.slow
def test_question_answering_round_trips_and_overfits_a_batch(tmp_path):
    model = zoo.build("bert", task="question_answering", dropout=0.0)
    assert model.task_config() == {"max_answer_length": 30, "allow_no_answer": False}
    spans = np.array([[7, 9], [6, 6], [8, 11], [0, 0]])  # in the context; [CLS]: no answer
    run_task_test(model, text_inputs(), spans, tmp_path, (BATCH, 2, LENGTH), steps=60,
                  max_loss=0.1)


@pytest.mark.slow
def test_masked_lm_predicts_masked_tokens_and_overfits(tmp_path):
    model = zoo.build("bert", task="masked_lm", dropout=0.0)
    inputs = text_inputs()
    inputs["mask_positions"] = np.array([[1, 2], [3, 4], [0, 5], [2, 0]], "int32")
    targets = np.take_along_axis(inputs["token_ids"], inputs["mask_positions"], axis=1)
    weights = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], "float32")
    run_task_test(model, inputs, targets, tmp_path, (BATCH, 2, 1024), sample_weight=weights,
                  steps=60, max_loss=0.1, learning_rate=1e-2)


def test_masked_lm_head_is_tied_to_the_token_table():
    model = zoo.build("bert", task="masked_lm")
    table = model.backbone.token_embedding.token_embedding.embeddings
    assert sum(w is table for w in model.weights) == 1
    assert not model.backbone.config.use_pooler  # as BertForMaskedLM
    assert model.count_params() == model.backbone.count_params() + 32 * 32 + 32 + 2 * 32 + 1024


@pytest.mark.parametrize(
    "size,expected", [("base", 109_482_240), ("large", 335_141_888)]
)
def test_published_sizes_have_the_reference_parameter_counts(size, expected):
    # The catalog's count (cached: the README table test reuses it) is zoo.count_params'.
    assert catalog.parameter_counts("bert", size)[0] == expected


def test_without_pooler_base_matches_bert_model_without_pooling_layer():
    assert zoo.count_params("bert", "base", use_pooler=False) == 109_482_240 - 768 * 768 - 768


def test_question_answering_base_matches_bert_for_question_answering():
    # BertForQuestionAnswering: BertModel without its pooler, plus qa_outputs (768 -> 2).
    assert zoo.count_params("bert", "base", task="question_answering") == 108_893_186
    assert 108_893_186 == 109_482_240 - (768 * 768 + 768) + (768 * 2 + 2)
