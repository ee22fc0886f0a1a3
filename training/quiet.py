r"""Keep the dependencies' own output out of `kt`'s terminal; `kt --verbose` shows it all.

Inside `quiet()`:
- native writes to file descriptor 2 (TensorFlow's C++ logging, absl's lines from before
  `InitializeLog`, oneDNN's and CUDA's notices, the TFLite converter's prints), which
  `TF_CPP_MIN_LOG_LEVEL` does not all reach, go to a log file in the temporary folder, while
  Python's `sys.stderr` (kt's own messages and errors) still reaches the terminal;
- Python warnings are shown only when they come from the project's own packages (not Keras'
  or TensorFlow's deprecation notices);
- the `absl` and `tensorflow` Python loggers print only errors, to that log.

The log is removed at the end unless `log.keep` was set or an error left the block (a
crash inside native code leaves its last words there).

Example:

>>> with quiet() as log:
...     _ = os.write(2, b"a native line\n")      # what C++ code does: not on the terminal
...     log.path.read_text()
'a native line\n'
>>> log.path.exists()
False
"""

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

PROJECT_MODULES = r"(zoo|training|export|keras_transformers)(\..*)?$"
LOGGERS = ("absl", "tensorflow")


@dataclass
class NativeLog:
    """Where `quiet()` sends native stderr; `keep = True` leaves the file for the user."""

    path: Path
    keep: bool = False


@contextlib.contextmanager
def quiet():
    """Send native stderr to a log file and hide other packages' warnings (see the module
    docstring); yields the `NativeLog`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    terminal = os.dup(2)
    handle, path = tempfile.mkstemp(prefix="kt-", suffix=".log")
    log = NativeLog(Path(path))
    python_stderr = sys.stderr
    if _writes_to_fd2(sys.stderr):  # else it is captured or redirected already: keep it
        sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1)
    os.dup2(handle, 2)
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=PROJECT_MODULES)
            for name in LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            yield log
    except BaseException:
        log.keep = True
        raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(terminal, 2)
        os.close(terminal)
        os.close(handle)
        if not log.keep or not log.path.stat().st_size:
            log.path.unlink()


def _writes_to_fd2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
