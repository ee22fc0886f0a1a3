"""Task metrics beyond accuracy: perplexity (a Keras metric), entity-level F1 for NER
(seqeval's definition), corpus BLEU (sacrebleu), ROUGE for summaries (Google's `rouge-score`)
and SQuAD's exact match and F1 (the official v1.1 and v2.0 evaluation scripts' definitions).

Example:

>>> from training import metrics
>>> truth = [["B-PER", "I-PER", "O", "B-LOC"]]
>>> guess = [["B-PER", "I-PER", "O", "B-ORG"]]
>>> scores = metrics.entity_f1(truth, guess)
>>> scores["precision"], scores["recall"], scores["f1"]
(0.5, 0.5, 0.5)
>>> round(metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 1)
100.0
>>> metrics.squad_scores(["1889", "Paris"], [["in 1889", "1889"], ["Lyon"]])
{'exact_match': 50.0, 'f1': 50.0, 'total': 2}
>>> metrics.rouge(["the cat lay on the mat"], ["the cat sat on the mat"])["rouge2"]
60.0
"""

import re
import string
from collections import Counter

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_transformers")
class Perplexity(keras.metrics.Metric):
    """exp of the mean cross-entropy per token, from logits; sample weights (0 on padding)
    weight the mean."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        losses = -ops.take_along_axis(log_probs, labels, axis=-1)[..., 0]
        weights = ops.ones_like(losses) if sample_weight is None else ops.broadcast_to(
            ops.cast(sample_weight, "float32"), ops.shape(losses))
        self.total.assign_add(ops.sum(losses * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.exp(self.total / ops.maximum(self.count, 1e-9))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


def entities(tags):
    """The entities of one IOB sentence as a set of `(type, start, end)` (end exclusive),
    seqeval's default (lenient) way: an `I-X` that does not continue an `X` starts one, and
    `E-`/`S-` tags (IOBES) end one."""
    found, kind, start = set(), None, None
    for position, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-") if tag not in ("O", "") else ("O", "", "")
        ends = kind is not None and (
            prefix in ("O", "B", "S") or label != kind
        )
        if ends:
            found.add((kind, start, position))
            kind = None
        if prefix in ("B", "S") or (prefix in ("I", "E") and kind is None):
            kind, start = label, position
        if kind is not None and prefix in ("E", "S"):
            found.add((kind, start, position + 1))
            kind = None
    return found


def entity_f1(true_tags, predicted_tags):
    """Micro precision, recall and F1 over the entities of the sentences (seqeval's
    `classification_report` micro average); `true_tags` and `predicted_tags` are lists of
    sentences, each a list of tag strings of equal length."""
    if len(true_tags) != len(predicted_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(predicted_tags)} predicted.")
    correct = true_count = predicted_count = 0
    for index, (truth, guess) in enumerate(zip(true_tags, predicted_tags, strict=True)):
        if len(truth) != len(guess):
            raise ValueError(f"sentence {index}: {len(truth)} true tags but {len(guess)} "
                             "predicted.")
        true_set, guess_set = entities(truth), entities(guess)
        correct += len(true_set & guess_set)
        true_count += len(true_set)
        predicted_count += len(guess_set)
    precision = correct / predicted_count if predicted_count else 0.0
    recall = correct / true_count if true_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "entities": true_count}


def bleu(hypotheses, references):
    """Corpus BLEU (sacrebleu's default: 13a tokenization, 4-grams) of translations against
    one reference each, 0-100."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} translations but {len(references)} references.")
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(predictions, references, stem=True):
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of summaries against one reference each, as
    Google's `rouge-score` computes them (lower case, runs of letters and digits as words,
    Porter stemming of words longer than 3 letters when `stem`), averaged over the examples,
    0-100.

    Args:
        predictions: list of str, one summary per example.
        references: list of str, the reference summary of each example.
        stem: bool, stem words before matching ("runs" matches "running").

    Returns:
        dict: `{"rouge1": float, "rouge2": float, "rougeL": float}`.

    Raises:
        ValueError: `predictions` and `references` differ in length, or are empty.

    >>> scores = rouge(["running dogs"], ["the dog runs"])
    >>> round(scores["rouge1"], 2), rouge(["running dogs"], ["the dog runs"], stem=False)["rouge1"]
    (80.0, 0.0)
    """
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} summaries but {len(references)} references.")
    if not predictions:
        raise ValueError("no summaries to score.")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(_text(reference), _text(prediction))
        for kind in ROUGE_TYPES:
            totals[kind] += scores[kind].fmeasure
    return {kind: 100.0 * total / len(predictions) for kind, total in totals.items()}


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s):
    """SQuAD's answer normalization (both official scripts): lower case, remove ASCII
    punctuation (`string.punctuation`), remove the articles a/an/the as whole words, collapse
    white space, in that order.

    Args:
        s: str, an answer.

    Returns:
        str: the normalized answer.

    >>> normalize_answer("The  Eiffel-Tower, in Paris!")
    'eiffeltower in paris'
    >>> normalize_answer("A theory")
    'theory'
    """
    text = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _text(answer):
    return answer.decode("utf-8") if isinstance(answer, bytes) else str(answer)


def _golds(golds):
    """The gold answers with text left after normalization, or `[""]` (no answer), as in the
    v2.0 script; a str is one gold answer, bytes are decoded as UTF-8."""
    golds = [golds] if isinstance(golds, (str, bytes)) else golds
    kept = [_text(gold) for gold in golds if normalize_answer(_text(gold))]
    return kept or [""]


def _exact(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction, gold):
    predicted, true = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not true:
        return float(predicted == true)
    same = sum((Counter(predicted) & Counter(true)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(true)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction, golds):
    """1.0 when the normalized `prediction` equals one of the normalized gold answers, else 0.0.

    Args:
        prediction: str (or UTF-8 bytes), the predicted answer; "" for no answer.
        golds: list of str, the gold answers (a str is one); [] or [""] for an unanswerable
            question, which only "" (or text that normalizes to it) matches.

    Returns:
        float: 0.0 or 1.0.

    >>> exact_match("the Eiffel Tower", ["Eiffel Tower", "tower"]), exact_match("", [])
    (1.0, 1.0)
    """
    prediction = _text(prediction)
    return max(_exact(prediction, gold) for gold in _golds(golds))


def f1(prediction, golds):
    """Token-level F1 of the normalized `prediction` against the normalized gold answers
    (tokens counted with multiplicity), the maximum over the golds. When either side has no
    tokens (an unanswerable question, an empty prediction) F1 is their exact match.

    Args:
        prediction: str (or UTF-8 bytes), the predicted answer; "" for no answer.
        golds: list of str, the gold answers (a str is one); [] or [""] when unanswerable.

    Returns:
        float: in [0, 1].

    >>> round(f1("the Eiffel tower in Paris", ["Eiffel Tower"]), 4)
    0.6667
    """
    prediction = _text(prediction)
    return max(_f1(prediction, gold) for gold in _golds(golds))


def squad_scores(predictions, references):
    """Exact match and F1 of SQuAD's official scripts, averaged over the questions, in percent.

    Args:
        predictions: list of str, one predicted answer per question ("" for no answer).
        references: list of lists of str, the gold answers of each question ([] for an
            unanswerable one); a question is unanswerable when no gold answer has text left
            after `normalize_answer`.

    Returns:
        dict: `exact_match` and `f1` (float, 0-100) and `total` (int). When any question is
        unanswerable (SQuAD 2.0), also the v2.0 script's breakdown under snake_case names:
        `has_answer_exact_match`, `has_answer_f1`, `has_answer_total` (its `HasAns_exact`,
        `HasAns_f1`, `HasAns_total`), `no_answer_exact_match`, `no_answer_f1`,
        `no_answer_total` (`NoAns_...`; scores of a group with no question are nan), and
        `no_answer_accuracy`, the fraction (0-1) of unanswerable questions answered "".

    Raises:
        ValueError: `predictions` and `references` differ in length, or are empty.

    >>> scores = squad_scores(["1889", "", "Bern"], [["in 1889", "1889"], [], []])
    >>> round(scores["exact_match"], 2), scores["no_answer_total"], scores["no_answer_accuracy"]
    (66.67, 2, 0.5)
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        raise ValueError("no predictions to score.")
    exact, scores, answerable = [], [], []
    for prediction, golds in zip(predictions, references, strict=True):
        golds = _golds(golds)
        exact.append(exact_match(prediction, golds))
        scores.append(f1(prediction, golds))
        answerable.append(golds != [""])

    def mean(values, has_answer=None):
        chosen = [v for v, a in zip(values, answerable, strict=True)
                  if has_answer is None or a == has_answer]
        return 100.0 * sum(chosen) / len(chosen) if chosen else float("nan")

    result = {"exact_match": mean(exact), "f1": mean(scores), "total": len(predictions)}
    if all(answerable):
        return result
    for prefix, has_answer in (("has_answer", True), ("no_answer", False)):
        result[f"{prefix}_exact_match"] = mean(exact, has_answer)
        result[f"{prefix}_f1"] = mean(scores, has_answer)
        result[f"{prefix}_total"] = sum(a == has_answer for a in answerable)
    result["no_answer_accuracy"] = result["no_answer_exact_match"] / 100.0
    return result
