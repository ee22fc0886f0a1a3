"""`kill -9` in the middle of `kt train`, then the same command: the run resumes after its
last finished epoch and reproduces the uninterrupted run's losses; damaged backups are
skipped (and said so) or refused with the way out."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from training import backup, runs

pytestmark = pytest.mark.slow

EPOCHS = 5
STEPS = 50  # an epoch: 50 batches of 16, so epochs start inside passes (80 batches a pass)
TRAIN = ["train", "vit", "--dataset", "digits", "--set", "image_shape=8,8,1",
         "--set", "patch_size=2", "--set", "dropout=0.1", "--epochs", str(EPOCHS),
         "--batch-size", "16", "--steps-per-epoch", str(STEPS)]
ENVIRONMENT = {**os.environ}
ENVIRONMENT.pop("TF_CPP_MIN_LOG_LEVEL", None)  # kt quiets TensorFlow itself


def kt(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "training.cli", *map(str, args)],
                          env=ENVIRONMENT, capture_output=True, text=True, timeout=timeout)


def history(run):
    return json.loads((run / runs.HISTORY).read_text())


def kill_after_epochs(run, epochs, limit=240):
    """Start `kt train` into `run` and SIGKILL it once `epochs` epochs are in its history
    (the next epoch has begun); returns the epochs it finished."""
    process = subprocess.Popen([sys.executable, "-m", "training.cli", *TRAIN, "--out", str(run)],
                               env=ENVIRONMENT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (run / runs.HISTORY).exists() and len(history(run)) >= epochs:
                time.sleep(0.2)  # into the next epoch
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = len(history(run))
    assert epochs <= finished < EPOCHS, "the run was not killed in the middle"
    assert not (run / runs.MODEL).exists()
    return finished


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "uninterrupted"
    done = kt(*TRAIN, "--out", run)
    assert done.returncode == 0, done.stderr[-2000:]
    return history(run)


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A run killed in its third epoch, kept as it was left (tests copy it)."""
    run = tmp_path_factory.mktemp("resume") / "killed"
    return run, kill_after_epochs(run, 2)


def copy(killed, tmp_path):
    run, finished = killed
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run", finished


def assert_same_losses(resumed, uninterrupted):
    assert [e["epoch"] for e in resumed] == list(range(1, EPOCHS + 1))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([e[key] for e in resumed],
                                   [e[key] for e in uninterrupted], rtol=1e-6, err_msg=key)


def test_a_killed_run_resumes_and_reproduces_the_uninterrupted_losses(killed, uninterrupted,
                                                                     tmp_path):
    run, finished = copy(killed, tmp_path)
    before = history(run)
    rerun = kt(*TRAIN, "--out", run)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"Resuming {run} after epoch {finished} of {EPOCHS}.\n" in rerun.stdout
    assert_same_losses(history(run), uninterrupted)
    assert history(run)[:finished] == before  # the finished epochs are kept as they were
    model = runs.load_model(run, compile=True)
    assert int(model.optimizer.iterations) == EPOCHS * STEPS
    assert not (run / runs.BACKUP).exists()  # removed once the model is written


def test_an_unreadable_newest_backup_falls_back_to_the_one_before_and_says_so(
        killed, uninterrupted, tmp_path):
    run, finished = copy(killed, tmp_path)
    newest, previous = backup.backups(run / runs.BACKUP)
    weights = newest / backup.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])  # a torn write
    rerun = kt(*TRAIN, "--out", run)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"Resuming {run} after epoch {finished - 1} of {EPOCHS} (the newer backup " \
        f"{newest} cannot be read: " in rerun.stdout
    assert_same_losses(history(run), uninterrupted)


def test_no_readable_backup_is_a_one_line_error_naming_the_files_and_the_ways_out(
        killed, tmp_path):
    run, finished = copy(killed, tmp_path)
    found = backup.backups(run / runs.BACKUP)
    for folder in found:
        (folder / backup.WEIGHTS).write_bytes(b"not hdf5")
    refused = kt(*TRAIN, "--out", run)
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()  # TensorFlow's start-up lines silenced too
    assert len(lines) == 1 and lines[0].startswith(f"kt train: error: {run}: cannot resume: "
                                                   "no backup can be read ("), lines
    assert all(str(folder) in lines[0] for folder in found)
    assert "Run the same command with --restart to train it again from the start, or use " \
        f"the last good model {run}/checkpoints/last.keras (epoch {finished}) as it is." \
        in lines[0]
    assert history(run) and (run / runs.BACKUP).exists()  # refused: nothing changed

    restarted = kt(*TRAIN, "--out", run, "--restart")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert "Resuming" not in restarted.stdout
    assert [e["epoch"] for e in history(run)] == list(range(1, EPOCHS + 1))
