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
`max_length` positions; an empty prompt fails with "empty prompt". Serving needs only
TensorFlow and tensorflow-text (for the tokenizer's ops).

TFLite: `tflite_decoder(model, prompt_length, max_length)` converts a `CausalLM` to a model
with two signatures over an explicit cache tensor `[1, layers, 2, max_length, kv_heads,
head_dim]`:

    prefill(token_ids int32 [1, prompt_length]) -> logits [1, prompt_length, vocab], cache
    decode(token_id int32 [1, 1], cache, index int32 []) -> logits [1, vocab], cache

and `litert_generate(model_content, prompt_ids, max_new_tokens)` is the loop that drives it
(greedy): prefill the right-padded prompt, take the logits at its last real position, then
one `decode` per token, each writing position `index` of the cache.

Example:

>>> import keras, zoo
>>> model = zoo.build("gpt", size="tiny", task="causal_lm")
>>> content = tflite_decoder(model, prompt_length=8, max_length=16)
>>> litert_generate(content, [5, 9, 2], max_new_tokens=3) == model.generate([[5, 9, 2]], 3)[0]
True
"""

import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from zoo import generation


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
                         "attach one with training.preprocessing.preprocessor_for.")
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

    def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed):
        tf.debugging.assert_positive(max_new_tokens, message="max_new_tokens must be > 0")
        tf.debugging.assert_less(max_new_tokens, max_length,
                                 message=f"max_new_tokens must be < max_length {max_length}")
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
            ids = ragged.to_tensor(default_value=settings.pad_id)
        token_ids, mask = generation.decode(
            decoding, settings, ids, lengths, max_new_tokens, extras, temperature, top_k, top_p,
            tf.constant(1.0), tf.stack([seed, 0]))
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


def tflite_decoder(model, prompt_length, max_length):
    """A `CausalLM` as a TFLite flatbuffer (bytes) with `prefill` and `decode` signatures.

    Args:
        model: a `CausalLM`.
        prompt_length: the (static) width of `prefill`'s `token_ids`; shorter prompts are
            right-padded by `litert_generate`.
        max_length: cache positions: prompt + new tokens.
    """
    decoding = generation.decoding_for(model)
    if isinstance(decoding, generation.Seq2SeqDecoding):
        raise ValueError("tflite_decoder converts causal language models (GPT-2, Llama style).")
    if not 0 < prompt_length < max_length <= decoding.context:
        raise ValueError(f"Need 0 < prompt_length ({prompt_length}) < max_length ({max_length}) "
                         f"<= the model's context ({decoding.context}).")
    cache_spec = tf.TensorSpec(tuple(model.make_cache(1, max_length).shape), tf.float32,
                               name="cache")

    @tf.function(input_signature=[tf.TensorSpec([1, prompt_length], tf.int32, name="token_ids")])
    def prefill(token_ids):
        logits, cache = decoding.prefill(token_ids, max_length, {})
        return {"logits": logits, "cache": cache}

    @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.int32, name="token_id"), cache_spec,
                                  tf.TensorSpec([], tf.int32, name="index")])
    def decode(token_id, cache, index):
        logits, cache = decoding.step(token_id[:, 0], cache, index)
        return {"logits": logits, "cache": cache}

    # The weights as constants: with variables, LiteRT reads uninitialized resources.
    functions = [convert_variables_to_constants_v2(f.get_concrete_function())
                 for f in (prefill, decode)]
    frozen_prefill, frozen_decode = functions

    @tf.function(input_signature=prefill.input_signature)
    def prefill_signature(token_ids):  # named outputs again
        cache, logits = frozen_prefill(token_ids)  # flattened in key order
        return {"logits": logits, "cache": cache}

    @tf.function(input_signature=decode.input_signature)
    def decode_signature(token_id, cache, index):
        cache, logits = frozen_decode(token_id, cache, index)
        return {"logits": logits, "cache": cache}

    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(tf.Module(), folder, signatures={"prefill": prefill_signature,
                                                             "decode": decode_signature},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()


def litert_generate(model_content, prompt_ids, max_new_tokens, stop_token_ids=()):
    """Greedy continuation of one prompt (a list of ids) with a `tflite_decoder` model in
    LiteRT; returns the new ids (a stop token ends them, included)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    prefill = interpreter.get_signature_runner("prefill")
    decode = interpreter.get_signature_runner("decode")
    prompt_length = prefill.get_input_details()["token_ids"]["shape"][1]
    max_length = decode.get_input_details()["cache"]["shape"][3]
    if not 0 < len(prompt_ids) <= prompt_length:
        raise ValueError(f"The prompt has {len(prompt_ids)} tokens; this model takes 1 to "
                         f"{prompt_length}.")
    if len(prompt_ids) + max_new_tokens > max_length:
        raise ValueError(f"{len(prompt_ids)} prompt + {max_new_tokens} new tokens exceed the "
                         f"cache's {max_length} positions.")
    padded = np.zeros((1, prompt_length), np.int32)
    padded[0, :len(prompt_ids)] = prompt_ids
    out = prefill(token_ids=padded)
    logits, cache = out["logits"][0, len(prompt_ids) - 1], out["cache"]
    new = []
    for index in range(len(prompt_ids), len(prompt_ids) + max_new_tokens):
        new.append(int(np.argmax(logits)))
        if new[-1] in stop_token_ids or len(new) == max_new_tokens:
            break
        out = decode(token_id=np.array([[new[-1]]], np.int32), cache=cache,
                     index=np.array(index, np.int32))
        logits, cache = out["logits"][0], out["cache"]
    return new
