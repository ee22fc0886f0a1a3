"""The UCI handwritten digits (8x8) that scikit-learn's wheel carries (`load_digits`)."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, grayscale_png


class Digits(LocalBuilder):
    """Optical recognition of handwritten digits (UCI, Alpaydin and Kaynak, 1998): 1,797
    grayscale 8x8 images, values 0-16, in 10 classes, read from the copy inside scikit-learn's
    wheel (`sklearn/datasets/data/digits.csv.gz`, 64 pixels and the label per row), without
    importing scikit-learn. Every fifth image (index 0, 5, 10, ...) is the test split (360),
    the others train (1,437)."""

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
            rows = np.loadtxt(file, delimiter=",", dtype=np.uint8)
        for index, row in enumerate(rows):
            if (index % 5 == 0) == test:
                yield index, {"image": grayscale_png(row[:64].reshape(8, 8)), "label": int(row[64])}
