"""training.datasets: the offline builders give their true sizes and features through TFDS, the
standard names go through tfds.load (mocked here), and bad input says what to do.

The sizes are those of the project's machine image (Debian 12: fortunes 1:1.99.1-7.3, the
gettext catalogs of its packages); the first run prepares the datasets under $KT_DATA (Fashion-
MNIST takes about 12 s), later runs read them.
"""

import gzip
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from training import datasets, metrics
from training.builders import fashion_mnist_local, fortunes, squad_sample
from training.builders._local import in_test_split

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FORTUNES = Path("/usr/share/games/fortunes")


def split_sizes(name, **kwargs):
    splits = datasets.info(name, **kwargs).splits
    return {split: value.num_examples for split, value in splits.items()}


def feature_specs(dataset):
    return {key: (spec.dtype, tuple(spec.shape)) for key, spec in dataset.element_spec.items()}


def nested_specs(dataset):
    return tf.nest.map_structure(lambda spec: (spec.dtype, tuple(spec.shape)),
                                 dataset.element_spec)


SPANS = {"text": (tf.string, (None,)), "answer_start": (tf.int32, (None,))}
SQUAD_V1 = {"id": (tf.string, ()), "title": (tf.string, ()), "context": (tf.string, ()),
            "question": (tf.string, ()), "answers": SPANS}
SQUAD_V2 = {**SQUAD_V1, "is_impossible": (tf.bool, ()), "plausible_answers": SPANS}


def columns(name, split):
    """Every feature of a split as one numpy array (strings decoded), read in one pass."""
    batches = list(datasets.load(name, split).batch(8192).as_numpy_iterator())
    arrays = {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
    return {key: np.array([v.decode() for v in values]) if values.dtype == object else values
            for key, values in arrays.items()}


def test_names_lists_offline_builders_and_standard_tfds_names():
    assert datasets.names(offline=True) == [
        "botchan/chapters", "botchan/lines", "conll_sample", "debian_descriptions", "digits",
        "fashion_mnist_local", "fortunes", "gettext_translations/de", "gettext_translations/es",
        "squad_sample/v1.1", "squad_sample/v2.0"]
    assert datasets.names(offline=False) == [
        "cifar10", "cnn_dailymail", "conll2003", "fashion_mnist", "glue/sst2", "imdb_reviews",
        "mnist", "squad", "squad/v1.1", "squad/v2.0", "ted_hrlr_translate/pt_to_en",
        "tiny_shakespeare", "wmt14_translate/de-en", "xsum"]
    assert datasets.names() == sorted(datasets.names(True) + datasets.names(False))


@pytest.mark.slow  # the first run prepares 70,000 images: about 12 s on 2 cores
def test_fashion_mnist_local_is_debians_60000_and_10000_images_with_tfds_features():
    assert split_sizes("fashion_mnist_local") == {"train": 60_000, "test": 10_000}
    info = datasets.info("fashion_mnist_local")
    assert info.features["label"].names == list(fashion_mnist_local.CLASS_NAMES)
    assert info.supervised_keys == ("image", "label")
    tfds_features = tfds.builder("fashion_mnist").info.features  # TFDS' own fashion_mnist
    assert info.features.to_json_content() == tfds_features.to_json_content()

    train = datasets.load("fashion_mnist_local", "train")
    assert feature_specs(train) == {"image": (tf.uint8, (28, 28, 1)), "label": (tf.int64, ())}
    assert int(train.cardinality()) == 60_000

    # The test images decode to Debian's pixels (TFDS shuffles them: compare sorted sums).
    test = columns("fashion_mnist_local", "test")
    assert test["image"].shape == (10_000, 28, 28, 1)
    assert np.bincount(test["label"]).tolist() == [1000] * 10
    expected = fashion_mnist_local.read_idx(FASHION_MNIST / "t10k-images-idx3-ubyte.gz", 2051)
    np.testing.assert_array_equal(np.sort(test["image"].reshape(10_000, -1).sum(1)),
                                  np.sort(expected.reshape(10_000, -1).sum(1, dtype=np.int64)))


def test_fortunes_has_15217_entries_in_43_topics_as_debians_index_counts_them():
    sizes = split_sizes("fortunes")
    assert sizes == {"train": 13_668, "test": 1_549}
    # strfile's .dat index of each topic file holds its entry count (big-endian, 2nd word).
    indexed = sum(struct.unpack(">5I", (FORTUNES / f"{topic}.dat").read_bytes()[:20])[1]
                  for topic in fortunes.TOPICS)
    assert sum(sizes.values()) == indexed == 15_217

    both = datasets.load("fortunes", "train+test")
    assert int(both.cardinality()) == 15_217  # the whole corpus, e.g. for language modelling
    assert feature_specs(both) == {"text": (tf.string, ()), "label": (tf.int64, ())}
    info = datasets.info("fortunes")
    assert info.features["label"].names == list(fortunes.TOPICS) and len(fortunes.TOPICS) == 43
    assert info.supervised_keys == ("text", "label")

    train, test = columns("fortunes", "train"), columns("fortunes", "test")
    labels = np.concatenate([train["label"], test["label"]])
    counts = dict(zip(fortunes.TOPICS, np.bincount(labels, minlength=43).tolist(), strict=True))
    assert {t: counts[t] for t in ("people", "computers", "science", "food", "sports")} == {
        "people": 1251, "computers": 1051, "science": 625, "food": 198, "sports": 147}
    # The hash split keeps a text that appears in two topics in one split.
    assert not set(train["text"]) & set(test["text"])


def test_botchan_is_the_novel_by_lines_or_chapters_with_the_last_chapter_as_test():
    assert split_sizes("botchan/lines") == {"train": 3_500, "test": 479}
    assert split_sizes("botchan/chapters") == {"train": 11, "test": 1}
    assert split_sizes("botchan") == split_sizes("botchan/lines")  # the default config
    lines = datasets.load("botchan/lines", "train")
    assert feature_specs(lines) == {"text": (tf.string, ())}
    assert "CHAPTER I" in set(columns("botchan/lines", "train")["text"])
    (chapter,) = columns("botchan/chapters", "test")["text"]
    assert chapter.startswith("CHAPTER XI.\n") and len(chapter.split("\n")) == 479
    assert "Gutenberg" not in chapter  # the license after the novel is left out


@pytest.mark.parametrize("language, sizes", [
    ("de", {"train": 48_907, "test": 5_600}),  # 54,507 pairs from 85 of 86 catalogs
    ("es", {"train": 42_766, "test": 4_830}),  # 47,596 pairs from 85 catalogs
])
def test_gettext_translations_are_english_to_target_pairs(language, sizes):
    name = f"gettext_translations/{language}"
    assert split_sizes(name) == sizes
    train = datasets.load(name, "train")
    assert feature_specs(train) == {"en": (tf.string, ()), language: (tf.string, ())}
    source, target = next(iter(datasets.load(name, "test", as_supervised=True)))
    assert source.dtype == target.dtype == tf.string


def test_gettext_keeps_every_translation_of_a_string_in_one_split():
    test = columns("gettext_translations/de", "test")
    assert sorted(test["de"][test["en"] == "Segmentation fault"]) == [  # libc, bash, ...
        "Adressierungsdefekt", "Adressierungsfehler", "Segmentierungsverletzung",
        "Speicherzugriffsfehler"]
    assert all(in_test_split(english) for english in test["en"])
    train = columns("gettext_translations/de", "train[:5000]")
    assert not any(in_test_split(english) for english in train["en"])


def test_conll_sample_has_43_sentences_with_conll2003_features():
    assert split_sizes("conll_sample") == {"train": 27, "dev": 8, "test": 8}
    info = datasets.info("conll_sample")
    real = tfds.builder("conll2003").info
    assert info.features.to_json_content() == real.features.to_json_content()
    assert info.supervised_keys == real.supervised_keys

    sentences = [example for split in ("train", "dev", "test")
                 for example in datasets.load("conll_sample", split).as_numpy_iterator()]
    assert len(sentences) == 43
    assert all(len(s["tokens"]) == len(s["pos"]) == len(s["chunks"]) == len(s["ner"])
               for s in sentences)
    assert sum(len(s["tokens"]) for s in sentences) == 474
    names = info.features["ner"].feature.names
    tags = np.concatenate([s["ner"] for s in sentences])
    entities = {names[i]: int(n) for i, n in enumerate(np.bincount(tags)) if names[i][0] == "B"}
    assert entities == {"B-PER": 15, "B-ORG": 25, "B-LOC": 26, "B-MISC": 10}


def squad_examples(config, split):
    """The examples of a squad_sample split, strings decoded."""
    def decode(value):
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, np.ndarray):
            return [decode(v) for v in value.tolist()]
        return value.tolist() if isinstance(value, np.generic) else value
    return [tf.nest.map_structure(decode, example) for example in
            datasets.load(f"squad_sample/{config}", split).as_numpy_iterator()]


def test_squad_sample_has_tfds_squad_features_and_sizes():
    assert split_sizes("squad_sample/v1.1") == {"train": 136, "validation": 47}
    assert split_sizes("squad_sample/v2.0") == {"train": 170, "validation": 59}
    assert split_sizes("squad_sample") == split_sizes("squad_sample/v1.1")  # the default config
    for config, specs in (("v1.1", SQUAD_V1), ("v2.0", SQUAD_V2)):
        info = datasets.info(f"squad_sample/{config}")
        real = tfds.builder(f"squad/{config}").info
        assert info.features.to_json_content() == real.features.to_json_content()
        assert info.supervised_keys == real.supervised_keys is None
        assert nested_specs(datasets.load(f"squad_sample/{config}", "validation")) == specs

    for split, unanswerable in (("train", 34), ("validation", 12)):
        v2 = squad_examples("v2.0", split)
        assert sum(e["is_impossible"] for e in v2) == unanswerable
        assert all(bool(e["answers"]["text"]) != e["is_impossible"] for e in v2)
        assert all(e["plausible_answers"]["text"] for e in v2 if e["is_impossible"])
        v1 = {e["id"]: e for e in squad_examples("v1.1", split)}
        assert v1 == {e["id"]: {k: e[k] for k in SQUAD_V1} for e in v2 if not e["is_impossible"]}


def test_squad_sample_answers_are_exact_spans_of_their_context():
    spans = 0
    for split in ("train", "validation"):
        for example in squad_examples("v2.0", split):
            context = example["context"]
            for kind in ("answers", "plausible_answers"):
                answers = example[kind]
                for text, start in zip(answers["text"], answers["answer_start"], strict=True):
                    assert context[start:start + len(text)] == text, (example["id"], text)
                    spans += 1
    assert spans == 350  # 304 answers of 183 questions, 46 plausible answers
    with open(squad_sample.SquadSample.default_source() / "squad_sample.json",
              encoding="utf-8") as file:
        raw = json.load(file)
    for article in raw["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                for answer in qa["answers"] + qa.get("plausible_answers", []):
                    start, text = answer["answer_start"], answer["text"]
                    assert paragraph["context"][start:start + len(text)] == text, qa["id"]


def test_squad_sample_splits_by_article_and_is_not_a_first_sentence_task():
    train, validation = squad_examples("v2.0", "train"), squad_examples("v2.0", "validation")
    assert {e["title"] for e in validation} == {
        "São_Paulo", "Viennese_café", "Internet", "Marie_Curie"}
    assert len({e["title"] for e in train}) == 12
    assert not {e["context"] for e in train} & {e["context"] for e in validation}
    examples = train + validation
    assert len({e["id"] for e in examples}) == 229
    contexts = {e["context"] for e in examples}
    assert len(contexts) == 25
    assert sum(len(c.split()) >= 350 for c in contexts) == 4
    assert any(not c.isascii() for c in {e["context"] for e in validation})
    assert sum(len(e["answers"]["text"]) > 1 for e in examples) > 100
    answerable = [e for e in examples if not e["is_impossible"]]
    first = [re.split(r"(?<=[.;:])\s", e["context"])[0] for e in answerable]
    scores = metrics.squad_scores(first, [e["answers"]["text"] for e in answerable])
    assert scores["f1"] < 10
    golden = metrics.squad_scores([e["answers"]["text"][0] for e in answerable],
                                  [e["answers"]["text"] for e in answerable])
    assert golden["exact_match"] == golden["f1"] == 100.0


def test_digits_are_scikit_learns_1797_images():
    try:
        sizes = split_sizes("digits")
    except FileNotFoundError as error:
        pytest.skip(f"scikit-learn is not installed: {error}")
    assert sizes == {"train": 1_437, "test": 360}
    test = datasets.load("digits", "test")
    assert feature_specs(test) == {"image": (tf.uint8, (8, 8, 1)), "label": (tf.int64, ())}
    pixels = columns("digits", "test")["image"]
    assert pixels.max() == 255 and len(np.unique(pixels)) == 17  # 0-16 scaled to 0-255


def test_project_builders_are_plain_tfds_datasets():
    dataset = tfds.load("conll_sample", split="test", data_dir=datasets.default_data_dir())
    assert int(dataset.cardinality()) == 8
    assert isinstance(tfds.builder("fortunes"), tfds.core.GeneratorBasedBuilder)


@pytest.mark.parametrize("name, features", [
    ("mnist", {"image": (tf.uint8, (28, 28, 1)), "label": (tf.int64, ())}),
    ("imdb_reviews", {"text": (tf.string, ()), "label": (tf.int64, ())}),
    ("glue/sst2", {"sentence": (tf.string, ()), "label": (tf.int64, ()), "idx": (tf.int32, ())}),
    ("conll2003", {"tokens": (tf.string, (None,)), "pos": (tf.int64, (None,)),
                   "chunks": (tf.int64, (None,)), "ner": (tf.int64, (None,))}),
    ("ted_hrlr_translate/pt_to_en", {"pt": (tf.string, ()), "en": (tf.string, ())}),
    ("xsum", {"document": (tf.string, ()), "summary": (tf.string, ())}),
    ("cnn_dailymail", {"article": (tf.string, ()), "highlights": (tf.string, ()),
                       "id": (tf.string, ()), "publisher": (tf.string, ())}),
])
def test_standard_names_go_through_tfds_load(name, features):
    with tfds.testing.mock_data(num_examples=3):
        dataset = datasets.load(name, "train", download=True)
        assert feature_specs(dataset) == features
        assert len(list(dataset)) == 3


@pytest.mark.parametrize("name, split, features", [
    ("squad/v1.1", "train", SQUAD_V1),
    ("squad/v2.0", "validation", SQUAD_V2),
])
def test_squad_goes_through_tfds_load(name, split, features):
    with tfds.testing.mock_data(num_examples=3):
        dataset = datasets.load(name, split, download=True)
        assert nested_specs(dataset) == features
        assert len(list(dataset)) == 3


def test_standard_name_offline_fails_at_once_naming_the_local_stand_in(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"load\('fashion_mnist_local', \.\.\.\)"):
        datasets.load("fashion_mnist", "train", data_dir=tmp_path, download=False)
    monkeypatch.setattr(datasets, "_online", lambda: False)  # as on a machine with no network
    with pytest.raises(FileNotFoundError, match=r"conll_sample.*make data"):
        datasets.load("conll2003", "train", data_dir=tmp_path)
    for name, stand_in in (("squad", "squad_sample/v1.1"), ("squad/v2.0", "squad_sample/v2.0")):
        with pytest.raises(FileNotFoundError, match=rf"load\('{stand_in}', \.\.\.\)"):
            datasets.load(name, "validation", data_dir=tmp_path)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown dataset 'fortune'\. Known datasets: .*"
                                         r"fashion_mnist_local, fortunes, .*mnist"):
        datasets.load("fortune", "train")


@pytest.mark.parametrize("split", ["validation", "train[:10%]+dev", ["train", "valid"]])
def test_unknown_split_lists_the_splits(split):
    with pytest.raises(ValueError, match=r"fortunes has no split '(validation|dev|valid)': "
                                         r"its splits are test, train"):
        datasets.load("fortunes", split)


def test_source_is_for_project_builders_only():
    with pytest.raises(ValueError, match=r"source= reads the files of the project's builders"):
        datasets.load("mnist", "train", source="/tmp")


def test_slices_and_sums_of_splits_pass():
    assert int(datasets.load("conll_sample", "train[:10]+test").cardinality()) == 18


@pytest.mark.parametrize("name, missing", [
    ("fashion_mnist_local", "train-images-idx3-ubyte.gz"),
    ("fortunes", "art"),
    ("conll_sample", "conll_sample.txt"),
    ("squad_sample/v2.0", "squad_sample.json"),
    ("gettext_translations/es", "es/LC_MESSAGES"),
])
def test_missing_source_files_name_the_path(tmp_path, name, missing):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / missing))):
        datasets.load(name, "train", data_dir=tmp_path / "tfds", source=empty)


def test_missing_kt_data_names_the_path_and_make_data(tmp_path, monkeypatch):
    monkeypatch.setenv("KT_DATA", str(tmp_path))
    expected = tmp_path / "sentencepiece" / "botchan.txt"
    message = re.escape(str(expected)) + " does not exist.*`make data`"
    with pytest.raises(FileNotFoundError, match=message):
        datasets.load("botchan", "train")
    assert not (tmp_path / "tensorflow_datasets" / "botchan" / "lines" / "1.0.0").exists()


def test_fashion_mnist_local_names_debians_package_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"make data.*dataset-fashion-mnist"):
        datasets.info("fashion_mnist_local", data_dir=tmp_path, source=tmp_path)


def test_idx_reader_rejects_a_file_of_another_kind(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(struct.pack(">II", 2049, 2) + bytes([3, 4])))
    assert fashion_mnist_local.read_idx(path, 2049).tolist() == [3, 4]
    with pytest.raises(ValueError, match="not an idx file of 3 dimensions"):
        fashion_mnist_local.read_idx(path, 2051)


DEBIAN_SAMPLE = Path(__file__).parents[1] / "fixtures" / "debian_descriptions"


def debian_sample(tmp_path, split, source=DEBIAN_SAMPLE):
    """A split of `debian_descriptions` read from the sample of real records (45 packages of
    15 source packages; tests/fixtures/make_debian_descriptions.py) as columns."""
    data = datasets.load("debian_descriptions", split, data_dir=tmp_path / "tfds", source=source)
    rows = list(data.as_numpy_iterator())
    return {key: [row[key].decode() for row in rows] for key in ("id", "document", "summary")}


def test_debian_descriptions_from_the_sample_are_deduplicated_and_split_by_source(tmp_path):
    sizes = split_sizes("debian_descriptions", data_dir=tmp_path / "tfds", source=DEBIAN_SAMPLE)
    # 45 records: 2 long descriptions under 15 words, a synopsis that an earlier package has
    # (libkf5jsembed-dev's), two copies of libsentencepiece-dev's long description: 40 left.
    assert sizes == {"train": 17, "validation": 8, "test": 15}
    info = datasets.info("debian_descriptions", data_dir=tmp_path / "tfds", source=DEBIAN_SAMPLE)
    assert info.supervised_keys == ("document", "summary")
    splits = {split: debian_sample(tmp_path, split) for split in sizes}
    packages = {split: set(columns["id"]) for split, columns in splits.items()}
    for left_out in ("gnome-control-center-dev", "libkf5jsembed5", "libkf5jsembed-dev",
                     "libsentencepiece0", "sentencepiece"):
        assert not any(left_out in names for names in packages.values())
    # Each source's binary packages share a split: fortune-mod's and curl's in test, jq's
    # and lz4's in train, findutils' (with locate) and golang-1.19's in validation.
    assert {"fortune-mod", "fortunes", "fortunes-min", "curl", "libcurl4"} <= packages["test"]
    assert {"jq", "libjq1", "libjq-dev", "lz4", "liblz4-1", "libsentencepiece-dev"} <= \
        packages["train"]
    assert {"findutils", "locate", "golang-1.19-doc", "gzip"} <= packages["validation"]

    train = dict(zip(splits["train"]["id"], zip(splits["train"]["summary"],
                                                 splits["train"]["document"], strict=True),
                     strict=True))
    summary, document = train["hello"]
    assert summary == "example package based on GNU hello"
    assert document.startswith("The GNU hello program produces a familiar, friendly greeting.")
    assert len(document.split("\n\n")) == 2 and "\n " not in document  # 2 paragraphs, rewrapped
    _, nano = train["nano"]
    assert "including:\n- undo/redo\n- line numbering\n" in nano  # verbatim lines kept


def test_debian_descriptions_read_lz4_lists_as_apt_keeps_them(tmp_path):
    import lz4.frame

    compressed = tmp_path / "lists"
    compressed.mkdir()
    for path in DEBIAN_SAMPLE.iterdir():
        (compressed / f"{path.name}.lz4").write_bytes(lz4.frame.compress(path.read_bytes()))
    assert debian_sample(tmp_path / "a", "test", compressed) == debian_sample(tmp_path / "b",
                                                                              "test")


def test_debian_descriptions_need_apts_description_lists(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \*_i18n_Translation-en\[\.lz4\] lists in "
                                                + re.escape(str(tmp_path)) + r".*make data"):
        datasets.info("debian_descriptions", data_dir=tmp_path / "tfds", source=tmp_path)


@pytest.mark.slow  # reads 64,000 descriptions: about 10 s on 2 cores the first time
def test_debian_descriptions_are_57000_distinct_human_summaries():
    # apt-get update -o Acquire::Languages=en of bookworm on 2026-12-07 gave 46,548 / 5,602 /
    # 5,377 (57,527); a later update may add or drop a few packages.
    sizes = split_sizes("debian_descriptions")
    total = sum(sizes.values())
    assert 55_000 <= total <= 60_000
    assert abs(sizes["test"] / total - 0.10) < 0.01
    assert abs(sizes["validation"] / total - 0.10) < 0.01
    rows = datasets.load("debian_descriptions", "train+validation+test").batch(8192)
    everything = {key: [text.decode() for batch in rows.as_numpy_iterator()
                        for text in batch[key]] for key in ("document", "summary")}
    assert len(set(everything["document"])) == len(set(everything["summary"])) == total
    document_words = np.median([len(d.split()) for d in everything["document"]])
    summary_words = np.median([len(s.split()) for s in everything["summary"]])
    assert 43 <= document_words <= 49 and summary_words == 7
    assert min(len(d.split()) for d in everything["document"]) == 15
