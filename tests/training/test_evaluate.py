from types import SimpleNamespace

import numpy as np
import pytest

from training import datasets, evaluate


def test_bleu_of_a_model_that_translates_perfectly_is_100():
    pairs = list(datasets.load("gettext_translations/de", "test[:6]").as_numpy_iterator())
    answers = {p["en"].decode(): p["de"].decode() for p in pairs}
    perfect = SimpleNamespace(
        preprocessor=SimpleNamespace(sequence_length=16),
        generate=lambda sources, max_new_tokens: [answers[s] for s in sources],
    )
    assert evaluate.translation_bleu(perfect, "gettext_translations/de", "test[:6]", 6, 4) == \
        pytest.approx(100.0)
    wrong = SimpleNamespace(preprocessor=perfect.preprocessor,
                            generate=lambda sources, max_new_tokens: ["nein"] * len(sources))
    assert evaluate.translation_bleu(wrong, "gettext_translations/de", "test[:6]", 6, 4) < 5.0


def test_majority_baseline_is_the_share_of_the_most_common_training_label():
    train = [e["label"] for e in datasets.load("digits", "train").as_numpy_iterator()]
    test = np.array([e["label"] for e in datasets.load("digits", "test").as_numpy_iterator()])
    most_common = np.bincount(train).argmax()
    assert evaluate.majority_baseline("digits", "test") == pytest.approx(
        np.mean(test == most_common))
