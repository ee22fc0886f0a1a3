"""Choosing the next token: the samplers of `generate(sampler=...)` and stop tokens.

`Sampler` is the static part of a sampler (what changes the compiled loop) and `sampler_for`
the one of a `SAMPLERS` name. `choose` picks one token per row from float32 logits
`[batch, vocabulary]`: the argmax (`"greedy"`) or a Gumbel-max sample (`sample`) of the logits
divided by `temperature` and, for `"top_k"` and `"top_p"`, filtered by `keep_top_k` and
`keep_top_p`; the noise comes from a stateless seed (`uniform`), so the same seed gives the
same tokens. `is_stop` marks stop tokens and `ban_stops` forbids them (for `min_new_tokens`
and `min_length`); `ban_repeats` forbids the tokens that would repeat an n-gram
(`no_repeat_ngram_size`).
Beam search ranks beams itself (`zoo.generation.loop.beam_loop`).

>>> import numpy as np
>>> from keras import ops
>>> logits = ops.convert_to_tensor(np.array([[0.0, 3.0, 1.0]], "float32"))
>>> ops.convert_to_numpy(choose(logits, sampler_for("greedy"), 1.0, 0, 1.0, None)).tolist()
[1]
>>> ops.convert_to_numpy(keep_top_k(logits, 2)).tolist()
[[-inf, 3.0, 1.0]]
"""

import dataclasses

import keras
import numpy as np
from keras import ops

SAMPLERS = ("greedy", "temperature", "top_k", "top_p", "beam")
IMPOSSIBLE = float("-inf")


@dataclasses.dataclass(frozen=True)
class Sampler:
    """The static part of a sampler: what changes the compiled loop.

    Args:
        kind: `"greedy"`, `"random"` (temperature, top-k, top-p), `"beam"`, or `"auto"`
            (greedy when the `temperature` tensor is 0, else random; `top_k` a tensor, 0 for
            none: for exported graphs, where the sampler is an input).
        top_k: keep the k most likely tokens (an int; 0: all of them).
        use_top_p: keep the smallest set reaching probability `top_p`.
        num_beams: beams of beam search.
        early_stopping: when beam search ends a row, as Hugging Face's option of that name:
            False, once its best running beam scored at its current length cannot beat the
            worst of `num_beams` finished hypotheses; `"never"`, the same scored at its
            longest (when `length_penalty` > 0); True, as soon as it has `num_beams` finished.
    """

    kind: str = "greedy"
    top_k: int = 0
    use_top_p: bool = False
    num_beams: int = 1
    early_stopping: bool | str = False


def sampler_for(sampler, top_k=50, num_beams=4, early_stopping=False):
    """The `Sampler` of a `generate(sampler=...)` name."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}. Choose one of {SAMPLERS}.")
    if sampler == "greedy":
        return Sampler("greedy")
    if sampler == "beam":
        return Sampler("beam", num_beams=num_beams, early_stopping=early_stopping)
    return Sampler("random", top_k=top_k if sampler == "top_k" else 0,
                   use_top_p=sampler == "top_p")


def uniform(shape, seed):
    """Uniform noise in (0, 1) from a stateless int32 seed `[2]` (TensorFlow or JAX)."""
    backend = keras.backend.backend()
    tiny = np.finfo("float32").tiny
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, seed=seed, minval=tiny, maxval=1.0)
    if backend == "jax":
        import jax

        key = ops.cast(seed, "uint32")
        return jax.random.uniform(key, shape, minval=tiny, maxval=1.0)
    raise ValueError(f"Sampling needs the TensorFlow or JAX backend, not {backend!r}; "
                     "use sampler='greedy' or 'beam'.")


def keep_top_k(logits, top_k):
    """Logits outside the `top_k` largest of each row set to -inf (`top_k` an int or, on
    TensorFlow, a tensor >= 1)."""
    if isinstance(top_k, int):
        kth = ops.top_k(logits, top_k)[0][:, -1:]
    else:  # the k-th of the sorted row: XLA compiles one loop for every k
        ordered = ops.top_k(logits, ops.shape(logits)[-1])[0]
        position = ops.full((ops.shape(logits)[0], 1), ops.maximum(top_k, 1) - 1, "int32")
        kth = ops.take_along_axis(ordered, position, axis=1)
    return ops.where(logits < kth, IMPOSSIBLE, logits)


def keep_top_p(logits, top_p):
    """Logits outside the smallest set of tokens whose probability reaches `top_p`: -inf."""
    ordered = ops.top_k(logits, ops.shape(logits)[-1])[0]  # descending
    probabilities = ops.softmax(ordered, axis=-1)
    before = ops.cumsum(probabilities, axis=-1) - probabilities  # mass of the larger ones
    threshold = ops.min(ops.where(before < top_p, ordered, float("inf")), axis=-1,
                        keepdims=True)
    return ops.where(logits < threshold, IMPOSSIBLE, logits)


def sample(logits, temperature, top_k, top_p, seed, sampler):
    """One token per row of float32 `logits [batch, vocab]`: Gumbel-max over the kept ones."""
    logits = logits / ops.maximum(temperature, 1e-6)
    if isinstance(top_k, int):
        if top_k:
            logits = keep_top_k(logits, top_k)
    else:  # a tensor: 0 means "all"
        logits = ops.cond(top_k > 0, lambda: keep_top_k(logits, top_k), lambda: logits)
    if sampler.kind == "auto":
        logits = ops.cond(top_p < 1.0, lambda: keep_top_p(logits, top_p), lambda: logits)
    elif sampler.use_top_p:
        logits = keep_top_p(logits, top_p)
    gumbel = -ops.log(-ops.log(uniform(ops.shape(logits), seed)))
    return ops.cast(ops.argmax(logits + gumbel, axis=-1), "int32")


def choose(logits, sampler, temperature, top_k, top_p, seed):
    """The next token of each row, greedy or sampled, from float32 `logits [batch, vocab]`."""
    if sampler.kind == "greedy":
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    top_k = sampler.top_k if sampler.kind == "random" else top_k
    if sampler.kind == "random":
        return sample(logits, temperature, top_k, top_p, seed, sampler)
    return ops.cond(temperature > 0,
                    lambda: sample(logits, temperature, top_k, top_p, seed, sampler),
                    lambda: ops.cast(ops.argmax(logits, axis=-1), "int32"))


def is_stop(token_ids, stop_token_ids):
    """Whether each of `token_ids` is one of `stop_token_ids` (a tuple of ints)."""
    if not stop_token_ids:
        return ops.zeros(ops.shape(token_ids), "bool")
    stops = ops.convert_to_tensor(np.array(stop_token_ids, "int32"))
    return ops.any(ops.expand_dims(token_ids, -1) == stops, axis=-1)


def ban_stops(logits, young, stop_token_ids):
    """-inf on the stop tokens in rows where `young` (fewer than `min_new_tokens` so far)."""
    vocabulary = logits.shape[-1]
    stops = np.zeros(vocabulary, bool)
    stops[[i for i in stop_token_ids if 0 <= i < vocabulary]] = True
    banned = ops.logical_and(ops.expand_dims(young, -1), ops.convert_to_tensor(stops))
    return ops.where(banned, IMPOSSIBLE, logits)


def force_token(logits, rows, token_id):
    """In rows where `rows` is True, -inf on every token but `token_id` (which gets 0), as
    Hugging Face's forced BOS / EOS processors; other rows unchanged."""
    forced = np.full(logits.shape[-1], IMPOSSIBLE, "float32")
    forced[token_id] = 0.0
    return ops.where(ops.expand_dims(rows, -1), ops.convert_to_tensor(forced), logits)


def ban_repeats(logits, tokens, index, size):
    """-inf on each token that would end an n-gram (n = `size`) already in `tokens[:, :index]`
    (`tokens [rows, max_length]`, `index` a scalar): Hugging Face's `no_repeat_ngram_size`."""
    windows = tokens.shape[1] - size + 1  # n-grams starting at 0 .. width - size
    ends = tokens[:, size - 1:]  # the last token of each n-gram: [rows, windows]
    # The n-grams before index whose first size - 1 tokens are the last size - 1 ones.
    matches = ops.broadcast_to(ops.arange(windows) + size - 1 < index, ops.shape(ends))
    for offset in range(size - 1):
        prefix = ops.take(tokens, ops.maximum(index - size + 1 + offset, 0), axis=1)
        window = tokens[:, offset:offset + windows]
        matches = ops.logical_and(matches, window == ops.expand_dims(prefix, 1))
    # A matching n-gram bans its last token: counted per row and id with a scatter.
    row = ops.broadcast_to(ops.expand_dims(ops.arange(ops.shape(tokens)[0], dtype="int32"), 1),
                           ops.shape(ends))
    indices = ops.reshape(ops.stack([row, ops.cast(ends, "int32")], axis=-1), (-1, 2))
    counts = ops.scatter(indices, ops.reshape(ops.cast(matches, "int32"), (-1,)),
                         ops.shape(logits))
    return ops.where(counts > 0, IMPOSSIBLE, logits)
