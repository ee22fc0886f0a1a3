"""ViT (Dosovitskiy et al., 2021): a pre-norm transformer encoder over image patches.

The architecture of Hugging Face's `ViTModel`: non-overlapping patches linearly projected, a
class token, learned positions (the class position included), pre-norm encoder blocks with
exact GELU, a final LayerNorm (epsilon 1e-12), and a tanh pooler on the class token. Presets
reproduce the published sizes; `b16` has 86,389,248 parameters with its pooler (as `ViTModel`)
and 85,798,656 without (as `ViTForImageClassification`'s backbone). The classifier, like
`ViTForImageClassification`, has no pooler and classifies the normalized class token.

The position table is laid out for `position_image_size`; images of another `image_shape` get
its patch grid resized to theirs (bicubic, as `interpolate_pos_encoding` in Hugging Face), so
a model built for larger images takes the weights of one trained on smaller ones.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("vit", task="classifier", num_classes=10)      # 32x32 images, patch 8
>>> tuple(model.predict(np.random.rand(2, 32, 32, 3), verbose=0).shape)
(2, 10)
>>> larger = zoo.build("vit", task="classifier", num_classes=10, image_shape=(48, 48, 3))
>>> larger.set_weights(model.get_weights())        # the same weights; positions resized
>>> tuple(larger.backbone.predict(np.random.rand(2, 48, 48, 3), verbose=0)
...       ["sequence_output"].shape)                # 6x6 patches + class token
(2, 37, 32)
"""

from dataclasses import dataclass

import keras
from keras import ops

from keras_transformers import Dropout, EncoderBlock, PatchEmbedding
from keras_transformers.initializers import truncated_normal
from zoo.backbone import Backbone
from zoo.config import Family, check_heads_divide, check_positive
from zoo.heads import Classifier

PACKAGE = "zoo"


@dataclass(frozen=True)
class ViTConfig:
    """The hyperparameters of a ViT. Field names are keras-hub's, as across the zoo
    (`intermediate_dim` and `dropout` are keras-hub ViT's `mlp_dim` and `dropout_rate`).

    Args:
        image_shape: `(height, width, channels)` of the input images.
        patch_size: side of a square patch; divides the height and width.
        num_layers, num_heads, hidden_dim, intermediate_dim: encoder depth, heads, width and
            MLP width.
        dropout: on the embeddings and on each sublayer's output.
        attention_dropout: on the attention probabilities.
        layer_norm_epsilon: of every LayerNorm (1e-12 in Hugging Face's `ViTConfig`).
        use_pooler: a tanh dense layer on the class token, `pooled_output`.
        use_class_token: prepend a learned class token; without it the pooler averages the
            patch tokens.
        position_image_size: `(height, width)` the learned position table is laid out for;
            `image_shape`'s when None. Presets fix it, so their weights do not depend on
            `image_shape`.
    """

    image_shape: tuple = (224, 224, 3)
    patch_size: int = 16
    num_layers: int = 12
    num_heads: int = 12
    hidden_dim: int = 768
    intermediate_dim: int = 3072
    dropout: float = 0.0
    attention_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-12
    use_pooler: bool = True
    use_class_token: bool = True
    position_image_size: tuple | None = None

    def __post_init__(self):
        check_positive(self, "patch_size", "num_layers", "num_heads", "hidden_dim",
                       "intermediate_dim")
        check_heads_divide(self)
        shape = tuple(self.image_shape) if isinstance(self.image_shape, (tuple, list)) else ()
        if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(
                f"ViTConfig.image_shape must be (height, width, channels) of positive ints, "
                f"got {self.image_shape!r}, e.g. (224, 224, 3)."
            )
        self._check_divisible("image_shape", shape[:2], "Resize or crop the images")
        if self.position_image_size is not None:
            size = self.position_image_size
            size = tuple(size) if isinstance(size, (tuple, list)) else ()
            if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
                raise ValueError(
                    f"ViTConfig.position_image_size must be (height, width) of positive ints "
                    f"or None (image_shape's), got {self.position_image_size!r}."
                )
            self._check_divisible("position_image_size", size, "Set position_image_size")

    def _check_divisible(self, name, size, fix):
        patch = self.patch_size
        if size[0] % patch or size[1] % patch:
            fitted = [max(patch, s // patch * patch) for s in size]
            raise ValueError(
                f"ViTConfig: {name} {getattr(self, name)} does not split into patches: its "
                f"height {size[0]} and width {size[1]} must be multiples of patch_size={patch}. "
                f"{fix} to a multiple of {patch} (e.g. {fitted[0]}x{fitted[1]}), or pick a "
                f"patch_size that divides both {size[0]} and {size[1]}."
            )

    @property
    def table_image_size(self):
        """The `(height, width)` the position table is for."""
        return tuple(self.position_image_size or self.image_shape[:2])


PRESETS = {
    "tiny": ViTConfig(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                      hidden_dim=32, intermediate_dim=64, position_image_size=(32, 32)),
    "s16": ViTConfig(num_layers=12, num_heads=6, hidden_dim=384, intermediate_dim=1536,
                     position_image_size=(224, 224)),
    "b16": ViTConfig(position_image_size=(224, 224)),
    "l16": ViTConfig(num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096,
                     position_image_size=(224, 224)),
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ViTBackbone(Backbone):
    """Input `images`, float32 `[batch, height, width, channels]` of `config.image_shape`;
    outputs `sequence_output` `[batch, (1 +) num_patches, hidden_dim]` (after the final norm)
    and `pooled_output` `[batch, hidden_dim]` (when `use_pooler`).

    Args:
        config: a `ViTConfig`.
        dtype: a dtype policy, e.g. `"mixed_bfloat16"`.

    Layers by name: `patch_embedding` (a `PatchEmbedding`: projection, class token,
    positions), `transformer_layer_{i}`, `final_norm`, `pooler`.
    """

    family_name = "vit"
    config_class = ViTConfig

    def __init__(self, config, dtype=None, **kwargs):
        c = config
        self.patch_embedding = PatchEmbedding(
            c.table_image_size, c.patch_size, c.hidden_dim, num_channels=c.image_shape[2],
            use_class_token=c.use_class_token, kernel_initializer=truncated_normal(), dtype=dtype,
            name="patch_embedding",
        )
        self.embeddings_dropout = Dropout(c.dropout, dtype=dtype)
        self.transformer_layers = [
            EncoderBlock(
                c.num_heads, c.intermediate_dim, activation="gelu", norm_first=True,
                epsilon=c.layer_norm_epsilon, dropout=c.dropout,
                attention_dropout=c.attention_dropout, kernel_initializer=truncated_normal(),
                dtype=dtype, name=f"transformer_layer_{i}",
            )
            for i in range(c.num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=c.layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        self.pooler = keras.layers.Dense(
            c.hidden_dim, activation="tanh", kernel_initializer=truncated_normal(), dtype=dtype,
            name="pooler",
        ) if c.use_pooler else None

        images = keras.Input(tuple(c.image_shape), dtype="float32", name="images")
        x = self.embeddings_dropout(self.patch_embedding(images))
        for layer in self.transformer_layers:
            x = layer(x)
        x = self.final_norm(x)
        outputs = {"sequence_output": x}
        if self.pooler is not None:
            summary = x[:, 0] if c.use_class_token else ops.mean(x, axis=1)
            outputs["pooled_output"] = self.pooler(summary)
        super().__init__(inputs=images, outputs=outputs, config=config, dtype=dtype, **kwargs)


def classifier(backbone, num_classes, pooling="pooled", dropout=0.0):
    """Image classification: `ViTForImageClassification` when the backbone has no pooler.

    Args:
        backbone: a `ViTBackbone`.
        num_classes: number of labels.
        pooling: `"pooled"` (the pooler; the class token when there is none) or
            `"first_token"` (the normalized class token).
        dropout: before the output layer; none in Hugging Face's classifier.
    """
    c = backbone.config
    if not c.use_pooler and pooling == "pooled":
        pooling = "first_token"
    if pooling == "first_token" and not c.use_class_token:
        raise ValueError(
            "This ViT has no class token (use_class_token=False), so 'first_token' would "
            "classify one patch. Set use_pooler=True: the pooler then averages the patch tokens."
        )
    return Classifier(backbone, num_classes, pooling=pooling, dropout=dropout)


TASKS = {"classifier": classifier}
# As in Hugging Face's ViTForImageClassification: no pooler.
TASK_DEFAULTS = {"classifier": {"use_pooler": False}}
FAMILY = Family("vit", ViTConfig, PRESETS, ViTBackbone, TASKS, TASK_DEFAULTS)
