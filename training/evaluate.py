"""Evaluate a trained model on a dataset split: the task's loss and metrics, plus entity F1 for
NER, BLEU for translation, ROUGE for summarization (beside the first N words of each document),
perplexity for language models, and the majority-class baseline for classifiers.

Example:

>>> from training import evaluate, runs
>>> model = runs.load_model("tests/fixtures/reference/bert_classifier")
>>> scores = evaluate.evaluate(model, "fortunes", "test[:16]", batch_size=8)  # doctest: +SKIP
"""

import collections
import re

import numpy as np

from training import datasets, features, pipelines, recipes

SENTENCE_END = re.compile(r"[.!?](?=\s)")


def evaluate(model, dataset, split="test", batch_size=32, max_translations=200, verbose=0,
             max_summaries=None, lead_words=8, generation=None):
    """The figures of `model` on a split, as a dict of floats.

    Args:
        model: a zoo task model with its preprocessor (`runs.load_model(run)`).
        dataset: a dataset name.
        split: the split to evaluate on.
        batch_size: examples per batch.
        max_translations: translation: BLEU over at most this many examples (generation is
            the slow part).
        verbose: Keras' progress bar setting for `model.evaluate`.
        max_summaries: summarization: ROUGE over at most this many examples (None: all).
        lead_words: summarization: the baseline's summary is each document's first
            `lead_words` words.
        generation: dict, options of `model.generate` for translation and summarization
            (`{"sampler": "beam", "num_beams": 4}`); greedy decoding when None.

    Keys: "loss" and the compiled metrics ("accuracy", "perplexity"); classifiers also
    "majority_baseline" (the accuracy of always answering the training split's most common
    label); token classifiers "entity_f1", "entity_precision", "entity_recall"; translation
    "bleu"; summarization (`features.is_summarization`) "rouge1", "rouge2", "rougeL" (F-measure,
    0-100, `training.metrics.rouge`) and the same of the lead baseline ("lead_8_rouge1", ...);
    question answering SQuAD's "exact_match" and "f1" (percent, the official script's
    normalisation, `training.metrics.squad_scores`; with unanswerable questions also its
    has/no-answer figures and "no_answer_accuracy"), and "first_sentence_exact_match" /
    "first_sentence_f1" (answering every question with its context's first sentence).
    """
    if getattr(model, "preprocessor", None) is None and isinstance(model.input, dict):
        raise ValueError("The model has no preprocessor to read text with: load it from its run "
                         "folder (training.runs.load_model) or attach one "
                         "(zoo.preprocessing.preprocessor_for).")
    task = recipes.task_name(model)
    if not model.compiled:
        recipe = recipes.recipe_for(task)
        recipes.compile(model, recipe, total_steps=1)
    data = pipelines.pipeline(model, dataset, split, batch_size)
    scores = {k: float(v) for k, v in
              model.evaluate(data, return_dict=True, verbose=verbose).items()}
    if task == "classifier":
        scores["majority_baseline"] = majority_baseline(dataset, split)
    if task == "token_classifier":
        f1 = token_f1(model, data, _tag_names(model, dataset))
        scores.update({"entity_f1": f1["f1"], "entity_precision": f1["precision"],
                       "entity_recall": f1["recall"]})
    if task == "seq2seq_lm" and features.is_summarization(dataset):
        scores.update(summary_rouge(model, dataset, split, max_summaries, batch_size,
                                    lead_words, generation))
    elif task == "seq2seq_lm":
        scores["bleu"] = translation_bleu(model, dataset, split, max_translations, batch_size,
                                          generation)
    if task == "question_answering":
        scores.update(squad_evaluation(model, *squad_questions(dataset, split), batch_size))
    return scores


def _labels(dataset, split):
    roles = features.roles_of(dataset)
    key = roles["label"]
    data = datasets.load(dataset, split).map(lambda e: e[key])
    return np.array(list(data.as_numpy_iterator()))


def majority_baseline(dataset, split, train_split="train"):
    """The accuracy on `split` of always answering the most common label of `train_split`."""
    most_common = collections.Counter(_labels(dataset, train_split).tolist()).most_common(1)[0][0]
    return float(np.mean(_labels(dataset, split) == most_common))


def _tag_names(model, dataset):
    if getattr(model, "label_names", None):
        return list(model.label_names)
    from training.train import label_names

    return label_names(dataset)


def token_f1(model, data, tag_names):
    """Entity-level F1 (`training.metrics.entity_f1`) of a token classifier over a pipeline of
    `(x, labels, sample_weight)` batches; only the labelled pieces (first piece of each word)
    count, so the tags are per word."""
    from training.metrics import entity_f1

    truth, guess = [], []
    for x, labels, weights in data:
        predicted = np.argmax(model.predict_on_batch(x), axis=-1)
        for row_labels, row_predicted, row_weights in zip(labels.numpy(), predicted,
                                                          weights.numpy(), strict=True):
            keep = row_weights > 0
            truth.append([tag_names[i] for i in row_labels[keep]])
            guess.append([tag_names[i] for i in row_predicted[keep]])
    return entity_f1(truth, guess)


def translation_bleu(model, dataset, split, limit, batch_size, generation=None):
    """Corpus BLEU of the translations (greedy unless `generation` says otherwise) of the
    first `limit` pairs of a split."""
    from training.metrics import bleu

    sources, references = source_target_pairs(dataset, split, limit)
    return bleu(generated(model, sources, batch_size, generation), references)


def summary_rouge(model, dataset, split, limit, batch_size, lead_words=8, generation=None):
    """ROUGE-1/2/L of the model's summaries (greedy unless `generation` says otherwise) of the
    first `limit` documents of a split (all when None), and of their first `lead_words`
    words (keys "lead_<n>_rouge1", ...)."""
    from training.metrics import rouge

    documents, references = source_target_pairs(dataset, split, limit)
    scores = rouge(generated(model, documents, batch_size, generation), references)
    baseline = rouge([lead(d, lead_words) for d in documents], references)
    scores.update({f"lead_{lead_words}_{k}": v for k, v in baseline.items()})
    return scores


def lead(text, words=8):
    """The first `words` words of `text` (split on white space), joined by spaces."""
    return " ".join(text.split()[:words])


def source_target_pairs(dataset, split, limit=None):
    """`(sources, targets)`: the strings of the first `limit` examples (all when None) of a
    source -> target dataset (translation, summarization)."""
    roles = features.roles_of(dataset)
    data = datasets.load(dataset, split)
    if limit is not None:
        data = data.take(limit)
    sources, targets = [], []
    for element in data.as_numpy_iterator():
        sources.append(_text(element[roles["source"]]))
        targets.append(_text(element[roles["target"]]))
    return sources, targets


def generated(model, sources, batch_size, generation=None):
    """The model's outputs for `sources`, `batch_size` at a time, up to the decoder's length in
    new tokens; `generation`: options of `model.generate` (greedy when None)."""
    if not hasattr(model, "generate"):
        raise ValueError(f"{type(model).__name__} cannot generate text, so its outputs cannot "
                         "be scored.")
    preprocessor = model.preprocessor
    length = getattr(preprocessor, "decoder_sequence_length", preprocessor.sequence_length)
    outputs = []
    for start in range(0, len(sources), batch_size):
        outputs += [_text(o) for o in model.generate(sources[start:start + batch_size],
                                                     max_new_tokens=length,
                                                     **(generation or {}))]
    return outputs


def squad_questions(dataset, split):
    """`(questions, contexts, golds)` of a SQuAD-format split: strings, and a list of gold
    answer texts per question (empty for an unanswerable one)."""
    roles = features.roles_of(dataset)
    questions, contexts, golds = [], [], []
    for element in datasets.load(dataset, split).as_numpy_iterator():
        questions.append(_text(element[roles["question"]]))
        contexts.append(_text(element[roles["context"]]))
        golds.append([_text(t) for t in element[roles["answers"]]["text"]])
    return questions, contexts, golds


def squad_evaluation(model, questions, contexts, golds, batch_size):
    """SQuAD's scores of a question answering model's answers, and those of answering with
    each context's first sentence (`first_sentence_exact_match`, `first_sentence_f1`)."""
    from training.metrics import squad_scores

    answers = model.answer(questions, contexts, batch_size=batch_size)
    scores = squad_scores([a["answer"] for a in answers], golds)
    baseline = squad_scores([first_sentence(c) for c in contexts], golds)
    scores.update({f"first_sentence_{k}": baseline[k] for k in ("exact_match", "f1")})
    return scores


def first_sentence(text):
    """The text up to the first sentence end (".", "!" or "?" before a space), or all of it."""
    match = SENTENCE_END.search(text)
    return text[:match.start() + 1] if match else text


def first_sentence_baseline(dataset, split):
    """SQuAD's scores of answering every question with the first sentence of its context."""
    from training.metrics import squad_scores

    _, contexts, golds = squad_questions(dataset, split)
    return squad_scores([first_sentence(c) for c in contexts], golds)


def _text(value):
    value = value.numpy() if hasattr(value, "numpy") else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
