"""Run folders: what `kt train` writes, and loading a model from a run, a file or a checkpoint.

A run folder (`kt train ... --out runs/NAME`) holds:

    config.json      the command's settings (model, size, task, dataset, epochs, ...)
    model.keras      the trained model, its preprocessor (tokenizer included) inside
    checkpoints/     the model after each epoch (`epoch-003.keras`, ...) and `last.keras`
    history.json     loss and metrics per epoch
    logs/            TensorBoard
    backup/          `keras.callbacks.BackupAndRestore` (removed when training ends)
    results.json     `kt evaluate`'s figures, by dataset and split

`load_model(target)` takes any of: a run folder, a `.keras` file, a Hugging Face folder
(`config.json` + `model.safetensors`, with its tokenizer files), a `.gguf` file, or a Hugging
Face Hub name (`org/name`, `hf://org/name`, `hf://org/name/file.gguf`: `zoo.hub`).

Example:

>>> from training import runs
>>> model = runs.load_model("tests/fixtures/reference/bert_classifier")
>>> type(model).__name__
'Classifier'
"""

import json
from pathlib import Path

from zoo.files import write_text

CONFIG = "config.json"
MODEL = "model.keras"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "last.keras"
HISTORY = "history.json"
LOGS = "logs"
BACKUP = "backup"
RESULTS = "results.json"


def is_run(path):
    """Whether `path` is a run folder (it holds a run's config.json)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        return False
    config = _read_json(path / CONFIG)
    return isinstance(config, dict) and config.get("kind") == "kt-run"


def read_config(run):
    """The settings a run was started with."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a run folder: it has no {CONFIG}. "
                                "Make one with `kt train ... --out FOLDER`.")
    config = _read_json(path)
    if not isinstance(config, dict) or config.get("kind") != "kt-run":
        raise ValueError(f"{run} is not a run folder: its {CONFIG} is not one `kt train` "
                         f"wrote (it holds a JSON {type(config).__name__}).")
    return config


def write_json(path, value):
    """Write JSON atomically (a temporary file renamed into place)."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def model_file(run):
    """The best model file a run has: the final model, else the last epoch's checkpoint."""
    run = Path(run)
    for candidate in (run / MODEL, run / CHECKPOINTS / LAST_CHECKPOINT):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"The run {run} has no model yet (no {MODEL} or {CHECKPOINTS}/{LAST_CHECKPOINT}): "
        "it has not finished an epoch. Run its `kt train` command again to resume it."
    )


def load_model(target, task=None, compile=False):
    """A model, with its preprocessor when it has one, from a run folder, a `.keras` file,
    a Hugging Face folder, a `.gguf` file or a Hub name.

    Args:
        target: the path, or a Hub name (see `zoo.from_pretrained`).
        task: for checkpoints: the task to build (see `zoo.from_pretrained`).
        compile: for `.keras` files: restore the training configuration too.

    Raises FileNotFoundError when `target` is none of these.
    """
    import zoo
    from training import recipes  # noqa: F401 (registers the schedule a compiled model names)
    from zoo import hub

    path = hub.local_path(target)
    if path.is_dir() and is_run(path):
        path = model_file(path)
    if path.suffix == ".keras" and path.is_file():
        return _load_keras_file(path, compile)
    if path.suffix == ".gguf" and path.is_file():
        return zoo.from_pretrained(path, task=task)
    if path.is_dir() and (path / "config.json").is_file():
        return zoo.from_pretrained(path, task=task)
    raise FileNotFoundError(
        f"{target} is not a model: give a run folder (from `kt train`), a .keras file, a "
        "Hugging Face folder (config.json + model.safetensors), a .gguf file or a Hugging Face "
        "name (org/name)."
    )


def _load_keras_file(path, compile):
    """`keras.models.load_model`, with a truncated or corrupt file a one-line error that
    points at the run's intact checkpoint when there is one."""
    import zipfile

    import keras

    if not zipfile.is_zipfile(path):
        run = path.parent
        checkpoint = run / CHECKPOINTS / LAST_CHECKPOINT
        way_out = (f"the last epoch's checkpoint {checkpoint} is intact: delete {path} and "
                   f"the run uses it (or give that file to the command)"
                   if path.name == MODEL and checkpoint.is_file() and zipfile.is_zipfile(
                       checkpoint) else "save or train it again")
        raise ValueError(f"{path} cannot be read: it is truncated or not a .keras file (a zip "
                         f"archive); {way_out}.")
    return keras.models.load_model(path, compile=compile)


def results_path(run):
    return Path(run) / RESULTS


def read_results(run):
    """`kt evaluate`'s figures so far, by "dataset:split"."""
    path = results_path(run)
    return _read_json(path) if path.exists() else {}


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from None
