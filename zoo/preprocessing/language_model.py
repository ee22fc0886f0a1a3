"""The language-model preprocessors: masked (BERT), causal (GPT) and sequence to sequence (T5)."""

import math

import keras
import tensorflow as tf

from zoo.preprocessing.packing import as_strings, pack, split_seed, unbatch
from zoo.preprocessing.preprocessor import TextPreprocessor
from zoo.preprocessing.text import TextClassifierPreprocessor
from zoo.preprocessing.tokenizer import PACKAGE


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
        pick_seed, kind_seed, token_seed = split_seed(self._draw_seed(seed), 3)
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
        return unbatch((inputs, mask_ids, weights), scalar)

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
        strings, scalar = as_strings(x)
        tokens = self._tokenize(strings)
        length = self.sequence_length
        ids, _, _ = pack([tokens], length + 1, self.start_id, self.end_id, self.pad_id)
        specials = int(self.start_id is not None) + int(self.end_id is not None)
        count = tf.minimum(tf.cast(tokens.row_lengths(), tf.int32) + specials, length + 1)
        weights = tf.sequence_mask(count - 1, length, dtype=tf.int32)
        first = tf.one_hot(tf.zeros_like(count), length, dtype=tf.int32)
        inputs = {"token_ids": ids[:, :-1], "padding_mask": tf.maximum(weights, first)}
        return unbatch((inputs, ids[:, 1:], tf.cast(weights, tf.float32)), scalar)

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
    `sample_weight` 1 where it is real. With `add_start_token` both are `[start] ... [end]`
    (BART's: the decoder then reads `</s> <s> target`). A tokenizer with a `tokenize_target`
    method cuts the targets with it (Marian's `target.spm`).

    Args:
        tokenizer: a tokenizer with an end id.
        sequence_length: the encoder's length.
        decoder_sequence_length: the decoder's; `sequence_length` when None.
        decoder_start_id: the first decoder token; the tokenizer's pad id when it has one
            (T5's convention), else its start id.
        add_start_token: put the tokenizer's start token before source and target.

    Call arguments:
        x: `{"encoder_text": ..., "decoder_text": ...}` or a tuple `(source, target)`; without
            a target, the decoder inputs are the start token alone and no `y` is returned.

    Returns `(x, y, sample_weight)`, `x` with "encoder_token_ids", "encoder_padding_mask",
    "decoder_token_ids", "decoder_padding_mask".
    """

    def __init__(self, tokenizer, sequence_length=128, decoder_sequence_length=None,
                 decoder_start_id=None, add_start_token=False, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.decoder_sequence_length = decoder_sequence_length or sequence_length
        self.end_id = self._need("end_id", "an end token")
        self.add_start_token = bool(add_start_token)
        self.start_id = self._need("start_id", "a start token") if add_start_token else None
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
        source, scalar = as_strings(source)
        encoder_ids, _, encoder_mask = pack(
            [self._tokenize(source)], self.sequence_length, self.start_id, self.end_id,
            self.pad_id)
        inputs = {"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask}
        length = self.decoder_sequence_length
        rows = tf.shape(encoder_ids)[0]
        if target is None:
            start = tf.one_hot(tf.zeros([rows], tf.int32), length, dtype=tf.int32)
            inputs["decoder_token_ids"] = start * self.decoder_start_id + (1 - start) * \
                self.pad_id
            inputs["decoder_padding_mask"] = start
            return unbatch(inputs, scalar)
        target, _ = as_strings(target)
        tokenize_target = getattr(self.tokenizer, "tokenize_target", self.tokenizer)
        target_ids = tf.cast(tokenize_target(target), tf.int32)
        target_dense, _, _ = pack([target_ids], length, self.start_id, self.end_id,
                                  self.pad_id)
        special = 1 + self.add_start_token
        lengths = tf.minimum(tf.cast(target_ids.row_lengths(), tf.int32) + special, length)
        weights = tf.sequence_mask(lengths, length, dtype=tf.int32)
        inputs["decoder_token_ids"] = tf.concat(
            [tf.fill([rows, 1], tf.constant(self.decoder_start_id, tf.int32)),
             target_dense[:, :-1]], axis=1)
        inputs["decoder_padding_mask"] = weights
        return unbatch((inputs, target_dense, tf.cast(weights, tf.float32)), scalar)

    def sequence_groups(self):
        return [((0, "encoder_padding_mask"), [(0, "encoder_token_ids"),
                                               (0, "encoder_padding_mask")]),
                ((0, "decoder_padding_mask"), [(0, "decoder_token_ids"),
                                               (0, "decoder_padding_mask"), (1, None),
                                               (2, None)])]

    def get_config(self):
        return {**super().get_config(), "decoder_sequence_length": self.decoder_sequence_length,
                "decoder_start_id": self.decoder_start_id,
                "add_start_token": self.add_start_token}

