"""The Python front of generation: `generate` and `stream`, from prompts in to answers out.

`generate(model, inputs, max_new_tokens, sampler="greedy", ...)` is what `CausalLM.generate`
(GPT-2 and Llama style) and `Seq2SeqLM.generate` (T5) call; `stream` yields one prompt's new
tokens as they are chosen. Both go through `prepare`: the decoding of the model
(`zoo.generation.loop.decoding_for`), the checks of the arguments (`check_arguments`), the
prompts as lists of ids (`causal_request`, `seq2seq_request`: text through the attached
preprocessor, chat messages through its chat template, lists of ids, or a dict of padded
ids and mask; `zoo.generation.requests`), the prompts checked and cut
from the left to fit the model's context (`fit_context`), and the stop tokens resolved
(`default_stop_token_ids`). `generate` pads the prompts to a multiple of `PROMPT_BUCKET` and
makes room for a power of two of new tokens (`zoo.generation.loop.bucket`), so that calls with
other prompt lengths or `max_new_tokens` reuse a compiled loop, runs it
(`zoo.generation.loop.decode`) and gives the answer back in the form the prompts came in
(`respond`, `detokenize`).
"""

import warnings

import numpy as np
from keras import ops

from zoo.generation.loop import (
    Seq2SeqDecoding,
    Settings,
    bucket,
    compiled,
    decode,
    decoding_for,
    next_logits,
    start,
)
from zoo.generation.requests import causal_request, respond, seq2seq_request
from zoo.generation.samplers import SAMPLERS, choose, sampler_for
from zoo.preprocessing import chat_template

PROMPT_BUCKET = 16


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_arguments(max_new_tokens, sampler, temperature, top_k, top_p, num_beams,
                    min_new_tokens, vocabulary_size, context, min_length=0,
                    no_repeat_ngram_size=0, early_stopping=False):
    if not _is_int(max_new_tokens) or max_new_tokens <= 0:
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
    if not _is_int(num_beams) or not 1 <= num_beams <= vocabulary_size:
        raise ValueError(f"num_beams must be in [1, {vocabulary_size}], got {num_beams!r}.")
    for name, value in [("min_new_tokens", min_new_tokens), ("min_length", min_length),
                        ("no_repeat_ngram_size", no_repeat_ngram_size)]:
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be an int >= 0 (0: off), got {value!r}.")
    if not (isinstance(early_stopping, (bool, np.bool_)) or early_stopping == "never"):
        raise ValueError(f"early_stopping must be False, True or 'never' (Hugging Face's "
                         f"values), got {early_stopping!r}.")


def fit_context(rows, max_new_tokens, context, stacklevel=3):
    """Prompts cut from the left so that prompt + new tokens fit `context`, with a warning
    (`stacklevel` as `warnings.warn`'s, counted from here: 3 blames the caller's caller)."""
    if context is None:
        return rows
    room = context - max_new_tokens
    fitted = []
    for i, row in enumerate(rows):
        if len(row) > room:
            warnings.warn(
                f"Prompt {i} has {len(row)} tokens; with max_new_tokens={max_new_tokens} the "
                f"model's context of {context} leaves room for {room}: its first "
                f"{len(row) - room} tokens are dropped.", stacklevel=stacklevel)
            row = row[len(row) - room:]
        fitted.append(row)
    return fitted


def default_stop_token_ids(model, chat=False):
    """The end token of the attached preprocessor's tokenizer, or none; with `chat`, also the
    token its chat template ends a turn with (`chat_template.end_of_turn`: `<|im_end|>`)."""
    preprocessor = getattr(model, "preprocessor", None)
    tokenizer = getattr(preprocessor, "tokenizer", None)
    end_id = getattr(preprocessor, "end_id", None)
    if end_id is None:
        end_id = getattr(tokenizer, "end_id", None)
    stops = () if end_id is None else (int(end_id),)
    end_of_turn = chat_template.end_of_turn(tokenizer) if chat else None
    if end_of_turn is not None:
        end_of_turn_id = int(tokenizer.token_to_id(end_of_turn))
        stops += () if end_of_turn_id in stops else (end_of_turn_id,)
    return stops


def decoder_start_id_of(model):
    """The id a `Seq2SeqLM`'s decoder starts from: its preprocessor's, else its config's
    `decoder_start_token_id` (BART's `</s>`), else 0 (T5's)."""
    start_id = getattr(getattr(model, "preprocessor", None), "decoder_start_id", None)
    if start_id is None:
        config = getattr(getattr(model, "backbone", None), "config", None)
        start_id = getattr(config, "decoder_start_token_id", None)
    return 0 if start_id is None else int(start_id)


def forced_ids(model, forced_bos_token_id, forced_eos_token_id, vocabulary_size):
    """`(forced_bos_token_id, forced_eos_token_id)`, each an id or None; `"auto"` reads the
    field of that name of the model's config (None where it has none)."""
    config = getattr(getattr(model, "backbone", None), "config", None)
    resolved = []
    for name, value in [("forced_bos_token_id", forced_bos_token_id),
                        ("forced_eos_token_id", forced_eos_token_id)]:
        if isinstance(value, str) and value == "auto":
            value = getattr(config, name, None)
        if value is not None and (not isinstance(value, (int, np.integer))
                                  or isinstance(value, bool)
                                  or not 0 <= value < vocabulary_size):
            raise ValueError(f"{name} must be None, 'auto' or an id in [0, {vocabulary_size}), "
                             f"got {value!r}.")
        resolved.append(None if value is None else int(value))
    return tuple(resolved)


def pad_id_of(model):
    """The id that pads prompts and finished rows: the preprocessor's, else 0."""
    preprocessor = getattr(model, "preprocessor", None)
    pad_id = getattr(preprocessor, "pad_id", None)
    return 0 if pad_id is None else int(pad_id)


def prepare(model, inputs, max_new_tokens, sampler, temperature, top_k, top_p, num_beams=1,
            min_new_tokens=0, stop_token_ids="auto", one_prompt=False, min_length=0,
            no_repeat_ngram_size=0, early_stopping=False):
    """What `generate` and `stream` share before decoding: `(decoding, request,
    stop_token_ids)`.

    Checks the arguments against the model (`check_arguments`), reads the prompts
    (`causal_request`, `seq2seq_request`; a `Seq2SeqLM`'s decoder starts from
    `decoder_start_id_of(model)`), refuses empty ones and ids outside the vocabulary, cuts
    them to fit the context (`fit_context`, into `request.rows`) and resolves
    `stop_token_ids` (`"auto"`: `default_stop_token_ids(model)`; None: none) to a tuple of
    ints. With `one_prompt` (`stream`), `inputs` is one prompt: a string or a list of ids.
    """
    decoding = decoding_for(model)
    check_arguments(max_new_tokens, sampler, temperature, top_k, top_p, num_beams,
                    min_new_tokens, decoding.vocabulary_size, decoding.context, min_length,
                    no_repeat_ngram_size, early_stopping)
    is_seq2seq = isinstance(decoding, Seq2SeqDecoding)
    if is_seq2seq and chat_template.as_conversations(inputs) is not None:
        raise ValueError("Chat messages need a causal language model (GPT or Llama style): "
                         "give a Seq2SeqLM text or token ids.")
    if one_prompt and not isinstance(inputs, (str, bytes)):
        inputs = [list(inputs)]
    request = (seq2seq_request if is_seq2seq else causal_request)(model, inputs)
    if is_seq2seq:
        request.rows = [[decoder_start_id_of(model)]] * len(request.rows)
    if one_prompt and (len(request.rows) != 1 or not request.rows[0]):
        raise ValueError("stream() takes one prompt of at least one token.")
    if not request.rows:
        raise ValueError("No prompts: give at least one.")
    for i, row in enumerate(request.rows):
        if not row:
            raise ValueError(f"Prompt {i} is empty (no tokens): give at least one token.")
        if any(not 0 <= t < decoding.vocabulary_size for t in row):
            raise ValueError(f"Prompt {i} has ids outside the vocabulary "
                             f"[0, {decoding.vocabulary_size}).")
    # stacklevel 4: the warning names the caller of `generate` or `stream`.
    request.rows = fit_context(request.rows, max_new_tokens, decoding.context, stacklevel=4)
    if stop_token_ids == "auto":
        stop_token_ids = default_stop_token_ids(model, chat=request.chat)
    return decoding, request, tuple(int(i) for i in (stop_token_ids or ()))


def generate(model, inputs, max_new_tokens, sampler="greedy", temperature=1.0, top_k=50,
             top_p=0.9, num_beams=4, length_penalty=1.0, stop_token_ids="auto",
             min_new_tokens=0, seed=None, min_length=0, no_repeat_ngram_size=0,
             early_stopping=False, forced_bos_token_id="auto", forced_eos_token_id="auto"):
    """Continue prompts with a `CausalLM` or `Seq2SeqLM` (see `zoo.generation`).

    Args:
        model: a zoo `CausalLM` or `Seq2SeqLM`.
        inputs: text (a string or a list of strings) when the model has a preprocessor;
            chat messages (`[{"role": "user", "content": "..."}]`, or a list of such
            conversations) when its tokenizer has a chat template (rendered with the opening
            of the assistant's turn, nothing added before it); or
            token ids: a list of lists (or a ragged tensor) of prompts, or a dict with
            `token_ids` and `padding_mask` (right-padded); a `Seq2SeqLM` takes the source
            (`encoder_token_ids`, `encoder_padding_mask`) and starts its decoder with the
            preprocessor's `decoder_start_id` (without one: `decoder_start_id_of`).
        max_new_tokens: tokens to add to each prompt (> 0). A prompt that does not fit the
            model's context with them is cut from the left, with a warning.
        sampler: one of `SAMPLERS`.
        temperature: divides the logits before sampling (> 0).
        top_k: for `"top_k"`.
        top_p: for `"top_p"`, in (0, 1].
        num_beams, length_penalty: for `"beam"`, which returns what Hugging Face's
            `generate(num_beams=..., length_penalty=...)` does (see
            `zoo.generation.loop.beam_loop`): finished hypotheses are ranked by their
            log-probability / new_tokens ** length_penalty (> 0 favours longer ones).
        early_stopping: when beam search stops looking for better hypotheses: False, True
            or `"never"`, as Hugging Face's option of that name (see `Sampler`).
        stop_token_ids: ids that end a row (kept in ids, dropped from text); `"auto"`: the
            tokenizer's end token when there is a preprocessor (and for chat messages the
            template's end of turn, `<|im_end|>`), else none; None: none.
        min_new_tokens: stop tokens are banned before this many new tokens.
        seed: an int; the same seed gives the same samples. Random when None.
        min_length: stop tokens are banned while the whole sequence is shorter: the prompt
            and the new tokens, or for a `Seq2SeqLM` the decoder's start token and the new
            tokens (Hugging Face's `min_length`). 0: off.
        no_repeat_ngram_size: n > 0 bans any token that would repeat an n-gram of the
            sequence (the prompt, or the start token, included). 0: off.
        forced_bos_token_id, forced_eos_token_id: a token forced as each row's first new
            token, and as the last one `max_new_tokens` allows (Hugging Face's settings of
            those names); `"auto"`: the model config's (a BART or Marian checkpoint's), else
            none; None: none.

    Returns:
        What came in: strings (one string for one prompt or conversation: the assistant's
        answer for messages), lists of new ids (the stop token
        included), or a dict `{"token_ids", "padding_mask"}` `[batch, max_new_tokens]`.
    """
    decoding, request, stop_token_ids = prepare(
        model, inputs, max_new_tokens, sampler, temperature, top_k, top_p, num_beams,
        min_new_tokens, stop_token_ids, min_length=min_length,
        no_repeat_ngram_size=no_repeat_ngram_size, early_stopping=early_stopping)
    rows = request.rows
    longest = max(len(r) for r in rows)
    width = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
    new_width = bucket(max_new_tokens)  # compiled once per power of two
    if decoding.context is not None:
        width = min(width, decoding.context - max_new_tokens)
        new_width = min(new_width, decoding.context - width)
    pad_id = pad_id_of(model)
    prompt = np.full((len(rows), width), pad_id, "int32")
    for i, row in enumerate(rows):
        prompt[i, :len(row)] = row
    lengths = np.array([len(r) for r in rows], "int32")

    early_stopping = early_stopping if early_stopping == "never" else bool(early_stopping)
    settings = Settings(sampler_for(sampler, top_k, num_beams, early_stopping),
                        width + new_width, stop_token_ids, int(min_new_tokens), pad_id,
                        int(min_length), int(no_repeat_ngram_size),
                        *forced_ids(model, forced_bos_token_id, forced_eos_token_id,
                                    decoding.vocabulary_size))
    max_new_tokens = int(max_new_tokens)

    def run(prompt, lengths, max_new_tokens, extras, temperature, top_k, top_p,
            length_penalty, seed):
        return decode(decoding, settings, prompt, lengths, max_new_tokens, extras,
                      temperature, top_k, top_p, length_penalty, seed, width=new_width)

    function = compiled(model, ("generate", settings, new_width), run)
    if seed is None:
        seed = np.random.randint(0, 2**31 - 1)
    token_ids, mask = function(
        prompt, lengths, np.int32(max_new_tokens), request.extras, np.float32(temperature),
        np.int32(top_k), np.float32(top_p), np.float32(length_penalty),
        np.array([seed, 0], "int32"))
    token_ids = np.asarray(ops.convert_to_numpy(token_ids))[:, :max_new_tokens]
    mask = np.asarray(ops.convert_to_numpy(mask))[:, :max_new_tokens]
    return respond(model, request, token_ids, mask, stop_token_ids)


def stream(model, inputs, max_new_tokens, sampler="greedy", temperature=1.0, top_k=50,
           top_p=0.9, stop_token_ids="auto", seed=None, min_new_tokens=0, min_length=0,
           no_repeat_ngram_size=0, forced_bos_token_id="auto", forced_eos_token_id="auto"):
    """Yield the new token ids of one prompt as they are chosen (for printing as they come).

    The same prefill, step, samplers and bans as `generate` (not beam search), each step a
    compiled call from Python. `inputs` is one prompt: a string (with a preprocessor) or a
    list of ids.

    >>> import zoo
    >>> model = zoo.build("gpt", size="tiny", task="causal_lm")
    >>> len(list(stream(model, [5, 9, 2], 3)))
    3
    """
    if sampler == "beam":
        raise ValueError("stream() picks one token at a time: use generate() for beam search.")
    decoding, request, stop_token_ids = prepare(
        model, inputs, max_new_tokens, sampler, temperature, top_k, top_p,
        min_new_tokens=min_new_tokens, stop_token_ids=stop_token_ids, one_prompt=True,
        min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size)
    (row,) = request.rows
    max_length = bucket(len(row) + max_new_tokens)  # compiled once per power of two
    if decoding.context is not None:
        max_length = min(max_length, decoding.context)
    settings = Settings(sampler_for(sampler, top_k), max_length, stop_token_ids,
                        int(min_new_tokens), pad_id_of(model), int(min_length),
                        int(no_repeat_ngram_size),
                        *forced_ids(model, forced_bos_token_id, forced_eos_token_id,
                                    decoding.vocabulary_size))
    lengths = np.array([len(row)], "int32")
    # The prompt's length and last position are arguments, not constants of the compiled
    # functions, which other prompts reuse.
    parameters = (lengths, lengths + max_new_tokens - 1, np.float32(temperature),
                  np.int32(top_k), np.float32(top_p))

    def pick(logits, tokens, index, lengths, last, temperature, top_k, top_p, seed):
        logits = next_logits(logits, index, lengths, settings, tokens, last)
        step_seed = ops.cast(seed, "int32") + ops.stack([0, index])
        token = choose(logits, settings.sampler, temperature, top_k, top_p, step_seed)
        return token, ops.slice_update(tokens, [0, index], ops.expand_dims(token, 1))

    def first(prompt, extras, lengths, *options):
        tokens, logits, state, index, _, _ = start(decoding, settings, prompt, lengths, 1,
                                                   extras)
        return (*pick(logits, tokens, index, lengths, *options), state)

    def following(token, tokens, state, index, *options):
        logits, state = decoding.step(token, state, index)
        return (*pick(logits, tokens, index + 1, *options), state)

    first = compiled(model, ("stream-first", settings), first)
    following = compiled(model, ("stream-next", settings), following)
    seed = np.array([np.random.randint(0, 2**31 - 1) if seed is None else seed, 0], "int32")
    token, tokens, state = first(np.array([row], "int32"), request.extras, *parameters, seed)
    for step in range(max_new_tokens):
        value = int(np.asarray(ops.convert_to_numpy(token))[0])
        yield value
        if value in stop_token_ids or step == max_new_tokens - 1:
            return
        index = np.int32(len(row) + step)
        token, tokens, state = following(token, tokens, state, index, *parameters, seed)
