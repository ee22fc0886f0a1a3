"""The UCI handwritten digits (8x8) that scikit-learn's wheel carries (`load_digits`)."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, grayscale_png


class Digits(LocalBuilder):
    """Optical recognition of handwritten digits (UCI, Alpaydin and Kaynak, 1998): 1,797
    grayscale 8x8 images in 10 classes, read from the copy inside scikit-learn's wheel
    (`sklearn/datasets/data/digits.csv.gz`, 64 pixels and the label per row), without
    importing scikit-learn. The source's pixel values 0-16 are scaled to 0-255
    (`round(v * 255 / 16)`), as in any 8-bit image, so image preprocessing applies unchanged.
    Every fifth image (index 0, 5, 10, ...) is the test split (360), the others train
    (1,437)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "Pixels scaled from 0-16 to 0-255."}

    HOMEPAGE = "https://archive.ics.uci.edu/dataset/80"
    HOW_TO_GET = "install scikit-learn (`pip install scikit-learn`: its wheel carries the file)"

    @classmethod
    def default_source(cls):
        spec = importlib.util.find_spec("sklearn")
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:  # not installed: point at where the file would be
            return Path("<scikit-learn is not installed>") / "sklearn" / "datasets" / "data"
        return Path(locations[0]) / "datasets" / "data"

    def _info(self):
        return self.dataset_info(
            tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=[str(digit) for digit in range(10)]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples(test=False),
                "test": self._generate_examples(test=True)}

    def _generate_examples(self, test):
        with gzip.open(self.source_file("digits.csv.gz"), "rt") as file:
            rows = np.loadtxt(file, delimiter=",", dtype=np.int32)
        pixels = np.round(rows[:, :64] * 255 / 16).astype(np.uint8)
        for index, row in enumerate(rows):
            if (index % 5 == 0) == test:
                image = grayscale_png(pixels[index].reshape(8, 8))
                yield index, {"image": image, "label": int(row[64])}
