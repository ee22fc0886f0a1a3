"""Task heads shared across families: sequence/image classification, token classification and
extractive question answering.

Example:

>>> import zoo
>>> model = zoo.build("bert", task="classifier", num_classes=3)
>>> type(model).__name__, model.backbone.config.num_layers
('Classifier', 2)
"""

import keras
import numpy as np
from keras import ops

from keras_transformers import Dropout
from keras_transformers.initializers import truncated_normal
from zoo.config import IGNORE_LABEL
from zoo.task import Task

PACKAGE = "zoo"
POOLINGS = ("pooled", "first_token", "last_token", "mean")


def pool(outputs, inputs, pooling):
    """One vector per example from a backbone's outputs.

    `pooled`: the backbone's pooler (BERT, ViT); `first_token`: `[CLS]` or the class token;
    `last_token`: the last real token, found from `padding_mask` (GPT); `mean`: the mean over
    real tokens (sentence embeddings).
    """
    sequence = outputs["sequence_output"]
    if pooling == "pooled":
        if "pooled_output" not in outputs:
            raise ValueError(
                "pooling='pooled' needs a backbone with a pooler (use_pooler=True); use "
                "'first_token' or 'mean' instead."
            )
        return outputs["pooled_output"]
    if pooling == "first_token":
        return sequence[:, 0]
    if not isinstance(inputs, dict) or "padding_mask" not in inputs:  # images: all real
        if pooling == "mean":
            return ops.mean(sequence, axis=1)
        raise ValueError(f"pooling={pooling!r} needs a `padding_mask` input; use 'mean'.")
    mask = ops.cast(inputs["padding_mask"], sequence.dtype)
    if pooling == "last_token":
        last = ops.cast(ops.sum(mask, axis=1), "int32") - 1
        return ops.take_along_axis(sequence, last[:, None, None], axis=1)[:, 0]
    if pooling == "mean":
        total = ops.sum(sequence * mask[:, :, None], axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    raise ValueError(f"Unknown pooling {pooling!r}. Choose one of {POOLINGS}.")


def classification_logits(features, num_classes, dropout, dtype):
    """Dropout, then a dense layer named `logits`: the output of every classification head."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int (the number of labels), got "
                         f"{num_classes!r}.")
    features = Dropout(dropout, dtype=dtype)(features)
    return keras.layers.Dense(
        num_classes, kernel_initializer=truncated_normal(),
        dtype=dtype, name="logits",
    )(features)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Classifier(Task):
    """Sequence or image classification: pool the backbone's outputs, dropout, a dense layer.

    Args:
        backbone: any zoo backbone.
        num_classes: number of labels.
        pooling: see `pool`; BERT and ViT use `"pooled"` (their pooler) or `"first_token"`,
            GPT `"last_token"`.
        dropout: before the output layer.

    Outputs logits `[batch, num_classes]`; `compile()` uses sparse categorical cross-entropy.
    """

    task_name = "classifier"

    def __init__(self, backbone, num_classes, pooling="first_token", dropout=0.1, **kwargs):
        inputs = backbone.input
        pooled = pool(backbone(inputs), inputs, pooling)
        logits = classification_logits(pooled, num_classes, dropout, backbone.build_dtype)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)
        self.num_classes, self.pooling, self.dropout = num_classes, pooling, dropout

    def task_config(self):
        return {"num_classes": self.num_classes, "pooling": self.pooling, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenClassifier(Task):
    """A label per token (NER): dropout and a dense layer on every position.

    Labels of `-100` (word pieces after the first, padding) are ignored by the default loss.

    Outputs logits `[batch, length, num_classes]`.
    """

    task_name = "token_classifier"
    IGNORE_LABEL = IGNORE_LABEL

    def __init__(self, backbone, num_classes, dropout=0.1, **kwargs):
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = classification_logits(sequence, num_classes, dropout, backbone.build_dtype)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)
        self.num_classes, self.dropout = num_classes, dropout

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=self.IGNORE_LABEL, reduction="mean_with_sample_weight"
        )

    def task_config(self):
        return {"num_classes": self.num_classes, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuestionAnswering(Task):
    """Extractive question answering: a start and an end logit per token (SQuAD).

    Hugging Face's `BertForQuestionAnswering` head: one dense layer `qa_outputs` (hidden ->
    2) on every position, no dropout. Inputs are the backbone's (the question as segment 0,
    the context as segment 1, from `zoo.preprocessing.QuestionAnsweringPreprocessor`).

    Args:
        backbone: an encoder with a `sequence_output` (BERT).
        max_answer_length: the longest answer, in tokens, that answer extraction picks
            (`zoo.answers.best_answers`; 30 as in Hugging Face's SQuAD script).
        allow_no_answer: SQuAD 2.0: answer "" when the `[CLS]` score (start and end at
            position 0) beats every span; SQuAD 1.1 always answers.

    Outputs logits `[batch, 2, length]`: row 0 the start logits, row 1 the end logits. Train
    with `y` `[batch, 2]` (the start and end token positions, 0 where a window does not hold
    the answer): the default loss, sparse cross-entropy averaged over both, is Hugging Face's
    `(start_loss + end_loss) / 2`.

    >>> import zoo
    >>> model = zoo.build("bert", task="question_answering")
    >>> tuple(model.output.shape)
    (None, 2, None)
    """

    task_name = "question_answering"

    def __init__(self, backbone, max_answer_length=30, allow_no_answer=False, **kwargs):
        if not isinstance(max_answer_length, int) or isinstance(max_answer_length, bool) \
                or max_answer_length < 1:
            raise ValueError(f"max_answer_length must be a positive int, got "
                             f"{max_answer_length!r}.")
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = keras.layers.Dense(2, kernel_initializer=truncated_normal(),
                                    dtype=backbone.build_dtype, name="qa_outputs")(sequence)
        logits = ops.transpose(logits, (0, 2, 1))
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone, **kwargs)
        self.max_answer_length, self.allow_no_answer = max_answer_length, bool(allow_no_answer)

    def answer(self, question, context, batch_size=32):
        """Answer questions about contexts, from strings (needs `model.preprocessor`).

        Args:
            question: a string or a list of strings.
            context: as many contexts (strings or UTF-8 bytes).
            batch_size: pairs per step (their windows go through the model together).

        Returns, for one pair, a dict: `answer` (str, "" for no answer), `start` and `end`
        (byte offsets in the context's UTF-8, end exclusive; -1 for no answer) and `score`
        (see `zoo.preprocessing.best_answers`); for a list, a list of such dicts.

        >>> model.answer("Who wrote it?", "Ada wrote the program.")  # doctest: +SKIP
        {'answer': 'Ada', 'start': 0, 'end': 3, 'score': 0.91}
        """
        from zoo.preprocessing.answers import best_answers

        if self.preprocessor is None:
            raise ValueError(
                "answer() reads strings: set model.preprocessor (zoo.from_pretrained attaches "
                "one; else zoo.preprocessing.QuestionAnsweringPreprocessor(tokenizer)).")
        single = isinstance(question, (str, bytes))
        questions = [question] if single else list(question)
        contexts = [context] if isinstance(context, (str, bytes)) else list(context)
        if len(questions) != len(contexts):
            raise ValueError(f"answer() got {len(questions)} questions and {len(contexts)} "
                             "contexts: give one context per question.")
        answers = []
        for first in range(0, len(questions), batch_size):
            chunk = slice(first, first + batch_size)
            inputs, windows = self.preprocessor.windows((questions[chunk], contexts[chunk]))
            logits = self.predict({k: v.numpy() for k, v in inputs.items()},
                                  batch_size=batch_size, verbose=0)
            found = best_answers(logits, windows, self.max_answer_length, self.allow_no_answer)
            columns = (found[k].numpy() for k in ("answer", "start", "end", "score"))
            for answer, start, end, score in zip(*columns, strict=True):
                answers.append({"answer": answer.decode("utf-8", "replace"),
                                "start": int(start), "end": int(end), "score": float(score)})
        return answers[0] if single else answers

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`Task.predict` on model inputs; on raw `(questions, contexts)` (strings, or a dict
        with `question` and `context`) the answers of `answer()`."""
        pair = x if isinstance(x, (tuple, list)) and len(x) == 2 else None
        if isinstance(x, dict) and set(x) == {"question", "context"}:
            pair = (x["question"], x["context"])
        if pair is not None and all(_is_text(part) for part in pair):
            return self.answer(pair[0], pair[1], batch_size=batch_size or 32)
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps,
                               callbacks=callbacks)

    def task_config(self):
        return {"max_answer_length": self.max_answer_length,
                "allow_no_answer": self.allow_no_answer}


def _is_text(value):
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO"
    return isinstance(value, (list, tuple)) and all(isinstance(v, (str, bytes)) for v in value)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BiasAdd(keras.layers.Layer):
    """A learned bias on the last axis (the output bias of a tied LM head)."""

    def build(self, inputs_shape):
        self.bias = self.add_weight(name="bias", shape=(inputs_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)
