"""A small NER sample in CoNLL-2003 format, written for the project; conll2003's features."""

from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.core.dataset_builders.conll import conll_dataset_builder_utils as conll

from training.builders._local import LocalBuilder

NER_TAGS = conll.NER_TAGS  # O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC, B-MISC, I-MISC
SPLITS = ("train", "dev", "test")  # conll2003's split names


def read_documents(path):
    """The documents of a CoNLL-2003 file: lists of sentences, each a list of token rows.

    Documents start at `-DOCSTART-` lines, sentences are separated by blank lines, and a row
    is `token POS chunk NER`, separated by single spaces.
    """
    documents, sentence = [], []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            row = line.split()
            if not row or row[0] == "-DOCSTART-":
                if sentence:
                    documents[-1].append(sentence)
                sentence = []
                if row:
                    documents.append([])
            elif len(row) != 4 or not documents:
                raise ValueError(f"{path}:{number}: expected `token POS chunk NER` after a "
                                 f"-DOCSTART- line, got {line.strip()!r}.")
            else:
                sentence.append(row)
    if sentence:
        documents[-1].append(sentence)
    return documents


class ConllSample(LocalBuilder):
    """43 English news sentences annotated in CoNLL-2003 format (POS, chunk and IOB2 NER tags),
    written for this project, in five documents: documents 1-3 are the train split (27
    sentences), document 4 `dev` (8), document 5 `test` (8). Features and split names are
    those of TFDS `conll2003` (`tokens`, `pos`, `chunks`, `ner`; no supervised keys), so a
    pipeline tested on the sample runs on the real corpus."""

    HOW_TO_GET = "check out the repository: the sample is committed as tests/fixtures/"

    @classmethod
    def default_source(cls):
        return Path(__file__).resolve().parents[2] / "tests" / "fixtures"

    def _info(self):
        return self.dataset_info(
            tfds.features.FeaturesDict(dict(conll.CONLL_2003_ORDERED_FEATURES)))

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        documents = read_documents(self.source_file("conll_sample.txt"))
        if len(documents) < len(SPLITS):
            raise ValueError(f"{self.name}: the sample needs at least {len(SPLITS)} documents.")
        parts = (documents[:-2], documents[-2:-1], documents[-1:])
        return {split: self._generate_examples(part)
                for split, part in zip(SPLITS, parts, strict=True)}

    def _generate_examples(self, documents):
        for number, document in enumerate(documents):
            for index, rows in enumerate(document):
                tokens, pos, chunks, ner = zip(*rows, strict=True)
                yield f"{number}/{index}", {"tokens": list(tokens), "pos": list(pos),
                                            "chunks": list(chunks), "ner": list(ner)}
