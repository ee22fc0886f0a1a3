"""A small reading-comprehension sample in SQuAD v2.0 format, written for the project; the
features of TFDS `squad/v1.1` and `squad/v2.0`."""

import json
from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.squad import squad_dataset_builder as tfds_squad
from tensorflow_datasets.question_answering import qa_utils

from training.builders._local import LocalBuilder

SPLITS = ("train", "validation")  # squad's split names


def read_articles(path):
    """The articles of a SQuAD-format JSON file: `{"title", "paragraphs": [{"context", "qas"}]}`.

    Raises:
        ValueError: the file is not SQuAD JSON (no `data` list of articles with paragraphs).
    """
    with open(path, encoding="utf-8") as file:
        squad = json.load(file)
    articles = squad.get("data") if isinstance(squad, dict) else None
    if not isinstance(articles, list) or not all("paragraphs" in a for a in articles):
        raise ValueError(f"{path}: expected SQuAD JSON, {{'data': [{{'title', 'paragraphs'}}]}}.")
    return articles


def split_of(index):
    """The split of the article at `index` (0-based) in the file: every fourth article, the
    4th, 8th, 12th, ..., is `validation`, the others `train`."""
    return SPLITS[index % 4 == 3]


def _answers(answers):
    return {"text": [answer["text"] for answer in answers],
            "answer_start": [answer["answer_start"] for answer in answers]}


class SquadSample(LocalBuilder):
    """229 English reading-comprehension questions about 25 paragraphs of 16 short articles
    (geography, science, history, technology), written for this project in SQuAD v2.0 format;
    46 of them cannot be answered from their paragraph (`is_impossible`, with the
    `plausible_answers` a reader might pick). Answers are spans of the paragraph, given as text
    and character offset (`answer_start`); 115 questions have 2 or 3 gold answers, as in
    SQuAD's dev set. Four paragraphs are longer than a 384-token window (350+ words), with most
    answers in their second half; several contain non-ASCII text (Zürich, São Paulo, café,
    naïve, —, π, α), so character and byte offsets differ.

    Splits by article, as in SQuAD (no article is in both): every fourth article of the file
    (São_Paulo, Viennese_café, Internet, Marie_Curie) is `validation`, the other twelve are
    `train`. Config `v1.1` keeps the answerable questions only, with TFDS `squad/v1.1`'s
    features (train 136 / validation 47); `v2.0` keeps all of them, with `squad/v2.0`'s
    features (train 170 / validation 59). No supervised keys, as in TFDS `squad`."""

    VERSION = tfds.core.Version("1.0.0")
    HOW_TO_GET = "check out the repository: the sample is committed as tests/fixtures/"
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="v1.1", description="Answerable questions only, as in "
                                "SQuAD 1.1; TFDS squad/v1.1's features."),
        tfds.core.BuilderConfig(name="v2.0", description="All questions, unanswerable ones "
                                "included, as in SQuAD 2.0; TFDS squad/v2.0's features."),
    ]

    @classmethod
    def default_source(cls):
        return Path(__file__).resolve().parents[2] / "tests" / "fixtures"

    def _info(self):
        if self.builder_config.name == "v1.1":
            return self.dataset_info(qa_utils.squadlike_features())
        return self.dataset_info(tfds_squad._v2_features())

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        articles = read_articles(self.source_file("squad_sample.json"))
        return {split: self._generate_examples(
            [article for index, article in enumerate(articles) if split_of(index) == split])
            for split in SPLITS}

    def _generate_examples(self, articles):
        v2 = self.builder_config.name == "v2.0"
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    impossible = bool(qa.get("is_impossible", False))
                    if impossible and not v2:
                        continue
                    example = {"id": qa["id"], "title": article.get("title", ""),
                               "context": paragraph["context"], "question": qa["question"],
                               "answers": _answers(qa["answers"])}
                    if v2:
                        example["is_impossible"] = impossible
                        example["plausible_answers"] = _answers(qa.get("plausible_answers", []))
                    yield qa["id"], example
