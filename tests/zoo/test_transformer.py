import re

import keras
import numpy as np
import pytest

import zoo
from tests.helpers import as_numpy, predict, run_backbone_test, run_model_saving_test
from tests.zoo.test_t5 import reversal_batch, seq2seq_inputs
from zoo import catalog

BATCH, ENCODER_LENGTH, DECODER_LENGTH = 4, 8, 6


def sinusoids_in_halves(length, hidden_dim, start=0):
    """Hugging Face's MarianSinusoidalPositionalEmbedding.create_weight, in float64."""
    positions = np.arange(start, start + length)[:, None]
    angles = positions / 10000 ** (2 * np.arange(hidden_dim // 2) / hidden_dim)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def test_embeddings_are_the_scaled_table_plus_sinusoids_in_halves():
    backbone = zoo.build("transformer", dropout=0.0)
    ids = np.array([[5, 9, 1023, 0]], "int32")
    table = as_numpy(backbone.token_embedding.token_embedding.embeddings)
    expected = table[ids[0]] * 32**0.5 + sinusoids_in_halves(4, 32, start=3)
    np.testing.assert_allclose(as_numpy(backbone.embed(ids, start_index=3))[0], expected,
                               atol=1e-5)
    unscaled = zoo.build("transformer", dropout=0.0, scale_embedding=False)
    table = as_numpy(unscaled.token_embedding.token_embedding.embeddings)
    np.testing.assert_allclose(as_numpy(unscaled.embed(ids))[0],
                               table[ids[0]] + sinusoids_in_halves(4, 32), atol=1e-5)


def test_blocks_are_post_norm_and_the_output_is_the_last_norm():
    backbone = zoo.build("transformer", num_decoder_layers=3, activation="silu")
    blocks = backbone.encoder_layers + backbone.decoder_layers
    assert [type(b).__name__ for b in blocks] == ["EncoderBlock"] * 2 + ["DecoderBlock"] * 3
    assert all(b.norm_first is False and b.activation == "silu" for b in blocks)
    outputs = predict(backbone, seq2seq_inputs())
    for name, block in (("encoder", blocks[1]), ("decoder", blocks[-1])):
        norm = block.feedforward_norm  # LayerNorm last: each position has mean beta, std gamma
        normalized = (outputs[f"{name}_sequence_output"] - as_numpy(norm.beta)) / \
            as_numpy(norm.gamma)
        np.testing.assert_allclose(normalized.mean(-1), 0.0, atol=1e-4)
        np.testing.assert_allclose(normalized.std(-1), 1.0, atol=1e-3)


def test_decoder_is_causal():
    backbone = zoo.build("transformer")
    inputs = seq2seq_inputs()
    before = predict(backbone, inputs)["decoder_sequence_output"]
    changed = {**inputs, "decoder_token_ids": inputs["decoder_token_ids"].copy()}
    changed["decoder_token_ids"][:, 3] = 9
    after = predict(backbone, changed)["decoder_sequence_output"]
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3


def test_the_output_projection_is_the_token_table_plus_an_untrained_bias():
    model = zoo.build("transformer", task="seq2seq_lm")
    table = model.backbone.token_embedding.token_embedding.embeddings
    assert sum(w is table for w in model.weights) == 1
    assert [w.path for w in model.non_trainable_weights] == ["lm_head/bias"]
    assert model.count_params() == model.backbone.count_params() + 1024
    model.lm_head.bias.assign(np.linspace(-1, 1, 1024).astype("float32"))
    inputs = seq2seq_inputs()
    hidden = predict(model.backbone, inputs)["decoder_sequence_output"]
    expected = hidden @ as_numpy(table).T + np.linspace(-1, 1, 1024)
    np.testing.assert_allclose(predict(model, inputs), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cached_decoding_equals_the_full_forward_pass():
    model = zoo.build("transformer", task="seq2seq_lm", num_decoder_layers=3)
    inputs = seq2seq_inputs()
    inputs["decoder_padding_mask"][:] = 1  # the cached calls below get no decoder padding
    full = predict(model, inputs)
    _, cross_cache = model.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    cache = model.make_cache(BATCH, DECODER_LENGTH)
    assert tuple(cache.shape) == (BATCH, 3, 2, DECODER_LENGTH, 2, 16)
    tokens, context = inputs["decoder_token_ids"], {
        "cross_attention_cache": cross_cache,
        "encoder_padding_mask": inputs["encoder_padding_mask"],
    }
    logits, cache = model.call_with_cache(tokens[:, :2], cache, 0, **context)  # prefill
    steps = [as_numpy(logits)]
    for index in range(2, DECODER_LENGTH):  # positions from the cache index onward
        logits, cache = model.call_with_cache(
            tokens[:, index:index + 1], cache, keras.ops.convert_to_tensor(index, "int32"),
            **context)
        steps.append(as_numpy(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_backbone_contract_and_a_seq2seq_lm_that_learns_to_reverse(tmp_path):
    inputs = seq2seq_inputs()
    run_backbone_test("transformer", "tiny", inputs,
                      {"encoder_sequence_output": (BATCH, ENCODER_LENGTH, 32),
                       "decoder_sequence_output": (BATCH, DECODER_LENGTH, 32)}, tmp_path)
    model = zoo.build("transformer", task="seq2seq_lm", dropout=0.0, num_layers=1,
                      num_decoder_layers=1)
    inputs, targets, weights = reversal_batch()
    inputs["decoder_token_ids"][:, 0] = 1023  # the decoder starts from the last id, as Marian
    run_model_saving_test(model, inputs, tmp_path)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.
                  SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    model.fit(inputs, targets, sample_weight=weights, epochs=80, batch_size=BATCH, verbose=0)
    predicted = predict(model, inputs).argmax(-1)
    np.testing.assert_array_equal(predicted[weights == 1], targets[weights == 1])


def transformer_parameters(vocabulary_size, hidden_dim, intermediate_dim, num_layers):
    """Weight by weight, as the module docstring's formula: tied table, biases everywhere,
    two LayerNorms per encoder block and three per decoder block, the logits bias."""
    d, f = hidden_dim, intermediate_dim
    attention = 4 * (d * d + d)
    feedforward = 2 * d * f + f + d
    encoder = attention + feedforward + 2 * 2 * d
    decoder = 2 * attention + feedforward + 3 * 2 * d
    return vocabulary_size * d + num_layers * (encoder + decoder) + vocabulary_size


@pytest.mark.parametrize("size,paper,expected", [
    ("base", 65e6, transformer_parameters(37000, 512, 2048, 6)),
    ("big", 213e6, transformer_parameters(37000, 1024, 4096, 6)),
])
@pytest.mark.slow
def test_the_papers_sizes_have_its_parameter_counts(size, paper, expected):
    assert expected == {"base": 63_119_496, "big": 214_282_376}[size]
    assert abs(expected - paper) / paper < 0.03  # its vocabulary is "about 37000" tokens
    assert catalog.parameter_counts("transformer", size)[1] == expected


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"num_heads": 3}, "hidden_dim=32 is not divisible by num_heads=3"),
        ({"hidden_dim": 33, "num_heads": 3}, "hidden_dim must be even"),
        ({"num_decoder_layers": 0}, "num_decoder_layers must be a positive int, got 0"),
        ({"activation": "swiglu"}, "activation='swiglu' is unknown"),
        ({"attention_dropout": 1.0}, "attention_dropout must be in [0, 1), got 1.0"),
        ({"scale_embedding": 1}, "scale_embedding must be True or False, got 1"),
        ({"decoder_start_token_id": 1024}, "must be None or an id in [0, 1024), got 1024"),
        ({"d_model": 64}, "Unknown transformer config field(s) ['d_model']"),
    ],
)
def test_bad_config_is_a_value_error_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        zoo.build("transformer", **overrides)
