"""Task metrics beyond accuracy: perplexity (a Keras metric), entity-level F1 for NER
(seqeval's definition) and corpus BLEU (sacrebleu).

Example:

>>> from training import metrics
>>> truth = [["B-PER", "I-PER", "O", "B-LOC"]]
>>> guess = [["B-PER", "I-PER", "O", "B-ORG"]]
>>> scores = metrics.entity_f1(truth, guess)
>>> scores["precision"], scores["recall"], scores["f1"]
(0.5, 0.5, 0.5)
>>> round(metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 1)
100.0
"""

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
