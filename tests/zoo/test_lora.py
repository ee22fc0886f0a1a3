"""`model.backbone.enable_lora(rank)`: only the low-rank pairs (and the head) train, the
trainable count drops, a `.keras` file, `zoo.lora.merged` and `zoo.save_pretrained` hold the
merged kernels with the LoRA model's outputs, and bad arguments are one-line errors."""

import keras
import numpy as np
import pytest

import zoo
from zoo import lora


def lm_inputs(rows=4, length=8, seed=0):
    ids = np.random.default_rng(seed).integers(0, 1024, (rows, length + 1)).astype("int32")
    return {"token_ids": ids[:, :-1], "padding_mask": np.ones((rows, length), "int32")}, \
        ids[:, 1:]


def values(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


def changed_by_fit(model):
    """`(paths of every weight, paths of those one epoch of `fit` changed)`."""
    x, y = lm_inputs()
    before = values(model)
    model.compile(learning_rate=1e-2)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = values(model)
    return set(before), {path for path in before if not np.array_equal(before[path], after[path])}


def with_trained_pairs(model, seed=0):
    """Give every LoRA pair a non-zero `b`, as after training (it starts at zero)."""
    rng = np.random.default_rng(seed)
    for layer in lora.lora_layers(model):
        layer.lora_kernel_b.assign(rng.normal(0, 0.2, layer.lora_kernel_b.shape))
    return model


def test_lora_counts_the_pairs_it_adds_and_the_trainable_parameters_drop():
    model = zoo.build("bert", task="classifier", num_classes=3)
    everything = lora.trainable_parameters(model)
    layers = model.backbone.enable_lora(rank=2)
    assert [layer.name for layer in layers] == ["query", "key", "value", "attention_output"] * 2
    # Keras' pairs: query/key/value a [32, 2 heads, 2] and b [2, 16]; output a [2, 16, 2],
    # b [2, 32]; the classifier's head (32 * 3 + 3) stays trainable.
    pairs = 2 * (3 * (32 * 2 * 2 + 2 * 16) + (2 * 16 * 2 + 2 * 32))
    assert lora.trainable_parameters(model) == pairs + 32 * 3 + 3
    assert lora.trainable_parameters(model) < everything / 10


def test_feedforward_targets_and_alpha():
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    layers = model.backbone.enable_lora(4, lora_alpha=8, target_layer_names=lora.FEEDFORWARD)
    assert [layer.name for layer in layers] == ["intermediate", "gate", "output"] * 2
    assert {(layer.lora_rank, layer.lora_alpha) for layer in layers} == {(4, 8)}


@pytest.mark.slow
def test_fit_changes_only_the_low_rank_weights():
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    model.backbone.enable_lora(4)
    paths, changed = changed_by_fit(model)
    pairs = {path for path in paths if "/lora_kernel_" in path}
    assert len(pairs) == 2 * 4 * 2  # 2 layers x 4 projections x (a, b)
    assert changed == pairs  # every base weight, the tied head included, is as it was


@pytest.mark.slow
def test_merged_copy_and_keras_file_equal_the_lora_model(tmp_path):
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    model.backbone.enable_lora(4, target_layer_names=lora.ATTENTION + lora.FEEDFORWARD)
    x, _ = lm_inputs()
    base = model.predict(x, verbose=0)
    expected = with_trained_pairs(model).predict(x, verbose=0)
    assert np.abs(expected - base).max() > 1e-2  # the pairs matter

    merged = lora.merged(model)
    assert lora.lora_layers(merged) == []
    np.testing.assert_allclose(merged.predict(x, verbose=0), expected, atol=1e-6)

    model.save(tmp_path / "lora.keras")
    loaded = keras.models.load_model(tmp_path / "lora.keras")
    assert lora.lora_layers(loaded) == []
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)


def test_save_pretrained_writes_the_merged_weights(tmp_path):
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    model.backbone.enable_lora(4)
    with_trained_pairs(model)
    x, _ = lm_inputs()
    zoo.save_pretrained(model, tmp_path / "hf")
    reloaded = zoo.from_pretrained(tmp_path / "hf")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


@pytest.mark.slow
def test_lora_on_an_int8_model_trains_the_pairs_over_integer_kernels():
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    model.quantize("int8")
    model.backbone.enable_lora(2)
    paths, changed = changed_by_fit(model)
    assert changed == {path for path in paths if "/lora_kernel_" in path}


@pytest.mark.parametrize("arguments, message", [
    ({"rank": 0}, r"LoRA rank must be a positive int, got 0"),
    ({"rank": 2, "lora_alpha": -1}, r"lora_alpha must be a positive number or None, got -1"),
    ({"rank": 2, "target_layer_names": ["query", "dense"]},
     r"Unknown LoRA target_layer_names \['dense'\]; choose from \('query'"),
])
def test_bad_lora_arguments_are_one_line_errors(arguments, message):
    model = zoo.build("bert", task="classifier", num_classes=2)
    with pytest.raises(ValueError, match=message):
        model.backbone.enable_lora(**arguments)
    assert lora.lora_layers(model) == []  # nothing was changed


def test_lora_is_enabled_once():
    model = zoo.build("bert", task="classifier", num_classes=2)
    model.backbone.enable_lora(2)
    with pytest.raises(ValueError, match=r"has LoRA already \(rank 2\): enable it once"):
        model.backbone.enable_lora(4)
