"""Text generation: a prefill, a cached decode step, samplers and beam search in one loop.

`generate(model, inputs, max_new_tokens, sampler="greedy", ...)` is what `CausalLM.generate`
(GPT-2 and Llama style) and `Seq2SeqLM.generate` (T5) call. It runs:

1. prefill: the padded prompts through the model once, filling a KV cache of fixed size;
2. a `while` loop: pick the next token from the last logits (greedy, sampled or beam), write
   it, run it through the model with the cache (one position), until every row has its
   `max_new_tokens` or has emitted a stop token.

The whole loop is one compiled function (XLA on TensorFlow, `jax.jit` on JAX), kept per model
and per static setting, so calls with the same shapes do not trace again. Prompt lengths are
rounded up to a multiple of `PROMPT_BUCKET`, and the room for new tokens up to a power of two
(`bucket`), for the same reason: a new `max_new_tokens` compiles again only past the next
power of two.

Prompts of different lengths share one batch: they are right-padded and decoding starts at
the shortest one; a row still inside its prompt keeps its prompt token instead of the sampled
one (keras-hub's way). Each token thus sits at its true position and sees only real tokens,
so the result is the one each prompt would get alone.

Samplers: `"greedy"` (argmax), `"temperature"` (softmax of logits / temperature),
`"top_k"` (among the `top_k` most likely), `"top_p"` (among the smallest set whose
probability reaches `top_p`), all sampled with Gumbel noise from a stateless seed (the same
`seed` gives the same tokens); `"beam"`: beam search with `num_beams` beams, the finished
ones ranked by `sum of log-probabilities / new_tokens ** length_penalty`, token for token
what Hugging Face's `generate(num_beams=..., length_penalty=...)` returns. For every sampler,
`min_new_tokens` / `min_length` (new tokens / the whole sequence) ban the stop tokens in
rows shorter than that, and `no_repeat_ngram_size` bans tokens that would repeat an n-gram,
as Hugging Face's options of those names do.

One module per part, their names re-exported here:

- `samplers`: choosing the next token (`Sampler`, `sampler_for`, `choose`, `is_stop`, ...);
- `loop`: the compiled prefill and decode loop (`CausalLMDecoding`, `Seq2SeqDecoding`,
  `decoding_for`, `Settings`, `decode`, `sample_loop`, `beam_loop`, `compiled`, ...), also
  what the exported `generate` signature runs (`export/generation.py`);
- `requests`: prompts (text, chat messages, lists of ids, a dict) as lists of ids, and the
  answer given back in their form (`causal_request`, `seq2seq_request`, `respond`, ...);
- `front`: `generate` and `stream`, from prompts in to answers out.

Example:

>>> import numpy as np, zoo
>>> model = zoo.build("gpt", size="tiny", task="causal_lm")
>>> out = model.generate([[5, 9, 2], [7]], max_new_tokens=4)   # ids in, ids out
>>> [len(row) for row in out]
[4, 4]
>>> out = model.generate({"token_ids": np.array([[5, 9, 2]]),
...                       "padding_mask": np.array([[1, 1, 1]])}, 3, sampler="top_k",
...                      top_k=5, seed=1)
>>> out["token_ids"].shape, out["padding_mask"].tolist()
((1, 3), [[1, 1, 1]])
"""

from zoo.generation.front import (
    PROMPT_BUCKET,
    check_arguments,
    decoder_start_id_of,
    default_stop_token_ids,
    fit_context,
    generate,
    pad_id_of,
    prepare,
    stream,
)
from zoo.generation.loop import _COMPILED as _COMPILED  # compiled functions, per model
from zoo.generation.loop import (
    UNBORN_BEAM,
    CausalLMDecoding,
    Seq2SeqDecoding,
    Settings,
    beam_loop,
    bucket,
    compiled,
    decode,
    decoding_for,
    next_logits,
    sample_loop,
    start,
)
from zoo.generation.requests import (
    Request,
    causal_request,
    detokenize,
    respond,
    seq2seq_request,
)
from zoo.generation.samplers import (
    IMPOSSIBLE,
    SAMPLERS,
    Sampler,
    ban_repeats,
    ban_stops,
    choose,
    is_stop,
    keep_top_k,
    keep_top_p,
    sample,
    sampler_for,
    uniform,
)

__all__ = [
    "IMPOSSIBLE",
    "PROMPT_BUCKET",
    "SAMPLERS",
    "UNBORN_BEAM",
    "CausalLMDecoding",
    "Request",
    "Sampler",
    "Seq2SeqDecoding",
    "Settings",
    "ban_repeats",
    "ban_stops",
    "beam_loop",
    "bucket",
    "causal_request",
    "check_arguments",
    "choose",
    "compiled",
    "decode",
    "decoder_start_id_of",
    "decoding_for",
    "default_stop_token_ids",
    "detokenize",
    "fit_context",
    "generate",
    "is_stop",
    "keep_top_k",
    "keep_top_p",
    "next_logits",
    "pad_id_of",
    "prepare",
    "respond",
    "sample",
    "sample_loop",
    "sampler_for",
    "seq2seq_request",
    "start",
    "stream",
    "uniform",
]
