"""Marian's tokenizer (the opus-mt models): SentencePiece pieces looked up in `vocab.json`."""

import base64
import json
import os

import keras
import numpy as np
import tensorflow as tf

from zoo.preprocessing.sentencepiece import SentencePieceTokenizer
from zoo.preprocessing.tokenizer import PACKAGE, Tokenizer, read_text

WORD_START = "\u2581"  # SentencePiece's "▁", a space before the piece
UNKNOWN_TEXT = " \u2047 "  # what SentencePiece writes for an unknown piece: " ⁇ "


@keras.saving.register_keras_serializable(package=PACKAGE)
class MarianTokenizer(Tokenizer):
    """A Marian checkpoint's tokenizer: `source.spm` cuts text into pieces, `vocab.json` gives
    each piece its id (a piece the vocabulary lacks is `<unk>`); the model's ids are not the
    SentencePiece model's own. The reference is Hugging Face's `MarianTokenizer`.

    Args:
        source_proto: the source SentencePiece model (`bytes`, or the path of `source.spm`).
        target_proto: the target one (`target.spm`), for `tokenize_target`.
        vocabulary: `vocab.json`'s piece -> id (a dict, or the file's path); ids run from 0
            without gaps. `</s>` ends sequences (`end_id`), `<unk>` is `unk_id`, `<pad>`
            pads and starts the decoder (`pad_id`, opus-mt's `decoder_start_token_id`).
        fast: SentencePiece through tf-text's fast variant (unigram models; TFLite).

    Calling it tokenizes source text; `tokenize_target` target text (Hugging Face's
    `text_target`); `detokenize` joins the pieces of ids back into text, leaving out `</s>`
    and `<pad>` (Hugging Face's `decode(..., skip_special_tokens=True)`). Not supported: the
    language codes of multilingual models (a leading `>>de<<`).

    Example:

    >>> import json, tempfile
    >>> from zoo import paths
    >>> spm = paths.data_file("sentencepiece", "botchan_en_unigram_1000.model")
    >>> pieces = ["▁This", "▁is", "▁a", "▁", "t", "est", "."]   # source.spm's
    >>> vocabulary = {"</s>": 0, "<unk>": 1, **{p: i + 2 for i, p in enumerate(pieces)},
    ...               "<pad>": 9}
    >>> tokenizer = MarianTokenizer(spm, spm, vocabulary)
    >>> tokenizer("This is a test.").numpy().tolist()
    [2, 3, 4, 5, 6, 7, 8]
    >>> tokenizer.detokenize([2, 3, 4, 5, 6, 7, 8, 0, 9]).numpy()
    b'This is a test.'
    """

    def __init__(self, source_proto, target_proto, vocabulary, fast=False, **kwargs):
        super().__init__(**kwargs)
        self.source = SentencePieceTokenizer(source_proto, fast=fast, name="source")
        self.target = SentencePieceTokenizer(target_proto, fast=fast, name="target")
        self.fast = fast
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = json.loads(read_text(vocabulary, "Marian's vocab.json"))
        tokens = _tokens_by_id(vocabulary)
        self._set_vocabulary(tokens)
        for name, token in (("unk_id", "<unk>"), ("end_id", "</s>"), ("pad_id", "<pad>")):
            if token not in self._vocab.ids:
                raise ValueError(f"Marian's vocabulary has no {token!r} token; a vocab.json "
                                 f"from a Marian checkpoint has '</s>', '<unk>' and '<pad>'.")
            setattr(self, name, self._vocab.ids[token])
        self._source_ids = self._piece_ids(self.source)
        self._target_ids = self._piece_ids(self.target)
        self._pieces = tf.constant(tokens)
        special = np.zeros(len(tokens), bool)
        special[[self.end_id, self.pad_id]] = True
        self._special = tf.constant(special)

    def _piece_ids(self, sentencepiece):
        """The vocabulary id of each of a SentencePiece model's ids (`<unk>` where absent)."""
        return tf.constant([self._vocab.ids.get(piece, self.unk_id)
                            for piece in sentencepiece.get_vocabulary()], tf.int32)

    def _tokenize(self, strings):
        return tf.gather(self._source_ids, self.source._tokenize(strings))

    def tokenize_target(self, inputs):
        """Target text to ids with `target.spm`, as `__call__` does source text."""
        ids = self.target(inputs)
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(tf.gather, self._target_ids, ids)
        return tf.gather(self._target_ids, ids)

    def _detokenize(self, ids):
        ids = tf.ragged.boolean_mask(ids, tf.logical_not(tf.gather(self._special, ids)))
        pieces = tf.gather(self._pieces, ids)
        pieces = pieces.with_flat_values(
            tf.where(tf.equal(ids.flat_values, self.unk_id), UNKNOWN_TEXT, pieces.flat_values))
        text = tf.strings.regex_replace(tf.strings.reduce_join(pieces, axis=-1),
                                        WORD_START, " ")
        return tf.strings.strip(text)

    def get_config(self):
        return {
            **super().get_config(),
            "source_proto": base64.b64encode(self.source.proto).decode("ascii"),
            "target_proto": base64.b64encode(self.target.proto).decode("ascii"),
            "vocabulary": self.get_vocabulary(),
            "fast": self.fast,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("source_proto", "target_proto"):
            if isinstance(config.get(key), str):
                config[key] = base64.b64decode(config[key])
        if isinstance(config.get("vocabulary"), list):
            config["vocabulary"] = {token: i for i, token in enumerate(config["vocabulary"])}
        return cls(**config)


def _tokens_by_id(vocabulary):
    """vocab.json's tokens in id order; its ids must be 0, 1, ... without gaps."""
    ids = sorted(vocabulary.values())
    if ids != list(range(len(ids))):
        raise ValueError(f"Marian's vocab.json must number its {len(ids)} tokens 0 to "
                         f"{len(ids) - 1} without gaps or repeats; check the file.")
    tokens = [None] * len(ids)
    for token, index in vocabulary.items():
        tokens[index] = token
    return tokens
