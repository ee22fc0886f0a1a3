"""The one dict from model name to the module of its family; nothing else registers anything.

Each family module defines `FAMILY` (a `zoo.config.Family`): its config dataclass, presets,
backbone and tasks. `import zoo` imports them all, so `.keras` files load after `import zoo`.
"""

import importlib

FAMILIES = {
    "bert": "zoo.bert",
    "gpt": "zoo.gpt",
    "t5": "zoo.t5",
    "vit": "zoo.vit",
}


def family(name):
    """The `Family` of `name`; an unknown name is a `ValueError` listing the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown model {name!r}. Models: {sorted(FAMILIES)}.")
    return importlib.import_module(FAMILIES[name]).FAMILY


def import_all():
    """Import every family module (their classes register for `.keras` loading)."""
    for module in FAMILIES.values():
        importlib.import_module(module)
