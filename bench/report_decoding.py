"""The real-model decoding part of BENCHMARKS.md (`bench/real_decoding.py`'s record).

`decoding_section(record, quantization)` is the table of one run: each way of decoding
SmolLM2-135M with its new tokens/s, its share of the memory-bandwidth roofline of its weight
format, and the issue's goals; `backend_goal(runs)` compares the TensorFlow and JAX figures
of `model.generate` when both runs are on the page.

Example:

>>> decoding_section(None)
[]
"""

SPEEDUP_GOAL = 2.0  # model.generate against keras-hub's LlamaCausalLM.generate (XLA)
ROOFLINE_GOAL = 0.7
SERVED_GOAL = 1.25  # the SavedModel's generate signature / Keras' generate, at most
BACKEND_GOAL = 1.2  # TensorFlow's model.generate / JAX's, time per token, at most


def _met(ok, known=True):
    return ("met" if ok else "**missed**") if known else "n/a"


def _speed(side):
    return side and side["new_tokens_per_second"]


def decoding_section(record, quantization=None):
    """Markdown lines for a run's `decoding` record (and its `quantization` record's TFLite
    decoders, when the run has one); [] without a record."""
    if not record:
        return []
    gigabytes = record["bandwidth"] / 1e9
    float_mb, gguf_mb = record["weight_bytes"] / 1e6, (record["gguf_bytes"] or 0) / 1e6
    lines = [f"### Decoding a real model: {record['model']}, greedy, prompt "
             f"{record['prompt_length']} + {record['new_tokens']} new tokens", "",
             f"Memory bandwidth measured in the run (a 512 MB copy, read + write): "
             f"{gigabytes:.1f} GB/s. Roofline: batch x bandwidth / bytes of weights a step "
             f"reads (float32: {float_mb:.0f} MB; the GGUF file, 4-bit: {gguf_mb:.0f} MB).", "",
             "| way | weights | batch | new tokens/s | roofline | share | vs keras-hub XLA |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for entry in record["batches"]:
        batch, hub = entry["batch_size"], _speed(entry.get("keras_hub"))
        for way, label in (("ours", "ours: `model.generate` (XLA)"),
                           ("keras_hub", "keras-hub `LlamaCausalLM.generate`, XLA"),
                           ("keras_hub_default", "keras-hub, its defaults (no XLA)")):
            side = entry.get(way)
            if side:
                ratio = f"{side['new_tokens_per_second'] / hub:.2f}x" if hub else "-"
                lines.append(f"| {label} | float32 | {batch} | "
                             f"{side['new_tokens_per_second']:.1f} | {entry['roofline']:.1f} | "
                             f"{side['roofline_share']:.2f} | {ratio} |")
        cpp = entry.get("llama_cpp")
        if cpp:
            lines.append(f"| llama.cpp {cpp['version']} ({cpp['threads']} threads) | Q4_1 | "
                         f"{batch} | {cpp['decode_tokens_per_s']:.1f} | {cpp['roofline']:.1f} | "
                         f"{cpp['roofline_share']:.2f} | - |")
    served = record.get("savedmodel")
    if served:
        lines.append(f"| SavedModel `generate` signature (text in, XLA inside) | float32 | 1 | "
                     f"{served['new_tokens_per_second']:.1f} | - | - | - |")
    for mode in (quantization or {}).get("modes", []):
        lines.append(f"| TFLite prefill/decode, LiteRT ({quantization['new_tokens']} new "
                     f"tokens) | {mode['quantize'] or 'float32'} | 1 | "
                     f"{mode['new_tokens_per_second']:.1f} | - | - | - |")
    return lines + [""] + [f"- {goal}" for goal in goals(record, quantization)] + [""]


def goals(record, quantization=None):
    """The decoding goals as sentences, each with its figures and met or not."""
    sentences = []
    for entry in record["batches"]:
        ours, hub = _speed(entry.get("ours")), _speed(entry.get("keras_hub"))
        if ours and hub:
            sentences.append(f"`model.generate` >= {SPEEDUP_GOAL}x keras-hub's XLA generate at "
                             f"batch {entry['batch_size']}: {ours / hub:.2f}x: "
                             f"{_met(ours / hub >= SPEEDUP_GOAL)}.")
    first = record["batches"][0]
    cpp = first.get("llama_cpp")
    ours = first.get("ours")
    artifacts = {"model.generate": ours and ours["new_tokens_per_second"]}
    if record.get("savedmodel"):
        artifacts["the SavedModel"] = record["savedmodel"]["new_tokens_per_second"]
    for mode in (quantization or {}).get("modes", []):
        artifacts[f"TFLite {mode['quantize'] or 'float32'}"] = mode["new_tokens_per_second"]
    best = max((v, k) for k, v in artifacts.items() if v)
    if cpp and first["batch_size"] == 1:
        theirs = cpp["decode_tokens_per_s"]
        sentences.append(f"Our best artifact at batch 1 ({best[1]}, {best[0]:.1f} new tokens/s) "
                         f">= llama.cpp ({theirs:.1f}): {best[0] / theirs:.2f}x: "
                         f"{_met(best[0] >= theirs)}.")
    if ours:
        sentences.append(f"`model.generate` >= {ROOFLINE_GOAL} of its roofline (float32) at "
                         f"batch 1: {ours['roofline_share']:.2f}: "
                         f"{_met(ours['roofline_share'] >= ROOFLINE_GOAL)}.")
    served = record.get("savedmodel")
    if served:
        ratio = served["seconds"] / served["keras_seconds"]
        sentences.append(
            f"SavedModel `generate` within {SERVED_GOAL}x of Keras' `generate` on the same text "
            f"({served['new_tokens']} new tokens): {served['seconds']:.2f} s against "
            f"{served['keras_seconds']:.2f} s, {ratio:.2f}x: {_met(ratio <= SERVED_GOAL)}. "
            f"Version folder {served['bytes'] / 1e6:.0f} MB for {record['weight_bytes'] / 1e6:.0f}"
            f" MB of float32 weights (exported in {served['export_seconds']:.0f} s).")
    return sentences


def backend_goal(runs):
    """Lines comparing TensorFlow's and JAX's `model.generate` of the same record, when the
    page has a run of each with a `decoding` record."""
    by_backend = {run["machine"].get("backend"): run.get("decoding") for run in runs}
    tf_record, jax_record = by_backend.get("tensorflow"), by_backend.get("jax")
    if not (tf_record and jax_record):
        return []
    lines = ["## TensorFlow against JAX: the same decoding loop", "",
             f"Goal: TensorFlow's time per token within {BACKEND_GOAL}x of JAX's.", "",
             "| model | batch | TensorFlow new tokens/s | JAX new tokens/s | JAX / TF | goal |",
             "|---|---:|---:|---:|---:|---|"]
    jax_batches = {e["batch_size"]: e for e in jax_record["batches"]}
    for entry in tf_record["batches"]:
        other = jax_batches.get(entry["batch_size"])
        if not other:
            continue
        tf_speed, jax_speed = _speed(entry["ours"]), _speed(other["ours"])
        lines.append(f"| {tf_record['model']} | {entry['batch_size']} | {tf_speed:.1f} | "
                     f"{jax_speed:.1f} | {jax_speed / tf_speed:.2f}x | "
                     f"{_met(jax_speed / tf_speed <= BACKEND_GOAL)} |")
    return lines + [""]
