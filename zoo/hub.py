"""Hugging Face Hub names for `zoo.from_pretrained` and `kt`: `org/name` and `hf://org/name`
(keras-hub's prefix) resolved to a folder, or one `.gguf` file, in `huggingface_hub`'s cache.

A name is `[hf://]ORG/NAME[@REVISION]`, or `hf://ORG/NAME[@REVISION]/FILE.gguf` for one GGUF
file of a repo. A path that exists always wins; a string without `hf://` is a name only when
it is no local path and spells `org/name`. `Path` objects are always paths.

Resolving downloads only what the zoo reads, at the repo's top level: `config.json`, the
`*.safetensors` weights and the tokenizer files (`FILES`), or the one GGUF file; never a
pickle, and a repo whose weights are only pickles is refused. Files go to `huggingface_hub`'s
cache (`HF_HUB_CACHE`, default `~/.cache/huggingface/hub`) and are read from there after.
With `HF_HUB_OFFLINE=1` nothing goes out: the name must be in the cache. Online, the Hub is
first asked for the repo's file list with a timeout of `HF_HUB_ETAG_TIMEOUT` seconds (default
10; `snapshot_download`'s own first request has none); when it cannot be reached the cache
answers alone, so a name that is not there is a one-line `zoo.CheckpointError` within
seconds, not a hang.

Example:

>>> is_name("google-bert/bert-base-uncased"), is_name("hf://org/name/model.Q4_0.gguf")
(True, True)
>>> is_name("runs/model.keras"), is_name("/no/such/folder"), is_name("tests")
(False, False, False)
>>> parse("hf://org/name@v1.0/model.Q4_0.gguf")
HubName(repo_id='org/name', revision='v1.0', filename='model.Q4_0.gguf')
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from zoo.checkpoints.folder import PICKLE_SUFFIXES
from zoo.checkpoints.tensors import CheckpointError

PREFIX = "hf://"
# What the zoo reads from a repo (zoo.checkpoints.folder, zoo.preprocessing), top level only.
FILES = [
    "config.json", "*.safetensors", "model.safetensors.index.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "chat_template.jinja",
]
SUBFOLDERS = ["*/*"]
# A missing path with one of these suffixes is a file the user meant, not a repo name.
FILE_SUFFIXES = (".keras", ".gguf", ".safetensors", ".json", ".h5", ".tflite", *PICKLE_SUFFIXES)
# `org/name`, `@revision` (a pull request's is `refs/pr/N`), `/file.gguf` (hf:// only).
_NAME = re.compile(r"(?P<repo_id>[A-Za-z0-9][\w.-]*/[\w.-]+)"
                   r"(?:@(?P<revision>refs/pr/\d+|[^/@]+))?"
                   r"(?:/(?P<filename>[^@]+\.gguf))?")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubName:
    """A repo on the Hub, at `revision` (None: `main`), and one `filename` of it or its
    checkpoint folder (None)."""

    repo_id: str
    revision: str | None = None
    filename: str | None = None
    text: str = field(default="", compare=False, repr=False)  # as the user wrote it

    def __str__(self):
        return self.text or PREFIX + self.repo_id


def parse(text):
    """The `HubName` that `text` spells, or None when `text` is a local path (see the module
    docstring). A malformed `hf://` name is a `CheckpointError`."""
    if not isinstance(text, str):
        return None
    if text.startswith(PREFIX):
        match = _NAME.fullmatch(text[len(PREFIX):])
        if match is None:
            raise CheckpointError(f"{text} is not a Hugging Face name: write hf://ORG/NAME, "
                                  "hf://ORG/NAME@REVISION or hf://ORG/NAME/FILE.gguf.")
        return HubName(**match.groupdict(), text=text)
    match = _NAME.fullmatch(text)
    if (match is None or match["filename"] or Path(text).exists()
            or Path(text).suffix in FILE_SUFFIXES):
        return None
    return HubName(**match.groupdict(), text=text)


def is_name(text):
    """Whether `text` names a Hub repo (or a file of one) rather than a local path."""
    return parse(text) is not None


def local_path(name_or_path):
    """`name_or_path` as a local `Path`: a hub name resolved (`resolve`), a path as it is."""
    name = parse(name_or_path)
    return Path(name_or_path) if name is None else resolve(name)


def resolve(name):
    """The local folder (or `.gguf` file) of a hub name (`str` or `HubName`), downloaded into
    the cache when it is not there and the Hub can be reached.

    Raises `CheckpointError` (one line) for: a repo the Hub does not have, a gated repo, an
    unknown revision or GGUF file, weights only as pickles, and a name not in the cache when
    `HF_HUB_OFFLINE=1` or the Hub cannot be reached.
    """
    if isinstance(name, str):
        text, name = name, parse(name)
        if name is None:
            raise CheckpointError(f"{text} is not a Hugging Face name (org/name or "
                                  "hf://org/name) but a local path.")
    hub = _settings()
    unreachable = None
    if not hub["offline"]:
        files, unreachable = _repo_files(name, hub)
        if files is not None:
            _check_repo(name, files)
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    where = dict(revision=name.revision, cache_dir=hub["cache"], endpoint=hub["endpoint"],
                 etag_timeout=hub["timeout"], library_name="keras-transformers",
                 local_files_only=hub["offline"] or unreachable is not None)
    try:
        if name.filename:
            return Path(hf_hub_download(name.repo_id, name.filename, **where))
        folder = Path(snapshot_download(name.repo_id, allow_patterns=FILES,
                                        ignore_patterns=SUBFOLDERS, **where))
    except LocalEntryNotFoundError:
        raise CheckpointError(_not_cached(name, hub, unreachable)) from None
    except Exception as error:  # the transport's own errors (httpx), a full disk, a 5xx
        raise CheckpointError(f"downloading {name} from {hub['endpoint']} failed "
                              f"({_first_line(error)}): run it again; what was downloaded "
                              "stays in the cache.") from None
    _check_weights(name, [p.name for p in folder.iterdir()], f"in the cache ({folder})")
    return folder


def _settings():
    """The environment's hub settings, read now (huggingface_hub reads its own at import)."""
    from huggingface_hub import constants

    try:
        timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or constants.DEFAULT_ETAG_TIMEOUT)
    except ValueError:
        timeout = constants.DEFAULT_ETAG_TIMEOUT
    return {
        "offline": (os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE
                    or constants.HF_HUB_OFFLINE),
        "cache": os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE,
        "endpoint": (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/"),
        "timeout": timeout,
    }


def _repo_files(name, hub):
    """`(the repo's file paths, None)` from the Hub, or `(None, why)` when it cannot be
    reached or answers with a server error (the cache answers then)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = HfApi(endpoint=hub["endpoint"], library_name="keras-transformers").model_info(
            name.repo_id, revision=name.revision, timeout=hub["timeout"])
    except HFValidationError as error:
        raise CheckpointError(f"{name} is not a valid Hugging Face name ({error}).") from None
    except GatedRepoError:
        raise CheckpointError(f"{name} is gated: accept its terms at {hub['endpoint']}/"
                              f"{name.repo_id} and log in (`hf auth login`).") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{_not_here(name)} the Hugging Face Hub ({hub['endpoint']}) has "
                              f"no model {name.repo_id!r}, or it is private (log in with `hf "
                              "auth login`). Check the name.") from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{name}: {name.repo_id} has no revision {name.revision!r} on "
                              "the Hub: give a branch, tag or commit it has.") from None
    except Exception as error:  # a server error, or the transport's: no route, refused, timeout
        return None, _first_line(error)
    return [sibling.rfilename for sibling in info.siblings or []], None


def _check_repo(name, files):
    """Refuse, before any download, a repo (its file paths `files`, from the Hub) that lacks
    the GGUF file named, or whose weights the zoo will not read."""
    if name.filename is None:
        _check_weights(name, files, "on the Hub")
    elif name.filename not in files:
        ggufs = [f for f in files if f.endswith(".gguf")]
        raise CheckpointError(f"{name}: {name.repo_id} has no file {name.filename!r}; its GGUF "
                              f"files: {', '.join(ggufs) or 'none'}.")


def _check_weights(name, files, where):
    """Refuse a repo, or its cached snapshot, (its file paths `files`) without safetensors
    weights at the top: pickles only, GGUF files only, or nothing."""
    top = [f for f in files if "/" not in f]
    if any(f.endswith(".safetensors") for f in top):
        return
    pickles = sorted(f for f in top if Path(f).suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{name} holds its weights only as pickles ({', '.join(pickles)}) {where}, which the "
            "zoo never downloads or unpickles (a pickle can run any code): give a revision with "
            f"model.safetensors (the Hub's conversion bot opens one as a pull request: "
            f"hf://{name.repo_id}@refs/pr/N), or convert it to safetensors where torch is "
            "installed.")
    ggufs = [f for f in files if f.endswith(".gguf")]
    if ggufs:
        raise CheckpointError(f"{name} has no *.safetensors weights {where}, only GGUF files: "
                              f"load one by name, e.g. hf://{name.repo_id}/{ggufs[0]}.")
    raise CheckpointError(f"{name} has no *.safetensors weights {where}: the zoo reads "
                          "config.json + model.safetensors (or a .gguf file).")


def _not_cached(name, hub, unreachable):
    """The message for a name the cache does not hold (wholly) when nothing can be fetched."""
    cache = hub["cache"]
    if not (Path(cache) / ("models--" + name.repo_id.replace("/", "--"))).is_dir():
        missing = f"{_not_here(name)} the Hugging Face cache {cache} does not hold it"
    else:
        part = (f"its file {name.filename}" if name.filename else
                f"its revision {name.revision}" if name.revision else "some of its files")
        missing = f"{name}: the Hugging Face cache {cache} lacks {part}"
    if unreachable is None:
        return (f"{missing}, and HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, "
                "or give a local folder or .gguf file.")
    return (f"{missing}, and the Hub ({hub['endpoint']}) cannot be reached ({unreachable}): "
            "connect to the network, or give a local folder or .gguf file.")


def _not_here(name):
    """How a message about a name the Hub or the cache lacks begins: a name without `hf://`
    may be a mistyped local path, and the message says it is not one."""
    text = str(name)
    return f"{text}:" if text.startswith(PREFIX) else f"{text} is not a local path;"


def _first_line(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"
