"""A run's backup: the whole training state after each finished epoch, to resume exactly.

Each backup is a folder `<run>/backup/epoch-<N>/`, written whole or not at all
(`zoo.files.atomic_write`), holding

    model.weights.h5   the weights and the optimizer's state (`model.save_weights`)
    random.npz         the state of every random seed generator (dropout's masks), which
                       `save_weights` leaves out
    lora.npz           LoRA models only: the weights of the layers with a LoRA pair as they
                       are (`save_weights` writes their kernels merged, pairs dropped)
    state.json         {"epoch": N}

The order of the data needs no file: epoch e reads batches `e * steps ...` of the run's
stream of passes, each pass shuffled with a seed made from the run's seed and the pass
alone (`training.pipelines.training_stream`). So a run killed at any instant and run again
resumes after its last finished epoch and reproduces the uninterrupted run's losses.

The two newest backups are kept. `restore(model, folder)` loads the newest one that reads
whole and says which it was; when none does, a `BackupError` names the files and the ways
out.

Example:

>>> import tempfile, zoo
>>> model = zoo.build("vit", task="classifier", num_classes=2, num_layers=1)
>>> model.compile()
>>> model.optimizer.build(model.trainable_variables)  # as after the first step of `fit`
>>> folder = tempfile.mkdtemp()
>>> save(model, folder, epoch=1).name
'epoch-0001'
>>> restore(model, folder).epoch
1
"""

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from zoo.files import atomic_write, remove
from zoo.lora import lora_layers

WEIGHTS = "model.weights.h5"
RANDOM = "random.npz"
LORA = "lora.npz"
STATE = "state.json"
KEEP = 2


class BackupError(ValueError):
    """No backup of a run can be read: a one-line message with the files and the ways out."""


@dataclass(frozen=True)
class Restored:
    """What `restore` loaded: the epoch training resumes after (0: nothing to resume), its
    backup folder, and the newer backups it had to skip, with why."""

    epoch: int
    path: Path | None = None
    skipped: tuple = ()


def backups(folder):
    """The backup folders under `folder`, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-")
             and p.name[len("epoch-"):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len("epoch-"):]), reverse=True)


def save(model, folder, epoch):
    """Write the backup of `model` after `epoch` (1-based) and drop all but the newest
    `KEEP`; returns its folder."""

    def write(path):
        model.save_weights(path / WEIGHTS)
        states = random_states(model)
        np.savez(path / RANDOM, **{f"{i}": value for i, (_, value) in enumerate(states)},
                 paths=np.array([name for name, _ in states]))
        exact = lora_weights(model)
        if exact:
            np.savez(path / LORA, **{f"{i}": np.asarray(keras.ops.convert_to_numpy(v.value))
                                     for i, v in enumerate(exact)},
                     paths=np.array([v.path for v in exact]))
        (path / STATE).write_text(json.dumps({"epoch": epoch}))

    path = atomic_write(Path(folder) / f"epoch-{epoch:04d}", write, folder=True)
    for old in backups(folder)[KEEP:]:
        remove(old)
    return path


def restore(model, folder):
    """Load the newest readable backup under `folder` into `model` (built and compiled);
    returns a `Restored`. Raises a `BackupError` when backups exist and none can be read."""
    found = backups(folder)
    skipped = []
    for path in found:
        try:
            epoch = _load(model, path)
        except Exception as error:  # noqa: BLE001 (any failure to read is a damaged backup)
            skipped.append((path, " ".join(str(error).split())[:200] or type(error).__name__))
            continue
        return Restored(epoch, path, tuple(skipped))
    if skipped:
        files = ", ".join(str(path) for path, _ in skipped)
        raise BackupError(f"cannot resume: no backup can be read ({files}; {skipped[0][1]})")
    return Restored(0)


def random_states(model):
    """`[(path, value)]` of every seed generator state of `model`: its variables that are
    not weights."""
    weights = {id(v) for v in model.weights}
    return [(v.path, np.asarray(keras.ops.convert_to_numpy(v.value)))
            for v in model.variables if id(v) not in weights]


def lora_weights(model):
    """The weights of `model`'s layers with a LoRA pair (their base kernels and the pairs)."""
    return [v for layer in lora_layers(model) for v in layer.weights]


def _load(model, path):
    epoch = json.loads((path / STATE).read_text())["epoch"]
    if not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"{path / STATE} holds no epoch")
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    with np.load(path / RANDOM, allow_pickle=False) as stored:
        paths = stored["paths"].tolist()
        values = [stored[f"{i}"] for i in range(len(paths))]
    weights = {id(v) for v in model.weights}
    states = [v for v in model.variables if id(v) not in weights]
    if [v.path for v in states] != paths:
        raise ValueError(f"{path / RANDOM} holds the random state of another model")
    model.load_weights(path / WEIGHTS)
    for variable, value in zip(states, values, strict=True):
        variable.assign(value)
    exact = lora_weights(model)
    if exact:
        with np.load(path / LORA, allow_pickle=False) as stored:
            if stored["paths"].tolist() != [v.path for v in exact]:
                raise ValueError(f"{path / LORA} holds the LoRA weights of another model")
            for i, variable in enumerate(exact):
                variable.assign(stored[f"{i}"])
    return epoch
