"""A SentencePiece model as a tokenizer, through tf-text (the fast variant converts to TFLite)."""

import base64
import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from zoo.preprocessing.sentencepiece_proto import parse_sentencepiece_model
from zoo.preprocessing.tokenizer import PACKAGE, Tokenizer, read_bytes


@keras.saving.register_keras_serializable(package=PACKAGE)
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model through tf-text.

    Args:
        proto: the serialized model (`bytes`) or the path of a `.model` file.
        fast: use `tf_text.FastSentencepieceTokenizer`, which converts to TFLite; it gives
            SentencePiece's ids for unigram models only, so other models are refused.

    Text the model cannot represent (unknown characters, bytes that are not UTF-8) becomes
    `unk_id`, which detokenizes to " ⁇ ". `detokenize` inverts `call` exactly for text that is
    already in SentencePiece's normal form (NFKC, single spaces, nothing unknown).

    Both variants differ from the `sentencepiece` library (0.2.3) in corners: the fast one
    reads tabs and newlines as spaces where SentencePiece makes them unknown; the regular one
    breaks some ties between equally scored segmentations the other way ("Hotta......." ends
    in "......" + "." for it, "." + "......" for SentencePiece: 4 of botchan's 4,289 lines).

    Example:
    >>> from zoo import paths
    >>> tokenizer = SentencePieceTokenizer(
    ...     paths.data_file("sentencepiece", "botchan_en_unigram_1000.model"))
    >>> tokenizer("This is a test.").numpy().tolist()
    [284, 47, 11, 4, 15, 400, 6]
    >>> tokenizer.detokenize([284, 47, 11, 4, 15, 400, 6]).numpy()
    b'This is a test.'
    """

    def __init__(self, proto, fast=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(proto, (str, os.PathLike)):
            proto = read_bytes(proto, "the SentencePiece model")
        self.proto = bytes(proto)
        model = parse_sentencepiece_model(self.proto)
        if fast and model["model_type"] != "unigram":
            raise ValueError(
                f"fast=True needs a unigram model: FastSentencepieceTokenizer gives other ids "
                f"than SentencePiece for a {model['model_type']} model. Use fast=False."
            )
        self.fast = fast
        self.model_type = model["model_type"]
        self._set_vocabulary(model["pieces"])
        self.unk_id, self.pad_id = model["unk"], model["pad"]
        self.start_id, self.end_id = model["bos"], model["eos"]
        self._sentencepiece = self._make_sentencepiece()

    def _make_sentencepiece(self):
        if self.fast:
            return tf_text.FastSentencepieceTokenizer(self.proto)
        return tf_text.SentencepieceTokenizer(self.proto, out_type=tf.int32)

    def _live_sentencepiece(self):
        # tf-text's SentencepieceTokenizer keeps its model in a resource owned by a kernel, and
        # `keras.backend.clear_session()` clears the kernel cache, which deletes it: make a new
        # one then (checked eagerly, also while a tf.function or tf.data map is traced).
        if not self.fast:
            with tf.init_scope():
                try:
                    self._sentencepiece.vocab_size()
                except tf.errors.NotFoundError:
                    self._sentencepiece = self._make_sentencepiece()
        return self._sentencepiece

    def _tokenize(self, strings):
        return tf.cast(self._live_sentencepiece().tokenize(strings), tf.int32)

    def _detokenize(self, ids):
        return self._live_sentencepiece().detokenize(ids)

    def get_config(self):
        return {
            **super().get_config(),
            "proto": base64.b64encode(self.proto).decode("ascii"),
            "fast": self.fast,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("proto"), str):
            config["proto"] = base64.b64decode(config["proto"])
        return cls(**config)

