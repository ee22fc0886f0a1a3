"""Botchan, the English novel that SentencePiece's tests train on, as an LM corpus."""

import re

import tensorflow_datasets as tfds

from training.builders._local import LocalBuilder
from zoo import paths

_START = "*** START OF THIS PROJECT GUTENBERG EBOOK"
_END = ("End of Project Gutenberg's", "*** END OF THIS PROJECT GUTENBERG EBOOK")
_CHAPTER = re.compile(r"CHAPTER [IVXL]+\.?$")


def read_chapters(path):
    """The novel's chapters as lists of lines, Project Gutenberg's header and license left out.

    The first "chapter" is the front matter (title, translator's note) before CHAPTER I.
    """
    with open(path, encoding="utf-8-sig") as file:
        lines = [line.rstrip() for line in file]
    start = next(i for i, line in enumerate(lines) if line.startswith(_START)) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith(_END))
    chapters = [[]]
    for line in lines[start:end]:
        if _CHAPTER.match(line):
            chapters.append([])
        if line:
            chapters[-1].append(line)
    return chapters


class Botchan(LocalBuilder):
    """Botchan (Natsume Soseki, 1906; English translation by Y. Morri, Project Gutenberg #8868),
    from the SentencePiece sdist that `make data` unpacks into `$KT_DATA/sentencepiece/`.
    An LM corpus of plain English prose: config `lines` gives one example per line of the book
    (it has no blank lines, so no paragraphs), `chapters` one per chapter. The test split is the
    last chapter (XI), the train split everything before it."""

    HOMEPAGE = "https://www.gutenberg.org/ebooks/8868"
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="lines", description="One example per line of the novel."),
        tfds.core.BuilderConfig(name="chapters",
                                description="One example per chapter (and front matter)."),
    ]

    @classmethod
    def default_source(cls):
        return paths.data_dir() / "sentencepiece"

    def _info(self):
        return self.dataset_info(tfds.features.FeaturesDict({"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {"train": self._generate_examples(test=False),
                "test": self._generate_examples(test=True)}

    def _generate_examples(self, test):
        chapters = read_chapters(self.source_file("botchan.txt"))
        chosen = chapters[-1:] if test else chapters[:-1]
        first = 0 if not test else len(chapters) - 1
        for number, lines in enumerate(chosen, start=first):
            if self.builder_config.name == "chapters":
                yield number, {"text": "\n".join(lines)}
            else:
                for index, line in enumerate(lines):
                    yield f"{number}/{index}", {"text": line}
