"""The compiled generation loop: a prefill, then a cached decode step per new token.

`decode(decoding, settings, prompt, lengths, max_new_tokens, extras, ...)` is the loop that
`zoo.generation.generate` and the exported `generate` signature (`export/generation.py`) run:

1. prefill (`start`): the right-padded prompts through the model once, filling a KV cache of
   `settings.max_length` positions;
2. a `while` loop (`sample_loop`, or `beam_loop` for beam search): pick the next token from
   the last logits (`zoo.generation.samplers.choose`), write it, run it through the model with
   the cache (one position), until every row has its `max_new_tokens` or a stop token.

Prompts of different lengths share one batch: decoding starts at the shortest one, and a row
still inside its prompt keeps its prompt token instead of the chosen one (keras-hub's way), so
each token sits at its true position and each row gets what its prompt would get alone.

The model side is a decoding: `CausalLMDecoding` (GPT) or `Seq2SeqDecoding` (T5), picked by
`decoding_for(model)`, each with a `prefill` and a `step`. `Settings` holds what a loop is
specialised on; `compiled(model, key, function)` compiles a function once per model and key
(XLA on TensorFlow, `jax.jit` on JAX).

>>> import numpy as np, zoo
>>> model = zoo.build("gpt", size="tiny", task="causal_lm")
>>> settings = Settings(Sampler("greedy"), max_length=8)
>>> ids, mask = decode(decoding_for(model), settings, np.array([[5, 9, 2]]), np.array([3]),
...                    4, {}, 1.0, 0, 1.0, 1.0, np.array([0, 0]))
>>> tuple(ids.shape), np.asarray(mask).tolist()
((1, 4), [[1, 1, 1, 1]])
"""

import dataclasses
import weakref

import keras
import numpy as np
from keras import ops

from zoo.generation.samplers import (
    IMPOSSIBLE,
    Sampler,
    ban_repeats,
    ban_stops,
    choose,
    force_token,
    is_stop,
)

# The score of beams that do not exist yet: all start as copies of the first one.
UNBORN_BEAM = -1e9


# --- the models: prefill and step ----------------------------------------------------------


class CausalLMDecoding:
    """Prefill and step of a `CausalLM`: the state is its cache, one tensor per layer.

    Per layer, not the model's one stacked tensor: the loop carries each layer's cache and
    XLA writes a step's keys and values into it in place, where slicing and restacking the
    stacked cache copied all of it at every step. The vocabulary head runs on the rows that
    need logits only (one position of the prompt, then the new token).
    """

    def __init__(self, model):
        self.model = model
        self.context = model.backbone.config.max_sequence_length
        self.vocabulary_size = model.backbone.config.vocabulary_size

    def prefill(self, prompt, max_length, extras, position=None):
        """The logits `[batch, vocabulary]` of the prompt's token at `position` and the
        per-layer caches; without `position`, the logits of every prompt token and the model's
        stacked cache (what the TFLite export's signatures take)."""
        cache = self.model.make_cache(ops.shape(prompt)[0], max_length)
        if position is None:
            return self.model.call_with_cache(prompt, cache, 0)
        layers = [cache[:, i] for i in range(self.model.backbone.config.num_layers)]
        hidden, layers = self.model.hidden_with_cache(prompt, layers, 0)
        return self.model.lm_logits(ops.take(hidden, position, axis=1)), layers

    def step(self, token_ids, state, index):
        """`state`: per-layer caches, or the stacked cache (returned in the same form)."""
        hidden, state = self.model.hidden_with_cache(ops.expand_dims(token_ids, 1), state, index)
        return self.model.lm_logits(hidden[:, 0]), state


class Seq2SeqDecoding:
    """Prefill and step of a `Seq2SeqLM`: the encoder runs in the prefill; the state is the
    self attention cache, the cross attention keys and values and the encoder's mask."""

    def __init__(self, model):
        self.model = model
        self.context = model.context  # None where positions are relative (T5)
        self.vocabulary_size = model.backbone.config.vocabulary_size

    def prefill(self, prompt, max_length, extras, position=None):
        mask = extras["encoder_padding_mask"]
        _, cross = self.model.encode(extras["encoder_token_ids"], mask)
        cache = self.model.make_cache(ops.shape(prompt)[0], max_length)
        logits, cache = self.model.call_with_cache(prompt, cache, 0, cross,
                                                   encoder_padding_mask=mask)
        if position is not None:
            logits = ops.take(logits, position, axis=1)
        return logits, (cache, cross, mask)

    def step(self, token_ids, state, index):
        cache, cross, mask = state
        logits, cache = self.model.call_with_cache(
            ops.expand_dims(token_ids, 1), cache, index, cross, encoder_padding_mask=mask
        )
        return logits[:, 0], (cache, cross, mask)


def decoding_for(model):
    if hasattr(model, "encode") and hasattr(model, "call_with_cache"):
        return Seq2SeqDecoding(model)
    if hasattr(model, "call_with_cache"):
        return CausalLMDecoding(model)
    raise ValueError(f"A {type(model).__name__} cannot generate: use a causal_lm or "
                     "seq2seq_lm task model.")


# --- the loops -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a compiled loop is specialised on (static).

    `min_new_tokens` and `min_length` ban the stop tokens while a row is shorter than that:
    new tokens, or the whole sequence (prompt + new tokens; a seq2seq decoder's start token +
    new tokens), as Hugging Face counts it. `no_repeat_ngram_size` n > 0 bans every token that
    would end an n-gram already in the sequence (prompt included).
    """

    sampler: Sampler
    max_length: int  # of the cache and token buffer
    stop_token_ids: tuple = ()
    min_new_tokens: int = 0
    pad_id: int = 0
    min_length: int = 0
    no_repeat_ngram_size: int = 0
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None


def decode(decoding, settings, prompt, lengths, max_new_tokens, extras, temperature, top_k,
           top_p, length_penalty, seed, width=None):
    """The generation loop: new tokens `[batch, width]` and their mask.

    Args:
        decoding: a `CausalLMDecoding` or `Seq2SeqDecoding`.
        settings: `Settings`.
        prompt: int32 `[batch, prompt_length]`, right-padded; `lengths` int32 `[batch]` >= 1.
        max_new_tokens: int or int32 scalar; `max(lengths) + max_new_tokens` must not exceed
            `settings.max_length`.
        extras: the model's other inputs (T5: `encoder_token_ids`, `encoder_padding_mask`).
        temperature, top_p, length_penalty: float32 scalars; `top_k` an int32 scalar (used
            by the `"auto"` sampler only); seed: int32 `[2]`.
        width: the (static) width of the outputs, at least `max_new_tokens`, which may then
            be a tensor: one compiled loop serves every `max_new_tokens` up to `width` (see
            `bucket`). None: `max_new_tokens`, an int.

    Returns:
        `(token_ids, padding_mask)`, int32 `[batch, width]`: each row's new tokens, its stop
        token included, then padding (mask 0).
    """
    prompt = ops.cast(prompt, "int32")
    lengths = ops.cast(lengths, "int32")
    if settings.sampler.kind == "beam":
        tokens = beam_loop(decoding, settings, prompt, lengths, max_new_tokens, extras,
                           length_penalty)
    else:
        tokens = sample_loop(decoding, settings, prompt, lengths, max_new_tokens, extras,
                             temperature, top_k, top_p, seed)
    steps = ops.expand_dims(ops.arange(max_new_tokens if width is None else width,
                                       dtype="int32"), 0)
    positions = ops.minimum(ops.expand_dims(lengths, 1) + steps, settings.max_length - 1)
    new = ops.take_along_axis(tokens, positions, axis=1)
    stops = ops.cast(is_stop(new, settings.stop_token_ids), "int32")
    mask = ops.logical_and(ops.cumsum(stops, axis=1) - stops == 0, steps < max_new_tokens)
    mask = ops.cast(mask, "int32")
    return ops.where(mask == 1, new, settings.pad_id), mask


def bucket(length, smallest=16):
    """The power of two >= `length` (and >= `smallest`): the sizes compiled loops are made
    for, so that a new length compiles again only past the next power of two."""
    size = smallest
    while size < length:
        size *= 2
    return size


def start(decoding, settings, prompt, lengths, max_new_tokens, extras):
    """Prefill; the token buffer, the logits that pick position `min(lengths)`, each row's
    last position and the loop's end."""
    pad = settings.max_length - ops.shape(prompt)[1]
    tokens = ops.pad(prompt, [[0, 0], [0, pad]], constant_values=settings.pad_id)
    first = ops.min(lengths)
    logits, state = decoding.prefill(prompt, settings.max_length, extras, first - 1)
    last = lengths + max_new_tokens - 1
    return tokens, logits, state, first, last, ops.max(last) + 1


def next_logits(logits, index, lengths, settings, tokens=None, last=None):
    """float32 `logits [rows, vocabulary]` (or log-probabilities) of the token at `index`, with
    what `settings` bans at -inf: stop tokens in rows shorter than `min_new_tokens` /
    `min_length`, and tokens that would repeat an n-gram of `tokens [rows, max_length]`; then
    the forced tokens: `forced_bos_token_id` as each row's first new token, and
    `forced_eos_token_id` at its `last` position (`[rows]`, the last a request allows)."""
    logits = ops.cast(logits, "float32")
    if (settings.min_new_tokens or settings.min_length) and settings.stop_token_ids:
        young = index < ops.maximum(lengths + settings.min_new_tokens, settings.min_length)
        logits = ban_stops(logits, young, settings.stop_token_ids)
    if settings.no_repeat_ngram_size and settings.no_repeat_ngram_size <= settings.max_length:
        logits = ban_repeats(logits, tokens, index, settings.no_repeat_ngram_size)
    if settings.forced_bos_token_id is not None:
        logits = force_token(logits, index == lengths, settings.forced_bos_token_id)
    if settings.forced_eos_token_id is not None and last is not None:
        logits = force_token(logits, index == last, settings.forced_eos_token_id)
    return logits


def sample_loop(decoding, settings, prompt, lengths, max_new_tokens, extras, temperature,
                top_k, top_p, seed):
    tokens, logits, state, first, last, end = start(decoding, settings, prompt, lengths,
                                                    max_new_tokens, extras)
    seed = ops.cast(seed, "int32")

    def cond(index, tokens, done, logits, state):
        return ops.logical_and(index < end, ops.logical_not(ops.all(done)))

    def body(index, tokens, done, logits, state):
        logits = next_logits(logits, index, lengths, settings, tokens, last)
        step_seed = seed + ops.stack([0, index])
        chosen = choose(logits, settings.sampler, temperature, top_k, top_p, step_seed)
        in_prompt = index < lengths
        token = ops.where(in_prompt, ops.take(tokens, index, axis=1),
                          ops.where(done, settings.pad_id, chosen))
        tokens = ops.slice_update(tokens, [0, index], ops.expand_dims(token, 1))
        finished = ops.logical_and(ops.logical_not(in_prompt),
                                   is_stop(token, settings.stop_token_ids))
        done = ops.logical_or(ops.logical_or(done, finished), index >= last)
        logits, state = decoding.step(token, state, index)
        return index + 1, tokens, done, logits, state

    done = ops.zeros(ops.shape(lengths), "bool")
    _, tokens, *_ = ops.while_loop(cond, body, (first, tokens, done, logits, state))
    return tokens


def beam_loop(decoding, settings, prompt, lengths, max_new_tokens, extras, length_penalty):
    """Beam search as Hugging Face's `generate(num_beams=..., do_sample=False)` runs it: the
    best `[batch, max_length]` token buffer of each row.

    Each step ranks the `num_beams * vocabulary` continuations of a row by their sum of
    log-probabilities (the bans of `next_logits` applied after the softmax) and keeps the
    best `candidates` of them. Those ending in a stop token (or at `max_new_tokens`) among
    the first `num_beams` join the row's finished hypotheses, scored `sum / new_tokens **
    length_penalty` (new tokens counted with the stop token), the best `num_beams` of which
    are kept; the best `num_beams` that did not end go on. A row stops at `max_new_tokens`,
    or once it has `num_beams` finished hypotheses and (`early_stopping` False) its best
    running beam, scored at its current length, cannot beat the worst of them (`"never"`:
    scored at `max_new_tokens` when `length_penalty` > 0; True: at once). Its answer is its
    best finished hypothesis.
    """
    beams, early_stopping = settings.sampler.num_beams, settings.sampler.early_stopping
    # Enough candidates that `beams` of them do not end in a stop token.
    candidates = max(2, 1 + len(settings.stop_token_ids)) * beams
    batch = ops.shape(prompt)[0]
    row_lengths, row_last = lengths, lengths + max_new_tokens - 1
    prompt, lengths = ops.repeat(prompt, beams, axis=0), ops.repeat(lengths, beams, axis=0)
    extras = keras.tree.map_structure(lambda x: ops.repeat(x, beams, axis=0), extras)
    tokens, logits, state, first, last, end = start(decoding, settings, prompt, lengths,
                                                    max_new_tokens, extras)
    width = tokens.shape[1]
    initial = np.full(beams, UNBORN_BEAM, "float32")
    initial[0] = 0.0
    running = ops.tile(ops.expand_dims(ops.convert_to_tensor(initial), 0), [batch, 1])
    rows = ops.expand_dims(ops.arange(batch, dtype="int32") * beams, 1)
    own_beams = ops.expand_dims(ops.arange(beams, dtype="int32"), 0)
    first_beams = ops.expand_dims(ops.arange(candidates) < beams, 0)

    def cond(index, tokens, logits, state, running, kept, kept_scores, kept_full, open_rows):
        return ops.logical_and(index < end, ops.any(open_rows))

    def body(index, tokens, logits, state, running, kept, kept_scores, kept_full, open_rows):
        vocabulary = logits.shape[-1]
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        log_probs = next_logits(log_probs, index, lengths, settings, tokens, last)
        totals = ops.expand_dims(running, -1) + ops.reshape(log_probs, (batch, beams, vocabulary))
        top, flat = ops.top_k(ops.reshape(totals, (batch, beams * vocabulary)), candidates)
        flat = ops.cast(flat, "int32")
        parent, token = flat // vocabulary, flat % vocabulary  # [batch, candidates]
        in_prompt = ops.expand_dims(index < row_lengths, 1)  # [batch, 1]
        ends = ops.logical_or(is_stop(token, settings.stop_token_ids),
                              ops.expand_dims(index >= row_last, 1))
        new_tokens = ops.cast(ops.expand_dims(ops.maximum(index - row_lengths + 1, 1), 1),
                              "float32")  # so far, with this one

        # Finished hypotheses: the best `beams` of those kept and those ending now.
        source = ops.reshape(rows + parent, (-1,))
        written = ops.slice_update(ops.take(tokens, source, axis=0), [0, index],
                                   ops.reshape(token, (-1, 1)))
        ending = ops.logical_and(ops.logical_and(ends, first_beams),
                                 ops.logical_and(ops.expand_dims(open_rows, 1),
                                                 ops.logical_not(in_prompt)))
        scores = ops.where(ending, top / ops.power(new_tokens, length_penalty), IMPOSSIBLE)
        kept_scores, best = ops.top_k(ops.concatenate([kept_scores, scores], axis=1), beams)
        kept_full = ops.take_along_axis(ops.concatenate([kept_full, ending], axis=1), best, 1)
        every = ops.concatenate([ops.reshape(kept, (batch, beams, width)),
                                 ops.reshape(written, (batch, candidates, width))], axis=1)
        kept = ops.reshape(ops.take_along_axis(every, ops.expand_dims(best, -1), axis=1),
                           (batch * beams, width))

        # Running beams: the best `beams` that did not end (a row in its prompt keeps its own).
        alive, pick = ops.top_k(top + ops.cast(ends, "float32") * UNBORN_BEAM, beams)
        parent = ops.where(in_prompt, own_beams, ops.take_along_axis(parent, pick, axis=1))
        running = ops.where(in_prompt, running, alive)
        source = ops.reshape(rows + parent, (-1,))
        tokens = ops.take(tokens, source, axis=0)
        state = keras.tree.map_structure(lambda x: ops.take(x, source, axis=0), state)
        token = ops.where(ops.repeat(in_prompt[:, 0], beams), ops.take(tokens, index, axis=1),
                          ops.reshape(ops.take_along_axis(token, pick, axis=1), (-1,)))
        tokens = ops.slice_update(tokens, [0, index], ops.expand_dims(token, 1))

        # A row goes on while its best running beam could still beat a finished hypothesis.
        longest = new_tokens
        if early_stopping == "never":
            longest = ops.where(length_penalty > 0, ops.cast(max_new_tokens, "float32"), longest)
        best_possible = running[:, :1] / ops.power(longest, length_penalty)
        worst = ops.where(kept_full, ops.min(kept_scores, axis=1, keepdims=True), UNBORN_BEAM)
        improvable = ops.logical_and(ops.any(best_possible > worst, axis=1), index < row_last)
        if early_stopping is True:
            improvable = ops.logical_and(improvable, ops.logical_not(ops.all(kept_full, axis=1)))
        open_rows = ops.logical_and(open_rows, ops.logical_or(in_prompt[:, 0], improvable))
        logits, state = decoding.step(token, state, index)
        return (index + 1, tokens, logits, state, running, kept, kept_scores, kept_full,
                open_rows)

    kept_scores = ops.full((batch, beams), UNBORN_BEAM, "float32")
    kept_full = ops.zeros((batch, beams), "bool")
    open_rows = ops.ones((batch,), "bool")
    outputs = ops.while_loop(cond, body, (first, tokens, logits, state, running, tokens,
                                          kept_scores, kept_full, open_rows))
    kept = outputs[5]
    return ops.take(kept, ops.reshape(rows, (-1,)), axis=0)  # the best of each row


# --- compiling -----------------------------------------------------------------------------

_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, function):
    """`function` compiled once per model and `key`: XLA on TensorFlow, jit on JAX (the
    model's variables passed in, not baked in), as it is on other backends."""
    functions = _COMPILED.setdefault(model, {})
    if key in functions:
        return functions[key]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        result = tf.function(function, jit_compile=True, reduce_retracing=False)
    elif backend == "jax":
        import jax

        variables = model.variables

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return function(*args)

        jitted = jax.jit(stateless)

        def result(*args):
            return jitted([v.value for v in variables], *args)
    else:
        result = function
    functions[key] = result
    return result
