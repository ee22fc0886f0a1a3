"""Decoding a real model: SmolLM2-135M (its GGUF file) at batch 1 and 8, greedy.

Every way of running it makes `new_tokens` tokens after a `prompt_length`-token prompt, with
no stop token, and is timed the same way (median of `repeats` calls after a warmup call,
which compiles):

- `ours`: `model.generate({"token_ids", "padding_mask"}, new_tokens)` of
  `zoo.from_pretrained(gguf, task="causal_lm")` (float32 weights, XLA);
- `savedmodel`: the `generate` signature of `export.saved_model(model)`, loaded back with
  `tf.saved_model.load` (text in: a prompt of `prompt_length` tokens, `max_new_tokens`; it
  stops at the end-of-text token, so the figure counts the tokens it made);
- `keras_hub` / `keras_hub_default`: keras-hub's `LlamaCausalLM` of the same configuration
  (random weights: speed does not depend on them), compiled with `jit_compile=True` and
  with its defaults (no XLA on a CPU machine);
- `llama_cpp`: llama.cpp (`llama-cpp-python`) on the same GGUF file (4-bit Q4_1 weights),
  batch 1, the same number of threads as cores.

Beside them the memory-bandwidth roofline: a decoding step reads every weight once (the tied
embedding table twice is not needed: once, as the output head), so at best a step takes
`weight bytes / bandwidth`, with the bandwidth of a large copy measured in the same run
(`copy_bandwidth`). A figure's share of its roofline is `new tokens/s / (batch *
bandwidth / weight bytes)`.

Example (the tiny Llama of the zoo instead of the GGUF file, ours only):

>>> record = compare_real_decoding(None, batch_sizes=(1,), prompt_length=4, new_tokens=4,
...                                repeats=1, keras_hub=False, savedmodel=False,
...                                llama_cpp=False)
>>> record["batches"][0]["ours"]["new_tokens_per_second"] > 0
True
"""

import gc
import os
import tempfile
import time

import numpy as np

from bench import timing

LLAMA_TEXT = ("The history of the printing press begins in the fifteenth century, when a "
              "goldsmith in Mainz combined movable metal type, an oil-based ink and a press "
              "adapted from the wine presses of the Rhine valley into a system")


def copy_bandwidth(megabytes=512, repeats=5):
    """Bytes per second moved by copying a `megabytes` float32 array (read + write), best of
    `repeats` (numpy, one thread)."""
    source = np.ones(megabytes * 2**20 // 4, "float32")
    target = np.empty_like(source)
    best = min(timing.seconds(lambda: np.copyto(target, source)) for _ in range(repeats))
    return 2 * source.nbytes / best


def load(gguf_path):
    """Ours: the GGUF file's causal LM (float32), or a tiny random Llama for None."""
    import zoo

    if gguf_path is None:
        return zoo.build("gpt", size="tiny_llama", task="causal_lm")
    return zoo.from_pretrained(gguf_path, task="causal_lm")


def keras_hub_llama(config):
    """keras-hub's `LlamaCausalLM` with `config`'s shapes (a zoo `GPTConfig`)."""
    import keras_hub

    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=config.vocabulary_size, num_layers=config.num_layers,
        num_query_heads=config.num_heads, hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim, num_key_value_heads=config.kv_heads,
        rope_max_wavelength=config.rotary_max_wavelength,
        layer_norm_epsilon=config.layer_norm_epsilon, tie_word_embeddings=True)
    return keras_hub.models.LlamaCausalLM(backbone, preprocessor=None)


def weight_bytes(model):
    """Bytes of weights one decoding step reads: every weight once."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)


def savedmodel_runner(model, text, new_tokens):
    """The exported `generate` signature, loaded back; runs return the new tokens made."""
    import tensorflow as tf

    import export

    folder = export.saved_model(model, tempfile.mkdtemp(prefix="bench-decoding-"))
    generate = tf.saved_model.load(str(folder)).signatures["generate"]
    arguments = dict(max_new_tokens=tf.constant(new_tokens), temperature=tf.constant(0.0),
                     top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0))
    made = []

    def run():
        out = generate(prompt=tf.constant(text), **arguments)
        made.append(int(out["padding_mask"].numpy().sum()))

    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return run, made, size


def compare_real_decoding(gguf_path, batch_sizes=(1, 8), prompt_length=32, new_tokens=128,
                          repeats=3, keras_hub=True, savedmodel=True, llama_cpp=True):
    """New tokens/s of each way (see the module docstring) at each batch size.

    Returns `{"model", "weight_bytes", "gguf_bytes", "bandwidth", "batches": [{"batch_size",
    "roofline", <way>: {"seconds", "new_tokens_per_second", "roofline_share", "runs"}}],
    "savedmodel": {"bytes", "new_tokens", ...} or None, "skipped": {way: reason}}`.
    """
    from bench.generation import keras_hub_runner, ours_runner

    model = load(gguf_path)
    config = model.backbone.config
    bandwidth = copy_bandwidth()
    record = {"model": os.path.basename(gguf_path) if gguf_path else "tiny_llama",
              "prompt_length": prompt_length, "new_tokens": new_tokens, "repeats": repeats,
              "weight_bytes": weight_bytes(model), "bandwidth": bandwidth,
              "gguf_bytes": os.path.getsize(gguf_path) if gguf_path else None,
              "batches": [], "savedmodel": None, "skipped": {}}
    rng = np.random.default_rng(0)
    hub_models = {}
    if keras_hub:
        hub_models = {"keras_hub": keras_hub_llama(config), "keras_hub_default":
                      keras_hub_llama(config)}
    for batch_size in batch_sizes:
        ids = rng.integers(100, config.vocabulary_size, (batch_size, prompt_length), "int32")
        runners = {"ours": ours_runner(model, ids, new_tokens)}
        for name, hub in hub_models.items():
            runners[name] = keras_hub_runner(hub, ids, new_tokens,
                                             True if name == "keras_hub" else "auto")
        runs = timing.interleave(runners, repeats)
        roofline = batch_size * bandwidth / record["weight_bytes"]
        entry = {"batch_size": batch_size, "roofline": roofline}
        for name, seconds in runs.items():
            speed = batch_size * new_tokens / timing.median(seconds)
            entry[name] = {"seconds": timing.median(seconds), "new_tokens_per_second": speed,
                           "roofline_share": speed / roofline, "runs": seconds}
        record["batches"].append(entry)
        print(f"decoding batch {batch_size}: " + ", ".join(
            f"{k} {v['new_tokens_per_second']:.1f}" for k, v in entry.items()
            if isinstance(v, dict)) + f" new tokens/s; roofline {roofline:.1f}")
    hub_models.clear()
    gc.collect()
    first = record["batches"][0]
    if savedmodel and getattr(model, "preprocessor", None) is not None:
        text = _prompt_text(model, prompt_length)
        started = time.perf_counter()
        run, made, size = savedmodel_runner(model, text, new_tokens)
        export_seconds = time.perf_counter() - started
        keras_run = _keras_text_runner(model, text, new_tokens)
        runs = timing.interleave({"savedmodel": run, "keras": keras_run}, repeats)
        tokens = made[-1]
        served, keras_seconds = timing.median(runs["savedmodel"]), timing.median(runs["keras"])
        record["savedmodel"] = {"bytes": size, "export_seconds": export_seconds,
                                "new_tokens": tokens, "seconds": served,
                                "keras_seconds": keras_seconds, "runs": runs,
                                "new_tokens_per_second": tokens / served}
        print(f"savedmodel generate: {tokens} tokens in {served:.2f} s, Keras "
              f"{keras_seconds:.2f} s ({served / keras_seconds:.2f}x); {size / 1e6:.0f} MB")
    if llama_cpp and gguf_path:
        try:
            from bench.llamacpp import llama_cpp_decoding

            ids = rng.integers(100, config.vocabulary_size, prompt_length).tolist()
            result = llama_cpp_decoding(gguf_path, ids, new_tokens, threads=os.cpu_count(),
                                        repeats=repeats)
            roofline = bandwidth / record["gguf_bytes"]
            result["roofline"] = roofline
            result["roofline_share"] = result["decode_tokens_per_s"] / roofline
            first["llama_cpp"] = result
            print(f"llama.cpp batch 1: {result['decode_tokens_per_s']:.1f} new tokens/s; "
                  f"roofline (Q4_1 file) {roofline:.1f}")
        except ImportError as error:
            record["skipped"]["llama_cpp"] = str(error)
    return record


def _prompt_text(model, prompt_length):
    """A text whose tokens, with the preprocessor's start token if any, are about
    `prompt_length`."""
    tokenizer = model.preprocessor.tokenizer
    words = LLAMA_TEXT.split()
    for n in range(len(words), 0, -1):
        text = " ".join(words[:n])
        if len(tokenizer([text]).to_list()[0]) <= prompt_length:
            return text
    return words[0]


def _keras_text_runner(model, text, new_tokens):
    """Keras' `generate` of the same text, with the same (default) stop tokens."""
    def run():
        model.generate([text], new_tokens, sampler="greedy")

    return run
