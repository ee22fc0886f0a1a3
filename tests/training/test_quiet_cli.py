"""`kt` prints its own lines and Keras' progress, not TensorFlow's native start-up logs,
absl's, oneDNN's, CUDA's or the converter's, nor other packages' warnings; `--verbose`
shows them. Each command runs in a fresh process, as a user runs it."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# What TensorFlow and its dependencies print on their own: native log lines (`I0000 ...`),
# absl's notice, oneDNN's and CUDA's, the TFLite quantizer's, Python warnings and absl logs.
NOISE = re.compile(r"^[IWEF]\d{4} |absl|oneDNN|cuda|fully_quantize|Warning|WARNING")
GPT = ["gpt", "--task", "causal_lm", "--dataset", "botchan/lines", "--split", "train[:200]",
       "--vocabulary-size", "200", "--sequence-length", "16", "--set", "num_layers=1",
       "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8"]


def kt(*args):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "training.cli", *map(str, args)],
                          env=environment, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiet") / "gpt"
    status, out, err = kt("train", *GPT, "--out", folder)
    assert status == 0, err
    return folder, out, err


def assert_quiet(out, err):
    assert err == "", f"stderr is not empty: {err[:2000]}"
    noisy = [line for line in out.splitlines() if NOISE.search(line)]
    assert not noisy, noisy


def test_train_prints_only_its_own_lines(run):
    _, out, err = run
    assert_quiet(out, err)
    assert "Trained 1 epoch(s)" in out


def test_export_and_generate_print_only_their_own_lines(run):
    folder, _, _ = run
    status, out, err = kt("export", folder, "--to", "savedmodel,tflite",
                          "--quantize", "none,dynamic")
    assert status == 0, err
    assert_quiet(out, err)
    assert out.startswith("SavedModel: ") and "TFLite (dynamic): " in out
    status, out, err = kt("generate", folder, "--prompt", "I was", "--max-new-tokens", "3")
    assert status == 0, err
    assert_quiet(out, err)
    assert out.strip()


def test_an_error_is_one_line_and_verbose_shows_tensorflow_again(run):
    folder, _, _ = run
    status, out, err = kt("generate", folder, "--prompt", "I was", "--max-new-tokens", "0")
    assert (status, out) == (2, "")
    assert err == "kt generate: error: --max-new-tokens must be an int >= 1, got 0.\n"
    status, _, err = kt("--verbose", "generate", folder, "--prompt", "I was",
                        "--max-new-tokens", "0")
    assert status == 2 and "absl::InitializeLog" in err
