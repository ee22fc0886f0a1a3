"""The layers that read kernels directly for speed (attention's projections, the tied
vocabulary head) follow a quantized projection's own computation and a LoRA update."""

import keras
import numpy as np
import pytest

from keras_transformers import MultiHeadAttention, TokenAndPositionEmbedding


def projections(attention):
    return [attention.query_dense, attention.key_dense, attention.value_dense,
            attention.output_dense]


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_attention_with_quantized_projections_stays_close_to_float(mode):
    x = np.random.default_rng(0).normal(size=(2, 5, 32)).astype("float32")
    attention = MultiHeadAttention(num_heads=4, num_kv_heads=2, use_rotary=True)
    expected = np.asarray(attention(x, use_causal_mask=True))
    for dense in projections(attention):
        dense.quantize(mode)
    out = np.asarray(attention(x, use_causal_mask=True))
    error = np.abs(out - expected).max() / np.abs(expected).max()
    assert error < (0.03 if mode == "int8" else 0.3)  # integers read as floats: error >> 1


def test_attention_decodes_through_quantized_projections_as_it_runs_the_prompt():
    x = np.random.default_rng(1).normal(size=(1, 4, 32)).astype("float32")
    attention = MultiHeadAttention(num_heads=4)
    attention(x)
    for dense in projections(attention):
        dense.quantize("int8")
    whole = np.asarray(attention(x, use_causal_mask=True))
    cache = np.zeros((1, 2, 4, 4, 8), "float32")
    steps = []
    for i in range(4):
        out, cache = attention(x[:, i:i + 1], cache=cache, cache_index=i)
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, atol=1e-5)


def test_attention_with_lora_equals_attention_with_the_merged_kernels():
    x = np.random.default_rng(2).normal(size=(2, 5, 32)).astype("float32")
    attention = MultiHeadAttention(num_heads=4)
    attention(x)
    rng = np.random.default_rng(3)
    for dense in projections(attention):
        dense.enable_lora(2)
        dense.lora_kernel_b.assign(rng.normal(0, 0.5, dense.lora_kernel_b.shape))
    merged = MultiHeadAttention(num_heads=4)
    merged(x)
    for dense, target in zip(projections(attention), projections(merged), strict=True):
        target.kernel.assign(keras.ops.convert_to_numpy(dense.kernel))  # base + delta
        target.bias.assign(keras.ops.convert_to_numpy(dense.bias))
    np.testing.assert_allclose(np.asarray(attention(x)), np.asarray(merged(x)), atol=1e-5)


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_the_tied_head_of_a_quantized_table_stays_close_to_float(mode):
    embed = TokenAndPositionEmbedding(vocabulary_size=50, sequence_length=8, hidden_dim=32,
                                      position=None)
    embed(np.array([[1, 2]]))
    hidden = np.random.default_rng(4).normal(size=(3, 4, 32)).astype("float32")
    expected = np.asarray(embed(hidden, reverse=True))
    embed.token_embedding.quantize(mode)
    for states in (hidden, hidden[:, -1]):  # the sequence, and one state a row (decoding)
        out = np.asarray(embed(states, reverse=True))
        reference = expected if states.ndim == 3 else expected[:, -1]
        error = np.abs(out - reference).max() / np.abs(reference).max()
        assert error < (0.03 if mode == "int8" else 0.3)
