"""Text generation: a prefill, a cached decode step, samplers and beam search in one loop.

`generate(model, inputs, max_new_tokens, sampler="greedy", ...)` is what `CausalLM.generate`
(GPT-2 and Llama style) and `Seq2SeqLM.generate` (T5) call. It runs:

1. prefill: the padded prompts through the model once, filling a KV cache of fixed size;
2. a `while` loop: pick the next token from the last logits (greedy, sampled or beam), write
   it, run it through the model with the cache (one position), until every row has its
   `max_new_tokens` or has emitted a stop token.

The whole loop is one compiled function (XLA on TensorFlow, `jax.jit` on JAX), kept per model
and per static setting, so calls with the same shapes do not trace again. Prompt lengths are
rounded up to a multiple of `PROMPT_BUCKET` for the same reason.

Prompts of different lengths share one batch: they are right-padded and decoding starts at
the shortest one; a row still inside its prompt keeps its prompt token instead of the sampled
one (keras-hub's way). Each token thus sits at its true position and sees only real tokens,
so the result is the one each prompt would get alone.

Samplers: `"greedy"` (argmax), `"temperature"` (softmax of logits / temperature),
`"top_k"` (among the `top_k` most likely), `"top_p"` (among the smallest set whose
probability reaches `top_p`), all sampled with Gumbel noise from a stateless seed (the same
`seed` gives the same tokens); `"beam"`: beam search with `num_beams` beams, the finished
ones ranked by `sum of log-probabilities / new_tokens ** length_penalty`.

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

import dataclasses
import warnings
import weakref

import keras
import numpy as np
from keras import ops

SAMPLERS = ("greedy", "temperature", "top_k", "top_p", "beam")
PROMPT_BUCKET = 16
IMPOSSIBLE = float("-inf")
# The score of beams that do not exist yet: all start as copies of the first one.
UNBORN_BEAM = -1e9


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
    """

    kind: str = "greedy"
    top_k: int = 0
    use_top_p: bool = False
    num_beams: int = 1


def sampler_for(sampler, top_k=50, num_beams=4):
    """The `Sampler` of a `generate(sampler=...)` name."""
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}. Choose one of {SAMPLERS}.")
    if sampler == "greedy":
        return Sampler("greedy")
    if sampler == "beam":
        return Sampler("beam", num_beams=num_beams)
    return Sampler("random", top_k=top_k if sampler == "top_k" else 0,
                   use_top_p=sampler == "top_p")


# --- choosing the next token ---------------------------------------------------------------


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
    TensorFlow, a tensor)."""
    kth = ops.top_k(logits, top_k)[0][:, -1:]
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

    context = None  # relative positions: no limit of the model's own

    def __init__(self, model):
        self.model = model
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
    """What a compiled loop is specialised on (static)."""

    sampler: Sampler
    max_length: int  # of the cache and token buffer
    stop_token_ids: tuple = ()
    min_new_tokens: int = 0
    pad_id: int = 0


def decode(decoding, settings, prompt, lengths, max_new_tokens, extras, temperature, top_k,
           top_p, length_penalty, seed):
    """The generation loop: new tokens `[batch, max_new_tokens]` and their mask.

    Args:
        decoding: a `CausalLMDecoding` or `Seq2SeqDecoding`.
        settings: `Settings`.
        prompt: int32 `[batch, prompt_length]`, right-padded; `lengths` int32 `[batch]` >= 1.
        max_new_tokens: int or int32 scalar; `max(lengths) + max_new_tokens` must not exceed
            `settings.max_length`.
        extras: the model's other inputs (T5: `encoder_token_ids`, `encoder_padding_mask`).
        temperature, top_p, length_penalty: float32 scalars; `top_k` an int32 scalar (used
            by the `"auto"` sampler only); seed: int32 `[2]`.

    Returns:
        `(token_ids, padding_mask)`, int32 `[batch, max_new_tokens]`: each row's new tokens,
        its stop token included, then padding (mask 0).
    """
    prompt = ops.cast(prompt, "int32")
    lengths = ops.cast(lengths, "int32")
    if settings.sampler.kind == "beam":
        tokens = beam_loop(decoding, settings, prompt, lengths, max_new_tokens, extras,
                           length_penalty)
    else:
        tokens = sample_loop(decoding, settings, prompt, lengths, max_new_tokens, extras,
                             temperature, top_k, top_p, seed)
    positions = ops.expand_dims(lengths, 1) + ops.expand_dims(
        ops.arange(max_new_tokens, dtype="int32"), 0)
    new = ops.take_along_axis(tokens, positions, axis=1)
    stops = ops.cast(is_stop(new, settings.stop_token_ids), "int32")
    mask = ops.cast(ops.cumsum(stops, axis=1) - stops == 0, "int32")
    return ops.where(mask == 1, new, settings.pad_id), mask


def start(decoding, settings, prompt, lengths, max_new_tokens, extras):
    """Prefill; the token buffer, the logits that pick position `min(lengths)`, each row's
    last position and the loop's end."""
    pad = settings.max_length - ops.shape(prompt)[1]
    tokens = ops.pad(prompt, [[0, 0], [0, pad]], constant_values=settings.pad_id)
    first = ops.min(lengths)
    logits, state = decoding.prefill(prompt, settings.max_length, extras, first - 1)
    last = lengths + max_new_tokens - 1
    return tokens, logits, state, first, last, ops.max(last) + 1


def next_logits(logits, index, lengths, settings):
    logits = ops.cast(logits, "float32")
    if settings.min_new_tokens and settings.stop_token_ids:
        young = index - lengths < settings.min_new_tokens
        logits = ban_stops(logits, young, settings.stop_token_ids)
    return logits


def sample_loop(decoding, settings, prompt, lengths, max_new_tokens, extras, temperature,
                top_k, top_p, seed):
    tokens, logits, state, first, last, end = start(decoding, settings, prompt, lengths,
                                                    max_new_tokens, extras)
    seed = ops.cast(seed, "int32")

    def cond(index, tokens, done, logits, state):
        return ops.logical_and(index < end, ops.logical_not(ops.all(done)))

    def body(index, tokens, done, logits, state):
        logits = next_logits(logits, index, lengths, settings)
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
    beams = settings.sampler.num_beams
    batch = ops.shape(prompt)[0]
    row_lengths = lengths
    prompt, lengths = ops.repeat(prompt, beams, axis=0), ops.repeat(lengths, beams, axis=0)
    extras = keras.tree.map_structure(lambda x: ops.repeat(x, beams, axis=0), extras)
    tokens, logits, state, first, last, end = start(decoding, settings, prompt, lengths,
                                                    max_new_tokens, extras)
    initial = np.full(beams, UNBORN_BEAM, "float32")
    initial[0] = 0.0
    scores = ops.tile(ops.expand_dims(ops.convert_to_tensor(initial), 0), [batch, 1])
    counts = ops.zeros((batch, beams), "int32")  # new tokens of each beam, stop included
    rows = ops.expand_dims(ops.arange(batch, dtype="int32") * beams, 1)

    def cond(index, tokens, done, logits, state, scores, counts):
        return ops.logical_and(index < end, ops.logical_not(ops.all(done)))

    def body(index, tokens, done, logits, state, scores, counts):
        vocabulary = logits.shape[-1]
        log_probs = ops.log_softmax(next_logits(logits, index, lengths, settings), axis=-1)
        log_probs = ops.reshape(log_probs, (batch, beams, vocabulary))
        in_prompt = index < lengths
        # A beam inside its prompt or finished has one candidate: its prompt token or pad.
        fixed = ops.reshape(ops.logical_or(in_prompt, done), (batch, beams))
        fixed_token = ops.where(in_prompt, ops.take(tokens, index, axis=1), settings.pad_id)
        only = ops.one_hot(ops.reshape(fixed_token, (batch, beams)), vocabulary) > 0
        extended = ops.expand_dims(scores, -1) + log_probs
        fixed_scores = ops.where(only, ops.expand_dims(scores, -1), IMPOSSIBLE)
        candidates = ops.where(ops.expand_dims(fixed, -1), fixed_scores, extended)
        scores, flat = ops.top_k(ops.reshape(candidates, (batch, beams * vocabulary)), beams)
        flat = ops.cast(flat, "int32")
        parent, token = flat // vocabulary, flat % vocabulary
        source = ops.reshape(rows + parent, (-1,))
        tokens = ops.take(tokens, source, axis=0)
        state = keras.tree.map_structure(lambda x: ops.take(x, source, axis=0), state)
        grows = ops.logical_not(ops.take_along_axis(fixed, parent, axis=1))
        counts = ops.take_along_axis(counts, parent, axis=1) + ops.cast(grows, "int32")
        done = ops.take(done, source, axis=0)
        token = ops.reshape(token, (-1,))
        tokens = ops.slice_update(tokens, [0, index], ops.expand_dims(token, 1))
        finished = ops.logical_and(ops.logical_not(in_prompt),
                                   is_stop(token, settings.stop_token_ids))
        done = ops.logical_or(ops.logical_or(done, finished), index >= last)
        logits, state = decoding.step(token, state, index)
        return index + 1, tokens, done, logits, state, scores, counts

    done = ops.zeros(ops.shape(lengths), "bool")
    _, tokens, _, _, _, scores, counts = ops.while_loop(
        cond, body, (first, tokens, done, logits, state, scores, counts))
    normalized = scores / ops.power(ops.cast(ops.maximum(counts, 1), "float32"),
                                    length_penalty)
    best = ops.cast(ops.argmax(normalized, axis=1), "int32")
    del row_lengths
    return ops.take(tokens, ops.reshape(rows, (-1,)) + best, axis=0)


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


# --- inputs and outputs --------------------------------------------------------------------


def _as_strings(inputs):
    """A list of `str` and whether it was one string, or None when `inputs` are not text."""
    if isinstance(inputs, (str, bytes)):
        return [_text(inputs)], True
    if hasattr(inputs, "dtype") and "string" in str(inputs.dtype) and hasattr(inputs, "numpy"):
        inputs = inputs.numpy()
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "USO" and inputs.ndim <= 1:
        if inputs.ndim == 0:
            return [_text(inputs.item())], True
        inputs = inputs.tolist()
    if isinstance(inputs, (list, tuple)) and inputs and all(
            isinstance(x, (str, bytes)) for x in inputs):
        return [_text(x) for x in inputs], False
    return None


def _text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _rows(token_ids, padding_mask=None):
    """Token ids (lists, a ragged tensor, or dense ids + mask) as a list of lists."""
    if hasattr(token_ids, "to_list"):  # tf.RaggedTensor
        return token_ids.to_list()
    if padding_mask is None:
        rows = [list(np.asarray(row).reshape(-1)) for row in token_ids]
    else:
        ids, mask = np.asarray(token_ids), np.asarray(padding_mask).astype(bool)
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ValueError(f"token_ids {ids.shape} and padding_mask {mask.shape} must be the "
                             "same [batch, length] shape.")
        lengths = mask.sum(axis=1)
        if not all(mask[i, :n].all() for i, n in enumerate(lengths)):
            raise ValueError("padding_mask must be ones then zeros in each row (right "
                             "padding): generation continues after the last real token.")
        rows = [ids[i, :n].tolist() for i, n in enumerate(lengths)]
    return [[int(t) for t in row] for row in rows]


@dataclasses.dataclass
class Request:
    """Prompts as lists of ids, the model's other inputs, and how to give the answer back."""

    rows: list
    extras: dict
    kind: str  # "strings", "lists" or "dict"
    scalar: bool = False


def _preprocessor(model):
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        raise ValueError(
            f"Text prompts need a preprocessor with a tokenizer, and this "
            f"{type(model).__name__} has none: pass token ids, or attach one with "
            "zoo.preprocessing.preprocessor_for(model, tokenizer)."
        )
    return preprocessor


def causal_request(model, inputs):
    texts = _as_strings(inputs)
    if texts is not None:
        strings, scalar = texts
        preprocessor = _preprocessor(model)
        rows = preprocessor.tokenizer(strings).to_list()
        start_id = getattr(preprocessor, "start_id", None)
        if start_id is not None:
            rows = [[start_id, *row] for row in rows]
        return Request([[int(t) for t in r] for r in rows], {}, "strings", scalar)
    if isinstance(inputs, dict):
        if "token_ids" not in inputs:
            raise ValueError(f"A dict of inputs needs 'token_ids' (and 'padding_mask'); got "
                             f"{sorted(inputs)}.")
        mask = inputs.get("padding_mask")
        if mask is None:
            mask = np.ones(np.shape(inputs["token_ids"]), "int32")
        return Request(_rows(inputs["token_ids"], mask), {}, "dict")
    return Request(_rows(inputs), {}, "lists")


def seq2seq_request(model, inputs):
    texts = _as_strings(inputs)
    if texts is not None:
        strings, scalar = texts
        x = _preprocessor(model)(strings)
        extras = {k: np.asarray(x[k], "int32")
                  for k in ("encoder_token_ids", "encoder_padding_mask")}
        return Request([[]] * len(strings), extras, "strings", scalar)
    if isinstance(inputs, dict):
        if "encoder_token_ids" not in inputs:
            raise ValueError("A dict of inputs to a Seq2SeqLM needs 'encoder_token_ids' (and "
                             f"'encoder_padding_mask'); got {sorted(inputs)}.")
        ids = np.asarray(inputs["encoder_token_ids"], "int32")
        mask = inputs.get("encoder_padding_mask")
        mask = np.ones_like(ids) if mask is None else np.asarray(mask, "int32")
        kind = "dict"
    else:
        rows = _rows(inputs)
        width = max([len(r) for r in rows] + [1])
        ids = np.zeros((len(rows), width), "int32")
        mask = np.zeros((len(rows), width), "int32")
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
        kind = "lists"
    if len(ids) and (mask.sum(axis=1) == 0).any():
        empty = int(np.flatnonzero(mask.sum(axis=1) == 0)[0])
        raise ValueError(f"Prompt {empty} is empty: give the encoder at least one token.")
    extras = {"encoder_token_ids": ids, "encoder_padding_mask": mask}
    return Request([[]] * len(ids), extras, kind)


def check_arguments(max_new_tokens, sampler, temperature, top_k, top_p, num_beams,
                    min_new_tokens, vocabulary_size, context):
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}.")
    if context is not None and max_new_tokens >= context:
        raise ValueError(
            f"max_new_tokens {max_new_tokens} does not fit the model's context of {context} "
            f"positions (its cache) with a prompt of at least one token: ask for at most "
            f"{context - 1}."
        )
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}. Choose one of {SAMPLERS}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}; for the most likely "
                         "token use sampler='greedy'.")
    if sampler == "top_k" and not 1 <= top_k <= vocabulary_size:
        raise ValueError(f"top_k must be in [1, {vocabulary_size}], got {top_k!r}.")
    if sampler == "top_p" and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}.")
    if sampler == "beam" and not 1 <= num_beams <= vocabulary_size:
        raise ValueError(f"num_beams must be in [1, {vocabulary_size}], got {num_beams!r}.")
    if min_new_tokens < 0:
        raise ValueError(f"min_new_tokens must be >= 0, got {min_new_tokens!r}.")


def fit_context(rows, max_new_tokens, context):
    """Prompts cut from the left so that prompt + new tokens fit `context`, with a warning."""
    if context is None:
        return rows
    room = context - max_new_tokens
    fitted = []
    for i, row in enumerate(rows):
        if len(row) > room:
            warnings.warn(
                f"Prompt {i} has {len(row)} tokens; with max_new_tokens={max_new_tokens} the "
                f"model's context of {context} leaves room for {room}: its first "
                f"{len(row) - room} tokens are dropped.", stacklevel=3)
            row = row[len(row) - room:]
        fitted.append(row)
    return fitted


def default_stop_token_ids(model):
    """The end token of the attached preprocessor's tokenizer, or none."""
    preprocessor = getattr(model, "preprocessor", None)
    end_id = getattr(preprocessor, "end_id", None)
    if end_id is None and preprocessor is not None:
        end_id = getattr(getattr(preprocessor, "tokenizer", None), "end_id", None)
    return () if end_id is None else (int(end_id),)


def decoder_start_id_of(model):
    """The id a `Seq2SeqLM`'s decoder starts from: its preprocessor's, else 0 (T5's)."""
    start_id = getattr(getattr(model, "preprocessor", None), "decoder_start_id", None)
    return 0 if start_id is None else int(start_id)


def pad_id_of(model):
    preprocessor = getattr(model, "preprocessor", None)
    pad_id = getattr(preprocessor, "pad_id", None)
    return 0 if pad_id is None else int(pad_id)


def generate(model, inputs, max_new_tokens, sampler="greedy", temperature=1.0, top_k=50,
             top_p=0.9, num_beams=4, length_penalty=1.0, stop_token_ids="auto",
             min_new_tokens=0, seed=None):
    """Continue prompts with a `CausalLM` or `Seq2SeqLM` (see the module docstring).

    Args:
        model: a zoo `CausalLM` or `Seq2SeqLM`.
        inputs: text (a string or a list of strings) when the model has a preprocessor; or
            token ids: a list of lists (or a ragged tensor) of prompts, or a dict with
            `token_ids` and `padding_mask` (right-padded); a `Seq2SeqLM` takes the source
            (`encoder_token_ids`, `encoder_padding_mask`) and starts its decoder with the
            preprocessor's `decoder_start_id` (0, T5's, without one).
        max_new_tokens: tokens to add to each prompt (> 0). A prompt that does not fit the
            model's context with them is cut from the left, with a warning.
        sampler: one of `SAMPLERS`.
        temperature: divides the logits before sampling (> 0).
        top_k: for `"top_k"`.
        top_p: for `"top_p"`, in (0, 1].
        num_beams, length_penalty: for `"beam"`.
        stop_token_ids: ids that end a row (kept in ids, dropped from text); `"auto"`: the
            tokenizer's end token when there is a preprocessor, else none; None: none.
        min_new_tokens: stop tokens are banned before this many new tokens.
        seed: an int; the same seed gives the same samples. Random when None.

    Returns:
        What came in: strings (one string for one), lists of new ids (the stop token
        included), or a dict `{"token_ids", "padding_mask"}` `[batch, max_new_tokens]`.
    """
    decoding = decoding_for(model)
    check_arguments(max_new_tokens, sampler, temperature, top_k, top_p, num_beams,
                    min_new_tokens, decoding.vocabulary_size, decoding.context)
    is_seq2seq = isinstance(decoding, Seq2SeqDecoding)
    request = (seq2seq_request if is_seq2seq else causal_request)(model, inputs)
    if not request.rows:
        raise ValueError("No prompts: give at least one.")
    if is_seq2seq:
        request.rows = [[decoder_start_id_of(model)]] * len(request.rows)
    for i, row in enumerate(request.rows):
        if not row:
            raise ValueError(f"Prompt {i} is empty (no tokens): give at least one token.")
        if any(not 0 <= t < decoding.vocabulary_size for t in row):
            raise ValueError(f"Prompt {i} has ids outside the vocabulary "
                             f"[0, {decoding.vocabulary_size}).")
    rows = fit_context(request.rows, max_new_tokens, decoding.context)
    if stop_token_ids == "auto":
        stop_token_ids = default_stop_token_ids(model)
    stop_token_ids = tuple(int(i) for i in (stop_token_ids or ()))

    longest = max(len(r) for r in rows)
    width = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
    if decoding.context is not None:
        width = min(width, decoding.context - max_new_tokens)
    pad_id = pad_id_of(model)
    prompt = np.full((len(rows), width), pad_id, "int32")
    for i, row in enumerate(rows):
        prompt[i, :len(row)] = row
    lengths = np.array([len(r) for r in rows], "int32")

    settings = Settings(sampler_for(sampler, top_k, num_beams), width + max_new_tokens,
                        stop_token_ids, int(min_new_tokens), pad_id)
    max_new_tokens = int(max_new_tokens)

    def run(prompt, lengths, extras, temperature, top_k, top_p, length_penalty, seed):
        return decode(decoding, settings, prompt, lengths, max_new_tokens, extras,
                      temperature, top_k, top_p, length_penalty, seed)

    function = compiled(model, ("generate", settings, max_new_tokens), run)
    if seed is None:
        seed = np.random.randint(0, 2**31 - 1)
    token_ids, mask = function(
        prompt, lengths, request.extras, np.float32(temperature),
        np.int32(top_k), np.float32(top_p), np.float32(length_penalty),
        np.array([seed, 0], "int32"))
    token_ids = np.asarray(ops.convert_to_numpy(token_ids))
    mask = np.asarray(ops.convert_to_numpy(mask))
    return respond(model, request, token_ids, mask, stop_token_ids)


def respond(model, request, token_ids, mask, stop_token_ids):
    if request.kind == "dict":
        return {"token_ids": token_ids, "padding_mask": mask}
    rows = [row[: int(m.sum())].tolist() for row, m in zip(token_ids, mask, strict=True)]
    if request.kind == "lists":
        return rows
    texts = detokenize(model.preprocessor.tokenizer,
                       [[t for t in row if t not in stop_token_ids] for row in rows])
    return texts[0] if request.scalar else texts


def detokenize(tokenizer, rows):
    """Lists of ids -> a list of `str`."""
    if not any(rows):  # a ragged tensor of empty rows has no inner dtype to infer
        return ["" for _ in rows]
    strings = tokenizer.detokenize(rows)
    return [_text(s) for s in np.asarray(ops.convert_to_numpy(strings)).reshape(-1)]


def stream(model, inputs, max_new_tokens, sampler="greedy", temperature=1.0, top_k=50,
           top_p=0.9, stop_token_ids="auto", seed=None):
    """Yield the new token ids of one prompt as they are chosen (for printing as they come).

    The same prefill, step and samplers as `generate` (not beam search), each step a compiled
    call from Python. `inputs` is one prompt: a string (with a preprocessor) or a list of ids.

    >>> import zoo
    >>> model = zoo.build("gpt", size="tiny", task="causal_lm")
    >>> len(list(stream(model, [5, 9, 2], 3)))
    3
    """
    if sampler == "beam":
        raise ValueError("stream() picks one token at a time: use generate() for beam search.")
    decoding = decoding_for(model)
    check_arguments(max_new_tokens, sampler, temperature, top_k, top_p, 1, 0,
                    decoding.vocabulary_size, decoding.context)
    is_seq2seq = isinstance(decoding, Seq2SeqDecoding)
    if not isinstance(inputs, (str, bytes)):
        inputs = [list(inputs)]
    request = (seq2seq_request if is_seq2seq else causal_request)(model, inputs)
    if is_seq2seq:
        request.rows = [[decoder_start_id_of(model)]]
    if len(request.rows) != 1 or not request.rows[0]:
        raise ValueError("stream() takes one prompt of at least one token.")
    (row,) = fit_context(request.rows, max_new_tokens, decoding.context)
    if stop_token_ids == "auto":
        stop_token_ids = default_stop_token_ids(model)
    stop_token_ids = tuple(int(i) for i in (stop_token_ids or ()))
    settings = Settings(sampler_for(sampler, top_k), len(row) + max_new_tokens, stop_token_ids,
                        0, pad_id_of(model))
    parameters = (np.float32(temperature), np.int32(top_k), np.float32(top_p))

    def pick(logits, index, temperature, top_k, top_p, seed):
        logits = ops.cast(logits, "float32")
        step_seed = ops.cast(seed, "int32") + ops.stack([0, index])
        return choose(logits, settings.sampler, temperature, top_k, top_p, step_seed)

    def first(prompt, extras, temperature, top_k, top_p, seed):
        lengths = ops.convert_to_tensor(np.array([len(row)], "int32"))
        _, logits, state, index, _, _ = start(decoding, settings, prompt, lengths, 1, extras)
        return pick(logits, index, temperature, top_k, top_p, seed), state

    def following(token, state, index, temperature, top_k, top_p, seed):
        logits, state = decoding.step(token, state, index)
        return pick(logits, index + 1, temperature, top_k, top_p, seed), state

    first = compiled(model, ("stream-first", settings), first)
    following = compiled(model, ("stream-next", settings), following)
    seed = np.array([np.random.randint(0, 2**31 - 1) if seed is None else seed, 0], "int32")
    token, state = first(np.array([row], "int32"), request.extras, *parameters, seed)
    for step in range(max_new_tokens):
        value = int(np.asarray(ops.convert_to_numpy(token))[0])
        yield value
        if value in stop_token_ids or step == max_new_tokens - 1:
            return
        index = np.int32(len(row) + step)
        token, state = following(token, state, index, *parameters, seed)
