"""Debian's fortune cookies: short texts labelled with their topic, also an LM corpus."""

import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder, in_test_split

# The topic files of Debian's `fortunes` and `fortunes-min` packages (1:1.99.1-7.3).
TOPICS = (
    "art", "ascii-art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs",
    "education", "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law",
    "linux", "linuxcookie", "literature", "love", "magic", "medicine", "men-women",
    "miscellaneous", "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics",
    "pratchett", "riddles", "science", "songs-poems", "sports", "startrek", "tao",
    "translate-me", "wisdom", "work", "zippy",
)


def read_fortunes(path):
    """The entries of a fortune file: texts between lines holding only `%`, empty ones dropped."""
    entries, lines = [], []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file.read().split("\n") + ["%"]:
            if line == "%":
                text = "\n".join(lines).strip("\n")
                if text.strip():
                    entries.append(text)
                lines = []
            else:
                lines.append(line)
    return entries


class Fortunes(LocalBuilder):
    """Fortune cookies from Debian's `fortunes` package: quotations, jokes and verse in 43
    topics, each entry labelled with its topic (text classification) and usable as an English
    LM corpus. The test split is about 10% of the entries, chosen by a hash of the text, so
    it is the same on every machine and a text repeated in two topics is in one split."""

    HOMEPAGE = "https://packages.debian.org/fortunes"
    HOW_TO_GET = "run `make data` (it installs Debian's fortunes)"

    @classmethod
    def default_source(cls):
        return "/usr/share/games/fortunes"

    def _info(self):
        return self.dataset_info(
            tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=TOPICS),
            }),
            supervised_keys=("text", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples(test=False),
                "test": self._generate_examples(test=True)}

    def _generate_examples(self, test):
        for topic in TOPICS:
            for index, text in enumerate(read_fortunes(self.source_file(topic))):
                if in_test_split(text) == test:
                    yield f"{topic}/{index}", {"text": text, "label": topic}
