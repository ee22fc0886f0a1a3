"""TF Serving's folder layout, `<base_dir>/<name>/<version>/`, and writing a version atomically.

TF Serving watches `<base_dir>/<name>/` and serves the highest numeric version folder. A
version is written whole into a hidden temporary sibling (`.tmp-<version>-<pid>`, which TF
Serving ignores: not a number) and moved into place by `zoo.files.atomic_write`. Whenever a
crash or `kill -9` strikes an export:

- a new version is missing or whole, never half-written;
- a replaced version (`overwrite=True`) is, at every instant, the old one or the new one,
  whole: the two folders are exchanged in one step (Linux). Where the filesystem cannot, the
  old one is renamed aside to `.old-<version>-<pid>` for the instant between two renames,
  and the next `write_version` or `versions` renames it back;
- the next export removes the dead one's leftovers (`remove_stale_temporaries`), never the
  only whole copy of a version.

Example:

>>> import tempfile
>>> base = tempfile.mkdtemp()
>>> next_version(f"{base}/bert")
1
>>> path = write_version(f"{base}/bert", 1, lambda folder: open(f"{folder}/x", "w").close())
>>> path.name, next_version(f"{base}/bert")
('1', 2)
"""

import re
from pathlib import Path

from zoo.files import atomic_write, recover

_TEMPORARY = re.compile(r"^\.(tmp|old)-(\d+)-(\d+)$")


def versions(model_dir):
    """The version numbers under `model_dir`, sorted; [] when it does not exist.

    A version whose replacement was killed between two renames is put back first; nothing
    is removed (that is `remove_stale_temporaries`, which the next export calls).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    for version in _interrupted(model_dir):
        recover(model_dir / version, remove_leftovers=False)
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir())


def next_version(model_dir):
    """One more than the highest version under `model_dir`, 1 for a new model."""
    found = versions(model_dir)
    return found[-1] + 1 if found else 1


def check_name(name):
    """A model name must be one folder name that TF Serving accepts."""
    if not name or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ValueError(
            f"model name {name!r} is not a folder name: use letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'."
        )
    return name


def write_version(model_dir, version, write, overwrite=False):
    """Call `write(folder)` on a temporary folder, then rename it to `model_dir/version`.

    Args:
        model_dir: `<base_dir>/<name>`, created if missing.
        version: a positive int.
        write: fills the folder it is given.
        overwrite: replace an existing version folder; otherwise that is a FileExistsError.

    Returns the version folder's path.
    """
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version must be a positive int (TF Serving's folder name), "
                         f"got {version!r}.")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(model_dir)
    target = model_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} exists: pass overwrite=True (`--overwrite`) to replace it, or leave "
            "version unset to write the next one."
        )
    return atomic_write(target, lambda folder: write(str(folder)), folder=True)


def remove_stale_temporaries(model_dir):
    """Clear up after the exports under `model_dir` whose process is gone (killed mid-export).

    A dead export's `.tmp-<version>-<pid>` folder is removed; its `.old-<version>-<pid>`
    folder (the version it was replacing) is renamed back when `<version>` is missing, and
    removed only when `<version>` is in place (`zoo.files.recover`).
    """
    model_dir = Path(model_dir)
    for version in _interrupted(model_dir):
        recover(model_dir / version)


def _interrupted(model_dir):
    """The versions (folder names) with a `.tmp-` or `.old-` sibling under `model_dir`."""
    return sorted({match.group(2) for path in model_dir.iterdir()
                   if (match := _TEMPORARY.match(path.name))})
