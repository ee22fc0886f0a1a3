"""Generation speed: new tokens per second of greedy decoding, ours against keras-hub.

Both get the GPT workload's model (random weights: speed does not depend on them), a prompt
of `prompt_length` random tokens per row, and produce `new_tokens` more with the greedy
sampler and no stop token. Ours: `model.generate({"token_ids", "padding_mask"},
max_new_tokens, sampler="greedy")`. keras-hub's `GPT2CausalLM.generate` takes the prompt
padded to the full length with `padding_mask` 0 where it should write (keras-hub's way
without a preprocessor), in two settings: `keras_hub`, compiled with `sampler="greedy"` and
`jit_compile=True` (its generate loop under XLA, its fastest here), and `keras_hub_default`,
compiled with `sampler="greedy"` only (Keras' "auto" turns XLA off on CPU machines: what a
user gets). Calls alternate; a figure is the median.

Example:

>>> from bench import configs
>>> record = compare_generation(configs.QUICK["gpt"], batch_size=2, prompt_length=4,
...                             new_tokens=4, repeats=1, keras_hub=False)
>>> record["batch_size"], record["ours"]["new_tokens_per_second"] > 0
(2, True)
"""

import numpy as np

from bench import configs, timing
from bench.training import release


def prompts(w, batch_size, prompt_length, seed=0):
    """Random prompts: int32 `[batch_size, prompt_length]` ids in `[1, vocabulary_size)`."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, w.vocabulary_size, (batch_size, prompt_length), dtype="int32")


def ours_runner(model, token_ids, new_tokens):
    inputs = {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}

    def run():
        out = model.generate(inputs, max_new_tokens=new_tokens, sampler="greedy",
                             stop_token_ids=None)
        if out["token_ids"].shape != (len(token_ids), new_tokens):
            raise RuntimeError(f"ours generated {out['token_ids'].shape}, not "
                               f"{(len(token_ids), new_tokens)} tokens.")

    return run


def keras_hub_runner(model, token_ids, new_tokens, jit_compile=True):
    if jit_compile == "auto":
        model.compile(sampler="greedy")
    else:
        model.compile(sampler="greedy", jit_compile=jit_compile)
    batch_size, prompt_length = token_ids.shape
    padded = np.zeros((batch_size, prompt_length + new_tokens), "int32")
    padded[:, :prompt_length] = token_ids
    mask = np.zeros_like(padded)
    mask[:, :prompt_length] = 1
    inputs = {"token_ids": padded, "padding_mask": mask}

    def run():
        out = model.generate(inputs, stop_token_ids=None)
        written = np.asarray(out["padding_mask"]).sum() - mask.sum()
        if written != batch_size * new_tokens:
            raise RuntimeError(f"keras-hub generated {written} tokens, not "
                               f"{batch_size * new_tokens}.")

    return run


def compare_generation(w, batch_size, prompt_length=16, new_tokens=64, repeats=5,
                       keras_hub=True):
    """New tokens/s of ours and (when `keras_hub`) keras-hub's GPT-2 at one batch size.

    Returns a record: `batch_size`, `prompt_length`, `new_tokens`, and for `ours`,
    `keras_hub` and `keras_hub_default` (None when not measured) `seconds` (median per
    call), `new_tokens_per_second` and `runs`.
    """
    if w.family != "gpt":
        raise ValueError(f"Generation is measured on the GPT workload, not {w.family!r}.")
    token_ids = prompts(w, batch_size, prompt_length)
    models = {"ours": configs.ours(w)}
    runners = {"ours": ours_runner(models["ours"], token_ids, new_tokens)}
    if keras_hub:
        for name, jit_compile in (("keras_hub", True), ("keras_hub_default", "auto")):
            models[name] = configs.keras_hub_model(w)
            runners[name] = keras_hub_runner(models[name], token_ids, new_tokens, jit_compile)
    runs = timing.interleave(runners, repeats)
    record = {"family": w.family, "batch_size": batch_size, "prompt_length": prompt_length,
              "new_tokens": new_tokens, "sampler": "greedy", "repeats": repeats,
              "keras_hub": None, "keras_hub_default": None}
    for name, seconds in runs.items():
        median = timing.median(seconds)
        record[name] = {"seconds": median,
                        "new_tokens_per_second": batch_size * new_tokens / median,
                        "runs": seconds}
    release(models)
    return record
