"""The callbacks of a run folder: checkpoints that never keep a NaN model, a backup to resume
from, a history that survives restarts, TensorBoard, early stopping and a NaN stop.

`run_callbacks(run_dir)` gives them all, in the order they must run at the end of an epoch:
stop on NaN first (so the others see it), then the checkpoint, then the backup, then the
history (written last, so an epoch in the history is always an epoch in the backup).

Example:

>>> import tempfile
>>> from training import callbacks
>>> [type(c).__name__ for c in callbacks.run_callbacks(tempfile.mkdtemp())]
['StopOnNaN', 'LastGoodCheckpoint', 'Backup', 'RunHistory', 'TensorBoard']
"""

import json
import math
from pathlib import Path

import keras

from training import backup, runs
from zoo.files import atomic_write


def _finite(logs):
    return all(math.isfinite(float(value)) for value in (logs or {}).values()
               if isinstance(value, (int, float)) or hasattr(value, "__float__"))


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite; `stopped_at` is then
    `(epoch, batch)`, and the other run callbacks keep what they had."""

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped_at = (self._epoch, batch)
            self.model.stop_training = True


class LastGoodCheckpoint(keras.callbacks.Callback):
    """Saves the model to `<run>/checkpoints/last.keras` after every epoch whose figures are
    finite (written to a temporary file, then renamed: a crash never leaves half a file)."""

    def __init__(self, run_dir):
        super().__init__()
        self.path = Path(run_dir) / runs.CHECKPOINTS / runs.LAST_CHECKPOINT

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return
        atomic_write(self.path, self.model.save)


class Backup(keras.callbacks.Callback):
    """Writes the run's backup (`training.backup`: weights, optimizer and random state)
    after every epoch whose figures are finite. Restoring is `training.backup.restore`'s,
    before `fit`; the backup is removed by whoever finishes the run (`training.train`)."""

    def __init__(self, backup_dir):
        super().__init__()
        self.folder = Path(backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        if _finite(logs):
            backup.save(self.model, self.folder, epoch + 1)


class RunHistory(keras.callbacks.Callback):
    """Appends each epoch's figures to `<run>/history.json` (a list of dicts with "epoch"),
    and keeps them in `epochs`; with `write=False` (a worker that is not the chief) only
    there. A resumed run drops the entries of epochs it trains again."""

    def __init__(self, run_dir, write=True):
        super().__init__()
        self.path = Path(run_dir) / runs.HISTORY
        self.write = write
        self.epochs = []

    def on_train_begin(self, logs=None):
        self.epochs = json.loads(self.path.read_text()) if self.path.exists() else []

    def on_epoch_end(self, epoch, logs=None):
        if not _finite(logs):
            return
        record = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch + 1] + [record]
        if self.write:
            runs.write_json(self.path, self.epochs)


def run_callbacks(run_dir, early_stopping_patience=None, monitor="val_loss", backup_dir=None,
                  chief=True):
    """The callbacks of `kt train` for the run folder `run_dir`. Under a multi-worker
    strategy every worker backs up to its own `backup_dir`, and only the `chief` writes the
    checkpoint, the history and the TensorBoard logs."""
    run_dir = Path(run_dir)
    saver = Backup(backup_dir or run_dir / runs.BACKUP)
    if not chief:
        callbacks = [StopOnNaN(), saver, RunHistory(run_dir, write=False)]
    else:
        callbacks = [StopOnNaN(), LastGoodCheckpoint(run_dir), saver, RunHistory(run_dir),
                     keras.callbacks.TensorBoard(str(run_dir / runs.LOGS))]
    if early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=early_stopping_patience, restore_best_weights=True))
    return callbacks
