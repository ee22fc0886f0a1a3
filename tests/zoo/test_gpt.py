import keras
import numpy as np
import pytest
from keras import ops

import zoo
from tests.helpers import (
    as_numpy,
    predict,
    run_backbone_test,
    run_task_test,
)
from zoo import catalog

BATCH, LENGTH, VOCABULARY = 4, 12, 1024
SIZES = ["tiny", "tiny_llama"]  # GPT-2 style and Llama style


def text_inputs(seed=0, left_padded=False):
    """Rows of different lengths: 12, 8 and 5 real tokens, right-padded (one row left-padded
    when asked, as batched prompts are)."""
    rng = np.random.default_rng(seed)
    padding_mask = np.ones((BATCH, LENGTH), "int32")
    padding_mask[1, 8:] = 0
    padding_mask[3, 5:] = 0
    if left_padded:
        padding_mask[2, :3] = 0
    token_ids = rng.integers(1, VOCABULARY, (BATCH, LENGTH)).astype("int32") * padding_mask
    return {"token_ids": token_ids, "padding_mask": padding_mask}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_backbone_outputs_are_causal(size, tmp_path):
    inputs = text_inputs()
    backbone, outputs = run_backbone_test("gpt", size, inputs,
                                          {"sequence_output": (BATCH, LENGTH, 32)}, tmp_path)
    outputs = outputs["sequence_output"]
    changed = {**inputs, "token_ids": inputs["token_ids"].copy()}
    changed["token_ids"][:, 6] += 1  # a token at t=6 changes positions >= 6 only
    again = predict(backbone, changed)["sequence_output"]
    np.testing.assert_allclose(again[:, :6], outputs[:, :6], atol=1e-6)
    assert not np.allclose(again[:, 6], outputs[:, 6], atol=1e-3)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_causal_lm_round_trips_and_overfits_a_batch(size, tmp_path):
    model = zoo.build("gpt", size, task="causal_lm", dropout=0.0)
    inputs = text_inputs()
    x = {name: value[:, :-1] for name, value in inputs.items()}
    next_tokens, weights = inputs["token_ids"][:, 1:], inputs["padding_mask"][:, 1:]
    run_task_test(model, x, next_tokens, tmp_path, (BATCH, LENGTH - 1, VOCABULARY),
                  sample_weight=weights, steps=40, max_loss=0.1, learning_rate=1e-2)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_classifier_round_trips_and_overfits_a_batch(size, tmp_path):
    model = zoo.build("gpt", size, task="classifier", num_classes=3, dropout=0.0)
    run_task_test(model, text_inputs(), np.array([0, 1, 2, 1]), tmp_path, (BATCH, 3),
                  steps=20, max_loss=0.05, learning_rate=1e-2)


@pytest.mark.parametrize("size", SIZES)
def test_cached_decoding_matches_the_full_forward_pass(size):
    """Prefill 4 tokens, then decode one at a time into a cache longer than the batch; the
    logits of every real token equal the uncached ones, on right- and left-padded rows."""
    model = zoo.build("gpt", size, task="causal_lm")
    inputs = text_inputs(left_padded=True)
    expected = predict(model, inputs)
    max_length, prompt = LENGTH + 4, 4
    padding_mask = np.pad(inputs["padding_mask"], ((0, 0), (0, max_length - LENGTH)))
    c = model.backbone.config
    cache = model.make_cache(BATCH, max_length)
    assert tuple(cache.shape) == (BATCH, c.num_layers, 2, max_length, c.kv_heads, c.head_dim)
    logits, cache = model.call_with_cache(inputs["token_ids"][:, :prompt], cache, 0,
                                          padding_mask=padding_mask)
    steps = [as_numpy(logits)]
    for index in range(prompt, LENGTH):
        logits, cache = model.call_with_cache(
            inputs["token_ids"][:, index:index + 1], cache,
            ops.convert_to_tensor(index, "int32"), padding_mask=padding_mask,
        )
        steps.append(as_numpy(logits))
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[real], expected[real], atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_lm_head_is_tied_unless_tie_word_embeddings_is_false(size):
    tied = zoo.build("gpt", size, task="causal_lm")
    table = tied.backbone.token_embedding.token_embedding.embeddings
    assert sum(w is table for w in tied.weights) == 1
    assert tied.count_params() == tied.backbone.count_params()

    untied = zoo.build("gpt", size, task="causal_lm", tie_word_embeddings=False)
    assert untied.lm_head.kernel.shape == (32, VOCABULARY)
    assert untied.count_params() == untied.backbone.count_params() + 32 * VOCABULARY
    inputs = text_inputs()
    hidden = untied.backbone(inputs)["sequence_output"]
    np.testing.assert_allclose(as_numpy(untied(inputs)), as_numpy(untied.lm_head(hidden)),
                               atol=1e-6)


def test_make_cache_uses_the_compute_dtype_and_fits_learned_positions():
    mixed = zoo.build("gpt", "tiny_llama", task="causal_lm", dtype="mixed_bfloat16")
    assert keras.backend.standardize_dtype(mixed.make_cache(1, 4).dtype) == "bfloat16"
    with pytest.raises(ValueError, match="max_length 129 exceeds the 128 learned positions"):
        zoo.build("gpt", "tiny", task="causal_lm").make_cache(1, 129)


@pytest.mark.parametrize(
    "size,task,expected",
    [
        # HF GPT2Model: V*d + P*d + L*(4d^2 + 4d + 2*d*f + f + d + 4d) + 2d with V=50257,
        # P=1024, f=4d (attention, MLP, two LayerNorms per layer; the final LayerNorm).
        ("gpt2", None, 124_439_808),  # d=768, L=12: 39,383,808 + 12 * 7,087,872 + 1,536
        ("gpt2-medium", None, 354_823_168),  # d=1024, L=24: 52,511,744 + 24*12,596,224 + 2,048
        # HF LlamaForCausalLM (tied): V*d + L*(2d^2 + 2*d*d_kv + 3*d*f + 2d) + d with V=49152,
        # d=576, d_kv=3*64, f=1536, L=30: 28,311,552 + 30 * 3,540,096 + 576.
        ("smollm2-135m", "causal_lm", 134_515_008),
    ],
)
@pytest.mark.slow
def test_published_sizes_have_the_reference_parameter_counts(size, task, expected):
    # The catalog's counts (cached: the README table test reuses them) are
    # zoo.count_params'.
    assert catalog.parameter_counts("gpt", size)[task is not None] == expected


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"position": "alibi"}, r"position must be one of \('learned', 'rotary'\), got 'alibi'"),
        ({"hidden_dim": 30, "num_heads": 4}, r"hidden_dim=30 is not divisible by num_heads=4"),
        ({"num_heads": 4, "num_kv_heads": 3},
         r"num_heads=4 is not a multiple of num_kv_heads=3"),
        ({"norm": "batch_norm"}, r"norm must be one of .*, got 'batch_norm'"),
        ({"num_layers": 0}, r"GPTConfig.num_layers must be a positive int, got 0"),
    ],
)
def test_bad_configs_are_value_errors_naming_the_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("gpt", "tiny", **overrides)
