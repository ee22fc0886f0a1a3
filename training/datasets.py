"""Datasets as TFDS gives them: standard names through `tfds.load`, offline sources as builders.

`load(name, split)` returns a `tf.data.Dataset` of feature dicts (`as_supervised=True` and the
other keyword arguments of `tfds.load` pass through), `info(name)` its `tfds.core.DatasetInfo`,
`names()` the datasets the project knows. Standard TFDS names go to `tfds.load` unchanged; the
offline sources (docs/data.md) are TFDS builders of the project (`training/builders/`,
one per file), so `tfds.load("fortunes", split="train")` works too once `training.datasets` is
imported. They read local files, never the network, and prepare the TFDS files once, under
`$KT_DATA/tensorflow_datasets` (default `.data/tensorflow_datasets`); later loads take well
under a second.

>>> from training import datasets
>>> sentences = datasets.load("conll_sample", "train")
>>> sorted(next(iter(sentences)))
['chunks', 'ner', 'pos', 'tokens']
>>> datasets.info("conll_sample").features["ner"].feature.names[:3]
['O', 'B-PER', 'I-PER']
>>> datasets.names(offline=True)[:3]
['botchan/chapters', 'botchan/lines', 'conll_sample']

Offline: the project's builders (`names(offline=True)`; sizes train / test as measured on
the project's machine image):

- `fashion_mnist_local`: Fashion-MNIST, 28x28x1 uint8 images of clothes in 10 classes,
  60,000 / 10,000, TFDS `fashion_mnist`'s features; Debian `dataset-fashion-mnist`.
- `digits`: the UCI handwritten digits, 8x8x1 uint8 (0-16 scaled to 0-255), 10 classes, 1,437 / 360;
  read from scikit-learn's wheel when scikit-learn is installed.
- `fortunes`: Debian's fortune cookies, `text` labelled with one of 43 topics, 13,668 / 1,549
  (15,217 entries; `"train+test"` is the whole corpus, for language modelling); Debian
  `fortunes`.
- `botchan/lines` (default), `botchan/chapters`: the English novel Botchan as an LM corpus,
  3,500 / 479 lines or 11 / 1 chapters (the test split is the last chapter);
  `$KT_DATA/sentencepiece/botchan.txt`.
- `gettext_translations/de`, `gettext_translations/es`: English -> German 48,907 / 5,600 and
  English -> Spanish 42,766 / 4,830 pairs (`en` and `de`/`es`), the UI strings of the gettext
  catalogs in `/usr/share/locale/<lang>/LC_MESSAGES/` (the counts follow the packages
  installed).
- `conll_sample`: 43 NER sentences written for the project, TFDS `conll2003`'s features and
  splits, 27 train / 8 dev / 8 test; tests/fixtures/conll_sample.txt.
- `squad_sample/v1.1` (default), `squad_sample/v2.0`: reading-comprehension questions on 25
  paragraphs written for the project, TFDS `squad`'s features and splits (by article): v1.1
  the 183 answerable ones, 136 / 47 (train / validation), v2.0 all 229, 170 / 59, 46 of them
  unanswerable; tests/fixtures/squad_sample.json.
- `debian_descriptions`: summarization, Debian's package descriptions (`document`, median 46
  words) with their one-line synopses (`summary`, median 7 words), TFDS `xsum`'s features,
  46,548 / 5,602 / 5,377 (train / validation / test, split by source package; 57,527 after
  deduplication, as of the last `apt-get update`); `/var/lib/apt/lists/*_i18n_Translation-en`.

Debian's files, its description lists and botchan come with `make data` (tools/fetch_data.sh).

Online (standard TFDS names; offline they fail at once, naming the local stand-in):
`mnist`, `fashion_mnist`, `cifar10` (-> `fashion_mnist_local`), `imdb_reviews`, `glue/sst2`
(-> `fortunes`), `conll2003` (-> `conll_sample`), `squad`, `squad/v1.1`, `squad/v2.0` (->
`squad_sample/v1.1`, `/v2.0`), `tiny_shakespeare` (-> `botchan/lines`),
`ted_hrlr_translate/pt_to_en`, `wmt14_translate/de-en` (-> `gettext_translations/de`),
`cnn_dailymail`, `xsum` (-> `debian_descriptions`). Any
other TFDS name works as well. A standard dataset that is not prepared in `data_dir` is
downloaded when the network is reachable (`download=None`, the default), always tried
(`download=True`) or never (`download=False`).

A source that is missing is a FileNotFoundError naming the path and the command that fetches
it; `source=` reads a builder's files from another folder.

To add an offline dataset: write `training/builders/<name>.py` with a `LocalBuilder` subclass
(`_info` with features and supervised keys, `_split_generators` returning
`{split: self._generate_examples(...)}`, `_generate_examples` yielding `(key, example)`; the
class docstring is the TFDS description, `default_source()` says where the files live and
`self.source_file(...)` opens them with the right error); import it in
`training/builders/__init__.py`; add a test of its sizes and features to
tests/training/test_datasets.py and a line to the list above. Bump `VERSION` when the
generated examples change, or the prepared copy under `$KT_DATA` stays in use.
"""

import contextlib
import fcntl
import os
import socket
import threading
from pathlib import Path

import tensorflow_datasets as tfds

from training.builders import BUILDERS
from zoo import paths

# The standard TFDS names the project uses, each with its offline stand-in.
STANDARD = {
    "mnist": "fashion_mnist_local",
    "fashion_mnist": "fashion_mnist_local",
    "cifar10": "fashion_mnist_local",
    "imdb_reviews": "fortunes",
    "glue/sst2": "fortunes",
    "conll2003": "conll_sample",
    "squad": "squad_sample/v1.1",
    "squad/v1.1": "squad_sample/v1.1",
    "squad/v2.0": "squad_sample/v2.0",
    "tiny_shakespeare": "botchan/lines",
    "ted_hrlr_translate/pt_to_en": "gettext_translations/de",
    "wmt14_translate/de-en": "gettext_translations/de",
    "cnn_dailymail": "debian_descriptions",
    "xsum": "debian_descriptions",
}
_PROBE_HOST = "storage.googleapis.com"  # where TFDS keeps most of its downloads


def default_data_dir():
    """Where the project's builders keep their prepared TFDS files: `$KT_DATA/tensorflow_datasets`
    (default `.data/tensorflow_datasets`)."""
    return paths.data_dir() / "tensorflow_datasets"


def names(offline=None):
    """The datasets the project knows, sorted: `offline=True` the local builders only (with
    their configs), `False` the standard TFDS names only, `None` both."""
    local = [f"{name}/{config.name}" if builder.BUILDER_CONFIGS else name
             for name, builder in BUILDERS.items()
             for config in (builder.BUILDER_CONFIGS or [None])]
    chosen = {True: local, False: list(STANDARD), None: local + list(STANDARD)}[offline]
    return sorted(chosen)


def load(name, split, *, data_dir=None, download=None, source=None, **kwargs):
    """A split of dataset `name` as a `tf.data.Dataset` of feature dicts.

    Args:
        name: a name from `names()`, or any TFDS name (`"dataset"` or `"dataset/config"`).
        split: a split name, or TFDS split syntax (`"train[:10%]"`, `"train+test"`).
        data_dir: where prepared TFDS files live; default `$KT_DATA/tensorflow_datasets`
            for the project's builders, TFDS' own (`~/tensorflow_datasets`) for the others.
        download: standard names only: download when not prepared (`True`), never
            (`False`), or when the network is reachable (`None`).
        source: project builders only: the folder to read the source files from, in place
            of the default (a Debian path, `$KT_DATA`, ...).
        **kwargs: passed to `tfds.load` (`as_supervised`, `shuffle_files`, `batch_size`,
            `with_info`, `read_config`, `decoders`, ...).

    Raises:
        ValueError: an unknown dataset or split (the message lists the known ones).
        FileNotFoundError: the data is neither prepared, nor local, nor downloadable; the
            message says where the files are expected and how to get them.
    """
    if _is_local(name):
        builder = _prepared_local_builder(name, data_dir, source)
        _check_split(name, builder.info.splits, split)
        builder_kwargs = {} if source is None else {"source": source}
        return tfds.load(name, split=split, data_dir=os.fspath(builder.data_dir_root),
                         builder_kwargs=builder_kwargs, **kwargs)

    _no_source(name, source)
    builder = _standard_builder(name, data_dir)
    prepared = builder.is_prepared()
    if prepared:
        _check_split(name, builder.info.splits, split)
    elif download is False or (download is None and not _online()):
        raise FileNotFoundError(_not_here(name, builder, "download=False" if download is False
                                          else f"no network: {_PROBE_HOST} does not resolve"))
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=True, **kwargs)
    except OSError as error:  # requests' connection errors are OSErrors too
        if prepared:
            raise
        reason = f"the download failed: {error}"
        raise FileNotFoundError(_not_here(name, builder, reason)) from error


def info(name, *, data_dir=None, source=None):
    """The `tfds.core.DatasetInfo` of `name`: features, supervised keys, and split sizes (a
    project builder is prepared first; a standard dataset has them once prepared)."""
    if _is_local(name):
        return _prepared_local_builder(name, data_dir, source).info
    _no_source(name, source)
    return _standard_builder(name, data_dir).info


def evaluation_split(name):
    """The split to report figures on: `test`, else `validation` (SQuAD's), else `dev`."""
    splits = info(name).splits
    for split in ("test", "validation", "dev"):
        if split in splits:
            return split
    raise ValueError(f"{name} has no test, validation or dev split (its splits: "
                     f"{', '.join(sorted(splits))}): pass --split.")


def check_split(name, split):
    """Raise a `ValueError` listing the splits when `split` (TFDS syntax) is not one of the
    project dataset `name`'s; standard TFDS names are checked when they load."""
    if _is_local(name):
        _check_split(name, info(name).splits, split)


def _is_local(name):
    return name.split("/")[0] in BUILDERS


def _prepared_local_builder(name, data_dir, source):
    kwargs = {} if source is None else {"source": source}
    data_dir = Path(data_dir or default_data_dir())
    builder = tfds.builder(name, data_dir=os.fspath(data_dir), **kwargs)
    if not builder.is_prepared():
        # Processes preparing the same dataset at once (parallel tests, two jobs) would write
        # over each other's files: one prepares, the others wait for it and read its files.
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = data_dir / f".{name.replace('/', '_')}.lock"
        with open(lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                builder = tfds.builder(name, data_dir=os.fspath(data_dir), **kwargs)
                if not builder.is_prepared():
                    with _no_progress_bars():
                        builder.download_and_prepare()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return builder


@contextlib.contextmanager
def _no_progress_bars():
    """Library code does not print: hide TFDS' progress bars while preparing, then restore."""
    shown = getattr(tfds.core.utils.tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        tfds.display_progress_bar(shown)


def _no_source(name, source):
    if source is not None:
        raise ValueError(f"source= reads the files of the project's builders "
                         f"({', '.join(BUILDERS)}); {name} is a TFDS dataset: pass data_dir=.")


def _standard_builder(name, data_dir):
    try:
        tfds.builder_cls(name.split("/")[0])
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(names())}; any other TFDS "
            "name (tfds.list_builders()) works too."
        ) from None
    return tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))


def _check_split(name, splits, split):
    if split is None or not splits:
        return
    for item in split if isinstance(split, (list, tuple)) else [split]:
        if not isinstance(item, str):  # a tfds.core.ReadInstruction: TFDS checks it
            continue
        for part in item.split("+"):
            base = part.split("[")[0].strip()
            if base not in splits and base != "all":
                raise ValueError(
                    f"{name} has no split {base!r}: its splits are {', '.join(sorted(splits))} "
                    "(slices such as 'train[:10%]' and sums such as 'train+test' work too)."
                )


def _not_here(name, builder, reason):
    alternative = STANDARD.get(name) or STANDARD.get(name.split("/")[0])
    instead = (f"Offline, load({alternative!r}, ...) gives the same kind of data from local "
               f"files (`{paths.FETCH_DATA}` fetches them)." if alternative else
               f"The project has no offline stand-in for it; offline names: "
               f"{', '.join(names(offline=True))}.")
    return (f"{name} is not prepared in {builder.data_dir} and cannot be downloaded ({reason}). "
            f"{instead} Or run load({name!r}, ...) once on a machine with network access and "
            f"copy its folder {builder.data_dir_root}/{builder.name} here.")


def _online(host=_PROBE_HOST, timeout=3.0):
    """Whether `host` resolves within `timeout` seconds: TFDS' downloads retry for minutes
    when there is no network, so `load` asks first."""
    answers = []

    def resolve():
        try:
            answers.append(bool(socket.getaddrinfo(host, 443)))
        except OSError:
            answers.append(False)

    thread = threading.Thread(target=resolve, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answers and answers[0])
