"""The base of the project's TFDS builders: datasets whose files are on this machine.

A `LocalBuilder` downloads nothing. It reads its source files from `default_source()` (a
Debian path, `$KT_DATA`, an installed wheel, a committed fixture) or from the folder given as
the builder argument `source` (`tfds.builder(name, source=...)`, or `load(name, split,
source=...)` in `training.datasets`), and says where the files are expected when they are not.
"""

import inspect
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from zoo import paths


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A TFDS builder over local files; subclasses define `default_source` and `HOW_TO_GET`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    HOMEPAGE = None
    HOW_TO_GET = f"run `{paths.FETCH_DATA}` (tools/fetch_data.sh)"

    def __init__(self, *, source=None, **kwargs):
        self._source = None if source is None else Path(os.fspath(source))
        super().__init__(**kwargs)

    @classmethod
    def default_source(cls):
        """The folder the source files are read from when no `source` is given."""
        raise NotImplementedError

    @property
    def source(self):
        return self._source or Path(self.default_source())

    def source_file(self, *parts):
        """`source / parts...`, or a FileNotFoundError that says where and how to get it."""
        path = self.source.joinpath(*parts)
        if not path.exists():
            raise FileNotFoundError(
                f"{self.name}: {path} does not exist. To get it, {self.HOW_TO_GET}; or pass "
                f"`source=` a folder that holds {'/'.join(parts)!r}."
            )
        return path

    def dataset_info(self, features, supervised_keys=None):
        """A `DatasetInfo` whose description is the builder's docstring."""
        return tfds.core.DatasetInfo(
            builder=self,
            description=inspect.cleandoc(type(self).__doc__ or ""),
            features=features,
            supervised_keys=supervised_keys,
            homepage=self.HOMEPAGE,
        )

    # TFDS 4.9.10 looks for a checksums file beside the builder's code through the
    # `importlib_resources` backport, which it does not install (tensorflow/datasets#11212).
    # These builders download nothing, so they have no checksums.
    @tfds.core.utils.classproperty
    @classmethod
    def _checksums_path(cls):
        return None

    # Library code does not print: TFDS prints these two lines to stdout for every dataset.
    def _log_download_bytes(self):
        pass

    def _log_download_done(self):
        pass


def in_test_split(text, percent=10):
    """Whether `text` goes to the test split: a hash split, the same on every machine."""
    return zlib.crc32(text.encode("utf-8")) % 100 < percent


def grayscale_png(image):
    """PNG bytes of a `[height, width]` or `[height, width, 1]` uint8 array.

    TFDS encodes a numpy image with one eager TensorFlow op each, which made preparing
    Fashion-MNIST take 24 s on 2 cores; writing the PNG here with zlib halves that.
    """
    image = np.asarray(image, np.uint8).reshape(image.shape[0], image.shape[1])
    height, width = image.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = image

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + chunk(b"IEND", b""))
