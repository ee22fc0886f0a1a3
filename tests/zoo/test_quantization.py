"""`model.quantize(mode)` on every family: the answers of trained models survive it (top-1
and greedy tokens), a `.keras` file keeps the quantized model exactly, it trains, and what
it cannot do is a one-line error. The models: tests/fixtures/make_trained.py."""

import keras
import numpy as np
import pytest

import zoo
from tests.fixtures.make_trained import MODELS, OUT, held_out, rule
from zoo.quantization import quantization_modes

LANGUAGE_MODELS = ("gpt_llama", "gpt2", "t5")


def trained(name):
    return keras.models.load_model(OUT / f"{name}.keras")


def top1(logits):
    return np.asarray(logits).argmax(-1)


def greedy(model, name, tokens=6):
    """Greedy continuations of four prompts of the rule (token ids)."""
    starts = np.array([3, 17, 40, 61])
    if name == "t5":
        source = np.repeat(starts[:, None], 8, axis=1).astype("int32")
        return model.generate({"encoder_token_ids": source,
                               "encoder_padding_mask": np.ones_like(source)},
                              max_new_tokens=tokens)["token_ids"]
    prompts = np.stack([starts, rule(starts), rule(rule(starts))], axis=1).astype("int32")
    return np.asarray(model.generate(prompts, max_new_tokens=tokens))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_int8_keeps_the_answers_of_every_family_and_round_trips_a_keras_file(name, tmp_path):
    model = trained(name)
    x, labels = held_out(name)
    fp32 = model.predict(x, verbose=0)
    assert (top1(fp32) == labels).mean() == 1.0  # the fixture learned its rule
    float_tokens = greedy(model, name) if name in LANGUAGE_MODELS else None

    model.quantize("int8")
    assert quantization_modes(model) == ["int8"]
    int8 = model.predict(x, verbose=0)
    assert (top1(int8) == top1(fp32)).mean() >= 0.99
    np.testing.assert_allclose(int8, fp32, atol=0.05 * np.abs(fp32).max())
    if name in LANGUAGE_MODELS:  # cached decoding, one token a step, through int8 layers
        np.testing.assert_array_equal(greedy(model, name), float_tokens)

    model.save(tmp_path / "int8.keras")
    loaded = keras.models.load_model(tmp_path / "int8.keras")
    assert quantization_modes(loaded) == ["int8"]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), int8)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int4", "float8"])
@pytest.mark.parametrize("name", ["gpt_llama", "bert"])
def test_int4_and_float8_keep_the_answers_and_round_trip(name, mode, tmp_path):
    model = trained(name)
    x, _ = held_out(name)
    fp32 = model.predict(x, verbose=0)
    model.quantize(mode)
    quantized = model.predict(x, verbose=0)
    assert (top1(quantized) == top1(fp32)).mean() >= 0.99
    model.save(tmp_path / "q.keras")
    loaded = keras.models.load_model(tmp_path / "q.keras")
    assert quantization_modes(loaded) == [mode]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), quantized)


def test_the_tied_head_reads_the_quantized_table_not_its_integers():
    model = zoo.build("gpt", task="causal_lm")
    ids = {"token_ids": np.array([[5, 9, 2, 7]]), "padding_mask": np.ones((1, 4), "int32")}
    fp32 = model.predict(ids, verbose=0)
    model.quantize("int8")
    np.testing.assert_allclose(model.predict(ids, verbose=0), fp32,
                               atol=0.02 * np.abs(fp32).max())


def test_a_quantized_model_trains_its_float_weights_only():
    model = zoo.build("bert", task="classifier", num_classes=2)
    model.quantize("int8")
    x = {"token_ids": np.arange(16).reshape(2, 8) % 50 + 5, "padding_mask": np.ones((2, 8)),
         "segment_ids": np.zeros((2, 8))}
    x = {k: v.astype("int32") for k, v in x.items()}
    before = {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}
    model.compile(learning_rate=1e-2)
    history = model.fit(x, np.array([0, 1]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    kernel = "transformer_layer_0/attention/query/kernel"
    assert after[kernel].dtype == np.int8 and kernel not in changed
    assert "transformer_layer_0/attention/query/bias" in changed


@pytest.mark.parametrize("call, message", [
    (lambda m: m.quantize("gptq", config=keras.quantizers.GPTQConfig(
        dataset=["a"], tokenizer=lambda t: t)),
     r"quantize mode 'gptq' is not supported for zoo models; choose one of \('int8'"),
    (lambda m: m.quantize(config=keras.quantizers.Int8QuantizationConfig(
        activation_quantizer=None)), r"custom quantizers are not kept in \.keras files"),
    (lambda m: (m.quantize("int8"), m.quantize("int8")),
     r"is quantized already \(int8\); quantize the float model"),
    (lambda m: (m.backbone.enable_lora(2), m.quantize("float8")),
     r"float8 layers do not run LoRA"),
    (lambda m: (m.quantize("int8"), zoo.save_pretrained(m, "/tmp/never")),
     r"save_pretrained needs float weights, and .* is quantized \(int8\)"),
])
def test_what_quantization_cannot_do_is_a_one_line_error(call, message):
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    with pytest.raises(ValueError, match=message) as error:
        call(model)
    assert "\n" not in str(error.value)
