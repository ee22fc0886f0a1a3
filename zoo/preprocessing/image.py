"""Images: encoded bytes or pixels -> float32 images of the model's size, normalized."""

import keras
import tensorflow as tf

from zoo.preprocessing.packing import as_labels, as_output, split_seed, unbatch
from zoo.preprocessing.preprocessor import Preprocessor
from zoo.preprocessing.tokenizer import PACKAGE


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
        return unbatch(as_output(images, as_labels(y, scalar),
                                      as_labels(sample_weight, scalar, tf.float32)), scalar)

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
            flip_seed, crop_seed = split_seed(seed, 2)
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

