"""docs/attention_from_scratch.md runs as written (one namespace, top to bottom), and draws
every figure it shows.

Run this file directly from the repository root to redraw the figures into docs/images/:
    .venv/bin/python -m tests.test_attention_from_scratch
"""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "attention_from_scratch.md"


def run_python_blocks(path):
    """Execute the ```python blocks of a markdown file in one namespace; returns it."""
    text = path.read_text()
    namespace = {"__name__": "walkthrough"}
    for block in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        # Blank lines in front, so a traceback names the markdown file's own line numbers.
        padding = "\n" * text.count("\n", 0, block.start(1))
        exec(compile(padding + block.group(1), str(path), "exec"), namespace)
    return namespace


def shown_figures(path):
    return re.findall(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", path.read_text())


def test_walkthrough_runs_and_draws_every_figure_it_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                 # the figures land in tmp_path/docs/images
    namespace = run_python_blocks(DOC)

    figures = shown_figures(DOC)
    assert len(figures) == 6
    for figure in figures:
        drawn = tmp_path / "docs" / figure
        assert drawn.stat().st_size > 5_000, figure
        assert (DOC.parent / figure).is_file(), f"{figure} is not committed under docs/"
    assert sorted(p.name for p in (tmp_path / "docs" / "images").iterdir()) == sorted(
        Path(figure).name for figure in figures
    )
    assert namespace["maps"]["decoder"][0].shape == (1, 4, 7, 7)


if __name__ == "__main__":
    run_python_blocks(DOC)
    print("\n".join(str(DOC.parent / figure) for figure in shown_figures(DOC)))
