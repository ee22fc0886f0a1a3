"""Export zoo models: SavedModel for TF Serving, TFLite for LiteRT, and a parity check.

    export.saved_model(model, "exports")              # exports/<name>/<version>/, for TF Serving
    export.tflite(model, "model.tflite", quantize="int8", representative_data=batches)
    print(export.verify(model, [saved_path, "model.tflite"], inputs))

See `export.savedmodel`, `export.tflite` and `export.verify`.
"""

from export.litert import tflite
from export.report import Report, verify
from export.savedmodel import saved_model

__all__ = ["Report", "saved_model", "tflite", "verify"]
