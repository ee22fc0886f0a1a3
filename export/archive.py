"""`write_archive(archive, folder)`: `keras.export.ExportArchive.write_out` with every weight
stored once.

Keras (3.15) saves each weight twice: `archive.track(layer)` lists the layer's Keras
`Variable`s, and `write_out` adds the TensorFlow variables the endpoints capture (the same
values, held by those Keras variables as `.value`). The checkpoint sees two objects and writes
both, so a SavedModel's `variables/` was twice the model (SmolLM2-135M: 1.1 GB for 540 MB of
float32 weights), and a TFLite conversion through one read them twice. Listing the TensorFlow
variables instead of their Keras wrappers leaves one object per weight.

Example:

>>> import keras, tempfile, tensorflow as tf
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> archive = keras.export.ExportArchive()
>>> archive.track(model)
>>> _ = archive.add_endpoint("serve", model.call, input_signature=[tf.TensorSpec([None, 4])])
>>> folder = tempfile.mkdtemp()
>>> write_archive(archive, folder)
>>> sorted(shape for name, shape in tf.train.list_variables(folder + "/variables/variables")
...        if name.endswith("VARIABLE_VALUE") and "save_counter" not in name)  # once each
[[2], [4, 2]]
"""

import tensorflow as tf

TRACKED_LISTS = ("variables", "trainable_variables", "non_trainable_variables")


def write_archive(archive, folder):
    """Write `archive` (a `keras.export.ExportArchive`) to `folder`, each weight once."""
    trackable = archive._tf_trackable
    for name in TRACKED_LISTS:
        setattr(trackable, name, [_tf_variable(v) for v in getattr(trackable, name)])
    archive.write_out(folder, verbose=False)


def _tf_variable(variable):
    """The tf.Variable a Keras Variable holds (its `.value` on TensorFlow), else `variable`."""
    value = getattr(variable, "value", None)
    return value if isinstance(value, tf.Variable) else variable
