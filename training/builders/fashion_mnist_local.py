"""Fashion-MNIST from Debian's `dataset-fashion-mnist`, with TFDS fashion_mnist's features."""

import gzip

import numpy as np
import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, grayscale_png

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049  # idx3 (uint8, 3 dims), idx1 (uint8, 1 dim)


def read_idx(path, magic):
    """The uint8 array of a gzipped idx file: a big-endian header (magic, sizes), then data."""
    with gzip.open(path, "rb") as file:
        raw = file.read()
    ndim = magic & 0xFF
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path} is not an idx file of {ndim} dimensions (magic {found}).")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 * (1 + ndim)).reshape(shape)


class FashionMnistLocal(LocalBuilder):
    """Fashion-MNIST (Xiao et al., 2017): 60,000 / 10,000 grayscale 28x28 images of clothes in 10
    classes, read from Debian's `dataset-fashion-mnist` (license Expat). Same features as TFDS
    `fashion_mnist`, so a pipeline written for one takes the other."""

    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    HOW_TO_GET = "run `make data` (it installs Debian's dataset-fashion-mnist)"

    @classmethod
    def default_source(cls):
        return "/usr/share/datasets/fashion-mnist"

    def _info(self):
        return self.dataset_info(
            tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(prefix)
                for split, prefix in (("train", "train"), ("test", "t10k"))}

    def _generate_examples(self, prefix):
        images = read_idx(self.source_file(f"{prefix}-images-idx3-ubyte.gz"), _IMAGES_MAGIC)
        labels = read_idx(self.source_file(f"{prefix}-labels-idx1-ubyte.gz"), _LABELS_MAGIC)
        if len(images) != len(labels):
            raise ValueError(f"{self.source}: {len(images)} {prefix} images, {len(labels)} labels.")
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": grayscale_png(image), "label": int(label)}
