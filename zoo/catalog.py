"""The zoo as a table: every family, size, task and parameter count, computed from the code.

`python -m zoo.catalog` prints the Markdown table the README shows; a test keeps the README's
copy equal to it.
"""

import functools

import keras

import zoo
from zoo.registry import family

LANGUAGE_MODEL_TASKS = ("masked_lm", "causal_lm", "seq2seq_lm")
# Published counts printed beside the computed ones: the paper's Transformer (Table 3 of
# Vaswani et al. 2017; its shared vocabulary of "about 37000" tokens is the presets').
PUBLISHED = {("transformer", "base"): "65M in the paper",
             ("transformer", "big"): "213M in the paper"}


def language_model_task(name):
    """The family's language-model task (`"causal_lm"`, ...), or None (ViT)."""
    return next((t for t in zoo.tasks(name) if t in LANGUAGE_MODEL_TASKS), None)


@functools.cache
def parameter_counts(name, size):
    """`(backbone parameters, language-model parameters or None)` of a preset, counted without
    allocating weights, with one build where the language model's backbone is the preset's own
    (a task that changes the backbone, as BERT's masked LM drops the pooler, builds both)."""
    lm_task = language_model_task(name)
    with keras.StatelessScope(initialize_variables=False):
        if lm_task is None:
            return zoo.build(name, size).count_params(), None
        lm = zoo.build(name, size, task=lm_task)
        if family(name).task_defaults.get(lm_task):
            backbone = zoo.build(name, size)
        else:
            backbone = lm.backbone
        return backbone.count_params(), lm.count_params()


def rows():
    """`(name, size, tasks, backbone parameters, language-model parameters or None)` for every
    preset, counted without allocating weights."""
    for name in zoo.names():
        tasks = zoo.tasks(name)
        for size in zoo.sizes(name):
            yield name, size, tasks, *parameter_counts(name, size)


def markdown_table():
    lines = [
        "| model | size | tasks | parameters: backbone | with its LM head |",
        "|---|---|---|---:|---:|",
    ]
    for name, size, tasks, backbone, lm in rows():
        lm = "" if lm is None else f"{lm:,}"
        if (name, size) in PUBLISHED:
            lm += f" ({PUBLISHED[name, size]})"
        lines.append(f"| `{name}` | `{size}` | {', '.join(tasks)} | {backbone:,} | {lm} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
