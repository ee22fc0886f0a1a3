"""Input embeddings: tokens plus positions for text, patches plus positions for images.

An id outside the table embeds as NaN (`lookup`): a plain lookup reads id -1 as the
last row (numpy's rule) and XLA clamps ids past the end, so a bad id would otherwise give a
plausible number, in compiled graphs too, where no assertion runs.

Example:

>>> import numpy as np
>>> embed = TokenAndPositionEmbedding(vocabulary_size=100, sequence_length=16, hidden_dim=32)
>>> tuple(embed(np.array([[5, 7, 9]])).shape)
(1, 3, 32)
>>> patches = PatchEmbedding(image_size=32, patch_size=8, hidden_dim=48)
>>> tuple(patches(np.zeros((1, 32, 32, 3), "float32")).shape)    # 16 patches + class token
(1, 17, 48)
"""

import keras
from keras import ops

from keras_transformers.initializers import clone_initializer
from keras_transformers.positions import PositionEmbedding, SinusoidalPositionEncoding

PACKAGE = "keras_transformers"
POSITION_KINDS = ("learned", "sinusoidal", None)


def lookup(embedding, ids, size):
    """`embedding(ids)` (a `keras.layers.Embedding` of `size` rows), NaN where `ids` lie
    outside `[0, size)`: the same on every backend, compiled or not (TensorFlow's gather
    would fail on an id past the end without XLA and clamp it with XLA).

    >>> import keras, numpy as np
    >>> table = keras.layers.Embedding(4, 2)
    >>> out = np.asarray(lookup(table, np.array([[0, -1, 4]]), 4))
    >>> np.isnan(out).any(axis=-1).tolist()
    [[False, True, True]]
    """
    valid = ops.logical_and(ops.greater_equal(ids, 0), ops.less(ids, size))
    embedded = embedding(ops.where(valid, ids, ops.zeros_like(ids)))
    nan = ops.convert_to_tensor(float("nan"), dtype=embedded.dtype)
    return ops.where(ops.expand_dims(valid, -1), embedded, nan)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embeddings plus position embeddings (learned or sinusoidal, or none).

    Args:
        vocabulary_size: number of token ids.
        sequence_length: most positions (learned positions only).
        hidden_dim: embedding width.
        position: `"learned"` (BERT, GPT-2), `"sinusoidal"` (Vaswani et al.), or None for
            models that place positions elsewhere (rotary, relative bias).
        scale_by_sqrt_dim: multiply token embeddings by `sqrt(hidden_dim)`, as Vaswani et al.
        embeddings_initializer: for both tables.

    Call arguments:
        token_ids: int `[batch, length]`; an id outside `[0, vocabulary_size)` embeds as NaN.
        start_index: position of the first token (for cached decoding).
        reverse: treat the input as hidden states `[batch, length, hidden_dim]` (or
            `[batch, hidden_dim]`) and return logits over the vocabulary (a language-model
            head tied to the token table).

    `token_embedding` (a `keras.layers.ReversibleEmbedding`) holds the vocabulary table, for
    language-model heads tied to it; a quantized table (`Model.quantize`) computes the
    reverse projection itself.
    """

    def __init__(self, vocabulary_size, sequence_length, hidden_dim, position="learned",
                 scale_by_sqrt_dim=False, embeddings_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if position not in POSITION_KINDS:
            raise ValueError(f"Unknown position {position!r}. Choose one of {POSITION_KINDS}.")
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.position = position
        self.scale_by_sqrt_dim = scale_by_sqrt_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy, name="token_embedding",
        )
        self.position_embedding = None
        if position == "learned":
            self.position_embedding = PositionEmbedding(
                # A copy: one unseeded initializer shared by both tables would make the
                # position table a scaled copy of the first rows of the token table.
                sequence_length, initializer=clone_initializer(self.embeddings_initializer),
                dtype=self.dtype_policy, name="position_embedding",
            )
        elif position == "sinusoidal":
            self.position_embedding = SinusoidalPositionEncoding(
                dtype=self.dtype_policy, name="position_embedding"
            )

    def build(self, token_ids_shape):
        self.token_embedding.build(token_ids_shape)
        if self.token_embedding.quantization_mode == "int4":
            # Keras' int4 is weight-only, but a table rebuilt from its saved policy would
            # also quantize the hidden states of the reverse projection.
            self.token_embedding.inputs_quantizer = None
        if self.position_embedding is not None:
            self.position_embedding.build((*token_ids_shape, self.hidden_dim))

    def call(self, token_ids, start_index=0, reverse=False):
        if reverse:  # hidden states -> vocabulary logits, through the same table
            if self.token_embedding.quantization_mode is not None:  # the table holds integers
                return self.token_embedding(token_ids, reverse=True)
            table = ops.cast(self.token_embedding.embeddings, token_ids.dtype)
            if len(token_ids.shape) == 2:
                # One state per row (decoding): the table on the left, read in order. XLA on
                # CPU turns `states @ table.T` into an element-wise loop at batch 1.
                return ops.transpose(ops.matmul(table, ops.transpose(token_ids)))
            return ops.matmul(token_ids, ops.transpose(table))
        embedded = lookup(self.token_embedding, token_ids, self.vocabulary_size)
        if self.scale_by_sqrt_dim:
            embedded = embedded * ops.cast(self.hidden_dim**0.5, embedded.dtype)
        if self.position_embedding is not None:
            embedded = embedded + self.position_embedding(embedded, start_index=start_index)
        return embedded

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "hidden_dim": self.hidden_dim,
            "position": self.position,
            "scale_by_sqrt_dim": self.scale_by_sqrt_dim,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchEmbedding(keras.layers.Layer):
    """ViT's input: non-overlapping patches, linearly projected, a class token, positions.

    The learned position table is sized for `image_size`. An image of another size (a
    multiple of `patch_size`) gets the table's patch grid resized to its own grid
    (Dosovitskiy et al., 2021, section 3.2: fine-tuning at higher resolution).

    Args:
        image_size: the size the position table is for, an int or `(height, width)`.
        patch_size: side of a square patch, an int or `(height, width)`.
        hidden_dim: embedding width.
        num_channels: channels of the input images.
        use_class_token: prepend a learned `[CLS]` token.
        interpolation: how position grids are resized: `"bicubic"` or `"bilinear"`.

    Call arguments:
        images: `[batch, height, width, channels]`.

    Returns:
        `[batch, (1 +) num_patches, hidden_dim]`.
    """

    def __init__(self, image_size, patch_size, hidden_dim, num_channels=3,
                 use_class_token=True, interpolation="bicubic",
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.image_size = _pair(image_size)
        self.patch_size = _pair(patch_size)
        for size, patch in zip(self.image_size, self.patch_size, strict=True):
            if size % patch:
                raise ValueError(
                    f"image_size {self.image_size} is not a multiple of patch_size "
                    f"{self.patch_size}. Resize or crop images to a multiple of the patch size."
                )
        self.hidden_dim = hidden_dim
        self.num_channels = num_channels
        self.use_class_token = use_class_token
        self.interpolation = interpolation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.grid = tuple(s // p for s, p in zip(self.image_size, self.patch_size, strict=True))
        self.projection = keras.layers.Conv2D(
            hidden_dim, kernel_size=self.patch_size, strides=self.patch_size,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, images_shape):
        self.projection.build((None, None, None, self.num_channels))
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token", shape=(1, 1, self.hidden_dim), initializer="zeros"
            )
        num_positions = self.grid[0] * self.grid[1] + int(self.use_class_token)
        self.position_embeddings = self.add_weight(
            name="position_embeddings", shape=(num_positions, self.hidden_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, images):
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                "PatchEmbedding needs images of a static height and width; got shape "
                f"{tuple(images.shape)}. Give the model's input a fixed `image_shape`."
            )
        if height % self.patch_size[0] or width % self.patch_size[1]:
            raise ValueError(
                f"Images of {height}x{width} do not split into {self.patch_size} patches. "
                f"Resize them to a multiple of the patch size."
            )
        patches = self.projection(images)
        batch = ops.shape(patches)[0]
        grid = (height // self.patch_size[0], width // self.patch_size[1])
        patches = ops.reshape(patches, (batch, grid[0] * grid[1], self.hidden_dim))
        if self.use_class_token:
            class_token = ops.cast(self.class_token, patches.dtype)
            patches = ops.concatenate(
                [ops.broadcast_to(class_token, (batch, 1, self.hidden_dim)), patches], axis=1
            )
        return patches + ops.cast(self.positions_for_grid(grid), patches.dtype)[None]

    def positions_for_grid(self, grid):
        """The position table for a `(rows, columns)` patch grid, resized if need be."""
        table = ops.convert_to_tensor(self.position_embeddings)
        if tuple(grid) == self.grid:
            return table
        class_position, patch_positions = None, table
        if self.use_class_token:
            class_position, patch_positions = table[:1], table[1:]
        patch_positions = ops.reshape(patch_positions, (1, *self.grid, self.hidden_dim))
        patch_positions = ops.image.resize(
            patch_positions, grid, interpolation=self.interpolation, antialias=False
        )
        patch_positions = ops.reshape(patch_positions, (grid[0] * grid[1], self.hidden_dim))
        if class_position is None:
            return patch_positions
        return ops.concatenate([class_position, patch_positions], axis=0)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "hidden_dim": self.hidden_dim,
            "num_channels": self.num_channels,
            "use_class_token": self.use_class_token,
            "interpolation": self.interpolation,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)
