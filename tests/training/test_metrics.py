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


@pytest.mark.parametrize("prediction, reference, expected", [
    # 5 of 6 words, 3 of 5 bigrams, a longest common subsequence of 5 words
    ("the cat lay on the mat", "the cat sat on the mat", (500 / 6, 60.0, 500 / 6)),
    # precision 1, recall 2/6 (F 0.5); one bigram of 1 and of 5 (F 1/3)
    ("the cat", "the cat sat on the mat", (50.0, 100 / 3, 50.0)),
    ("The CAT, sat!", "the cat sat", (100.0, 100.0, 100.0)),  # case and punctuation ignored
    ("mat the on", "on the mat", (100.0, 0.0, 100 / 3)),  # the order counts for ROUGE-2 and L
])
def test_rouge_f_measures_are_hand_counted_overlaps(prediction, reference, expected):
    scores = metrics.rouge([prediction], [reference])
    assert [scores[k] for k in ("rouge1", "rouge2", "rougeL")] == pytest.approx(expected)


def test_rouge_stems_and_averages_over_examples():
    assert metrics.rouge(["running dogs"], ["the dog runs"])["rouge1"] == pytest.approx(80.0)
    assert metrics.rouge(["running dogs"], ["the dog runs"], stem=False)["rouge1"] == 0.0
    scores = metrics.rouge(["a cat", "a dog", "nothing"], ["a cat", "a dog", "alike"])
    assert scores["rouge1"] == pytest.approx(200 / 3)  # the mean of 100, 100 and 0
    assert metrics.rouge([b"a cat"], [b"a cat"])["rougeL"] == 100.0  # bytes are read as UTF-8


def test_rouge_refuses_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="^1 summaries but 2 references.$"):
        metrics.rouge(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="^no summaries to score.$"):
        metrics.rouge([], [])


def test_bleu_is_sacrebleus_corpus_bleu():
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == \
        pytest.approx(100.0)
    partial = metrics.bleu(["the cat sat on a mat today"], ["the cat sat on the mat"])
    assert 0.0 < partial < 100.0
    with pytest.raises(ValueError, match="1 translations but 2 references"):
        metrics.bleu(["a"], ["a", "b"])


@pytest.mark.parametrize("prediction, golds, exact, f1", [
    ("Eiffel Tower", ["eiffel tower"], 1, 1),  # case
    ("Eiffel Tower.", ["Eiffel-Tower"], 0, 0),  # punctuation removed, not split on: "eiffeltower"
    ("3.14159!", ["314159"], 1, 1),
    ("the Eiffel Tower", ["Eiffel Tower"], 1, 1),  # articles as whole words only
    ("A theory", ["theory"], 1, 1),
    ("theory", ["ory"], 0, 0),  # "the" inside a word stays
    ("an  apple\n\tpie ", ["apple pie"], 1, 1),  # white space
    ("São Paulo", ["são paulo"], 1, 1),  # lower() is Unicode
    ("Bern —", ["Bern"], 0, 2 / 3),  # "—" is not in string.punctuation: a token
    ("Paris", ["London", "in Paris", "paris"], 1, 1),  # the best gold
    ("in Paris", ["London", "Paris, France"], 0, 0.5),  # p 1/2, r 1/2
    ("the Eiffel tower in Paris", ["Eiffel Tower"], 0, 2 / 3),  # p 2/4, r 2/2
    ("Gustave Eiffel's company", ["Gustave Eiffel"], 0, 0.4),  # "eiffels": p 1/3, r 1/2
    ("tin tin tin", ["tin and tin"], 0, 2 / 3),  # 2 common tokens: p 2/3, r 2/3
    ("tin", ["tin tin"], 0, 2 / 3),  # p 1/1, r 1/2
    ("", [""], 1, 1),  # no answer, rightly
    ("", [], 1, 1),
    ("the", [], 1, 1),  # normalizes to ""
    ("Bern", [], 0, 0),  # an answer to an unanswerable question
    ("", ["Bern"], 0, 0),  # no answer to an answerable one
    ("a", ["the", "an"], 1, 1),  # golds that normalize to "" count as no answer
    ("Bern", "Bern", 1, 1),  # a str is one gold
    (b"Z\xc3\xbcrich", [b"z\xc3\xbcrich"], 1, 1),  # UTF-8 bytes, as TFDS gives them
])
def test_squad_exact_match_and_f1_follow_the_official_script(prediction, golds, exact, f1):
    assert metrics.exact_match(prediction, golds) == exact
    assert metrics.f1(prediction, golds) == pytest.approx(f1)


def test_normalize_answer_in_the_official_order():
    assert metrics.normalize_answer("The  (Eiffel) Tower, an icon!") == "eiffel tower icon"
    assert metrics.normalize_answer("the.the") == "thethe"  # punctuation goes first
    assert metrics.normalize_answer("A.N. Other") == "other"  # "an" is a word once "." goes
    assert metrics.normalize_answer("Then the theme") == "then theme"


def test_squad_scores_of_answerable_questions_are_exact_match_and_f1_in_percent():
    scores = metrics.squad_scores(["Eiffel Tower", "the Eiffel tower in Paris", "London"],
                                  [["Eiffel Tower"], ["Eiffel Tower"], ["Paris", "in Paris"]])
    assert scores == pytest.approx({"exact_match": 100 / 3, "f1": 100 * (1 + 2 / 3) / 3,
                                    "total": 3})


def test_squad_scores_split_answerable_and_unanswerable_questions():
    predictions = ["1889", "in March 1889", "", "Bern", ""]
    references = [["1889", "in 1889"], ["March 1889"], [], [""], np.array([b"Bern"])]
    # exact match 1, 0, 1, 0, 0; F1 1, 0.8 (p 2/3, r 1), 1, 0, 0
    assert metrics.squad_scores(predictions, references) == pytest.approx({
        "exact_match": 40.0, "f1": 56.0, "total": 5,
        "has_answer_exact_match": 100 / 3, "has_answer_f1": 60.0, "has_answer_total": 3,
        "no_answer_exact_match": 50.0, "no_answer_f1": 50.0, "no_answer_total": 2,
        "no_answer_accuracy": 0.5})
    only_unanswerable = metrics.squad_scores(["", ""], [[], []])
    assert only_unanswerable["no_answer_accuracy"] == 1.0
    assert only_unanswerable["has_answer_total"] == 0
    assert np.isnan(only_unanswerable["has_answer_f1"])


def test_squad_scores_refuse_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metrics.squad_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no predictions"):
        metrics.squad_scores([], [])
