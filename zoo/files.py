"""Atomic writes: every file or folder the project writes appears whole or not at all.

`atomic_write(path, write)` calls `write(temporary)` on a hidden sibling of `path` and then
renames it into place, so a crash or `kill -9` mid-write never leaves half a file. The
temporary's name, `.tmp-<stem>-<pid><suffix>`, keeps the suffix (Keras saves `.keras` files
only under that name) and the writer's process id (a later writer removes a dead writer's
leftovers, as `export.layout` does).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "settings.json"
>>> _ = atomic_write(path, lambda temporary: temporary.write_text("{}"))
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('{}', ['settings.json'])
"""

import os
import shutil
from pathlib import Path


def temporary_sibling(path, kind="tmp"):
    """The hidden sibling `path` is written to first: `.<kind>-<stem>-<pid><suffix>`."""
    path = Path(path)
    return path.with_name(f".{kind}-{path.stem}-{os.getpid()}{path.suffix}")


def remove(path):
    """Remove a file or a folder, if it is there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_write(path, write, folder=False):
    """Write `path` whole or not at all: `write(temporary)`, then rename it into place.

    Args:
        path: the file or folder to write (its parent is created).
        write: called with the temporary `Path`; it writes the file there, or fills the
            folder (created for it when `folder`).
        folder: `path` is a folder. An existing one is renamed aside (`.old-...`) before the
            new one is renamed in, then removed; a file is replaced in one `os.replace`.

    Returns `path`. When `write` fails, the temporary is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    remove(temporary)
    if folder:
        temporary.mkdir()
    try:
        write(temporary)
        if folder and path.exists():
            old = temporary_sibling(path, "old")
            remove(old)
            os.rename(path, old)
            os.rename(temporary, path)
            remove(old)
        else:
            os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise
    return path


def write_text(path, text):
    """`Path.write_text`, atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_bytes(path, data):
    """`Path.write_bytes`, atomically."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))
