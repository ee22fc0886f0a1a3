"""Bad arguments to every `kt` subcommand: each is one line on stderr, `kt <command>:
error: ...`, exit status 2, no traceback, and (for `kt train`) nothing written."""

import shutil

import keras
import pytest

import zoo
from tests.reliability.cases import assert_message
from training import cli, runs
from training.train import TrainSettings
from zoo import preprocessing

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ada", "wrote", "it", "who", "?", "."]
TEXTS = ["Ada wrote it.", "Who wrote it?", "A fortune a day keeps the doctor away."] * 20


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small model files to point the commands at, and a run folder whose model.keras is
    truncated (its checkpoint intact)."""
    from training import vocabulary

    folder = tmp_path_factory.mktemp("kt")
    gpt = zoo.build("gpt", task="causal_lm", num_layers=1)
    proto = vocabulary.train_sentencepiece(TEXTS, 40, hard_vocab_limit=False)
    gpt.preprocessor = preprocessing.preprocessor_for(
        gpt, preprocessing.SentencePieceTokenizer(proto), 16)
    gpt.save(folder / "gpt.keras")
    qa = zoo.build("bert", task="question_answering", num_layers=1)
    qa.preprocessor = preprocessing.preprocessor_for(
        qa, preprocessing.WordPieceTokenizer(WORDS), 32)
    qa.save(folder / "qa.keras")
    zoo.build("vit", task="classifier", num_classes=2, num_layers=1).save(folder / "vit.keras")
    (folder / "file").write_text("a regular file")
    (folder / "notes.png").write_text("not an image")

    run = folder / "run"
    (run / runs.CHECKPOINTS).mkdir(parents=True)
    runs.write_json(run / runs.CONFIG, TrainSettings(model="gpt", dataset="fortunes",
                                                     out=str(run)).to_json())
    shutil.copy(folder / "gpt.keras", run / runs.CHECKPOINTS / runs.LAST_CHECKPOINT)
    data = (folder / "gpt.keras").read_bytes()
    (run / runs.MODEL).write_bytes(data[: len(data) // 2])
    export = folder / "exports"
    (export / "savedmodel" / "gpt_causal_lm" / "1").mkdir(parents=True)
    (export / "savedmodel" / "gpt_causal_lm" / "1" / "saved_model.pb").write_text("")

    for name, content in (("list", "[1, 2]"), ("broken", "{not json")):
        (folder / name).mkdir()
        (folder / name / runs.CONFIG).write_text(content)
    (folder / "empty").mkdir()
    return folder


def run_kt(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.err


TRAIN = "train gpt --dataset fortunes --out {f}/new-run --epochs 1".split()
VIT = "train vit --dataset digits --out {f}/new-run --epochs 1".split()

# (name, argv with {f} for the fixture folder, the words of the message)
CASES = [
    # kt train: every argument checked before anything is written.
    ("train --epochs 0", TRAIN + ["--epochs", "0"], r"--epochs must be an int >= 1, got 0"),
    ("train --epochs -2", TRAIN + ["--epochs", "-2"], r"--epochs must be an int >= 1"),
    ("train --epochs x", TRAIN + ["--epochs", "x"], r"--epochs.*invalid int value: 'x'"),
    ("train --batch-size 0", TRAIN + ["--batch-size", "0"], r"--batch-size must be an int >= 1"),
    ("train --batch-size -8", TRAIN + ["--batch-size", "-8"], r"--batch-size must be"),
    ("train --steps-per-epoch 0", TRAIN + ["--steps-per-epoch", "0"],
     r"--steps-per-epoch must be an int >= 1"),
    ("train --lr 0", TRAIN + ["--lr", "0"], r"--lr must be > 0"),
    ("train --lr -1e-3", TRAIN + ["--lr=-1e-3"], r"--lr must be > 0"),
    ("train --lr nan", TRAIN + ["--lr", "nan"], r"--lr must be > 0"),
    ("train --weight-decay -1", TRAIN + ["--weight-decay", "-1"], r"--weight-decay must be >= 0"),
    ("train --warmup-ratio 1.5", TRAIN + ["--warmup-ratio", "1.5"],
     r"--warmup-ratio must be in \[0, 1\)"),
    ("train --label-smoothing 1", TRAIN + ["--label-smoothing", "1"],
     r"--label-smoothing must be in \[0, 1\)"),
    ("train --clipnorm 0", TRAIN + ["--clipnorm", "0"], r"--clipnorm must be > 0"),
    ("train --sequence-length 0", TRAIN + ["--sequence-length", "0"],
     r"--sequence-length must be an int >= 1"),
    ("train --sequence-length past the positions", TRAIN + ["--sequence-length", "4096"],
     r"--sequence-length 4096.*max_sequence_length 128"),
    ("train --vocabulary-size 3", TRAIN + ["--vocabulary-size", "3"],
     r"--vocabulary-size must be an int >= 16"),
    ("train --patience 0", TRAIN + ["--patience", "0"], r"--patience must be an int >= 1"),
    ("train unknown model", ["train", "bret", "--dataset", "fortunes", "--out", "{f}/new-run"],
     r"unknown model 'bret'.*bert"),
    ("train unknown dataset", ["train", "gpt", "--dataset", "fortune", "--out", "{f}/new-run"],
     r"unknown dataset 'fortune'.*fortunes"),
    ("train bert on images", ["train", "bert", "--dataset", "digits", "--out", "{f}/new-run"],
     r"'digits' holds images.*'bert' reads text.*--dataset (botchan|conll|fortunes)"),
    ("train vit on text", ["train", "vit", "--dataset", "fortunes", "--out", "{f}/new-run"],
     r"'fortunes' holds text.*'vit' reads images.*digits"),
    ("train unknown task", TRAIN + ["--task", "translation"],
     r"unknown task 'translation' for 'gpt'"),
    ("train task the dataset cannot feed", VIT + ["--task", "causal_lm"],
     r"unknown task 'causal_lm' for 'vit'"),
    ("train t5 seq2seq on fortunes", ["train", "t5", "--dataset", "fortunes", "--task",
                                      "seq2seq_lm", "--out", "{f}/new-run"],
     r"'fortunes' cannot feed the task 'seq2seq_lm'"),
    ("train unknown size", TRAIN + ["--size", "huge"], r"unknown size 'huge' for 'gpt'"),
    ("train --set without =", TRAIN + ["--set", "num_layers"], r"--set takes FIELD=VALUE"),
    ("train --set unknown field", TRAIN + ["--set", "num_layer=2"],
     r"--set num_layer: unknown.*num_layers"),
    ("train --set num_layers=0", TRAIN + ["--set", "num_layers=0"],
     r"num_layers must be a positive int, got 0"),
    ("train --set num_layers=true", TRAIN + ["--set", "num_layers=true"],
     r"num_layers must be a positive int, got True"),
    ("train --set num_classes=0", VIT + ["--set", "num_classes=0"],
     r"--set num_classes must be an int >= 1, got 0"),
    ("train --from-pretrained missing", TRAIN + ["--from-pretrained", "{f}/nowhere"],
     r"--from-pretrained {f}/nowhere does not exist"),
    ("train --out under a file", ["train", "gpt", "--dataset", "fortunes", "--out",
                                  "{f}/file/run"], r"--out {f}/file/run.*{f}/file is a file"),
    ("train unknown strategy", TRAIN + ["--strategy", "mirroredd"],
     r"unknown strategy 'mirroredd'"),
    ("train unknown split", TRAIN + ["--split", "training"],
     r"--split: fortunes has no split 'training'.*train"),
    ("train unknown validation split", TRAIN + ["--validation-split", "dev"],
     r"--validation-split: fortunes has no split 'dev'"),
    ("train --out holds a JSON list", ["train", "gpt", "--dataset", "fortunes", "--out",
                                       "{f}/list"], r"{f}/list.*(not a kt run|another run)"),
    ("train --out holds broken JSON", ["train", "gpt", "--dataset", "fortunes", "--out",
                                       "{f}/broken"], r"config.json is not valid JSON"),
    ("train a folder that is not a run", ["train", "gpt", "--dataset", "fortunes", "--out",
                                          "{f}/exports"], r"exists and is not a run folder"),
    # kt evaluate
    ("evaluate missing run", ["evaluate", "{f}/nowhere"], r"{f}/nowhere.*not a run folder"),
    ("evaluate a folder that is not a run", ["evaluate", "{f}/empty"], r"not a run folder"),
    ("evaluate a JSON list config", ["evaluate", "{f}/list"], r"not a run folder|JSON list"),
    ("evaluate truncated model.keras", ["evaluate", "{f}/run"],
     r"model.keras cannot be read.*checkpoints/last.keras"),
    ("evaluate --batch-size 0", ["evaluate", "{f}/run", "--batch-size", "0"],
     r"--batch-size must be an int >= 1"),
    ("evaluate unknown dataset", ["evaluate", "{f}/run", "--dataset", "nope"],
     r"unknown dataset 'nope'"),
    # kt export
    ("export unknown format", ["export", "{f}/gpt.keras", "--to", "onnx"],
     r"unknown format \['onnx'\]; choose from savedmodel, tflite"),
    ("export unknown quantization", ["export", "{f}/gpt.keras", "--quantize", "int3"],
     r"unknown quantization \['int3'\]"),
    ("export --out under a file", ["export", "{f}/gpt.keras", "--out", "{f}/file/x"],
     r"--out {f}/file/x.*{f}/file is a file"),
    ("export --version 0", ["export", "{f}/gpt.keras", "--version", "0"],
     r"--version must be an int >= 1"),
    ("export --calibration-examples 0", ["export", "{f}/vit.keras", "--quantize", "int8",
                                         "--calibration-examples", "0"],
     r"--calibration-examples must be an int >= 1"),
    ("export --name with a slash", ["export", "{f}/gpt.keras", "--name", "a/b"],
     r"model name 'a/b' is not a folder name"),
    ("export missing model", ["export", "{f}/nowhere.keras"], r"nowhere.keras is not a model"),
    ("export truncated model", ["export", "{f}/run"], r"model.keras cannot be read"),
    ("export an existing version", ["export", "{f}/gpt.keras", "--out", "{f}/exports",
                                    "--version", "1", "--to", "savedmodel"],
     r"exists: pass overwrite=True \(`--overwrite`\)"),
    # kt verify
    ("verify without exports", ["verify", "{f}/gpt.keras", "--exports", "{f}/empty"],
     r"no (exports|artifacts)"),
    ("verify --examples 0", ["verify", "{f}/gpt.keras", "--examples", "0"],
     r"--examples must be an int >= 1"),
    ("verify missing model", ["verify", "{f}/nowhere"], r"nowhere does not exist"),
    # kt generate
    ("generate --max-new-tokens 0", ["generate", "{f}/gpt.keras", "--prompt", "A",
                                     "--max-new-tokens", "0"],
     r"--max-new-tokens must be an int >= 1"),
    ("generate --max-new-tokens -1", ["generate", "{f}/gpt.keras", "--prompt", "A",
                                      "--max-new-tokens", "-1"], r"--max-new-tokens must be"),
    ("generate --max-new-tokens past the context", ["generate", "{f}/gpt.keras", "--prompt",
                                                    "A", "--max-new-tokens", "500"],
     r"max_new_tokens 500 does not fit the model's context of 128"),
    ("generate unknown sampler", ["generate", "{f}/gpt.keras", "--prompt", "A", "--sampler",
                                  "nucleus"], r"invalid choice: 'nucleus'|unknown sampler"),
    ("generate --temperature 0", ["generate", "{f}/gpt.keras", "--prompt", "A", "--sampler",
                                  "top_k", "--temperature", "0"], r"temperature must be > 0"),
    ("generate --top-k 0", ["generate", "{f}/gpt.keras", "--prompt", "A", "--sampler", "top_k",
                            "--top-k", "0"], r"top_k must be in \[1, "),
    ("generate --top-p 0", ["generate", "{f}/gpt.keras", "--prompt", "A", "--sampler", "top_p",
                            "--top-p", "0"], r"top_p must be in \(0, 1\]"),
    ("generate --num-beams 0", ["generate", "{f}/gpt.keras", "--prompt", "A", "--sampler",
                                "beam", "--num-beams", "0"], r"num_beams must be in \[1, "),
    ("generate with a question answerer", ["generate", "{f}/qa.keras", "--prompt", "A"],
     r"cannot generate|not a (causal|generative)"),
    ("generate without a tokenizer", ["generate", "tests/fixtures/reference/gpt2", "--prompt",
                                      "A"], r"tokenizer|preprocessor"),
    ("generate empty prompt", ["generate", "{f}/gpt.keras", "--prompt", ""],
     r"--prompt is empty"),
    # kt answer
    ("answer empty question", ["answer", "{f}/qa.keras", "--question", " ", "--context", "x"],
     r"--question is empty"),
    ("answer empty context", ["answer", "{f}/qa.keras", "--question", "Who?", "--context", ""],
     r"--context is empty"),
    ("answer missing context file", ["answer", "{f}/qa.keras", "--question", "Who?",
                                     "--context-file", "{f}/none.txt"],
     r"--context-file {f}/none.txt does not exist"),
    ("answer with a language model", ["answer", "{f}/gpt.keras", "--question", "Who?",
                                      "--context", "Ada."], r"not a question answering model"),
    ("answer without a tokenizer", ["answer", "tests/fixtures/reference/bert_question_answering",
                                    "--question", "Who?", "--context", "Ada."],
     r"tokenizer|preprocessor"),
    # kt attention
    ("attention missing image", ["attention", "{f}/vit.keras", "--image", "{f}/none.png",
                                 "--out", "{f}/att"], r"--image {f}/none.png does not exist"),
    ("attention an image that is not one", ["attention", "{f}/vit.keras", "--image",
                                            "{f}/notes.png", "--out", "{f}/att"],
     r"notes.png.*(not an image|cannot be decoded)"),
    ("attention --layer past the last", ["attention", "{f}/gpt.keras", "--text", "Ada wrote",
                                         "--layer", "7", "--out", "{f}/att"],
     r"layer 7 is out of range: this model has 1 decoder layers"),
    ("attention text into a ViT", ["attention", "{f}/vit.keras", "--text", "hi", "--out",
                                   "{f}/att"], r"--image"),
    ("attention an image into a GPT", ["attention", "{f}/gpt.keras", "--image", "{f}/notes.png",
                                       "--out", "{f}/att"], r"--text"),
    ("attention cross maps of a GPT", ["attention", "{f}/gpt.keras", "--text", "Ada", "--kind",
                                       "cross", "--out", "{f}/att"], r"cross"),
    ("attention --out under a file", ["attention", "{f}/gpt.keras", "--text", "Ada", "--out",
                                      "{f}/file/att"], r"--out {f}/file/att.*is a file"),
    # kt models
    ("models unknown family", ["models", "bret"], r"unknown model 'bret'"),
]


@pytest.mark.parametrize("argv, words", [pytest.param(a, w, id=n) for n, a, w in CASES])
def test_bad_arguments_are_one_line_errors(files, capsys, argv, words):
    argv = [part.replace("{f}", str(files)) for part in argv]
    words = words.replace("{f}", str(files))
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse refuses a malformed value: its usage, then the error
        status = exit.code
    finally:
        wrote = (files / "new-run").exists()
        shutil.rmtree(files / "new-run", ignore_errors=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2, lines
    assert lines and lines[-1].startswith(f"kt {argv[0]}: error: "), lines
    assert_message(lines[-1], words)
    if not lines[0].startswith("usage:"):
        assert len(lines) == 1, lines
    assert not wrote, "a refused kt train wrote its folder"


@pytest.mark.slow  # trains
def test_a_corrected_command_runs_where_a_refused_one_was(files, capsys, tmp_path):
    """The issue's case: `--epochs 0` refused, then the same folder trains."""
    out = tmp_path / "run"
    argv = ["train", "vit", "--dataset", "digits", "--out", str(out), "--batch-size", "64",
            "--set", "image_shape=8,8,1", "--set", "patch_size=4", "--set", "num_layers=1"]
    assert run_kt(argv + ["--epochs", "0"], capsys)[0] == 2
    assert not out.exists()
    status, err = run_kt(argv + ["--epochs", "1", "--steps-per-epoch", "2"], capsys)
    assert status == 0, err
    assert keras.models.load_model(out / runs.MODEL).count_params() > 0


def test_an_unexpected_error_is_one_line_and_verbose_shows_the_traceback(capsys, monkeypatch):
    def broken(args):
        raise KeyError("inside")

    monkeypatch.setattr(cli.COMMANDS["models"], "run", broken)
    assert run_kt(["models"], capsys) == (2, "kt models: error: KeyError: 'inside' "
                                             "(run with --verbose for the traceback)\n")
    status, err = run_kt(["--verbose", "models"], capsys)
    assert status == 2 and "Traceback" in err and "KeyError: 'inside'" in err


@pytest.mark.slow  # `kt models gpt` counts the parameters of every size
def test_verbose_works_after_the_command_too(capsys):
    status, err = run_kt(["models", "gpt", "--verbose"], capsys)
    assert status == 0, err


CASE_COUNT = len(CASES)
