"""The import contract of `make lint` (pyproject.toml's [tool.importlinter]) holds, and it is
live: a copy of the packages with one upward import, or one cycle, breaks it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("training", "export", "zoo", "keras_transformers")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(folder):
    return subprocess.run([str(LINT_IMPORTS), "--config", str(folder / "pyproject.toml")],
                          cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy_of_the_project(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_project_keeps_its_import_contract(copy_of_the_project):
    result = lint_imports(copy_of_the_project)
    assert result.returncode == 0, result.stdout
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(copy_of_the_project):
    (copy_of_the_project / "zoo" / "upward.py").write_text("from training import runs\n")
    result = lint_imports(copy_of_the_project)
    assert result.returncode == 1
    assert "One way: training -> export -> zoo -> keras_transformers BROKEN" in result.stdout
    assert "zoo.upward -> training.runs" in result.stdout


def test_a_cycle_inside_a_package_breaks_the_acyclic_contract(copy_of_the_project):
    (copy_of_the_project / "zoo" / "cycle_a.py").write_text("from zoo import cycle_b\n")
    (copy_of_the_project / "zoo" / "cycle_b.py").write_text("from zoo import cycle_a\n")
    result = lint_imports(copy_of_the_project)
    assert result.returncode == 1
    assert "No cycles between the modules of a package BROKEN" in result.stdout
