"""Which ops make full-integer int8 TFLite slow: the BERT classifier of the serving workload,
converted with `export.tflite(..., quantize="int8")` keeping different op groups in float,
timed in LiteRT at batch 1 (every core), beside float32 and dynamic-range int8.

`export.tflite`'s "int8" quantizes the matrix products only (`INT8_FLOAT_OPS` stay float).
Each "+ group" row quantizes one more group of ops as well; "every op" is what the converter
does by default. Error: the largest |logit - Keras'| over 64 random examples, as a share of
the largest |logit|; top-1: the share of them whose argmax is Keras'.

Example:

>>> from bench import configs
>>> record = compare_int8_ops(configs.QUICK["bert"], requests=2, variants=("float32",))
>>> sorted(record["variants"][0])
['bytes', 'error', 'p50_ms', 'top1', 'variant']
"""

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from bench import configs, timing
from bench.serving import CALIBRATION_BATCHES

GROUPS = {  # the op groups `export.litert.INT8_FLOAT_OPS` keeps in float
    "layer norm": ("MEAN", "SQUARED_DIFFERENCE", "RSQRT"),
    "softmax": ("SOFTMAX",),
    "GELU, tanh": ("GELU", "TANH", "LOGISTIC"),
    "attention's BATCH_MATMUL": ("BATCH_MATMUL",),
    "ADD, MUL, SUB, NEG, SQUARE": ("ADD", "MUL", "SUB", "NEG", "SQUARE"),
}
VARIANTS = ("float32", "dynamic", "int8", *(f"int8 + {group}" for group in GROUPS),
            "int8, every op")
QUICK_VARIANTS = ("float32", "int8", "int8, every op")  # `--quick`: the code, not the speed
TEST_EXAMPLES = 64


def compare_int8_ops(w, requests=100, warmup=5, variants=VARIANTS):
    """`{"family", "sequence_length", "requests", "variants": [{"variant", "bytes",
    "p50_ms", "error", "top1"}, ...]}` for workload `w` (a BERT classifier)."""
    from ai_edge_litert.interpreter import Interpreter

    import export
    from export.litert import INT8_FLOAT_OPS, run_tflite

    model = configs.ours(w)
    calibration = [configs.batch(w, seed=i)[0] for i in range(CALIBRATION_BATCHES)]
    test = configs.batch(dataclasses.replace(w, batch_size=TEST_EXAMPLES), seed=99)[0]
    expected = np.asarray(model.predict(test, verbose=0))
    request = configs.batch(dataclasses.replace(w, batch_size=1), seed=100)[0]
    records, runners = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as folder:
        for variant in variants:
            quantize, float_ops = _settings(variant, INT8_FLOAT_OPS)
            path = export.tflite(model, Path(folder) / f"{len(records)}.tflite",
                                 quantize=quantize, representative_data=calibration,
                                 int8_float_ops=float_ops)
            logits = run_tflite(path, test)["logits"]
            records.append({"variant": variant, "bytes": path.stat().st_size,
                            "error": float(np.abs(logits - expected).max()
                                           / np.abs(expected).max()),
                            "top1": float((logits.argmax(-1) == expected.argmax(-1)).mean())})
            runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()) \
                .get_signature_runner("serving_default")
            runners[variant] = lambda runner=runner: runner(**request)
        runs = timing.interleave(runners, requests, warmup=warmup)
    for record in records:
        record["p50_ms"] = timing.percentile([1000 * s for s in runs[record["variant"]]], 50)
    return {"family": w.family, "sequence_length": w.sequence_length, "requests": requests,
            "litert_threads": os.cpu_count(), "variants": records}


def _settings(variant, float_ops):
    """`(quantize, int8_float_ops)` of `export.tflite` for a variant's name."""
    if variant == "float32":
        return None, float_ops
    if variant == "dynamic":
        return "dynamic", float_ops
    if variant == "int8":
        return "int8", float_ops
    if variant == "int8, every op":
        return "int8", ()
    group = GROUPS[variant.removeprefix("int8 + ")]
    return "int8", tuple(op for op in float_ops if op not in group)
