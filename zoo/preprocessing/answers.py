"""Answer extraction: start/end logits of the windows of each pair -> the answer text.

The rules of Hugging Face's SQuAD post-processing: a span starts and ends on context tokens of
one window, ends at or after its start, and is at most `max_answer_length` tokens long; its
score is the sum of its start and end logits, and the best span over all windows of a pair
wins. With `allow_no_answer` (SQuAD 2.0), the pair answers "" when its smallest "null" score
(the `[CLS]` start and end logits, over its windows) beats the best span. All of it is TF ops,
so the same function runs in `model.predict` and inside the exported `answer` signature.
"""

import tensorflow as tf

from zoo.preprocessing.question_answering import NOT_CONTEXT


def best_answers(logits, windows, max_answer_length=30, allow_no_answer=False):
    """The best answer of each (question, context) pair.

    Args:
        logits: `[windows, 2, length]` start and end logits (a `QuestionAnswering` model's
            output on `QuestionAnsweringPreprocessor.windows`' inputs).
        windows: the second output of `QuestionAnsweringPreprocessor.windows`
            (`example_index`, `token_start`, `token_end`, `context`).
        max_answer_length: the longest span, in tokens.
        allow_no_answer: answer "" when the null score beats every span.

    Returns a dict of `[pairs]` tensors: `answer` (string: the context's bytes of the span,
    "" for no answer), `start` and `end` (int32 byte offsets in the context, end exclusive;
    -1 for no answer), `score` (float32: the span's start probability times its end
    probability, each a softmax over its window's context tokens, with `[CLS]` among them
    when `allow_no_answer`; for no answer the `[CLS]` pair's, or 0 when there is no context).

    Example:

    >>> import numpy as np
    >>> windows = {"example_index": [0], "token_start": [[-1, 0, 4, -1]],
    ...            "token_end": [[-1, 3, 9, -1]], "context": ["Ada Byron"]}
    >>> logits = np.array([[[0, 1, 5, 0], [0, 0, 6, 0]]], "float32")
    >>> best_answers(logits, windows)["answer"].numpy().tolist()
    [b'Byron']
    """
    logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
    start_logits, end_logits = logits[:, 0], logits[:, 1]
    token_start = tf.cast(tf.convert_to_tensor(windows["token_start"]), tf.int32)
    token_end = tf.cast(tf.convert_to_tensor(windows["token_end"]), tf.int32)
    example_index = tf.cast(tf.convert_to_tensor(windows["example_index"]), tf.int32)
    contexts = tf.convert_to_tensor(windows["context"], tf.string)
    pairs = tf.shape(contexts)[0]
    count = tf.shape(logits)[0]
    length = tf.shape(logits)[2]
    in_context = token_start != NOT_CONTEXT

    # Every (start, end) pair of one window: [windows, length, length].
    scores = start_logits[:, :, None] + end_logits[:, None, :]
    position = tf.range(length)
    span_length = position[None, :] - position[:, None] + 1  # [start, end]
    band = (span_length >= 1) & (span_length <= max_answer_length)
    valid = band[None] & in_context[:, :, None] & in_context[:, None, :]
    scores = tf.where(valid, scores, -float("inf"))
    flat = tf.reshape(scores, [count, -1])
    best = tf.argmax(flat, axis=1, output_type=tf.int32)
    span_score = tf.reduce_max(flat, axis=1)
    span_first, span_last = best // length, best % length

    window = tf.range(count)
    pair_best = tf.math.unsorted_segment_max(span_score, example_index, pairs)
    best_window = _first_window(span_score >= tf.gather(pair_best, example_index), window,
                                example_index, pairs)
    null_score = start_logits[:, 0] + end_logits[:, 0]
    pair_null = tf.math.unsorted_segment_min(null_score, example_index, pairs)
    null_window = _first_window(null_score <= tf.gather(pair_null, example_index), window,
                                example_index, pairs)

    allowed = in_context
    if allow_no_answer:
        allowed = allowed | (position == 0)[None]
    start_probability = tf.nn.softmax(tf.where(allowed, start_logits, -float("inf")))
    end_probability = tf.nn.softmax(tf.where(allowed, end_logits, -float("inf")))

    first = tf.gather(span_first, best_window)
    last = tf.gather(span_last, best_window)
    start = tf.gather_nd(token_start, tf.stack([best_window, first], axis=1))
    end = tf.gather_nd(token_end, tf.stack([best_window, last], axis=1))
    score = (tf.gather_nd(start_probability, tf.stack([best_window, first], axis=1))
             * tf.gather_nd(end_probability, tf.stack([best_window, last], axis=1)))
    # (unsorted_segment_max gives the lowest finite float, not -inf, for a pair of no spans)
    has_span = tf.math.unsorted_segment_max(
        tf.cast(tf.reduce_any(valid, axis=[1, 2]), tf.int32), example_index, pairs) > 0
    no_answer = ~has_span
    null_probability = tf.zeros_like(score)
    if allow_no_answer:
        no_answer = no_answer | (pair_null > pair_best)
        null_probability = (tf.gather(start_probability[:, 0], null_window)
                            * tf.gather(end_probability[:, 0], null_window))
    start = tf.where(no_answer, -1, start)
    end = tf.where(no_answer, -1, end)
    answer = tf.strings.substr(contexts, tf.maximum(start, 0), tf.maximum(end - start, 0))
    return {"answer": answer, "start": start, "end": end,
            "score": tf.where(no_answer, tf.where(has_span, null_probability, 0.0), score)}


def _first_window(chosen, window, example_index, pairs):
    """Per pair, the first of its windows where `chosen` holds."""
    marked = tf.where(chosen, window, tf.shape(window)[0])
    return tf.minimum(tf.math.unsorted_segment_min(marked, example_index, pairs),
                      tf.shape(window)[0] - 1)
