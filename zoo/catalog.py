"""The zoo as a table: every family, size, task and parameter count, computed from the code.

`python -m zoo.catalog` prints the Markdown table the README shows; a test keeps the README's
copy equal to it.
"""

import zoo

LANGUAGE_MODEL_TASKS = ("masked_lm", "causal_lm", "seq2seq_lm")


def rows():
    """`(name, size, tasks, backbone parameters, language-model parameters or None)` for every
    preset, counted without allocating weights."""
    for name in zoo.names():
        tasks = zoo.tasks(name)
        lm_task = next((t for t in tasks if t in LANGUAGE_MODEL_TASKS), None)
        for size in zoo.sizes(name):
            lm = zoo.count_params(name, size, task=lm_task) if lm_task else None
            yield name, size, tasks, zoo.count_params(name, size), lm


def markdown_table():
    lines = [
        "| model | size | tasks | parameters: backbone | with its LM head |",
        "|---|---|---|---:|---:|",
    ]
    for name, size, tasks, backbone, lm in rows():
        lm = "" if lm is None else f"{lm:,}"
        lines.append(f"| `{name}` | `{size}` | {', '.join(tasks)} | {backbone:,} | {lm} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
