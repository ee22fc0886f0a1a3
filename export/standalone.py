"""Run one signature of a SavedModel in a process that imports only TensorFlow and tf-text.

This is what TF Serving sees: no Keras model classes, no project code. `export.report`
runs its source with `python -c` (from a temporary folder), so it must not import the
project; it records the project modules it finds imported (none expected) next to the
outputs.

    python -c "$(cat export/standalone.py)" SAVED_MODEL SIGNATURE INPUTS.npz OUTPUTS.npz [REPEATS]

Inputs and outputs are `.npz` files of named arrays (strings as numpy bytes arrays). The
outputs file also holds `__latency_s` (mean seconds per call after a first, warming call)
and `__project_modules`.
"""

import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers tf-text's ops, which the tokenizers use)

PROJECT_PACKAGES = ("zoo", "training", "keras_transformers", "export")


def main(argv):
    path, signature, inputs_path, outputs_path = argv[1:5]
    repeats = int(argv[5]) if len(argv) > 5 else 1
    function = tf.saved_model.load(path).signatures[signature]
    with np.load(inputs_path, allow_pickle=False) as data:
        inputs = {name: tf.constant(data[name]) for name in data.files}
    outputs = function(**inputs)
    start = time.perf_counter()
    for _ in range(repeats):
        outputs = function(**inputs)
    latency = (time.perf_counter() - start) / max(repeats, 1)
    arrays = {}
    for name, value in outputs.items():
        value = value.numpy()
        arrays[name] = value.astype(bytes) if value.dtype == object else value
    project = sorted(m for m in sys.modules if m.split(".")[0] in PROJECT_PACKAGES)
    np.savez(outputs_path, **arrays, __latency_s=np.float64(latency),
             __project_modules=np.array(project, dtype=bytes).reshape(-1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
