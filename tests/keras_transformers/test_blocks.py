import numpy as np
import pytest

from keras_transformers import DecoderBlock, EncoderBlock
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test


def test_post_norm_encoder_block_is_layer_norm_of_each_residual_sum():
    x = random_inputs(2, 5, 16)
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    block = EncoderBlock(4, 32, activation="gelu", norm_first=False)
    output = block(x, padding_mask=padding)

    h = as_numpy(block.attention_norm(x + block.attention(x, padding_mask=padding)))
    expected = block.feedforward_norm(h + block.feedforward(h))
    assert_close(output, expected)


def test_pre_norm_encoder_block_adds_each_sublayer_of_the_normalized_input():
    x = random_inputs(2, 5, 16)
    block = EncoderBlock(4, 32, activation="swiglu", norm="rms_norm", norm_first=True,
                         use_bias=False)
    output = block(x)

    h = x + as_numpy(block.attention(block.attention_norm(x)))
    expected = h + as_numpy(block.feedforward(block.feedforward_norm(h)))
    assert_close(output, expected)
    assert not any("bias" in w.path or "beta" in w.path for w in block.weights)


def test_encoder_block_returns_row_stochastic_attention_scores():
    block = EncoderBlock(4, 32)
    output, scores = block(random_inputs(2, 5, 16), return_attention_scores=True)
    assert tuple(scores.shape) == (2, 4, 5, 5)
    np.testing.assert_allclose(as_numpy(scores).sum(-1), 1.0, atol=1e-6)
    assert_close(output, block(random_inputs(2, 5, 16)))


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_is_causal(norm_first):
    x = random_inputs(1, 6, 16)
    block = DecoderBlock(4, 32, norm_first=norm_first)
    before = as_numpy(block(x))
    changed = x.copy()
    changed[:, 3] += 3.0
    after = as_numpy(block(changed))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm_first": True},  # GPT-2 style
        {"norm_first": True, "norm": "rms_norm", "activation": "swiglu", "use_bias": False,
         "num_kv_heads": 2, "use_rotary": True},  # Llama style
        {"norm_first": True, "norm": "rms_norm", "activation": "relu", "use_bias": False,
         "attention_scale": 1.0, "use_cross_attention": True},  # T5 style
    ],
    ids=["gpt2", "llama", "t5"],
)
def test_decoding_with_caches_equals_the_full_forward_pass(kwargs):
    x, encoded = random_inputs(2, 6, 16), random_inputs(2, 4, 16, seed=1)
    encoder_padding = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    block = DecoderBlock(4, 32, **kwargs)
    cross = kwargs.get("use_cross_attention", False)
    context = {"encoder_outputs": encoded, "encoder_padding_mask": encoder_padding} if cross else {}
    full = as_numpy(block(x, **context))

    kv_heads = kwargs.get("num_kv_heads", 4)
    cache = np.zeros((2, 2, 8, kv_heads, 4), "float32")
    if cross:  # the encoder's keys and values, computed once
        context = {"cross_attention_cache": block.cross_attention.compute_cache(encoded),
                   "encoder_padding_mask": encoder_padding}
    steps = []
    output, cache = block(x[:, :2], cache=cache, cache_index=0, **context)
    steps.append(as_numpy(output))
    for index in range(2, 6):
        output, cache = block(x[:, index:index + 1], cache=cache, cache_index=index, **context)
        steps.append(as_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_decoder_block_returns_self_and_cross_scores_and_cache():
    block = DecoderBlock(4, 32, use_cross_attention=True)
    x, encoded = random_inputs(1, 3, 16), random_inputs(1, 5, 16, seed=1)
    cache = np.zeros((1, 2, 4, 4, 4), "float32")
    output, (self_scores, cross_scores), cache = block(
        x, encoder_outputs=encoded, cache=cache, cache_index=0, return_attention_scores=True
    )
    assert tuple(self_scores.shape) == (1, 4, 3, 4)
    assert tuple(cross_scores.shape) == (1, 4, 3, 5)
    assert as_numpy(self_scores)[..., 3].max() == 0.0  # the empty cache slot
    assert_close(output, block(x, encoder_outputs=encoded))


def test_cross_attention_block_without_encoder_outputs_says_what_to_pass():
    block = DecoderBlock(4, 32, use_cross_attention=True)
    with pytest.raises(ValueError, match="pass `encoder_outputs`"):
        block(random_inputs(1, 3, 16))


def test_unknown_norm_lists_the_choices():
    with pytest.raises(ValueError, match=r"Unknown norm 'batch_norm'.*layer_norm"):
        EncoderBlock(4, 32, norm="batch_norm")


def test_encoder_block_layer_test(tmp_path):
    run_layer_test(
        lambda **kw: EncoderBlock(4, 32, dropout=0.1, attention_dropout=0.1,
                                  feedforward_dropout=0.1, **kw),
        {"inputs": random_inputs(2, 5, 16), "padding_mask": np.ones((2, 5), bool)},
        expected_shape=(2, 5, 16),
        tmp_path=tmp_path,
    )


@pytest.mark.slow
def test_decoder_block_layer_test(tmp_path):
    run_layer_test(
        lambda **kw: DecoderBlock(4, 32, norm_first=True, norm="rms_norm", activation="geglu",
                                  use_cross_attention=True, num_kv_heads=2, use_rotary=True,
                                  **kw),
        {"inputs": random_inputs(2, 5, 16), "encoder_outputs": random_inputs(2, 3, 16, seed=1)},
        expected_shape=(2, 5, 16),
        tmp_path=tmp_path,
    )
