"""The bases of the preprocessors: a Keras layer of TF ops that owns its tokenizer."""

import keras
import tensorflow as tf

from zoo.preprocessing.packing import SEED_MAX


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
        return tf.random.uniform([2], maxval=SEED_MAX, dtype=tf.int64, seed=self.seed)

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
            raise ValueError(f"{type(self).__name__} needs a tokenizer (zoo.preprocessing).")
        if not isinstance(sequence_length, int) or sequence_length < 2:
            raise ValueError(f"sequence_length must be an int >= 2, got {sequence_length!r}.")
        self.sequence_length = sequence_length
        self.pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0

    @property
    def chat_template(self):
        """The tokenizer's chat template (a Jinja string, or None): what `generate(messages)`
        renders; set it here or on the tokenizer."""
        return self.tokenizer.chat_template

    @chat_template.setter
    def chat_template(self, template):
        self.tokenizer.chat_template = template

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
