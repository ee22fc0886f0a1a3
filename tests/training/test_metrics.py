import keras
import numpy as np
import pytest

from training import metrics


def random_tags(rng, length):
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-ORG", "I-ORG"]
    return [tags[i] for i in rng.integers(0, len(tags), size=length)]


def test_entity_f1_equals_seqeval_on_random_tag_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = [random_tags(rng, int(n)) for n in rng.integers(1, 12, size=6)]
        guess = [[t if rng.random() < 0.6 else random_tags(rng, 1)[0] for t in sentence]
                 for sentence in truth]
        ours = metrics.entity_f1(truth, guess)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(truth, guess))
        assert ours["precision"] == pytest.approx(seqeval.precision_score(truth, guess))
        assert ours["recall"] == pytest.approx(seqeval.recall_score(truth, guess))


def test_entities_of_a_sentence():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "B-LOC", "I-ORG"]
    assert metrics.entities(tags) == {("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5),
                                      ("LOC", 5, 6), ("ORG", 6, 7)}


def test_entity_f1_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="2 true sentences but 1 predicted"):
        metrics.entity_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 0: 2 true tags but 1 predicted"):
        metrics.entity_f1([["O", "O"]], [["O"]])


def test_perplexity_is_exp_of_the_weighted_mean_crossentropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 4, 7)).astype("float32")
    labels = rng.integers(0, 7, size=(2, 4))
    weights = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], "float32")
    metric = metrics.Perplexity()
    metric.update_state(labels, logits, sample_weight=weights)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    expected = np.exp((nll * weights).sum() / weights.sum())
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    metric.reset_state()
    metric.update_state(labels, np.zeros_like(logits))   # uniform over 7: perplexity 7
    np.testing.assert_allclose(float(metric.result()), 7.0, rtol=1e-5)
    assert isinstance(keras.metrics.deserialize(keras.metrics.serialize(metric)),
                      metrics.Perplexity)


def test_bleu_is_sacrebleus_corpus_bleu():
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == \
        pytest.approx(100.0)
    partial = metrics.bleu(["the cat sat on a mat today"], ["the cat sat on the mat"])
    assert 0.0 < partial < 100.0
    with pytest.raises(ValueError, match="1 translations but 2 references"):
        metrics.bleu(["a"], ["a", "b"])
