import json
from types import SimpleNamespace

import numpy as np
import pytest

from training import cli, datasets, evaluate, metrics


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


def fake_summarizer(summarize, decoder_length=12):
    """A stand-in model whose `generate` summarizes each document with `summarize` and keeps
    what it was asked (`calls`)."""
    calls = []

    def generate(sources, max_new_tokens, **options):
        calls.append({"rows": len(sources), "max_new_tokens": max_new_tokens, **options})
        return [summarize(s) for s in sources]

    preprocessor = SimpleNamespace(sequence_length=64, decoder_sequence_length=decoder_length)
    return SimpleNamespace(preprocessor=preprocessor, generate=generate, calls=calls)


def test_rouge_of_perfect_summaries_is_100_beside_the_lead_baseline():
    records = list(datasets.load("debian_descriptions", "test[:6]").as_numpy_iterator())
    documents = [r["document"].decode() for r in records]
    summaries = [r["summary"].decode() for r in records]
    perfect = fake_summarizer(dict(zip(documents, summaries, strict=True)).get)
    scores = evaluate.summary_rouge(perfect, "debian_descriptions", "test[:6]", None, 4)
    assert {k: scores[k] for k in ("rouge1", "rouge2", "rougeL")} == pytest.approx(
        {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})
    lead = metrics.rouge([" ".join(d.split()[:8]) for d in documents], summaries)
    assert {k: scores[f"lead_8_{k}"] for k in lead} == pytest.approx(lead)
    assert [c["rows"] for c in perfect.calls] == [4, 2]  # batches of 4
    assert {c["max_new_tokens"] for c in perfect.calls} == {12}  # the decoder's length


def test_a_model_that_copies_the_lead_scores_as_the_baseline_with_the_options_given():
    copier = fake_summarizer(lambda document: evaluate.lead(document, 5))
    scores = evaluate.summary_rouge(copier, "debian_descriptions", "test", 3, 8, lead_words=5,
                                    generation={"sampler": "beam", "num_beams": 3})
    for kind in ("rouge1", "rouge2", "rougeL"):
        assert scores[kind] == scores[f"lead_5_{kind}"]
    assert copier.calls == [{"rows": 3, "max_new_tokens": 12, "sampler": "beam",
                             "num_beams": 3}]  # only the first 3 documents, beams as asked


def test_lead_is_the_first_words_across_lines():
    assert evaluate.lead("GNU nano is\nan easy-to-use  text editor", 4) == "GNU nano is an"
    assert evaluate.lead("two words", 8) == "two words"


@pytest.mark.slow  # trains a tiny T5 for 2 steps, then summarizes 6 documents: ~30 s
def test_kt_evaluate_prints_rouge_beside_the_lead_baseline(tmp_path, capsys):
    out = tmp_path / "t5-summaries"
    assert cli.main(["train", "t5", "--dataset", "debian_descriptions", "--split", "train[:64]",
                     "--validation-split", "none", "--vocabulary-size", "400",
                     "--sequence-length", "16", "--epochs", "1", "--steps-per-epoch", "2",
                     "--batch-size", "8", "--out", str(out)]) == 0
    assert cli.main(["evaluate", str(out), "--max-examples", "6", "--lead-words", "5",
                     "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "on debian_descriptions test:" in printed and "lead_5_rougeL" in printed
    scores = json.loads((out / "results.json").read_text())["debian_descriptions:test"]
    documents, summaries = evaluate.source_target_pairs("debian_descriptions", "test", 6)
    lead = metrics.rouge([" ".join(d.split()[:5]) for d in documents], summaries)
    assert {k: scores[f"lead_5_{k}"] for k in lead} == pytest.approx(lead)
    assert all(0.0 <= scores[k] <= 100.0 for k in lead) and "bleu" not in scores


@pytest.mark.parametrize("flag, value, rule", [
    ("--num-beams", "0", "an int >= 1, got 0"), ("--lead-words", "-1", "an int >= 1, got -1"),
    ("--max-examples", "0", "an int >= 1, got 0"),
    ("--no-repeat-ngram-size", "-2", "an int >= 0, got -2"),
    ("--length-penalty", "0", "> 0, got 0.0"),
])
def test_kt_evaluate_refuses_bad_generation_settings(flag, value, rule, tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path), flag, value]) == 2
    assert capsys.readouterr().err.strip() == f"kt evaluate: error: {flag} must be {rule}."


def test_kt_evaluate_flags_become_generate_options():
    from training.commands import evaluate as command

    parser = cli.parser()
    flags = parser.parse_args(["evaluate", "run", "--num-beams", "4", "--length-penalty", "0.6",
                               "--no-repeat-ngram-size", "3"])
    assert command.generation_options(flags) == {
        "sampler": "beam", "num_beams": 4, "length_penalty": 0.6, "no_repeat_ngram_size": 3}
    assert command.generation_options(parser.parse_args(["evaluate", "run"])) is None
