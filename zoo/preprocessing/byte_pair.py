"""GPT-2's byte-level BPE, written in TF ops: the pre-tokenization regex (rewritten for RE2,
which has no lookahead), the byte-to-unicode alphabet, and the merges applied by rank in a
`tf.while_loop`."""

import json
import os
import re

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from zoo.preprocessing.tokenizer import PACKAGE, Tokenizer, hash_table, read_text


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


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        special_tokens: tokens of the vocabulary that text may write whole (`<|im_start|>`):
            each occurrence in the text is its id, the text around it is split and merged
            apart (Hugging Face's added tokens, llama.cpp's control tokens).
        start_id, end_id, pad_id: the ids of the start, end and padding tokens; by default
            `<|endoftext|>` for start and end, where the vocabulary has it, and no padding.
        chat_template: an instruct model's Jinja chat template (see `Tokenizer`).

    Bytes that are not UTF-8 are replaced by U+FFFD first (as Python's `errors="replace"`).
    `detokenize` is the exact inverse of `call` for UTF-8 text. As in GPT-2's encoder,
    `<|endoftext|>` written in the text is split like any text unless it is one of
    `special_tokens`: add it as an id (`add_special_tokens=True`).

    Example:
    >>> from zoo import paths
    >>> tokenizer = BytePairTokenizer(paths.data_file("gpt2", "encoder.json"),
    ...                               paths.data_file("gpt2", "vocab.bpe"))
    >>> tokenizer("Hello world").numpy().tolist()
    [15496, 995]
    >>> tokenizer.detokenize([[15496, 995]]).numpy().tolist()
    [b'Hello world']
    >>> vocabulary = tokenizer.get_vocabulary()
    >>> marked = BytePairTokenizer({t: i for i, t in enumerate(vocabulary)}, tokenizer.merges,
    ...                            special_tokens=["<|endoftext|>"])
    >>> marked("Hello<|endoftext|> world").numpy().tolist()
    [15496, 50256, 995]
    """

    def __init__(self, vocabulary, merges, split_digits=False, unknown_token=None,
                 special_tokens=None, start_id=None, end_id=None, pad_id=None, **kwargs):
        super().__init__(**kwargs)
        self.split_digits = split_digits
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = json.loads(read_text(vocabulary, "the BPE vocabulary"))
        if isinstance(merges, (str, os.PathLike)):
            merges = read_text(merges, "the BPE merges").split("\n")
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
        self._ranks = hash_table(keys or [-1], ranks or [0], self._no_rank, tf.int64, tf.int32)
        self._merged = hash_table(keys or [-1], merged or [0], -1, tf.int64, tf.int32)

        unicode_to_byte = {symbol: byte for byte, symbol in byte_symbols.items()}
        token_bytes = [
            b"".join(
                bytes([unicode_to_byte[c]]) if c in unicode_to_byte else c.encode("utf-8")
                for c in token
            )
            for token in tokens
        ]
        self._id_to_bytes = hash_table(np.arange(size), token_bytes, b"", tf.int64, tf.string)
        default = vocabulary.get("<|endoftext|>")
        self.start_id = default if start_id is None else int(start_id)
        self.end_id = default if end_id is None else int(end_id)
        self.pad_id = None if pad_id is None else int(pad_id)
        self.unk_id = vocabulary.get(unknown_token)
        self._set_special_tokens(special_tokens or (), vocabulary)

    def _set_special_tokens(self, special_tokens, vocabulary):
        unknown = [token for token in special_tokens if token not in vocabulary]
        if unknown:
            raise ValueError(f"special tokens {unknown[:5]} are not in the vocabulary: give "
                             "tokens of it.")
        self.special_tokens = tuple(special_tokens)
        # The longest first: RE2 takes the first alternative that matches.
        ordered = sorted(set(special_tokens), key=len, reverse=True)
        self._special_pattern = "|".join(re.escape(token) for token in ordered)
        self._special_ids = hash_table(ordered or [""], [vocabulary[t] for t in ordered] or [-1],
                                       -1, tf.string, tf.int32)

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
        if not self.special_tokens:
            return self._byte_pairs(strings)
        # Special tokens cut the text; each part is one special id or merged on its own.
        parts = tf_text.regex_split(strings, self._special_pattern, self._special_pattern)
        special = self._special_ids.lookup(parts.flat_values)
        is_special = special >= 0
        text_ids = self._byte_pairs(tf.where(is_special, "", parts.flat_values))
        special_ids = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(special, is_special), tf.cast(is_special, tf.int64), validate=False)
        per_part = tf.concat([special_ids, text_ids], axis=1)
        return tf.RaggedTensor.from_row_splits(
            per_part.values, tf.gather(per_part.row_splits, parts.row_splits), validate=False)

    def _byte_pairs(self, strings):
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
            "special_tokens": list(self.special_tokens),
            "start_id": self.start_id,
            "end_id": self.end_id,
            "pad_id": self.pad_id,
        }


