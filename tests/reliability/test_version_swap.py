"""Kill -9 at every step of a version overwrite: a whole version is always in place.

A child process overwrites version 1 (three files in two folders) with a new one (four
files) and SIGKILLs itself before its Nth filesystem step: each `os.mkdir`, `os.rename`,
`os.replace`, `os.unlink` and `os.rmdir` (those of `shutil.rmtree` included), the exchange,
and the writing of each file, cut in half. N goes 0, 1, 2, ... until the child finishes.
"""

import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from export import layout
from zoo import files

ROOT = Path(__file__).resolve().parents[2]
OLD = {name: f"old {name} " * 300 for name in
       ("saved_model.pb", "variables/variables.index", "variables/variables.data")}
NEW = {name: f"new {name} " * 300 for name in
       ("saved_model.pb", "fingerprint.pb", "variables/variables.index",
        "variables/variables.data")}

# argv: repository root, model dir, "exchange" or "fallback", N, the files to write (JSON).
OVERWRITE = textwrap.dedent("""
    import json, os, signal, sys, types
    root, model_dir, mode, kill_at, content = sys.argv[1:]
    for name in ("zoo", "export"):  # their __init__ imports TensorFlow: skip it
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(root, name)]
        sys.modules[name] = package
    from export import layout
    from zoo import files

    steps = 0

    def step():
        global steps
        if steps == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        steps += 1

    def counted(function):
        def call(*args, **kwargs):
            step()
            return function(*args, **kwargs)
        return call

    for name in ("mkdir", "rename", "replace", "unlink", "rmdir"):
        setattr(os, name, counted(getattr(os, name)))
    files._exchange = counted(files._exchange)
    if mode == "fallback":
        files._renameat2 = lambda: None

    def write(folder):
        for name, text in json.loads(content).items():
            path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            step()
            with open(path, "w") as file:
                file.write(text[:len(text) // 2])
                file.flush()
                step()
                file.write(text[len(text) // 2:])

    layout.write_version(model_dir, 1, write, overwrite=True)
    print(steps)
""")


def write(content):
    def fill(folder):
        for name, text in content.items():
            (Path(folder) / name).parent.mkdir(exist_ok=True)
            (Path(folder) / name).write_text(text)
    return fill


def contents(folder):
    """{relative path: text} of the files under `folder`; None when it is missing."""
    if not folder.is_dir():
        return None
    return {p.relative_to(folder).as_posix(): p.read_text()
            for p in folder.rglob("*") if p.is_file()}


def state(folder):
    """"missing", "old" or "new"; anything else (half-written, mixed) fails the test."""
    found = contents(folder)
    assert found in (None, OLD, NEW), f"{folder} is half-written: {sorted(found)}"
    return "missing" if found is None else "old" if found == OLD else "new"


def kill_at_every_step(tmp_path, mode):
    """Run the overwrite killed at step 0, 1, ... until it finishes; check the version after
    each kill and once more after the next export. Returns each kill's state of version 1."""
    states = []
    for kill_at in range(100):
        model_dir = tmp_path / f"kill-{kill_at}"
        layout.write_version(model_dir, 1, write(OLD))
        child = subprocess.Popen(
            [sys.executable, "-c", OVERWRITE, str(ROOT), str(model_dir), mode, str(kill_at),
             json.dumps(NEW)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = child.communicate(timeout=60)
        if child.returncode == 0:
            assert int(stdout) == kill_at  # the child took exactly kill_at steps
            assert state(model_dir / "1") == "new"
            assert [p.name for p in model_dir.iterdir()] == ["1"]
            return states
        assert child.returncode == -signal.SIGKILL, stderr

        version = model_dir / "1"
        old = model_dir / f".old-1-{child.pid}"
        states.append(state(version))
        assert state(old) in ("missing", "old")  # an .old- folder is only ever whole
        if states[-1] == "missing":
            assert state(old) == "old"
            copy = tmp_path / f"copy-{kill_at}"
            shutil.copytree(model_dir, copy)
            assert layout.versions(model_dir) == [1] and state(version) == "old"
            # The next export (of another version) puts version 1 back first, too.
            layout.write_version(copy, 2, write(NEW))
            assert layout.versions(copy) == [1, 2] and state(copy / "1") == "old"

        layout.write_version(model_dir, 1, write(NEW), overwrite=True)
        assert state(version) == "new"
        assert [p.name for p in model_dir.iterdir()] == ["1"]
    raise AssertionError("the overwrite took more than 100 steps")


def runs(states):
    """['old', 'old', 'new'] -> ['old', 'new']: the states in the order they came."""
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


# The child's steps while the old version is whole in place: two mkdirs of the model dir
# (write_version's and atomic_write's; it is there already), the temporary's, then for each
# new file the mkdir of its folder, before it is opened and in its middle. Then, after the
# new one is in place, removing the old one: unlink each file, rmdir variables/ and the
# version folder.
WRITE_STEPS = 3 + 3 * len(NEW)
REMOVE_STEPS = len(OLD) + 2


def test_an_overwrite_killed_at_every_step_leaves_the_old_or_the_new_version(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    if not files._exchange(a, b):
        pytest.skip("this filesystem cannot exchange two folders (renameat2)")
    states = kill_at_every_step(tmp_path, "exchange")
    assert runs(states) == ["old", "new"]
    assert states.count("old") == WRITE_STEPS + 1  # and before the exchange
    assert states.count("new") == REMOVE_STEPS


def test_without_exchange_the_old_version_is_put_back_after_a_kill_between_renames(
        tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_renameat2", lambda: None)
    states = kill_at_every_step(tmp_path, "fallback")
    assert runs(states) == ["old", "missing", "new"]
    assert states.count("old") == WRITE_STEPS + 2  # the exchange tried, the old one renamed out
    assert states.count("missing") == 1  # before the new one is renamed in
    assert states.count("new") == 1 + REMOVE_STEPS  # the old one renamed to the temporary's


def test_a_filesystem_without_exchange_falls_back_to_renames(tmp_path, monkeypatch):
    calls = []

    def renameat2(*args):
        calls.append(args[-1])
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(files, "_renameat2", lambda: renameat2)
    path = tmp_path / "model"
    for content in (OLD, NEW):
        files.atomic_write(path, write(content), folder=True)
    assert calls == [2] and contents(path) == NEW
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_exchange_error_other_than_unsupported_is_raised_and_the_old_version_kept(
        tmp_path, monkeypatch):
    def renameat2(*args):
        ctypes.set_errno(errno.EACCES)
        return -1

    path = tmp_path / "model"
    files.atomic_write(path, write(OLD), folder=True)
    monkeypatch.setattr(files, "_renameat2", lambda: renameat2)
    with pytest.raises(PermissionError):
        files.atomic_write(path, write(NEW), folder=True)
    assert contents(path) == OLD and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_live_writers_old_version_is_left_alone(tmp_path):
    model_dir = tmp_path / "m"
    live = model_dir / f".old-1-{os.getppid()}"  # between its two renames
    model_dir.mkdir()
    write(OLD)(live)
    assert layout.versions(model_dir) == []
    layout.remove_stale_temporaries(model_dir)
    assert [p.name for p in model_dir.iterdir()] == [live.name] and contents(live) == OLD
