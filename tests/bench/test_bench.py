"""The benchmark suite: FLOP formula, configurations, the page, and a `--quick` run."""

import gc
import json
import sys

import numpy as np
import pytest

from bench import __main__ as cli
from bench import configs, flops, report, report_decoding, timing
from bench import serving as serving_module


def kernel_sizes(model):
    """Weights of every dense projection: the kernels (embedding tables are looked up)."""
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables
               if v.path.endswith("kernel"))


def test_training_flops_of_a_tiny_gpt_equal_a_hand_count():
    # 1 layer, d=32, f=64, s=16, B=4, V=256, counted by hand:
    #   block weights: 4*32*32 + 2*32*64 = 8192; forward 2 * 8192 * (4*16) = 1,048,576
    #   attention: 2 * 2 * 16*16 * 32 per sequence, x 4 = 131,072
    #   LM head: 2 * 4*16 * 32*256 = 1,048,576
    #   training: 3 x (1,048,576 + 131,072 + 1,048,576) = 6,684,672
    assert flops.training_flops(configs.QUICK["gpt"]) == 6_684_672
    # The 6 N T form: N = 8192 + 32*256 weights per token, T = 64 tokens, plus attention.
    six_n_t = 6 * (8192 + 8192) * 64
    assert flops.training_flops(configs.QUICK["gpt"]) == six_n_t + 12 * 16**2 * 32 * 4


def test_training_flops_of_a_tiny_t5_and_vit_equal_hand_counts():
    # T5: 1 encoder + 1 decoder layer, s=16, t=8, d=32, f=64, B=4, V=256.
    block = 4 * 32 * 32 + 2 * 32 * 64
    encoder = 2 * block * 4 * 16 + 4 * 4 * 16 * 16 * 32
    decoder = 2 * block * 4 * 8 + 4 * 4 * 8 * 8 * 32
    cross = 2 * 2 * 32 * 32 * 4 * 8 + 2 * 2 * 32 * 32 * 4 * 16 + 4 * 4 * 8 * 16 * 32
    head = 2 * 4 * 8 * 32 * 256
    assert flops.training_flops(configs.QUICK["t5"]) == 3 * (encoder + decoder + cross + head)
    # ViT: 16x16x3 images, patch 4: 16 patches + class token, B=8, 10 classes.
    patches = 2 * 8 * 16 * (4 * 4 * 3) * 32
    layer = 2 * block * 8 * 17 + 4 * 8 * 17 * 17 * 32
    assert flops.training_flops(configs.QUICK["vit"]) == 3 * (patches + layer + 2 * 8 * 32 * 10)


@pytest.mark.parametrize("family", ["bert", "gpt", "t5", "vit"])
def test_counted_matmul_weights_are_the_models_kernels(family):
    w = configs.QUICK[family]
    counted = sum(flops.matmul_weights(w).values())
    model = configs.ours(w)
    tied_head = flops.matmul_weights(w)["head"] if family in ("gpt", "t5") else 0
    assert kernel_sizes(model) == counted - tied_head  # the tied LM head is the token table


@pytest.mark.parametrize("family", ["bert", "gpt", "t5", "vit"])
def test_ours_and_keras_hub_have_the_same_parameters(family):
    pytest.importorskip("keras_hub")
    w = configs.QUICK[family]
    ours, theirs = configs.ours(w), configs.keras_hub_model(w)
    assert ours.count_params() == theirs.count_params()
    x, _ = configs.batch(w)
    assert ours.predict(x, verbose=0).shape == theirs.predict(x, verbose=0).shape


def test_a_timed_call_runs_with_the_garbage_collector_paused_then_restores_it():
    seen = []
    assert gc.isenabled()
    assert timing.seconds(lambda: seen.append(gc.isenabled())) > 0
    assert seen == [False] and gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        timing.seconds(lambda: 1 / 0)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that paused it keeps it paused
        timing.seconds(lambda: None)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_page_shows_ratios_and_goals(tmp_path):
    train = {"ours": 3000.0, "keras_hub": 2000.0}
    run = {
        "machine": {"backend": "tensorflow", "cpu": "Test CPU", "cores": 2,
                    "command": "python -m bench", "versions": {"keras": "3.15.1"}},
        "peak_matmul_flops": 1e11,
        "training": [{"family": "gpt", "task": "causal_lm", "jit_compile": True,
                      "ours": {"tokens_per_second": train["ours"], "mfu": 0.75},
                      "keras_hub": {"tokens_per_second": train["keras_hub"], "mfu": 0.5}}],
        "generation": [{"batch_size": 1, "prompt_length": 16, "new_tokens": 64,
                        "ours": {"new_tokens_per_second": 340.0},
                        "keras_hub": {"new_tokens_per_second": 170.0},
                        "keras_hub_default": {"new_tokens_per_second": 100.0}}],
        "serving": {"latency": {"savedmodel": {"1": {"p50_ms": 2.0, "p99_ms": 3.0}},
                                "keras_hub_savedmodel": {"1": {"p50_ms": 4.0, "p99_ms": 5.0}},
                                "tflite_fp32": {"1": {"p50_ms": 1.0, "p99_ms": 1.5}},
                                "tflite_int8": {"1": {"p50_ms": 0.8, "p99_ms": 1.0}}},
                    "artifact_bytes": {"savedmodel": 2_500_000}, "skipped": {}},
        "fixes": {"dropout": {"shape": [16, 4, 128, 128], "numbers": 1048576,
                              "keras": {"ms": 1000.0}, "ours": {"ms": 4.0}},
                  "savedmodel_size": {"family": "bert", "before": {"mb": 20.0},
                                      "after": {"mb": 10.5}}},
        "pipeline": [{"family": "bert", "dataset": "fortunes", "steps": 8,
                      "pipeline": {"tokens_per_second": 95.0, "runs": [1.6, 1.7]},
                      "in_memory": {"tokens_per_second": 100.0, "runs": [1.6]},
                      "autotuned": {"tokens_per_second": 60.0, "runs": [2.4, 2.6]}}],
    }
    page = report.markdown(run)
    assert "| gpt causal_lm | on | 3,000 | 2,000 | 1.50x | 0.75 | 0.50 | met |" in page
    assert "| 1 | 16 + 64 | 340 | 170 | 2.00x | 100 | 3.40x | **missed** |" in page
    assert "ours 2.00 ms, keras-hub 4.00 ms (ratio 2.00x): met." in page
    assert "1.25x faster than fp32: **missed**." in page
    assert "| savedmodel | 2.00 / 3.00 | 2.50 MB |" in page
    assert "Test CPU, 2 cores" in page
    assert ("| dropout of 1,048,576 numbers, training, XLA (Keras' layer -> ours) | 1,000.00 ms "
            "| 4.00 ms | 250x |" in page)
    assert "(Keras' `write_out` -> `write_archive`) | 20.00 MB | 10.50 MB | 1.90x |" in page
    assert ("| `training.pipelines`, bert workload, per step (tf.data autotuner on -> off) | "
            "312.50 ms | 206.25 ms | 1.52x |" in page)
    findings = tmp_path / "FINDINGS.md"
    findings.write_text("## Performance work\n\nDropout: 1.46 s -> 1.06 s a step.\n")
    page = report.markdown(run, findings=findings)
    assert page.endswith("| 206.25 ms | 1.52x |\n\n## Performance work\n\n"
                         "Dropout: 1.46 s -> 1.06 s a step.\n")


def decoding_record(ours, hub=None, savedmodel=None, llama_cpp=None):
    entry = {"batch_size": 1, "roofline": 50.0,
             "ours": {"new_tokens_per_second": ours, "roofline_share": ours / 50.0}}
    if hub:
        entry["keras_hub"] = {"new_tokens_per_second": hub, "roofline_share": hub / 50.0}
    if llama_cpp:
        entry["llama_cpp"] = {"version": "0.3.16", "threads": 2, "decode_tokens_per_s": llama_cpp,
                              "roofline": 250.0, "roofline_share": llama_cpp / 250.0}
    return {"model": "SmolLM2.gguf", "prompt_length": 32, "new_tokens": 128,
            "bandwidth": 25e9, "weight_bytes": 500e6, "gguf_bytes": 100e6,
            "batches": [entry], "savedmodel": savedmodel}


def test_the_decoding_table_gives_roofline_shares_and_goals():
    served = {"new_tokens": 128, "seconds": 6.0, "keras_seconds": 4.0, "bytes": 510e6,
              "export_seconds": 80.0, "new_tokens_per_second": 128 / 6.0}
    quantization = {"new_tokens": 64, "modes": [{"quantize": "dynamic",
                                                 "new_tokens_per_second": 40.0}]}
    record = decoding_record(30.0, hub=20.0, savedmodel=served, llama_cpp=60.0)
    page = "\n".join(report_decoding.decoding_section(record, quantization))
    assert "| ours: `model.generate` (XLA) | float32 | 1 | 30.0 | 50.0 | 0.60 | 1.50x |" in page
    assert "| llama.cpp 0.3.16 (2 threads) | Q4_1 | 1 | 60.0 | 250.0 | 0.24 | - |" in page
    assert "keras-hub's XLA generate at batch 1: 1.50x: **missed**." in page
    assert "(TFLite dynamic, 40.0 new tokens/s) >= llama.cpp (60.0): 0.67x: **missed**" in page
    assert "6.00 s against 4.00 s, 1.50x: **missed**. Version folder 510 MB for 500 MB" in page
    assert "of its roofline (float32) at batch 1: 0.60: **missed**." in page
    run = {"machine": {"backend": "tensorflow"}, "decoding": record}
    jax = {"machine": {"backend": "jax"}, "decoding": decoding_record(36.0)}
    page = report.markdown(run, jax)
    assert "| ours: `model.generate` (XLA) | float32 | 1 | 36.0 |" in page  # each run's own
    assert "| SmolLM2.gguf | 1 | 30.0 | 36.0 | 1.20x | met |" in page


def test_the_page_is_made_of_the_newest_complete_full_run_of_each_backend(tmp_path):
    runs = {"20260101-000000-tensorflow.json": ("tensorflow", "old", False, True),
            "20260102-000000-tensorflow.json": ("tensorflow", "new", False, True),
            "20260103-000000-tensorflow.json": ("tensorflow", "quick", True, True),
            "20260104-000000-tensorflow.json": ("tensorflow", "crashed", False, False),
            "20260101-000000-jax.json": ("jax", "jax", False, True)}
    for name, (backend, label, quick, complete) in runs.items():
        run = {"machine": {"backend": backend, "time": label}, "quick": quick,
               "complete": complete, "training": [{}]}
        (tmp_path / name).write_text(json.dumps(run))
    alone = {"machine": {"backend": "tensorflow", "time": "quantization"}, "quick": False,
             "complete": True, "training": [], "quantization": {"modes": []}}
    (tmp_path / "20260105-000000-tensorflow.json").write_text(json.dumps(alone))
    assert [run["machine"]["time"] for run in report.latest_runs(tmp_path)] == ["jax", "new"]
    assert report.latest_quantization(tmp_path)["machine"]["time"] == "quantization"


def test_a_full_run_with_quantized_decoders_shows_them_once(tmp_path):
    modes = [{"quantize": None, "bytes": 6e8, "convert_seconds": 90.0,
              "convert_peak_rss_mb": 9000.0, "new_tokens_per_second": 20.0,
              "prompts_equal": 4, "agreement": 1.0}]
    fit = {"family": "gpt", "task": "causal_lm", "jit_compile": True,
           "ours": {"tokens_per_second": 3000.0, "mfu": 0.5}}
    run = {"machine": {"backend": "tensorflow", "time": "full"}, "complete": True,
           "training": [fit], "quantization": {"model": "m.gguf", "prompts": 4, "prompt_length": 32,
                                            "new_tokens": 64, "modes": modes,
                                            "keras": {"seconds": 20.0}}}
    (tmp_path / "20260101-000000-tensorflow.json").write_text(json.dumps(run))
    runs, quantized = report.latest_runs(tmp_path), report.latest_quantization(tmp_path)
    assert len(runs) == 1 and quantized is not None
    page = report.markdown(*runs, quantization=quantized, findings=None)
    assert page.count("### TFLite decoder of m.gguf") == 1


@pytest.mark.slow
def test_quantized_decoders_are_measured_alone_and_added_to_the_page(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    assert cli.main(["--quick", "--only", "quantization", "--results", str(tmp_path),
                     "--markdown", str(page)]) == 0
    (path,) = tmp_path.glob("*-tensorflow.json")
    record = json.loads(path.read_text())["quantization"]
    modes = {m["quantize"]: m for m in record["modes"]}
    assert list(modes) == ["float32", "fp16", "dynamic"]
    assert modes["float32"]["prompts_equal"] == record["prompts"] == 4
    assert modes["float32"]["agreement"] == 1.0
    # (tiny tensors stay float in "dynamic": on SmolLM2 it is the smallest)
    assert max(modes["dynamic"]["bytes"], modes["fp16"]["bytes"]) < modes["float32"]["bytes"]
    assert all(m["new_tokens_per_second"] > 0 and m["convert_peak_rss_mb"] > 100
               for m in record["modes"])
    variants = {v["variant"]: v for v in record["int8_ops"]["variants"]}
    assert list(variants) == ["float32", "int8", "int8, every op"]
    assert variants["float32"]["error"] < 1e-4 and variants["float32"]["top1"] == 1.0
    assert all(v["p50_ms"] > 0 and v["bytes"] > 0 for v in variants.values())
    text = page.read_text()
    assert "### TFLite decoder of tiny random Llama" in text and "| dynamic |" in text
    assert "### TFLite int8, op group by op group" in text and "| int8, every op |" in text


def test_bad_flags_say_what_to_choose(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["--only", "training,speed"])
    assert "choose among training,generation,decoding,serving,fixes" in capsys.readouterr().err


@pytest.mark.slow
def test_without_keras_hub_ours_only_are_measured_and_the_results_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(configs, "keras_hub_available", lambda: False)
    assert cli.main(["--quick", "--only", "generation", "--results", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("*-tensorflow.json")
    results = json.loads(path.read_text())
    assert any("keras-hub is not installed" in note for note in results["notes"])
    assert all(record["keras_hub"] is None and record["keras_hub_default"] is None
               for record in results["generation"])
    assert all(record["ours"]["new_tokens_per_second"] > 0 for record in results["generation"])


def test_serving_without_the_export_package_skips_its_ways_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "export", None)  # `import export` now fails
    record = serving_module.compare_serving(configs.QUICK["bert"], batch_sizes=(1,), requests=2,
                                     warmup=1, ways=("keras_predict", "savedmodel",
                                                     "tflite_int8"), keras_hub=False)
    assert set(record["skipped"]) == {"savedmodel", "tflite_int8"}
    assert record["skipped"]["savedmodel"].startswith("export is not importable")
    assert record["latency"]["keras_predict"]["1"]["p50_ms"] > 0


@pytest.mark.slow
def test_quick_run_writes_positive_figures_and_the_page(tmp_path):
    pytest.importorskip("keras_hub")
    page = tmp_path / "BENCHMARKS.md"
    assert cli.main(["--quick", "--results", str(tmp_path),
                     "--markdown", str(page)]) == 0
    (path,) = tmp_path.glob("*-tensorflow.json")
    results = json.loads(path.read_text())
    assert results["quick"] and results["complete"] and results["peak_matmul_flops"] > 0
    assert results["machine"]["versions"]["keras-hub"]
    (fit,) = results["training"]
    for side in ("ours", "keras_hub"):
        assert fit[side]["tokens_per_second"] > 0 and 0 < fit[side]["mfu"] < 1
    (pipe,) = results["pipeline"]
    assert pipe["dataset"] == "fortunes" and pipe["pipeline"]["tokens_per_second"] > 0
    assert [g["batch_size"] for g in results["generation"]] == [1, 2]
    for side in ("ours", "keras_hub", "keras_hub_default"):
        assert all(g[side]["new_tokens_per_second"] > 0 for g in results["generation"])
    serving = results["serving"]
    assert serving["skipped"] == {}
    assert set(serving["latency"]) == set(serving_module.WAYS)
    for by_batch in serving["latency"].values():
        assert all(0 < v["p50_ms"] <= v["p99_ms"] for v in by_batch.values())
    sizes = serving["artifact_bytes"]
    assert sizes["tflite_int8"] < sizes["tflite_fp32"] and sizes["tflite_dynamic"] < \
        sizes["tflite_fp32"]
    (decoding,) = results["decoding"]["batches"][:1]
    assert decoding["ours"]["new_tokens_per_second"] > 0 and 0 < decoding["ours"]["roofline_share"]
    assert decoding["keras_hub"]["new_tokens_per_second"] > 0
    assert "Decoding a real model: tiny_llama" in page.read_text()
    assert "Training throughput" in page.read_text()
    assert results["fixes"]["dropout"]["numbers"] == 16 * 4 * 128 * 128
    for fix in results["fixes"].values():
        before, after, _ = report.fix_figures(fix)
        assert before > 0 and after > 0
    sizes = results["fixes"]["savedmodel_size"]
    # Each weight once, not twice (the quick model's graph is a third of its folder).
    assert sizes["after"]["mb"] < 0.8 * sizes["before"]["mb"]
    assert pipe["autotuned"]["tokens_per_second"] > 0
