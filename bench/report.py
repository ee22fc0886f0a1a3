"""Benchmark results: the JSON file of a run, and `BENCHMARKS.md` made from it.

`save(results, folder)` writes `<folder>/<timestamp>-<backend>.json`; `markdown(results)`
turns one run into the page: the machine, versions and command, then each measurement with
its ratio to keras-hub and the issue's goal, met or not. Regenerate the page from saved runs
with `python -m bench.report bench/results/<run>.json [more runs] --out BENCHMARKS.md`
(one section per run, e.g. a TensorFlow run and a JAX run).

Example:

>>> results = {"machine": {"backend": "tensorflow", "command": "python -m bench"},
...            "peak_matmul_flops": 1e11, "training": [], "generation": [], "serving": None}
>>> print(markdown(results).splitlines()[0])
# Benchmarks
"""

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path

from bench.report_decoding import backend_goal, decoding_section

RESULTS_DIR = Path(__file__).parent / "results"
# Written by hand: the performance work (causes found, before/after figures, goals missed
# and why). The generated page ends with it, so a new run does not lose it.
FINDINGS = Path(__file__).parent / "FINDINGS.md"
# The issues' goals.
TRAINING_SPEEDUP_GOAL = 1.3
MFU_GOAL = 0.7
GENERATION_SPEEDUP_GOAL = 3.0
INT8_SPEEDUP_GOAL = 2.5
PIPELINE_GOAL = 0.95


def save(results, folder=RESULTS_DIR, path=None):
    """Write `results` as `<folder>/<timestamp>-<backend>.json`, or over `path` (a run saves
    after each section, so a crash keeps what was measured); returns the path."""
    if path is None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-{results['machine']['backend']}.json"
    Path(path).write_text(json.dumps(results, indent=1) + "\n")
    return Path(path)


def load(path):
    return json.loads(Path(path).read_text())


def latest_runs(folder=RESULTS_DIR):
    """The newest full run (complete, not `--quick`, with the training section) of each
    backend saved in `folder`."""
    newest = {}
    for path in sorted(Path(folder).glob("*.json")):  # timestamped names: oldest first
        run = load(path)
        if run.get("complete", True) and not run.get("quick") and run.get("training"):
            newest[run["machine"]["backend"]] = run
    return [newest[backend] for backend in sorted(newest)]


def latest_quantization(folder=RESULTS_DIR):
    """The newest complete, not `--quick` run in `folder` that measured the quantized
    decoders (`--only quantization` runs it alone), or None."""
    found = None
    for path in sorted(Path(folder).glob("*.json")):
        run = load(path)
        if run.get("complete", True) and not run.get("quick") and run.get("quantization"):
            found = run
    return found


# --- the page ------------------------------------------------------------------------------


def markdown(*runs, quantization=None, findings=FINDINGS):
    """`BENCHMARKS.md` for one or more runs (dicts as `save` writes them), the quantized
    decoders of the run `quantization` (when it is not one of `runs`), then the text of
    `findings` when that file exists."""
    lines = ["# Benchmarks", "",
             "Ours (keras-transformers) against keras-hub, same configurations, same process, "
             "runs interleaved (ours, keras-hub, ours, ...), medians after a warmup. "
             "Made by `bench/` (`make bench`); the JSON of each run is under `bench/results/`.",
             "FLOPs count matrix multiplications only (`bench/flops.py` writes the formula "
             "down); MFU = achieved FLOP/s / the peak float32 matmul FLOP/s measured in the "
             "same run.", ""]
    for run in runs:
        lines += _run_section(run)
    lines += backend_goal(runs)
    if quantization is not None and all(quantization["machine"] != run["machine"]
                                        for run in runs):  # not one of `runs` (read again)
        m = quantization["machine"]
        lines += [f"## Quantized on-device decoding, {m.get('backend', '?')} backend, "
                  f"{m.get('time', '')}", "",
                  f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; command: "
                  f"`{m.get('command', '?')}` (commit {m.get('commit') or '?'})", ""]
        lines += _quantization_section(quantization["quantization"])
    if findings and Path(findings).exists():
        lines += [Path(findings).read_text().strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _run_section(run):
    m = run["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    lines = [f"## {m.get('backend', '?')} backend, {m.get('time', '')}", "",
             f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
             f"{m.get('memory_gb', '?')} GB; {m.get('platform', '')}; "
             f"accelerators: {m.get('accelerators') or 'none'}",
             f"- Versions: Python {m.get('python', '?')}, {versions}",
             f"- Command: `{m.get('command', '?')}` (commit {m.get('commit') or '?'})",
             f"- Peak matmul: {_gflops(run.get('peak_matmul_flops'))} GFLOP/s "
             "(float32, XLA)"]
    for note in run.get("notes", []):
        lines.append(f"- Note: {note}")
    lines.append("")
    lines += _training_section(run.get("training") or [])
    lines += _pipeline_section(run.get("pipeline") or [])
    lines += _generation_section(run.get("generation") or [])
    lines += decoding_section(run.get("decoding"), run.get("quantization"))
    lines += _serving_section(run.get("serving"))
    lines += _fixes_section(run.get("fixes"), run.get("pipeline"))
    lines += _quantization_section(run.get("quantization"))
    if run.get("peak_rss_mb"):
        memory = ", ".join(f"after {k}: {v:.0f} MiB" for k, v in run["peak_rss_mb"].items())
        lines += [f"Peak memory of the process (RSS, `resource.getrusage`): {memory}.", ""]
    return lines


def _training_section(records):
    if not records:
        return []
    lines = ["### Training throughput (`model.fit`, in-memory batches)", "",
             f"Goal: >= {TRAINING_SPEEDUP_GOAL}x keras-hub and MFU >= {MFU_GOAL}.", "",
             "| model | XLA | ours tokens/s | keras-hub tokens/s | ratio | ours MFU | "
             "keras-hub MFU | goal |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in records:
        ours, hub = r["ours"], r.get("keras_hub")
        ratio = hub and ours["tokens_per_second"] / hub["tokens_per_second"]
        met = _met(ratio is not None and ratio >= TRAINING_SPEEDUP_GOAL
                   and (ours["mfu"] or 0) >= MFU_GOAL, ratio is not None)
        lines.append(
            f"| {r['family']} {r['task']} | {'on' if r['jit_compile'] else 'off'} | "
            f"{ours['tokens_per_second']:,.0f} | {_num(hub and hub['tokens_per_second'])} | "
            f"{_ratio(ratio)} | {_num(ours['mfu'], '.2f')} | "
            f"{_num(hub and hub['mfu'], '.2f')} | {met} |")
    return lines + ["", "Tokens per example: text tokens (T5: encoder + decoder), ViT: patches "
                    "+ class token.", ""]


def _pipeline_section(records):
    if not records:
        return []
    lines = ["### Ours through the data pipeline (`training.pipelines`) vs in-memory tensors",
             "", f"Goal: >= {PIPELINE_GOAL}x of the in-memory throughput.", "",
             "| model | dataset | pipeline tokens/s | in-memory tokens/s | ratio | goal |",
             "|---|---|---:|---:|---:|---|"]
    for r in records:
        p, m = r["pipeline"]["tokens_per_second"], r["in_memory"]["tokens_per_second"]
        lines.append(f"| {r['family']} | {r['dataset']} | {p:,.0f} | {m:,.0f} | "
                     f"{_ratio(p / m)} | {_met(p / m >= PIPELINE_GOAL)} |")
    return lines + [""]


def _generation_section(records):
    if not records:
        return []
    lines = ["### Generation (GPT workload, greedy, new tokens/s)", "",
             f"Goal: >= {GENERATION_SPEEDUP_GOAL}x keras-hub `GPT2CausalLM.generate`, judged "
             "against the faster of its two settings: compiled with `jit_compile=True` (XLA), "
             "and with its defaults (Keras' \"auto\": no XLA on a CPU machine).", "",
             "| batch | prompt + new | ours | keras-hub XLA | ratio | keras-hub default | "
             "ratio | goal |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in records:
        ours = r["ours"]["new_tokens_per_second"]
        sides = [r.get(name) and r[name]["new_tokens_per_second"]
                 for name in ("keras_hub", "keras_hub_default")]
        ratios = [side and ours / side for side in sides]
        known = [ratio for ratio in ratios if ratio]
        met = _met(bool(known) and min(known) >= GENERATION_SPEEDUP_GOAL, bool(known))
        lines.append(
            f"| {r['batch_size']} | {r['prompt_length']} + {r['new_tokens']} | {ours:,.0f} | "
            f"{_num(sides[0])} | {_ratio(ratios[0])} | {_num(sides[1])} | {_ratio(ratios[1])} "
            f"| {met} |")
    return lines + [""]


def _serving_section(record):
    if not record:
        return []
    latency = record["latency"]
    batch_sizes = sorted({int(b) for way in latency.values() for b in way})
    header = " | ".join(f"batch {b} p50 / p99 ms" for b in batch_sizes)
    lines = ["### Serving latency (BERT classifier, one request at a time)", "",
             "Goals: ours below keras-hub's exported model at batch 1; TFLite int8 >= "
             f"{INT8_SPEEDUP_GOAL}x faster than fp32 at batch 1.", "",
             f"| way | {header} | artifact |", "|---|" + "---:|" * (len(batch_sizes) + 1)]
    for way, by_batch in latency.items():
        cells = " | ".join(
            f"{by_batch[str(b)]['p50_ms']:.2f} / {by_batch[str(b)]['p99_ms']:.2f}"
            if str(b) in by_batch else "-" for b in batch_sizes)
        size = record.get("artifact_bytes", {}).get(way)
        lines.append(f"| {way} | {cells} | {_megabytes(size)} |")
    lines.append("")
    for goal in serving_goals(record):
        lines.append(f"- {goal}")
    for way, reason in record.get("skipped", {}).items():
        lines.append(f"- {way} skipped: {reason}")
    return lines + [""]


def serving_goals(record):
    """The serving goals as sentences, each with its figures and whether it is met."""
    latency = record["latency"]

    def p50(way):
        return latency.get(way, {}).get("1", {}).get("p50_ms")

    goals = []
    ours, hub = p50("savedmodel"), p50("keras_hub_savedmodel")
    if ours and hub:
        goals.append(f"SavedModel at batch 1: ours {ours:.2f} ms, keras-hub {hub:.2f} ms "
                     f"(ratio {hub / ours:.2f}x): {_met(ours < hub)}.")
    fp32, int8, dynamic = p50("tflite_fp32"), p50("tflite_int8"), p50("tflite_dynamic")
    if fp32 and int8:
        goals.append(f"TFLite int8 at batch 1: {fp32 / int8:.2f}x faster than fp32: "
                     f"{_met(fp32 / int8 >= INT8_SPEEDUP_GOAL)}.")
    if fp32 and dynamic:
        goals.append(f"(For reference, TFLite dynamic-range int8 at batch 1: "
                     f"{fp32 / dynamic:.2f}x faster than fp32.)")
    return goals


FIX_LABELS = {
    "dropout": "dropout of {numbers:,} numbers, training, XLA (Keras' layer -> ours)",
    "predict": "`predict` of one example, {family} workload (`keras.Model.predict` -> ours)",
    "lone_row": "SmolLM2 `generate`, one prompt, per new token (one row -> two rows)",
    "unfused_kernels": "SmolLM2 `generate`, one prompt, per new token (attention kernels "
                       "fused into naive loops -> `unfused`)",
    "savedmodel_size": "SavedModel version folder, {family} workload (Keras' `write_out` -> "
                       "`write_archive`)",
    "pipeline": "`training.pipelines`, {family} workload, per step (tf.data autotuner on -> "
                "off)",
}


def _fixes_section(record, pipeline_records=()):
    """The fixes table: each fix's figure before and after, lower is better."""
    rows = dict(record or {})
    for r in pipeline_records or ():
        if r.get("autotuned"):
            rows[f"pipeline {r['family']}"] = {
                "family": r["family"], "before": _step_ms(r, "autotuned"),
                "after": _step_ms(r, "pipeline")}
    if not rows:
        return []
    lines = ["### The fixes, before and after (`bench/fixes.py`)", "",
             "| fix | before | after | gain |", "|---|---:|---:|---:|"]
    for name, r in rows.items():
        b, a, unit = fix_figures(r)
        label = FIX_LABELS.get(name.split()[0], name).format(
            **{k: v for k, v in r.items() if k in ("numbers", "family")})
        gain = f"{b / a:.2f}x" if b / a < 10 else f"{b / a:.0f}x"
        lines.append(f"| {label} | {b:,.2f} {unit} | {a:,.2f} {unit} | {gain} |")
    return lines + [""]


def fix_figures(record):
    """`(before, after, unit)` of a fix's record: `before` / `after` in "ms" or "mb" (the
    Keras-against-ours fixes name them `keras` / `ours`, in "ms")."""
    before, after = record.get("before") or record["keras"], record.get("after") or record["ours"]
    unit = "MB" if "mb" in before else "ms"
    return before[unit.lower()], after[unit.lower()], unit


def _step_ms(record, side):
    return {"ms": 1000 * statistics.median(record[side]["runs"]) / record["steps"]}


def _quantization_section(record):
    if not record:
        return []
    lines = [f"### TFLite decoder of {Path(record['model']).name} (`export.generation."
             "tflite_decoder`), LiteRT, greedy, batch 1", "",
             f"Prompt padded to {record['prompt_length']} positions, {record['new_tokens']} new "
             f"tokens; agreement with Keras' `generate` on {record['prompts']} prompts: the "
             "prompts whose new tokens all equal Keras', and the share of new tokens before "
             "each prompt's first difference. Conversion in a fresh process; its peak memory "
             "is that process's.", "",
             "| weights | file | conversion | peak memory | decode new tokens/s | prompts as "
             "Keras | tokens before the first difference |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in record["modes"]:
        lines.append(
            f"| {r['quantize']} | {_megabytes(r['bytes'])} | {r['convert_seconds']:.0f} s | "
            f"{r['convert_peak_rss_mb'] / 1024:.1f} GB | {r['new_tokens_per_second']:.1f} | "
            f"{r['prompts_equal']} / {record['prompts']} | {r['agreement']:.0%} |")
    keras = record.get("keras", {}).get("seconds_all_prompts")
    if keras:
        lines += ["", f"Keras `generate` (XLA), the same {record['prompts']} prompts one at a "
                      f"time: {keras:.1f} s in all, compilation included."]
    return lines + [""] + _int8_ops_section(record.get("int8_ops"))


def _int8_ops_section(record):
    if not record:
        return []
    rows = {r["variant"]: r for r in record["variants"]}
    lines = [f"### TFLite int8, op group by op group ({record['family'].upper()} classifier, "
             f"sequence {record['sequence_length']}, batch 1, LiteRT, "
             f"{record['litert_threads']} threads)", "",
             "`export.tflite(quantize=\"int8\")` quantizes the matrix products and keeps "
             "the other ops float; each `+` row quantizes one more group, as the converter "
             "does by default (`every op`). Error: largest |logit - Keras'| over 64 random "
             "examples / largest |logit|.", "",
             "| TFLite | file | p50 ms | vs float32 | error | top-1 as Keras |",
             "|---|---:|---:|---:|---:|---:|"]
    base = rows.get("float32", {}).get("p50_ms")
    for r in record["variants"]:
        speed = f"{base / r['p50_ms']:.2f}x" if base else "-"
        lines.append(f"| {r['variant']} | {_megabytes(r['bytes'])} | {r['p50_ms']:.2f} | "
                     f"{speed} | {r['error']:.4f} | {r['top1']:.0%} |")
    return lines + [""]


def _met(ok, known=True):
    return ("met" if ok else "**missed**") if known else "n/a"


def _num(value, spec=",.0f"):
    return "-" if value is None else format(value, spec)


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _gflops(value):
    return "?" if not value else f"{value / 1e9:.1f}"


def _megabytes(size):
    return "-" if size is None else f"{size / 1e6:.2f} MB"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Write BENCHMARKS.md from saved runs.")
    parser.add_argument("runs", nargs="+", help="JSON files under bench/results/")
    parser.add_argument("--out", default="BENCHMARKS.md", help="the page to write")
    args = parser.parse_args(argv)
    Path(args.out).write_text(markdown(*(load(path) for path in args.runs)))
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
