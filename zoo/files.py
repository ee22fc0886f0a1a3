"""Atomic writes: every file or folder the project writes appears whole or not at all.

`atomic_write(path, write)` calls `write(temporary)` on a hidden sibling of `path` and then
moves it into place, so a crash or `kill -9` mid-write never leaves half a file. The
temporary's name, `.tmp-<stem>-<pid><suffix>`, keeps the suffix (Keras saves `.keras` files
only under that name) and the writer's process id, by which a later writer knows a dead
writer's leftovers (`recover`).

Replacing an existing `path` leaves, at every instant, the old or the new one whole in place:

- a file is replaced in one `os.replace`;
- a folder is exchanged with its temporary in one step (Linux `renameat2` with
  `RENAME_EXCHANGE`), and the old folder, now at the temporary's name, is removed;
- where the system or filesystem has no exchange, the old folder is renamed aside to
  `.old-<stem>-<pid>` and the new one renamed in. Between the two renames `path` is missing
  and the old folder is whole at its `.old-` name: `recover(path)`, which every folder
  writer calls first, renames it back. An `.old-` folder is only ever a whole old folder: it
  goes back to the temporary's name before it is removed.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "settings.json"
>>> _ = atomic_write(path, lambda temporary: temporary.write_text("{}"))
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('{}', ['settings.json'])
"""

import ctypes
import errno
import functools
import os
import re
import shutil
import sys
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


def temporary_sibling(path, kind="tmp"):
    """The hidden sibling `path` is written to first: `.<kind>-<stem>-<pid><suffix>`.

    >>> temporary_sibling("exports/bert/3", "old").name == f".old-3-{os.getpid()}"
    True
    """
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
    """Write `path` whole or not at all: `write(temporary)`, then move it into place.

    Args:
        path: the file or folder to write (its parent is created).
        write: called with the temporary `Path`; it writes the file there, or fills the
            folder (created for it when `folder`).
        folder: `path` is a folder. Dead writers' leftovers are dealt with first
            (`recover`); an existing folder is exchanged with the new one (see the module's
            docstring), a file is replaced in one `os.replace`.

    Returns `path`. When `write` fails, the temporary is removed and `path` is untouched.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> for text in ("old", "new"):
    ...     _ = atomic_write(path, lambda folder: (folder / "a").write_text(text), folder=True)
    >>> (path / "a").read_text(), sorted(p.name for p in path.parent.iterdir())
    ('new', ['model'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        recover(path)
    temporary = temporary_sibling(path)
    remove(temporary)
    if folder:
        temporary.mkdir()
    try:
        write(temporary)
        if folder and path.exists():
            _replace_folder(temporary, path)
        else:
            os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise
    return path


def recover(path, remove_leftovers=True):
    """Clear up after the writers of the folder `path` that died mid-write (`kill -9`).

    A dead writer's `.old-` folder is renamed back to `path` when `path` is missing (it died
    between the two renames of a replacement without exchange), and removed otherwise; its
    `.tmp-` folder is removed. Siblings of live writers are left alone; this process's own
    count as dead (an earlier call that failed).

    Args:
        path: the folder `atomic_write(path, ..., folder=True)` writes.
        remove_leftovers: False only puts a missing `path` back and removes nothing (for
            readers).

    Returns True when an old folder was put back.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "3"
    >>> temporary_sibling(path, "old").mkdir()
    >>> recover(path), sorted(p.name for p in path.parent.iterdir())
    (True, ['3'])
    """
    path = Path(path)
    if not path.parent.is_dir():
        return False
    sibling = re.compile(rf"\.(tmp|old)-{re.escape(path.stem)}-(\d+){re.escape(path.suffix)}")
    restored = False
    for leftover in sorted(path.parent.iterdir()):
        match = sibling.fullmatch(leftover.name)
        if not match or _alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not os.path.lexists(path):
            os.rename(leftover, path)
            restored = True
        elif remove_leftovers:
            remove(leftover)
    return restored


def write_text(path, text):
    """`Path.write_text`, atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_bytes(path, data):
    """`Path.write_bytes`, atomically."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def _replace_folder(temporary, path):
    """Put the folder `temporary` at `path`, the old `path` at `temporary`, then remove it."""
    if not _exchange(temporary, path):
        old = temporary_sibling(path, "old")
        os.rename(path, old)
        try:
            os.rename(temporary, path)
        except BaseException:
            os.rename(old, path)
            raise
        os.rename(old, temporary)
    remove(temporary)


def _exchange(a, b):
    """Swap the paths `a` and `b` in one step; False where the system or filesystem cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))


@functools.cache
def _renameat2():
    """libc's `renameat2` (glibc 2.28 and later), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _alive(pid):
    """Whether the writer with this process id is still running (not this process)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
