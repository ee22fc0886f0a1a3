"""`kt train` / `kt evaluate` end to end on tiny configurations: every task writes a complete
run folder; bad input is refused with a message that says what fits. (A killed run resumes:
tests/reliability/test_resume.py.)"""

import contextlib
import io
import json
import shutil

import pytest

from training import cli, runs

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8"]
TEXT = ["--vocabulary-size", "400", "--sequence-length", "16"]
IMAGES = ["--set", "image_shape=8,8,1", "--set", "patch_size=2"]

# model, task, dataset, extra arguments
RUNS = {
    "vit-classifier": ["vit", "--dataset", "digits", *IMAGES],
    "bert-classifier": ["bert", "--dataset", "fortunes", "--split", "train[:300]",
                        "--validation-split", "test[:16]", *TEXT],
    "bert-token_classifier": ["bert", "--dataset", "conll_sample", "--task",
                              "token_classifier", *TEXT],
    "bert-masked_lm": ["bert", "--task", "masked_lm", "--dataset", "botchan/lines",
                       "--split", "train[:300]", *TEXT],
    "gpt-causal_lm": ["gpt", "--task", "causal_lm", "--dataset", "botchan/lines",
                      "--split", "train[:300]", *TEXT],
    "t5-seq2seq_lm": ["t5", "--dataset", "gettext_translations/de", "--split", "train[:300]",
                      "--validation-split", "test[:16]", *TEXT],
    "bert-question_answering": ["bert", "--dataset", "squad_sample/v2.0", *TEXT],
    "bart-seq2seq_lm": ["bart", "--dataset", "gettext_translations/de", "--split", "train[:300]",
                        "--validation-split", "test[:16]", *TEXT],
}


def kt(*args):
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`trained(name)`: the run folder of `kt train RUNS[name] TINY` and what it printed, made
    once per module (training is the slow part; the tests only read these folders)."""
    base = tmp_path_factory.mktemp("runs")
    made = {}

    def train(name):
        if name not in made:
            out, printed = base / name, io.StringIO()
            with contextlib.redirect_stdout(printed):
                assert kt("train", *RUNS[name], *TINY, "--out", out) == 0
            made[name] = out, printed.getvalue()
        return made[name]

    return train


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_every_task_trains_into_a_complete_run_folder(name, trained):
    out, printed = trained(name)
    assert "Trained 1 epoch(s)" in printed and "epoch" in printed
    config = runs.read_config(out)
    assert config["task"] == name.split("-")[1]
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history] == [1] and history[0]["loss"] > 0
    assert (out / "model.keras").is_file() and (out / "checkpoints" / "last.keras").is_file()
    assert any((out / "logs").rglob("*.tfevents.*"))
    assert not (out / "backup").exists()  # removed once training finished
    assert (out / "tokenizer.json").exists() == (name != "vit-classifier")
    model = runs.load_model(out, compile=True)
    assert model.preprocessor is not None
    assert int(model.optimizer.iterations) == 2


@pytest.mark.slow
def test_evaluate_reports_the_task_figures(trained, capsys):
    out, _ = trained("bert-token_classifier")
    assert kt("evaluate", out) == 0
    printed = capsys.readouterr().out
    assert "entity_f1" in printed
    results = json.loads((out / "results.json").read_text())
    scores = results["conll_sample:test"]
    assert 0.0 <= scores["entity_f1"] <= 1.0 and 0.0 <= scores["accuracy"] <= 1.0


@pytest.mark.slow
def test_bart_from_train_to_evaluate_export_verify_generate_and_attention(trained, capsys):
    """BART from scratch: its special ids are the learned tokenizer's, and every command runs."""
    out, _ = trained("bart-seq2seq_lm")
    model = runs.load_model(out)
    tokenizer, config = model.preprocessor.tokenizer, model.backbone.config
    assert (config.end_token_id, config.decoder_start_token_id, config.pad_token_id) == (
        tokenizer.end_id, tokenizer.end_id, model.preprocessor.pad_id)
    assert kt("evaluate", out, "--max-examples", "8") == 0
    assert "bleu" in json.loads((out / "results.json").read_text())[
        "gettext_translations/de:test"]
    assert kt("export", out, "--to", "savedmodel,tflite") == 0
    assert kt("verify", out, "--examples", "4") == 0
    report = json.loads((out / "export" / "verify.json").read_text())
    assert [c["kind"] for c in report["checks"]] == ["savedmodel", "tflite"]
    assert all(c["max_abs_diff"] < 1e-5 for c in report["checks"])
    capsys.readouterr()
    assert kt("generate", out, "--prompt", "the file", "--max-new-tokens", "4") == 0
    assert capsys.readouterr().out.strip() == model.generate("the file", 4).strip()
    assert kt("attention", out, "--text", "the file", "--target", "die Datei", "--layer", "1",
              "--out", out / "attention") == 0
    assert sorted(p.name for p in (out / "attention").glob("*_heads.png")) == [
        "cross_layer_1_heads.png", "decoder_layer_1_heads.png", "encoder_layer_1_heads.png"]


@pytest.mark.slow
def test_question_answering_from_train_to_evaluate_export_verify_and_attention(trained, capsys):
    from training import evaluate

    out, _ = trained("bert-question_answering")
    model = runs.load_model(out)
    assert model.allow_no_answer  # squad 2.0 has unanswerable questions
    assert kt("evaluate", out) == 0
    scores = json.loads((out / "results.json").read_text())["squad_sample/v2.0:validation"]
    baseline = evaluate.first_sentence_baseline("squad_sample/v2.0", "validation")
    assert scores["first_sentence_f1"] == baseline["f1"] < 10
    assert scores["total"] == 59 and scores["no_answer_total"] == 12
    for key in ("exact_match", "f1", "has_answer_f1", "no_answer_f1"):
        assert 0.0 <= scores[key] <= 100.0
    assert 0.0 <= scores["no_answer_accuracy"] <= 1.0

    assert kt("export", out, "--to", "savedmodel,tflite") == 0
    assert kt("verify", out, "--examples", "8") == 0
    report = json.loads((out / "export" / "verify.json").read_text())
    assert [c["kind"] for c in report["checks"]] == ["savedmodel", "tflite"]
    assert all(c["max_abs_diff"] < 1e-5 for c in report["checks"])
    assert kt("attention", out, "--text", "Who wrote it?", "--context", "Ada wrote it.",
              "--layer", "-1", "--out", out / "attention") == 0
    assert sorted(p.name for p in (out / "attention").glob("*.png"))
    capsys.readouterr()
    assert kt("attention", out, "--text", "Who wrote it?", "--out", out / "a") == 2
    assert "--context" in capsys.readouterr().err

    context = "Ada wrote the first program in 1843 in London."
    assert kt("answer", out, "--question", "When?", "--context", context, "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == model.answer("When?", context)
    assert kt("answer", out, "--question", "When?", "--context-file", out / "none.txt") == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_a_finished_run_is_not_trained_again(trained, capsys):
    out, _ = trained("vit-classifier")
    before = (out / "model.keras").stat().st_mtime_ns
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--out", out) == 0
    assert "already trained" in capsys.readouterr().out
    assert (out / "model.keras").stat().st_mtime_ns == before


@pytest.mark.slow
def test_another_run_in_the_folder_is_refused_unless_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "vit"  # a copy of the shared run, moved here (its config names its folder)
    shutil.copytree(trained("vit-classifier")[0], out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "out": str(out)}))
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--out", out) == 0
    assert "already trained" in capsys.readouterr().out  # the copy is this very run
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--seed", "1", "--out", out) == 2
    assert "holds another run (its settings differ in seed)" in capsys.readouterr().err
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--seed", "1", "--out", out,
              "--overwrite") == 0
    assert runs.read_config(out)["seed"] == 1


@pytest.mark.parametrize("arguments, message", [
    (["resnet", "--dataset", "digits"], "Unknown model 'resnet'. Models: ['bart', 'bert', 'gpt'"),
    (["vit", "--dataset", "digits", "--task", "causal_lm"],
     "Unknown task 'causal_lm' for 'vit'. Tasks: ['classifier']"),
    (["vit", "--dataset", "cifar100"], "Unknown dataset 'cifar100'. Datasets: ["),
    (["bert", "--dataset", "botchan/lines", "--task", "classifier"],
     "Dataset 'botchan/lines' cannot feed the task 'classifier': it feeds ['causal_lm', "
     "'masked_lm']. Datasets for classifier: ["),
    (["t5", "--dataset", "fortunes"], "'t5' has the tasks ['seq2seq_lm'], and 'fortunes' "
     "feeds ['classifier', 'causal_lm', 'masked_lm']: none in common"),
    (["t5", "--dataset", "digits"], "'digits' holds images and 't5' reads text: train vit on "
     "it, or t5 on --dataset botchan/chapters, "),
    (["vit", "--dataset", "digits", "--set", "num_layers"], "--set takes FIELD=VALUE"),
    (["transformer", "--dataset", "gettext_translations/de", "--recipe", "paper"],
     "--recipe 'paper' is unknown. Recipes: ['transformer_paper']."),
])
def test_bad_input_names_the_problem_and_what_fits(arguments, message, tmp_path, capsys):
    assert kt("train", *arguments, *TINY, "--out", tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert message in error, error


@pytest.mark.slow
def test_nan_loss_stops_with_a_message_and_keeps_no_bad_model(tmp_path, capsys):
    out = tmp_path / "nan"
    code = kt("train", *RUNS["vit-classifier"], "--epochs", "2", "--steps-per-epoch", "3",
              "--batch-size", "8", "--lr", "1e38", "--warmup-ratio", "0", "--out", out)
    captured = capsys.readouterr()
    assert code == 1
    assert "the loss became NaN at epoch 1" in captured.err
    assert not (out / "model.keras").exists()
    assert not (out / "checkpoints" / "last.keras").exists()  # no finite epoch to keep


@pytest.mark.slow
def test_answer_refuses_a_model_of_another_task(trained, capsys):
    out, _ = trained("bert-token_classifier")
    assert kt("answer", out, "--question", "q", "--context", "c") == 2
    assert "not a question answering model" in capsys.readouterr().err


def test_evaluate_needs_a_run_folder(tmp_path, capsys):
    assert kt("evaluate", tmp_path) == 2
    assert "is not a run folder: it has no config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_a_strategy_trains_in_its_scope_without_xla(tmp_path):
    out = tmp_path / "mirrored"
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--strategy", "mirrored",
              "--out", out) == 0
    model = runs.load_model(out, compile=True)
    assert int(model.optimizer.iterations) == 2
    assert kt("train", *RUNS["vit-classifier"], *TINY, "--strategy", "warp",
              "--out", tmp_path / "warp") == 2
