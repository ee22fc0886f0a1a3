import re

import keras
import numpy as np
import pytest

import zoo
from tests.helpers import (
    as_numpy,
    predict,
    run_backbone_test,
    run_model_saving_test,
    run_overfit_test,
)
from zoo import catalog

SIZES = ["tiny", "tiny_v1_1"]
BATCH, ENCODER_LENGTH, DECODER_LENGTH = 4, 8, 6
START, END = 0, 1


def seq2seq_inputs(batch=BATCH, encoder_length=ENCODER_LENGTH, decoder_length=DECODER_LENGTH,
                   seed=0):
    """Random tokens; example 1 has 5 real encoder tokens, example 3 has 4 real decoder ones."""
    rng = np.random.default_rng(seed)
    encoder_padding_mask = np.ones((batch, encoder_length), "int32")
    decoder_padding_mask = np.ones((batch, decoder_length), "int32")
    if batch > 1:
        encoder_padding_mask[1, 5:] = 0
    if batch > 3:
        decoder_padding_mask[3, 4:] = 0
    return {
        "encoder_token_ids": rng.integers(2, 1024, (batch, encoder_length)).astype("int32")
        * encoder_padding_mask,
        "encoder_padding_mask": encoder_padding_mask,
        "decoder_token_ids": rng.integers(2, 1024, (batch, decoder_length)).astype("int32")
        * decoder_padding_mask,
        "decoder_padding_mask": decoder_padding_mask,
    }


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_backbone_outputs_ignore_padded_encoder_tokens(size, tmp_path):
    inputs = seq2seq_inputs()
    backbone, outputs = run_backbone_test(
        "t5", size, inputs, {"encoder_sequence_output": (BATCH, ENCODER_LENGTH, 32),
                             "decoder_sequence_output": (BATCH, DECODER_LENGTH, 32)}, tmp_path)

    changed = {**inputs, "encoder_token_ids": inputs["encoder_token_ids"].copy()}
    changed["encoder_token_ids"][1, 5:] = 7  # padding: neither stack may see it
    again = predict(backbone, changed)
    np.testing.assert_allclose(again["encoder_sequence_output"][1, :5],
                               outputs["encoder_sequence_output"][1, :5], atol=1e-5)
    np.testing.assert_allclose(again["decoder_sequence_output"],
                               outputs["decoder_sequence_output"], atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_decoder_is_causal(size):
    backbone = zoo.build("t5", size)
    inputs = seq2seq_inputs()
    before = predict(backbone, inputs)["decoder_sequence_output"]
    changed = {**inputs, "decoder_token_ids": inputs["decoder_token_ids"].copy()}
    changed["decoder_token_ids"][:, 3] = 9
    after = predict(backbone, changed)["decoder_sequence_output"]
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3


def reversal_batch():
    """Source: 5 or 6 random tokens; target: the source reversed, then END."""
    rng = np.random.default_rng(2)
    lengths = [6, 5, 6, 5]
    encoder = np.zeros((BATCH, 6), "int32")
    targets = np.zeros((BATCH, 7), "int32")
    for row, length in enumerate(lengths):
        tokens = rng.integers(2, 1024, length)
        encoder[row, :length] = tokens
        targets[row, :length + 1] = [*tokens[::-1], END]
    decoder = np.concatenate([np.full((BATCH, 1), START, "int32"), targets[:, :-1]], axis=1)
    target_mask = (np.arange(7)[None] <= np.array(lengths)[:, None]).astype("int32")
    inputs = {"encoder_token_ids": encoder, "encoder_padding_mask": (encoder > 0).astype("int32"),
              "decoder_token_ids": decoder, "decoder_padding_mask": target_mask}
    return inputs, targets, target_mask


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_seq2seq_lm_round_trips_and_learns_to_reverse_a_batch(size, tmp_path):
    # One block per stack keeps XLA compilation short; every kind of layer is still trained.
    model = zoo.build("t5", size, task="seq2seq_lm", dropout=0.0, num_layers=1,
                      num_decoder_layers=1)
    inputs, targets, weights = reversal_batch()
    run_model_saving_test(model, inputs, tmp_path)  # the backbone's config and weights too
    run_overfit_test(model, inputs, targets, sample_weight=weights, steps=60, max_loss=0.05,
                     learning_rate=2e-2)
    predicted = predict(model, inputs)
    assert predicted.shape == (BATCH, 7, 1024)
    np.testing.assert_array_equal(predicted.argmax(-1)[weights == 1], targets[weights == 1])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_cached_decoding_equals_the_full_forward_pass(size):
    model = zoo.build("t5", size, task="seq2seq_lm")
    inputs = seq2seq_inputs()
    inputs["decoder_padding_mask"][:] = 1  # the cached calls below get no decoder padding
    full = predict(model, inputs)

    encoder_outputs, cross_cache = model.encode(inputs["encoder_token_ids"],
                                                inputs["encoder_padding_mask"])
    np.testing.assert_allclose(as_numpy(encoder_outputs),
                               predict(model.backbone, inputs)["encoder_sequence_output"],
                               atol=1e-5)
    config = model.backbone.config
    cache = model.make_cache(BATCH, DECODER_LENGTH + 2)
    assert tuple(cache.shape) == (BATCH, config.decoder_depth, 2, DECODER_LENGTH + 2,
                                  config.num_heads, config.head_dim)
    tokens, context = inputs["decoder_token_ids"], {
        "cross_attention_cache": cross_cache,
        "encoder_padding_mask": inputs["encoder_padding_mask"],
    }
    logits, cache = model.call_with_cache(tokens[:, :2], cache, 0, **context)  # prefill
    steps = [as_numpy(logits)]
    for index in range(2, DECODER_LENGTH):
        logits, cache = model.call_with_cache(
            tokens[:, index:index + 1], cache, keras.ops.convert_to_tensor(index, "int32"),
            **context,
        )
        steps.append(as_numpy(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_v1_0_head_is_the_token_table_scaled_by_hidden_dim():
    model = zoo.build("t5", "tiny", task="seq2seq_lm")
    table = model.backbone.token_embedding.token_embedding.embeddings
    assert sum(w is table for w in model.weights) == 1
    assert model.count_params() == model.backbone.count_params()
    inputs = seq2seq_inputs()
    hidden = predict(model.backbone, inputs)["decoder_sequence_output"]
    expected = (hidden * 32**-0.5) @ as_numpy(table).T
    np.testing.assert_allclose(predict(model, inputs), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_v1_1_has_its_own_unscaled_lm_head():
    model = zoo.build("t5", "tiny_v1_1", task="seq2seq_lm")
    table = model.backbone.token_embedding.token_embedding.embeddings
    assert sum(w is table for w in model.weights) == 1
    assert model.count_params() == model.backbone.count_params() + 32 * 1024
    inputs = seq2seq_inputs()
    hidden = predict(model.backbone, inputs)["decoder_sequence_output"]
    expected = hidden @ as_numpy(model.lm_head.kernel)
    np.testing.assert_allclose(predict(model, inputs), expected, atol=1e-4, rtol=1e-4)
    assert len(model.backbone.decoder_layers) == 3  # num_decoder_layers, not num_layers


def t5_parameters(vocabulary_size, hidden_dim, intermediate_dim, num_heads, head_dim,
                  num_layers, gated, tied, num_buckets=32):
    """Hugging Face's T5ForConditionalGeneration, weight by weight (no biases anywhere)."""
    attention = 4 * hidden_dim * num_heads * head_dim  # q, k, v, o
    feedforward = (3 if gated else 2) * hidden_dim * intermediate_dim  # wi(_0, _1), wo
    relative_bias_and_final_norm = num_buckets * num_heads + hidden_dim
    encoder = num_layers * (attention + feedforward + 2 * hidden_dim)
    decoder = num_layers * (2 * attention + feedforward + 3 * hidden_dim)
    embeddings = vocabulary_size * hidden_dim * (1 if tied else 2)  # shared (+ lm_head)
    return embeddings + encoder + decoder + 2 * relative_bias_and_final_norm


@pytest.mark.parametrize(
    "size,expected,formula",
    [
        ("small", 60_506_624, t5_parameters(32128, 512, 2048, 8, 64, 6, False, True)),
        ("base", 222_903_552, t5_parameters(32128, 768, 3072, 12, 64, 12, False, True)),
        ("v1_1-small", 76_961_152, t5_parameters(32128, 512, 1024, 6, 64, 8, True, False)),
    ],
    ids=["t5-small", "t5-base", "google/t5-v1_1-small"],
)
@pytest.mark.slow
def test_published_sizes_have_the_reference_parameter_counts(size, expected, formula):
    assert formula == expected
    # The catalog's count (cached: the README table test reuses it) is zoo.count_params'.
    assert catalog.parameter_counts("t5", size)[1] == expected


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"num_heads": 0}, "num_heads must be a positive int, got 0"),
        ({"num_decoder_layers": -1}, "num_decoder_layers must be a positive int, got -1"),
        ({"activation": "tanh"}, "activation='tanh'"),
        ({"relative_attention_max_distance": 16},
         "relative_attention_num_buckets=32 and relative_attention_max_distance=16"),
        ({"dropout": 1.5}, "dropout must be in [0, 1), got 1.5"),
        ({"tie_word_embeddings": "yes"}, "tie_word_embeddings must be True or False, got 'yes'"),
        ({"hidden_size": 64}, "Unknown t5 config field(s) ['hidden_size']"),
    ],
)
def test_bad_config_is_a_value_error_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        zoo.build("t5", **overrides)


def test_bad_cache_is_a_value_error_naming_its_shape():
    model = zoo.build("t5", task="seq2seq_lm")
    inputs = seq2seq_inputs(batch=1)
    _, cross_cache = model.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    wrong = np.zeros((1, 2, 2, 8, 2, 8), "float32")  # head_dim 8, the model has 16
    with pytest.raises(ValueError, match=r"`cache` has shape \(1, 2, 2, 8, 2, 8\)"):
        model.call_with_cache(inputs["decoder_token_ids"][:, :1], wrong, 0, cross_cache)
    with pytest.raises(ValueError, match="cross_attention_cache"):
        model.call_with_cache(inputs["decoder_token_ids"][:, :1], model.make_cache(1, 8), 0)


@pytest.mark.slow
def test_seq2seq_lm_converts_to_tflite_with_the_same_logits():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite conversion needs the TensorFlow backend")
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = zoo.build("t5", task="seq2seq_lm")
    inputs = seq2seq_inputs(batch=1, encoder_length=8, decoder_length=4)
    inputs["encoder_padding_mask"][0, 6:] = 0
    specs = {name: tf.TensorSpec(value.shape, tf.int32, name=name)
             for name, value in inputs.items()}
    serve = tf.function(lambda x: model(x, training=False), input_signature=[specs])
    # No trackable object: the converter then freezes the weights into constants. Given the
    # Keras model it keeps them as resource variables that nothing initializes (NaN logits).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], inputs[detail["name"]])
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(logits, as_numpy(model(inputs, training=False)), atol=1e-4)
