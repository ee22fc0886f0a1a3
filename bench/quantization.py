"""Quantized on-device decoding, measured on a real model: what each mode costs and gives.

`compare_decoders(model_path, prompts, ...)` converts a causal LM (SmolLM2-135M, the GGUF
the project reads; a tiny random Llama for `--quick`) with `export.generation.tflite_decoder`
in float32 and each `quantize` mode, each conversion in a fresh process (its peak memory is
the process's), then for each artifact in LiteRT: the file size, the greedy decoding speed at
batch 1 (new tokens/s over the decode steps, prefill apart), and the agreement of its greedy
tokens with Keras' `generate` on the same prompts (prompts whose tokens all agree, and the
share of positions before the first disagreement).

Example:

>>> record = compare_decoders(None, ["Once upon"], prompt_length=8, new_tokens=4,
...                           modes=(None,), repeats=1)
>>> record["modes"][0]["quantize"], record["modes"][0]["prompts_equal"]
('float32', 1)
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import timing

MODES = (None, "fp16", "dynamic")
PROMPTS = ("The capital of France is", "Once upon a time, there was a",
           "def fibonacci(n):", "The three primary colors are")

# Converts in a fresh process and prints what it measured (argv: model path or "", prompt
# length, max length, quantize or "", output file).
CONVERT = """
import json, resource, sys, time
from bench.quantization import load_model
from export.generation import tflite_decoder
model = load_model(sys.argv[1] or None)
start = time.perf_counter()
content = tflite_decoder(model, prompt_length=int(sys.argv[2]), max_length=int(sys.argv[3]),
                         quantize=sys.argv[4] or None)
seconds = time.perf_counter() - start
open(sys.argv[5], "wb").write(content)
print(json.dumps({"seconds": seconds, "bytes": len(content),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def load_model(path=None):
    """The causal LM at `path` (a GGUF or HF folder), or a tiny random Llama when None."""
    import zoo

    if path is None:
        return zoo.build("gpt", size="tiny_llama", task="causal_lm")
    return zoo.from_pretrained(path)


def prompt_ids(model, prompts, width):
    """Each prompt's ids as `generate` reads them (start token included), cut to at most
    `width` from the left; a model without a tokenizer gets a few fixed id prompts."""
    from zoo.generation.requests import causal_request

    if getattr(model, "preprocessor", None) is None:
        return [[5 + i, 9, 2, 7][: width] for i in range(len(prompts))]
    return [row[-width:] for row in causal_request(model, list(prompts)).rows]


def compare_decoders(model_path, prompts=PROMPTS, prompt_length=32, new_tokens=64,
                     modes=MODES, repeats=3):
    """The record of the module docstring: `{"model", "prompt_length", "new_tokens",
    "keras": {...}, "modes": [{"quantize", "bytes", "convert_seconds", "convert_peak_rss_mb",
    "new_tokens_per_second", "prompts_equal", "agreement"}, ...]}`."""
    model = load_model(model_path)
    rows = prompt_ids(model, prompts, prompt_length)
    max_length = prompt_length + new_tokens
    start = time.perf_counter()
    expected = [model.generate([row], new_tokens, stop_token_ids=None)[0] for row in rows]
    keras_seconds = time.perf_counter() - start
    record = {"model": str(model_path or "tiny random Llama"), "prompts": len(rows),
              "prompt_length": prompt_length, "new_tokens": new_tokens,
              "keras": {"seconds_all_prompts": keras_seconds}, "modes": []}
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            path = Path(folder) / f"{mode or 'float32'}.tflite"
            converted = _convert(model_path, prompt_length, max_length, mode, path)
            content = path.read_bytes()
            got = [_greedy(content, row, new_tokens) for row in rows]
            speed = timing.median([_decode_speed(content, rows[0], new_tokens)
                                   for _ in range(repeats)])
            record["modes"].append({
                "quantize": mode or "float32", "bytes": len(content),
                "convert_seconds": converted["seconds"],
                "convert_peak_rss_mb": converted["peak_rss_mb"],
                "new_tokens_per_second": speed,
                "prompts_equal": sum(g == e for g, e in zip(got, expected, strict=True)),
                "agreement": _agreement(got, expected)})
    return record


def _convert(model_path, prompt_length, max_length, mode, path):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", CONVERT, str(model_path or ""), str(prompt_length),
         str(max_length), mode or "", str(path)],
        capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"converting with quantize={mode!r} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _greedy(content, row, new_tokens):
    from export.generation import litert_generate

    return litert_generate(content, row, new_tokens)


def _decode_speed(content, row, new_tokens):
    """New tokens per second of the decode steps (batch 1, greedy), prefill not counted."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=os.cpu_count())
    prefill = interpreter.get_signature_runner("prefill")
    decode = interpreter.get_signature_runner("decode")
    width = prefill.get_input_details()["token_ids"]["shape"][1]
    padded = np.zeros((1, width), np.int32)
    padded[0, :len(row)] = row
    out = prefill(token_ids=padded)
    token, cache = int(np.argmax(out["logits"][0, len(row) - 1])), out["cache"]
    start = time.perf_counter()
    for index in range(len(row), len(row) + new_tokens - 1):
        out = decode(token_id=np.array([[token]], np.int32), cache=cache,
                     index=np.array(index, np.int32))
        token, cache = int(np.argmax(out["logits"][0])), out["cache"]
    return (new_tokens - 1) / (time.perf_counter() - start)


def _agreement(got, expected):
    """The share of new-token positions before each prompt's first disagreement."""
    same = 0
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(g, e, strict=False):
            if a != b:
                break
            same += 1
    return same / sum(len(e) for e in expected)
