"""TF Serving's warmup file and `models.config`, for a SavedModel version folder.

`write_warmup(version_dir, name)` writes `assets.extra/tf_serving_warmup_requests`: a
TFRecord of `PredictionLog`s (`tensorflow-serving-api`'s protos), one small request per
signature, which TF Serving replays when it loads the version, so the first real request
does not pay for graph warmup. The requests are made from the signatures themselves: a
string for text, a small PNG for `image_bytes`, ones for ids and masks (and for generate's
`max_new_tokens`, and generate's `top_p`: every token), zeros for segment ids (a model may
have one segment) and other floats (greedy, for generate's `temperature`); unknown
dimensions are 1 (batch) and 8 (others), scalars stay scalars. A request the signature's
input checks reject would stop TF Serving from loading the version.

`write_models_config(base_dir)` writes `<base_dir>/models.config`, the `--model_config_file`
that serves every model folder under `base_dir` from one TF Serving process.

Example:

>>> import tempfile, pathlib
>>> base = pathlib.Path(tempfile.mkdtemp())
>>> (base / "bert" / "1").mkdir(parents=True)
>>> print(write_models_config(base).read_text().replace(str(base), "BASE"))
model_config_list {
  config {
    name: "bert"
    base_path: "BASE/bert"
    model_platform: "tensorflow"
  }
}
<BLANKLINE>
"""

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from export.layout import versions
from zoo.files import write_text

WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
WARMUP_TEXT = "TF Serving warms up with this request."


def signatures(version_dir):
    """{signature name: {input name: (tf.DType, shape with None)}} of a SavedModel, read
    from `saved_model.pb` without loading it; TF's internal `__saved_model_init_op` left out."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    found = {}
    for name, signature in saved.meta_graphs[0].signature_def.items():
        if name.startswith("__"):
            continue
        found[name] = {
            key: (tf.dtypes.as_dtype(info.dtype),
                  None if info.tensor_shape.unknown_rank else
                  [None if d.size < 0 else d.size for d in info.tensor_shape.dim])
            for key, info in signature.inputs.items()
        }
    return found


def example_input(name, dtype, shape):
    """A small valid value for a signature input (see the module docstring); a scalar input
    (generate's `max_new_tokens`, `seed`, ...) gets a scalar."""
    if shape is None:  # unknown rank: a batch of one
        shape = [None]
    if shape:
        shape = [1] + [8 if d is None else d for d in shape[1:]]
    if dtype == tf.string:
        if name == "image_bytes":
            return np.full(shape, tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy(),
                           dtype=object)
        return np.full(shape, WARMUP_TEXT.encode(), dtype=object)
    if (dtype.is_integer and not name.endswith("segment_ids")) or name == "top_p":
        return np.ones(shape, dtype.as_numpy_dtype)
    return np.zeros(shape, dtype.as_numpy_dtype)


def warmup_requests(version_dir):
    """`(signature name, {input: value})` for each signature of a SavedModel."""
    return [
        (signature, {key: example_input(key, dtype, shape)
                     for key, (dtype, shape) in inputs.items()})
        for signature, inputs in sorted(signatures(version_dir).items())
    ]


def write_warmup(version_dir, model_name):
    """Write `assets.extra/tf_serving_warmup_requests`; returns its path, or None when
    `tensorflow-serving-api` (its protos) is not installed."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        return None
    folder = Path(version_dir) / "assets.extra"
    folder.mkdir(exist_ok=True)
    path = folder / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in warmup_requests(version_dir):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup(path):
    """The `(signature name, {input: numpy value})` requests of a warmup file."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name,
                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
    return requests


def write_models_config(base_dir):
    """Write `<base_dir>/models.config` listing every model folder under `base_dir` (a folder
    with at least one numeric version), with absolute paths; returns its path."""
    base_dir = Path(base_dir).resolve()
    names = sorted(p.name for p in base_dir.iterdir() if p.is_dir() and versions(p))
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{base_dir / name}"\n'
        f'    model_platform: "tensorflow"\n  }}\n'
        for name in names
    )
    return write_text(base_dir / MODELS_CONFIG, f"model_config_list {{\n{entries}}}\n")
