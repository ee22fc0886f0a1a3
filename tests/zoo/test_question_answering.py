"""The question answering task: raw pairs through `answer` and `predict`, its arguments, the
`.keras` round trip with its preprocessor."""

import keras
import numpy as np
import pytest

import zoo
from tests.export.models import VOCABULARY
from zoo.preprocessing import QuestionAnsweringPreprocessor, WordPieceTokenizer

QUESTIONS = ["the quick fox", "", "a b"]
CONTEXTS = ["the quick brown fox jumps over the lazy dog.", "north wind", "a b c " * 20]


@pytest.fixture(scope="module")
def model():
    model = zoo.build("bert", task="question_answering", vocabulary_size=len(VOCABULARY),
                      max_answer_length=4)
    model.preprocessor = QuestionAnsweringPreprocessor(WordPieceTokenizer(VOCABULARY), 16)
    return model


def test_question_answering_is_a_bert_task_without_pooler():
    assert "question_answering" in zoo.tasks("bert")
    model = zoo.build("bert", task="question_answering")
    assert model.backbone.pooler is None and model.get_layer("qa_outputs").units == 2


@pytest.mark.slow
def test_answers_are_spans_of_their_contexts_and_predict_gives_the_same(model):
    answers = model.answer(QUESTIONS, CONTEXTS)
    for answer, context in zip(answers, CONTEXTS, strict=True):
        assert context.encode()[answer["start"]:answer["end"]].decode() == answer["answer"]
        assert 0 < answer["score"] <= 1 and answer["answer"]
        assert len(model.preprocessor.tokenizer(answer["answer"]).numpy()) <= 4
    assert model.predict((QUESTIONS, CONTEXTS)) == answers
    assert model.predict({"question": QUESTIONS, "context": CONTEXTS}) == answers
    assert model.answer(QUESTIONS[0], CONTEXTS[0]) == answers[0]
    assert model.answer(QUESTIONS, CONTEXTS, batch_size=1) == answers  # chunked alike


def test_predict_on_model_inputs_gives_start_and_end_logits(model):
    x = {k: v.numpy() for k, v in model.preprocessor((QUESTIONS, CONTEXTS)).items()}
    logits = model.predict(x, verbose=0)
    assert logits.shape == (len(x["token_ids"]), 2, 16) and len(x["token_ids"]) > 3


def test_keras_file_keeps_the_head_arguments_and_the_preprocessor(model, tmp_path):
    model.save(tmp_path / "qa.keras")
    loaded = keras.models.load_model(tmp_path / "qa.keras")
    assert (loaded.max_answer_length, loaded.allow_no_answer) == (4, False)
    assert loaded.preprocessor.sequence_length == 16
    assert loaded.answer(QUESTIONS, CONTEXTS) == model.answer(QUESTIONS, CONTEXTS)


def test_bad_calls_say_what_is_wrong(model):
    bare = zoo.build("bert", task="question_answering")
    with pytest.raises(ValueError, match="model.preprocessor"):
        bare.answer("q", "c")
    with pytest.raises(ValueError, match="2 questions and 1 contexts"):
        model.answer(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="max_answer_length must be a positive int"):
        zoo.build("bert", task="question_answering", max_answer_length=0)
    assert np.isfinite([a["score"] for a in model.answer(["x"], [""])]).all()
