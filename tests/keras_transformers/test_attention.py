import keras
import numpy as np
import pytest

from keras_transformers import MultiHeadAttention, dot_product_attention
from keras_transformers.attention import recording_scores
from tests.helpers import as_numpy, assert_close, random_inputs, run_layer_test


def build(layer, *inputs, **kwargs):
    layer(*inputs, **kwargs)
    return layer


def test_equals_keras_multi_head_attention_with_the_same_weights():
    query, value = random_inputs(2, 5, 16), random_inputs(2, 7, 16, seed=1)
    mask = np.random.default_rng(2).random((2, 5, 7)) > 0.3
    reference = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4)
    expected, expected_scores = reference(
        query, value, attention_mask=mask, return_attention_scores=True
    )
    ours = build(MultiHeadAttention(num_heads=4), query, value)
    ours.set_weights(reference.get_weights())

    output, scores = ours(query, value, attention_mask=mask, return_attention_scores=True)
    assert_close(output, expected, atol=1e-5)
    assert_close(scores, expected_scores, atol=1e-5)
    assert_close(ours(query, value, attention_mask=mask), expected, atol=1e-5)  # fused path


def test_fused_and_explicit_paths_agree_with_bias_mask_and_grouped_heads():
    rng = np.random.default_rng(0)
    query = random_inputs(2, 5, 6, 8)
    key, value = random_inputs(2, 7, 2, 8, seed=1), random_inputs(2, 7, 2, 8, seed=2)
    mask = rng.random((2, 1, 5, 7)) > 0.3
    bias = random_inputs(1, 6, 5, 7, seed=3)
    fused = dot_product_attention(query, key, value, mask=mask, bias=bias)
    explicit, scores = dot_product_attention(
        query, key, value, mask=mask, bias=bias, return_scores=True
    )
    assert_close(fused, explicit)
    # Grouped heads: query head h reads key/value head h // 3.
    repeated = dot_product_attention(
        query, np.repeat(key, 3, axis=2), np.repeat(value, 3, axis=2), mask=mask, bias=bias
    )
    assert_close(explicit, repeated)
    # Against numpy, head by head.
    for head in range(6):
        logits = np.einsum("bqd,bkd->bqk", query[:, :, head], key[:, :, head // 3]) / 8**0.5
        logits = np.where(mask[:, 0], logits + bias[0, head], -1e9)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert_close(scores[:, head], probs)
        assert_close(explicit[:, :, head], np.einsum("bqk,bkd->bqd", probs, value[:, :, head // 3]))


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_attention_rows_sum_to_one(num_kv_heads):
    x = random_inputs(2, 6, 16)
    padding = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    layer = MultiHeadAttention(4, num_kv_heads=num_kv_heads)
    _, scores = layer(x, padding_mask=padding, use_causal_mask=True, return_attention_scores=True)
    scores = as_numpy(scores)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-6)
    assert scores[0, :, :, 4:].max() == 0.0  # padded keys get no weight
    assert np.triu(scores[1, 0], k=1).max() == 0.0  # nor do future keys


def test_changing_padded_tokens_leaves_real_tokens_unchanged():
    x = random_inputs(2, 6, 16)
    padding = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
    changed = x.copy()
    changed[~padding] = 100.0
    layer = MultiHeadAttention(4)
    before = as_numpy(layer(x, padding_mask=padding))
    after = as_numpy(layer(changed, padding_mask=padding))
    np.testing.assert_allclose(after[padding], before[padding], atol=1e-5)
    assert np.abs(after[~padding] - before[~padding]).max() > 1e-3


@pytest.mark.parametrize("use_rotary", [False, True])
def test_causal_change_at_t_leaves_earlier_outputs_unchanged(use_rotary):
    x = random_inputs(1, 8, 16)
    layer = MultiHeadAttention(4, num_kv_heads=2, use_rotary=use_rotary)
    before = as_numpy(layer(x, use_causal_mask=True))
    for t in (0, 3, 7):
        changed = x.copy()
        changed[:, t] += 5.0
        after = as_numpy(layer(changed, use_causal_mask=True))
        np.testing.assert_allclose(after[:, :t], before[:, :t], atol=1e-5)
        assert np.abs(after[:, t:] - before[:, t:]).max() > 1e-3


@pytest.mark.parametrize(
    "num_kv_heads,use_rotary", [(4, False), (4, True), (2, False), (2, True), (1, True)]
)
def test_decoding_with_cache_equals_full_causal_pass(num_kv_heads, use_rotary):
    batch, length, max_length = 2, 7, 10
    x = random_inputs(batch, length, 16)
    layer = MultiHeadAttention(4, num_kv_heads=num_kv_heads, use_rotary=use_rotary)
    full = as_numpy(layer(x, use_causal_mask=True))

    cache = np.zeros((batch, 2, max_length, num_kv_heads, 4), "float32")
    prompt = 3  # prefill three tokens at once, then one at a time
    output, cache = layer(x[:, :prompt], cache=cache, cache_index=0)
    steps = [as_numpy(output)]
    for index in range(prompt, length):
        output, cache = layer(x[:, index:index + 1], cache=cache, cache_index=index)
        steps.append(as_numpy(output))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    assert np.abs(as_numpy(cache)[:, :, length:]).max() == 0.0  # untouched beyond the end


def test_cache_index_may_be_a_tensor_inside_a_compiled_function():
    x = random_inputs(1, 4, 16)
    layer = MultiHeadAttention(4, use_rotary=True)
    full = as_numpy(layer(x, use_causal_mask=True))
    cache = np.zeros((1, 2, 4, 4, 4), "float32")

    model_input = keras.Input((1, 16), batch_size=1)
    cache_input = keras.Input((2, 4, 4, 4), batch_size=1)
    index_input = keras.Input((), batch_size=1, dtype="int32")
    step = keras.Model(
        [model_input, cache_input, index_input],
        layer(model_input, cache=cache_input, cache_index=index_input[0]),
    )
    step.compile(jit_compile=True)
    outputs = []
    for index in range(4):
        output, cache = step.predict_on_batch(
            [x[:, index:index + 1], cache, np.array([index], "int32")]
        )
        outputs.append(as_numpy(output))
    np.testing.assert_allclose(np.concatenate(outputs, axis=1), full, atol=1e-5)


def test_precomputed_cross_attention_cache_equals_direct_cross_attention():
    query, encoded = random_inputs(2, 3, 16), random_inputs(2, 5, 16, seed=1)
    padding = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    layer = MultiHeadAttention(4, num_kv_heads=2)
    direct = layer(query, encoded, padding_mask=padding)
    cache = layer.compute_cache(encoded)
    cached, same_cache = layer(query, padding_mask=padding, cache=cache)
    assert_close(cached, direct)
    assert_close(same_cache, cache, atol=0)


def test_additive_bias_is_added_to_logits_before_softmax():
    x = random_inputs(1, 3, 8)
    layer = MultiHeadAttention(2, scale=1.0)
    bias = np.zeros((1, 2, 3, 3), "float32")
    bias[0, :, :, 1] = -1e9  # forbid key 1 through the bias alone
    _, scores = layer(x, attention_bias=bias, return_attention_scores=True)
    assert as_numpy(scores)[..., 1].max() == 0.0


def test_recording_keeps_the_scores_of_eager_calls_only_inside_the_context():
    query, value = random_inputs(2, 5, 16), random_inputs(2, 7, 16, seed=1)
    padding = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]], bool)
    layer = MultiHeadAttention(4, num_kv_heads=2)
    expected, expected_scores = layer(query, value, padding_mask=padding,
                                      return_attention_scores=True)
    layer(query, value, padding_mask=padding)
    assert not layer.recording and layer.recorded_scores is None           # off by default

    with recording_scores([layer]) as recording:
        assert recording == [layer] and layer.recording
        output = layer(query, value, padding_mask=padding)           # returns the output only
        assert not isinstance(output, tuple)
        assert_close(output, expected, atol=1e-6)
        np.testing.assert_array_equal(as_numpy(layer.recorded_scores), as_numpy(expected_scores))
    assert not layer.recording and layer.recorded_scores is None        # cleared on exit
    layer(query, value, padding_mask=padding)
    assert layer.recorded_scores is None                              # and off again

    with pytest.raises(RuntimeError, match="inside"), recording_scores([layer]):
        layer(query, value)
        raise RuntimeError("inside")
    assert not layer.recording and layer.recorded_scores is None        # also after an error
    # Traced calls keep nothing: a functional build, and a compiled predict.
    traced, symbolic = MultiHeadAttention(4), (keras.Input((5, 16)), keras.Input((7, 16)))
    with recording_scores([traced]):
        model = keras.Model(symbolic, traced(*symbolic))
        assert traced.recorded_scores is None
        model.predict([query, value], verbose=0)
        assert traced.recorded_scores is None
        model([query, value])                                          # eager: recorded
        assert traced.recorded_scores.shape == (2, 4, 5, 7)
    with pytest.raises(TypeError, match="MultiHeadAttention layers, got a Dense"):
        with recording_scores([keras.layers.Dense(2)]):
            pass


def test_layer_round_trips_compiles_and_runs_in_bfloat16(tmp_path):
    run_layer_test(
        lambda **kw: MultiHeadAttention(4, num_kv_heads=2, use_rotary=True, dropout=0.1, **kw),
        {"query": random_inputs(2, 5, 16), "value": random_inputs(2, 6, 16, seed=1)},
        {"padding_mask": None},
        expected_shape=(2, 5, 16),
        tmp_path=tmp_path,
    )


def test_layer_test_with_causal_mask_and_no_biases(tmp_path):
    run_layer_test(
        lambda **kw: MultiHeadAttention(2, head_dim=6, use_bias=False, output_dim=10, **kw),
        {"query": random_inputs(2, 5, 8)},
        {"use_causal_mask": True},
        expected_shape=(2, 5, 10),
        tmp_path=tmp_path,
    )


def test_heads_that_do_not_divide_the_width_name_the_fix():
    with pytest.raises(ValueError, match=r"hidden_dim \(30\) is not divisible by num_heads \(4\)"):
        MultiHeadAttention(4)(random_inputs(1, 2, 30))


def test_kv_heads_that_do_not_divide_heads_name_the_fix():
    with pytest.raises(ValueError, match=r"num_heads \(6\) must be a multiple of num_kv_heads"):
        MultiHeadAttention(6, num_kv_heads=4)


def test_mask_of_the_wrong_shape_is_an_error_naming_both_shapes():
    x = random_inputs(2, 5, 16)
    with pytest.raises(ValueError, match=r"`padding_mask` has shape \(2, 4\), expected \(\?, 5\)"):
        MultiHeadAttention(4)(x, padding_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"`attention_mask` has shape \(2, 5\)"):
        MultiHeadAttention(4)(x, attention_mask=np.ones((2, 5), bool))


def test_cache_too_short_for_the_sequence_says_how_long_it_must_be():
    layer = MultiHeadAttention(4)
    cache = np.zeros((1, 2, 6, 4, 4), "float32")
    with pytest.raises(ValueError, match=r"holds 6 positions .* \(cache_index 4 \+ 3 new tokens\)"):
        layer(random_inputs(1, 3, 16), cache=cache, cache_index=4)


def test_cache_of_the_wrong_layout_is_an_error():
    layer = MultiHeadAttention(4, num_kv_heads=2)
    with pytest.raises(ValueError, match=r"expected \[batch, 2, max_length, 2, 4\]"):
        layer(random_inputs(1, 1, 16), cache=np.zeros((1, 2, 6, 4, 4), "float32"), cache_index=0)


def test_query_key_and_value_projections_start_different():
    layer = MultiHeadAttention(4, kernel_initializer="glorot_uniform")
    layer(random_inputs(1, 2, 16))
    kernels = [as_numpy(d.kernel) for d in (layer.query_dense, layer.key_dense, layer.value_dense)]
    assert not np.allclose(kernels[0], kernels[1])
    assert not np.allclose(kernels[1], kernels[2])
