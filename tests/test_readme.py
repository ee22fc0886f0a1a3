"""The README's Python examples run as written (one namespace, top to bottom)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["y"].shape) == (2, 6, 32)
    assert tuple(namespace["cache"].shape) == (2, 2, 16, 2, 8)
