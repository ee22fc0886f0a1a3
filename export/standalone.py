"""Run signatures of SavedModels in a process that imports only TensorFlow and tf-text.

This is what TF Serving sees: no Keras model classes, no project code. `export.report`
runs its source with `python -c` (from a temporary folder), so it must not import the
project; it records the project modules it finds imported (none expected) next to the
outputs.

    python -c "$(cat export/standalone.py)" REPEATS SAVED_MODEL SIGNATURE INPUTS.npz OUTPUTS.npz \
        [SAVED_MODEL SIGNATURE INPUTS.npz OUTPUTS.npz ...]

Each group of four runs one signature (several SavedModels in one process: one TensorFlow
start). Inputs and outputs are `.npz` files of named arrays (strings as numpy bytes arrays).
Each outputs file also holds `__latency_s` (mean seconds per call over REPEATS calls after a
first, warming call) and `__project_modules`. A call that raises (a bad input: TensorFlow's
`InvalidArgumentError`) does not stop the others: its outputs file holds only
`__error_type` (the error's class name), `__error` (its message) and `__project_modules`.
"""

import functools
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers tf-text's ops, which the tokenizers use)

PROJECT_PACKAGES = ("zoo", "training", "keras_transformers", "export")


def main(argv):
    repeats, jobs = int(argv[1]), argv[2:]
    if not jobs or len(jobs) % 4:
        raise SystemExit("usage: REPEATS (SAVED_MODEL SIGNATURE INPUTS OUTPUTS)...")
    for start in range(0, len(jobs), 4):
        run(*jobs[start:start + 4], repeats)
    return 0


@functools.cache
def load(path):
    """The SavedModel at `path`, loaded once for all the jobs that call it."""
    return tf.saved_model.load(path)


def run(path, signature, inputs_path, outputs_path, repeats):
    """Call `signature` of the SavedModel at `path` on the inputs file; write the outputs."""
    function = load(path).signatures[signature]
    with np.load(inputs_path, allow_pickle=False) as data:
        inputs = {name: tf.constant(data[name]) for name in data.files}
    try:
        outputs = function(**inputs)
    except Exception as error:  # recorded: the caller judges it (a bad input is expected)
        np.savez(outputs_path, __error_type=np.array(type(error).__name__),
                 __error=np.array(str(error)), __project_modules=_project_modules())
        return
    start = time.perf_counter()
    for _ in range(repeats):
        outputs = function(**inputs)
    latency = (time.perf_counter() - start) / max(repeats, 1)
    arrays = {}
    for name, value in outputs.items():
        value = value.numpy()
        arrays[name] = value.astype(bytes) if value.dtype == object else value
    np.savez(outputs_path, **arrays, __latency_s=np.float64(latency),
             __project_modules=_project_modules())


def _project_modules():
    project = sorted(m for m in sys.modules if m.split(".")[0] in PROJECT_PACKAGES)
    return np.array(project, dtype=bytes).reshape(-1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
