"""Generation in exported artifacts: a SavedModel `generate` signature (text in, text out) and
a TFLite model with `prefill` and `decode` signatures driven by a LiteRT loop.

SavedModel: `add_generate_signature(archive, model)` adds to a `keras.export.ExportArchive`
an endpoint that tokenizes, runs `zoo.generation`'s loop and detokenizes, all in the graph:

    inputs:  prompt string [batch], max_new_tokens int32 [], temperature float32 []
             (0: greedy), top_k int32 [] (0: all tokens), top_p float32 [] (1: all), seed
             int32 [] (the same seed, the same samples)
    outputs: text string [batch] (stop token dropped), token_ids int32 [batch, max_new_tokens]
             and padding_mask int32 [batch, max_new_tokens] (stop token included)

Prompts are cut from the left to leave room for `max_new_tokens` in the fixed cache of
`max_length` positions; an empty prompt fails with "empty prompt". The ids come from the
model's own tokenizer, so there are no caller's ids to check. Serving needs only TensorFlow
and tensorflow-text (for the tokenizer's ops).

TFLite: `tflite_decoder(model, prompt_length, max_length)` converts a `CausalLM`, and
`tflite_decoder(model, max_length=..., encoder_length=...)` a `Seq2SeqLM` (T5), to a model with
two signatures over explicit cache tensors: fixed shapes, batch 1, float32 activations, the
weights stored once (float32, or int8 / float16 with `quantize="dynamic"` / `"fp16"`). The
self attention cache is `[1, layers, 2, max_length, kv_heads, head_dim]` (keys at
`[:, i, 0]`, values at `[:, i, 1]`); `decode` writes position `index` of it.

    causal LM:
    prefill(token_ids int32 [1, prompt_length]) -> logits [1, prompt_length, vocab], cache
    decode(token_id int32 [1, 1], cache, index int32 []) -> logits [1, vocab], cache

    seq2seq LM (`prefill` runs the encoder once, then the decoder start token,
    `zoo.generation.decoder_start_id_of(model)`, at position 0):
    prefill(encoder_token_ids int32 [1, encoder_length],
            encoder_padding_mask int32 [1, encoder_length])
        -> logits [1, vocab] (of the first new token), cache,
           cross_attention_cache [1, layers, 2, encoder_length, heads, head_dim]
    decode(token_id int32 [1, 1], cache, cross_attention_cache, encoder_padding_mask,
           index int32 []) -> logits [1, vocab], cache

LiteRT runs no Assert ops, so a call with an id outside [0, vocabulary_size), a mask value
other than 0 / 1 or an `index` outside [0, max_length) returns NaN logits and a NaN cache
(`export.input_checks.screened`): no plausible number, and every later step is NaN too.

`litert_generate(model_content, prompt_ids, max_new_tokens, stop_token_ids)` is the greedy
LiteRT loop that drives either: prefill the right-padded prompt (a causal LM; its logits at
the last real position) or the right-padded source with its mask (a seq2seq LM; `prompt_ids`
are the encoder's ids), take the argmax, then one `decode` per new token at index = the
prompt's length (1 for a seq2seq LM, after its start token), +1 each step, feeding back the
cache it returns (and, for a seq2seq LM, the same cross attention cache and mask), until
`max_new_tokens` or a stop token (included). It raises a `ValueError` for prompt ids outside
the vocabulary before anything runs.

Example:

>>> import keras, zoo
>>> model = zoo.build("gpt", size="tiny", task="causal_lm")
>>> content = tflite_decoder(model, prompt_length=8, max_length=16)
>>> litert_generate(content, [5, 9, 2], max_new_tokens=3) == model.generate([[5, 9, 2]], 3)[0]
True
"""

import dataclasses
import tempfile

import keras
import numpy as np
import tensorflow as tf

from export.archive import write_archive
from export.input_checks import check_values, nan_rows, screened
from zoo import generation
from zoo.validation import Limit, input_limits

DECODER_QUANTIZATIONS = (None, "dynamic", "fp16")


def add_generate_signature(archive, model, max_length=None, name="generate"):
    """Add the text-to-text `generate` endpoint (see the module docstring) to `archive`.

    Args:
        archive: a `keras.export.ExportArchive`.
        model: a `CausalLM` or `Seq2SeqLM` with a preprocessor (its tokenizer is tracked).
        max_length: positions of the cache (prompt + new tokens); the model's context for a
            `CausalLM`, 256 for a `Seq2SeqLM` when None.
        name: of the endpoint.
    """
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or getattr(preprocessor, "tokenizer", None) is None:
        raise ValueError("add_generate_signature needs a model with a preprocessor (strings in): "
                         "attach one with zoo.preprocessing.preprocessor_for.")
    decoding = generation.decoding_for(model)
    is_seq2seq = isinstance(decoding, generation.Seq2SeqDecoding)
    if max_length is None:
        max_length = decoding.context or 256
    if decoding.context is not None and max_length > decoding.context:
        raise ValueError(f"max_length {max_length} exceeds the model's context "
                         f"{decoding.context}.")
    stop_token_ids = generation.default_stop_token_ids(model)
    settings = generation.Settings(generation.Sampler("auto"), max_length, stop_token_ids, 0,
                                   generation.pad_id_of(model))
    tokenizer = preprocessor.tokenizer

    def decode_in_bucket(ids, lengths, max_new_tokens, cache_length, extras, temperature,
                         top_k, top_p, seed):
        bucket_settings = dataclasses.replace(settings, max_length=cache_length)
        return generation.decode(decoding, bucket_settings, ids, lengths, max_new_tokens,
                                 extras, temperature, top_k, top_p, tf.constant(1.0),
                                 tf.stack([seed, 0]), width=cache_length)

    # XLA, compiled on the first request of each (prompt width, cache length) and kept:
    # `cache_length` is a compile-time constant of it.
    decode_in_bucket = tf.function(decode_in_bucket, jit_compile=True, autograph=False)

    # The cache lengths compiled for: `generation.bucket`'s powers of two, then max_length.
    cache_lengths = [generation.bucket(1)]
    while cache_lengths[-1] < max_length:
        cache_lengths.append(min(2 * cache_lengths[-1], max_length))

    def compiled_decode(ids, lengths, max_new_tokens, extras, temperature, top_k, top_p, seed):
        """`generation.decode` with the smallest of `cache_lengths` that holds the prompt's
        width + the new tokens; the outputs cut to `max_new_tokens`."""
        needed = tf.shape(ids)[1] + max_new_tokens
        smaller = tf.reduce_sum(tf.cast(tf.constant(cache_lengths) < needed, tf.int32))
        cache_length = tf.gather(cache_lengths, smaller)
        token_ids, mask = decode_in_bucket(ids, lengths, max_new_tokens, cache_length, extras,
                                           temperature, top_k, top_p, seed)
        return token_ids[:, :max_new_tokens], mask[:, :max_new_tokens]

    def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed):
        max_new_tokens, temperature, top_k, top_p = check_sampling(
            max_new_tokens, temperature, top_k, top_p, max_length, decoding.vocabulary_size)
        if is_seq2seq:
            extras = preprocessor(prompt)
            extras = {k: extras[k] for k in ("encoder_token_ids", "encoder_padding_mask")}
            rows = tf.shape(prompt)[0]
            ids = tf.fill([rows, 1], tf.constant(preprocessor.decoder_start_id, tf.int32))
            lengths = tf.ones([rows], tf.int32)
        else:
            extras = {}
            ragged = tf.cast(tokenizer(prompt), tf.int32)
            start_id = getattr(preprocessor, "start_id", None)
            if start_id is not None:
                starts = tf.fill([ragged.nrows(), 1], tf.constant(start_id, tf.int32))
                ragged = tf.concat([starts, ragged], axis=1)
            room = max_length - max_new_tokens  # cut from the left to fit
            lengths = tf.cast(ragged.row_lengths(), tf.int32)
            positions = tf.ragged.range(lengths)
            ragged = tf.ragged.boolean_mask(
                ragged, positions >= tf.expand_dims(lengths - room, 1))
            lengths = tf.cast(ragged.row_lengths(), tf.int32)
            tf.debugging.assert_positive(lengths, message="empty prompt: give some text")
            width = tf.minimum(-(-tf.reduce_max(lengths) // generation.PROMPT_BUCKET)
                               * generation.PROMPT_BUCKET, room)
            ids = ragged.to_tensor(default_value=settings.pad_id)
            ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]],
                         constant_values=settings.pad_id)
        token_ids, mask = compiled_decode(ids, lengths, max_new_tokens, extras, temperature,
                                          top_k, top_p, seed)
        keep = (mask == 1) & ~generation.is_stop(token_ids, stop_token_ids)
        text = tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))
        return {"text": text, "token_ids": token_ids, "padding_mask": mask}

    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint(name, generate, input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([], tf.int32, name="max_new_tokens"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"),
        tf.TensorSpec([], tf.int32, name="seed"),
    ])
    return archive


def check_sampling(max_new_tokens, temperature, top_k, top_p, max_length, vocabulary_size):
    """Graph checks of the `generate` signature's settings: an `InvalidArgumentError` whose
    first line names the setting and its range (a negative temperature or top_k, a top_p
    past 1 would otherwise quietly mean something else). Returns the settings, to be read
    only after the checks."""
    steps = f"max_new_tokens must be in [1, {max_length}) (max_length), got"
    checks = [
        (max_new_tokens > 0, steps, max_new_tokens),
        (max_new_tokens < max_length, steps, max_new_tokens),
        (tf.math.is_finite(temperature) & (temperature >= 0.0),
         "temperature must be a number >= 0 (0: greedy), got", temperature),
        ((top_k >= 0) & (top_k <= vocabulary_size),
         f"top_k must be in [0, {vocabulary_size}] (0: every token), got", top_k),
        ((top_p > 0.0) & (top_p <= 1.0), "top_p must be in (0, 1] (1: every token), got",
         top_p),
    ]
    asserts = [tf.debugging.Assert(holds, [message, value]) for holds, message, value in checks]
    with tf.control_dependencies(asserts):  # before anything reads the settings
        return [tf.identity(value) for value in (max_new_tokens, temperature, top_k, top_p)]


def tflite_decoder(model, prompt_length=None, max_length=None, *, encoder_length=None,
                   quantize=None):
    """A `CausalLM` or `Seq2SeqLM` as a TFLite flatbuffer (bytes) with `prefill` and `decode`
    signatures (see the module docstring).

    Args:
        model: a `CausalLM` (give `prompt_length`) or a `Seq2SeqLM` (give `encoder_length`).
        prompt_length: the (static) width of a causal LM's `prefill` `token_ids`; shorter
            prompts are right-padded by `litert_generate`.
        max_length: cache positions: prompt + new tokens (a `Seq2SeqLM`: the decoder start
            token + new tokens).
        encoder_length: the (static) width of a seq2seq LM's `encoder_token_ids`; shorter
            sources are right-padded (mask 0) by `litert_generate`.
        quantize: None (float32 weights), `"dynamic"` (int8 weights, dequantized on the fly
            or run in int8 where LiteRT has the kernel: a quarter of the size) or `"fp16"`
            (float16 weights: half the size).

    The weights are stored once for both signatures: the conversion reads them as the
    variables of a temporary SavedModel (`keras.export.ExportArchive`), not as two frozen
    copies (SmolLM2-135M: 7.5 GB peak instead of more than 24 GB).
    """
    if quantize not in DECODER_QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {DECODER_QUANTIZATIONS}, got {quantize!r}.")
    decoding = generation.decoding_for(model)
    if isinstance(decoding, generation.Seq2SeqDecoding):
        prefill, decode = _seq2seq_functions(model, decoding, prompt_length, max_length,
                                             encoder_length)
    else:
        prefill, decode = _causal_functions(model, decoding, prompt_length, max_length,
                                            encoder_length)
    with tempfile.TemporaryDirectory() as folder:
        archive = keras.export.ExportArchive()
        for layer in _weight_layers(model):
            archive.track(layer)
        archive.add_endpoint("prefill", prefill)
        archive.add_endpoint("decode", decode)
        write_archive(archive, folder)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def _weight_layers(model):
    """`model`'s own layers but its preprocessor: the decoder takes ids, and a tracked
    tokenizer's lookup tables would reach the converter, which has no op for them."""
    preprocessor = getattr(model, "preprocessor", None)
    return [layer for layer in model._flatten_layers(include_self=False, recursive=False)
            if layer is not preprocessor]


def _causal_functions(model, decoding, prompt_length, max_length, encoder_length):
    if encoder_length is not None or prompt_length is None:
        raise ValueError("A causal LM takes prompt_length (the width of prefill's token_ids), "
                         "not encoder_length.")
    if not 0 < prompt_length < (max_length or 0) <= decoding.context:
        raise ValueError(f"Need 0 < prompt_length ({prompt_length}) < max_length ({max_length}) "
                         f"<= the model's context ({decoding.context}).")
    cache_spec = tf.TensorSpec(tuple(model.make_cache(1, max_length).shape), tf.float32,
                               name="cache")
    vocabulary = input_limits(model)["token_ids"]

    @tf.function(input_signature=[tf.TensorSpec([1, prompt_length], tf.int32, name="token_ids")])
    def prefill(token_ids):
        safe, valid = screened({"token_ids": vocabulary}, {"token_ids": token_ids})
        logits, cache = decoding.prefill(safe["token_ids"], max_length, {})
        return nan_rows({"logits": logits, "cache": cache}, valid)

    @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.int32, name="token_id"), cache_spec,
                                  tf.TensorSpec([], tf.int32, name="index")])
    def decode(token_id, cache, index):
        safe, valid = screened({"token_id": vocabulary, "index": _positions(max_length)},
                               {"token_id": token_id, "index": index})
        logits, cache = decoding.step(safe["token_id"][:, 0], cache, safe["index"])
        return nan_rows({"logits": logits, "cache": cache}, valid)

    return prefill, decode


def _seq2seq_functions(model, decoding, prompt_length, max_length, encoder_length):
    if prompt_length is not None or encoder_length is None:
        raise ValueError("A seq2seq LM takes encoder_length (the width of prefill's "
                         "encoder_token_ids), not prompt_length: its decoder starts from one "
                         "start token.")
    if not (encoder_length > 0 and (max_length or 0) > 1):
        raise ValueError(f"Need encoder_length ({encoder_length}) > 0 and max_length "
                         f"({max_length}) > 1 (the decoder start token + new tokens).")
    start_id = generation.decoder_start_id_of(model)
    cache = model.make_cache(1, max_length)
    _, cross = model.encode(np.zeros((1, encoder_length), "int32"),
                            np.ones((1, encoder_length), "int32"))
    cache_spec = tf.TensorSpec(tuple(cache.shape), tf.float32, name="cache")
    cross_spec = tf.TensorSpec(tuple(cross.shape), tf.float32, name="cross_attention_cache")
    mask_spec = tf.TensorSpec([1, encoder_length], tf.int32, name="encoder_padding_mask")
    limits = input_limits(model)
    limits = {"encoder_token_ids": limits["encoder_token_ids"],
              "encoder_padding_mask": limits["encoder_padding_mask"],
              "token_id": limits["decoder_token_ids"], "index": _positions(max_length)}

    @tf.function(input_signature=[
        tf.TensorSpec([1, encoder_length], tf.int32, name="encoder_token_ids"), mask_spec])
    def prefill(encoder_token_ids, encoder_padding_mask):
        extras, valid = screened(limits, {"encoder_token_ids": encoder_token_ids,
                                          "encoder_padding_mask": encoder_padding_mask})
        start = tf.fill([1, 1], tf.constant(start_id, tf.int32))
        logits, (cache, cross, _) = decoding.prefill(start, max_length, extras)
        return nan_rows({"logits": logits[:, 0], "cache": cache, "cross_attention_cache": cross},
                        valid)

    @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.int32, name="token_id"), cache_spec,
                                  cross_spec, mask_spec, tf.TensorSpec([], tf.int32, name="index")])
    def decode(token_id, cache, cross_attention_cache, encoder_padding_mask, index):
        safe, valid = screened(limits, {"token_id": token_id, "index": index,
                                        "encoder_padding_mask": encoder_padding_mask})
        state = (cache, cross_attention_cache, safe["encoder_padding_mask"])
        logits, (cache, _, _) = decoding.step(safe["token_id"][:, 0], state, safe["index"])
        return nan_rows({"logits": logits, "cache": cache}, valid)

    return prefill, decode


def _positions(max_length):
    return Limit(0, max_length, "the cache's positions (max_length)")


def litert_generate(model_content, prompt_ids, max_new_tokens, stop_token_ids=()):
    """Greedy continuation of one prompt (a list of ids) with a `tflite_decoder` model in
    LiteRT; returns the new ids (a stop token ends them, included). For a seq2seq model
    `prompt_ids` is the source (the encoder's ids) and the decoder starts from its start
    token. Ids outside the vocabulary are a `ValueError`."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    prefill = interpreter.get_signature_runner("prefill")
    decode = interpreter.get_signature_runner("decode")
    inputs = prefill.get_input_details()
    seq2seq = "encoder_token_ids" in inputs
    name = "encoder_token_ids" if seq2seq else "token_ids"
    width = inputs[name]["shape"][1]
    max_length = decode.get_input_details()["cache"]["shape"][3]
    vocabulary_size = prefill.get_output_details()["logits"]["shape"][-1]
    if not 0 < len(prompt_ids) <= width:
        raise ValueError(f"The {'source' if seq2seq else 'prompt'} has {len(prompt_ids)} tokens; "
                         f"this model takes 1 to {width}.")
    check_values("prompt_ids", prompt_ids,
                 Limit(0, vocabulary_size, "the vocabulary (vocabulary_size)"))
    # Decoder positions before the first new token: the prompt, or T5's start token.
    start = 1 if seq2seq else len(prompt_ids)
    if start + max_new_tokens > max_length:
        raise ValueError(f"{start} {'start token' if seq2seq else 'prompt'} + {max_new_tokens} "
                         f"new tokens exceed the cache's {max_length} positions.")
    padded = np.zeros((1, width), np.int32)
    padded[0, :len(prompt_ids)] = prompt_ids
    if seq2seq:
        mask = (np.arange(width) < len(prompt_ids)).astype(np.int32)[None]
        state = {"encoder_padding_mask": mask}
        out = prefill(encoder_token_ids=padded, **state)
        logits = out["logits"][0]
        state["cross_attention_cache"] = out["cross_attention_cache"]
    else:
        out = prefill(token_ids=padded)
        logits, state = out["logits"][0, start - 1], {}
    state["cache"] = out["cache"]
    new = []
    for index in range(start, start + max_new_tokens):
        new.append(int(np.argmax(logits)))
        if new[-1] in stop_token_ids or len(new) == max_new_tokens:
            break
        out = decode(token_id=np.array([[new[-1]]], np.int32), index=np.array(index, np.int32),
                     **state)
        logits, state["cache"] = out["logits"][0], out["cache"]
    return new
