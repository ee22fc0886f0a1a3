"""The base of the tokenizers: a Keras layer, strings in and int32 ids out, and back.

Each tokenizer maps strings to int32 ids (a scalar string to a 1-D tensor, a batch to a
`tf.RaggedTensor` [batch, None]) and back with `detokenize`. They run eagerly, inside
`tf.data.Dataset.map` and `tf.function`, and inside a SavedModel: the lookup tables are owned
by the layer, so `keras.export.ExportArchive().track(tokenizer)` carries them. `get_config`
holds the vocabulary itself, so a config or a `.keras` file needs no other file.
"""

import os
from types import SimpleNamespace

import keras
import tensorflow as tf

from zoo import paths
from zoo.preprocessing.chat_template import compile_template

# The registered package of the tokenizer and preprocessor classes: `.keras` files name them
# by it (`keras_transformers>WordPieceTokenizer`), so it must not change.
PACKAGE = "keras_transformers"


def existing(path, what):
    """`path` as a string, or a FileNotFoundError saying where the project's files come from."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{what} {path} does not exist. The GPT-2 and SentencePiece files come with "
            f"`{paths.FETCH_DATA}` (into {paths.data_dir()} or $KT_DATA), MiniLM's vocab.txt "
            f"with `{paths.FETCH_PRETRAINED}`."
        )
    return path


def read_text(path, what):
    with open(existing(path, what), encoding="utf-8") as file:
        return file.read()


def read_bytes(path, what):
    with open(existing(path, what), "rb") as file:
        return file.read()


def hash_table(keys, values, default, key_dtype, value_dtype):
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
    the vocabulary has, None for those it lacks. `chat_template`: the Jinja chat template of
    an instruct model (`zoo.preprocessing.chat_template`), or None; kept in the config.
    """

    def __init__(self, chat_template=None, **kwargs):
        super().__init__(**kwargs)
        self.chat_template = chat_template
        # Strings are no Keras inputs: take them as they come, positionally.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.pad_id = self.unk_id = self.start_id = self.end_id = self.mask_id = None
        self.built = True

    @property
    def chat_template(self):
        return self._chat_template

    @chat_template.setter
    def chat_template(self, template):
        if template is not None:
            compile_template(template)  # a template that is not Jinja fails here, not later
        self._chat_template = template

    def get_config(self):
        config = super().get_config()
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        return config

    # Subclasses implement these on a flat batch: string [n] -> ragged int32 [n, None], back.
    def _tokenize(self, strings):
        raise NotImplementedError

    def _detokenize(self, ids):
        raise NotImplementedError

    def tokenize_with_offsets(self, strings):
        """string [n] -> (ids, starts, ends): ragged [n, None] int32 ids and the byte span
        `[start, end)` of each token in its input string (int64), for answer extraction."""
        raise NotImplementedError(
            f"{type(self).__name__} gives no token offsets; question answering needs them: "
            "use a WordPieceTokenizer (BERT's)."
        )

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

