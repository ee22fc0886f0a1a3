"""BART's own facts on the tiny preset (3 heads of 8, encoder 2 / decoder 3 layers): the
position offset, the padding and causal masks, cached decoding, the head with
`final_logits_bias`, the classifier's pooling at the last `</s>`, published sizes, bad
configs. Parity with Hugging Face is tests/zoo/test_checkpoints_bart.py's."""

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
from zoo.bart import POSITION_OFFSET
from zoo.bart_classifier import last_token_of

BATCH, ENCODER_LENGTH, DECODER_LENGTH, HIDDEN = 4, 8, 6, 24
START, PAD, END = 0, 1, 2


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
    ids = rng.integers(3, 1024, (batch, encoder_length + decoder_length)).astype("int32")
    return {
        "encoder_token_ids": np.where(encoder_padding_mask, ids[:, :encoder_length], PAD),
        "encoder_padding_mask": encoder_padding_mask,
        "decoder_token_ids": np.where(decoder_padding_mask, ids[:, encoder_length:], PAD),
        "decoder_padding_mask": decoder_padding_mask,
    }


@pytest.mark.slow
def test_backbone_round_trips_and_ignores_padded_encoder_tokens(tmp_path):
    inputs = seq2seq_inputs()
    backbone, outputs = run_backbone_test(
        "bart", "tiny", inputs, {"encoder_sequence_output": (BATCH, ENCODER_LENGTH, HIDDEN),
                                 "decoder_sequence_output": (BATCH, DECODER_LENGTH, HIDDEN)},
        tmp_path)
    changed = {**inputs, "encoder_token_ids": inputs["encoder_token_ids"].copy()}
    changed["encoder_token_ids"][1, 5:] = 7  # padding: neither stack may see it
    again = predict(backbone, changed)
    np.testing.assert_allclose(again["encoder_sequence_output"][1, :5],
                               outputs["encoder_sequence_output"][1, :5], atol=1e-5)
    np.testing.assert_allclose(again["decoder_sequence_output"],
                               outputs["decoder_sequence_output"], atol=1e-5)


def test_decoder_is_causal():
    backbone = zoo.build("bart")
    inputs = seq2seq_inputs()
    before = as_numpy(backbone(inputs)["decoder_sequence_output"])
    changed = {**inputs, "decoder_token_ids": inputs["decoder_token_ids"].copy()}
    changed["decoder_token_ids"][:, 3] = 9
    after = as_numpy(backbone(changed)["decoder_sequence_output"])
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-5)
    assert np.abs(after[:, 3:] - before[:, 3:]).max() > 1e-3


@pytest.mark.parametrize("stack", ["encoder", "decoder"])
def test_positions_start_at_row_two_of_a_table_two_rows_longer(stack):
    backbone = zoo.build("bart", dropout=0.0)
    table = getattr(backbone, f"{stack}_position_embedding").embeddings
    assert POSITION_OFFSET == 2 and tuple(table.shape) == (128 + 2, HIDDEN)
    inputs = seq2seq_inputs(batch=2)
    output = f"{stack}_sequence_output"
    before = as_numpy(backbone(inputs)[output])
    values = as_numpy(table)
    noise = np.random.default_rng(1).normal(size=(2, HIDDEN)).astype("float32")
    table.assign(np.concatenate([values[:2] + noise, values[2:]]))  # rows no position reads
    np.testing.assert_array_equal(as_numpy(backbone(inputs)[output]), before)
    table.assign(np.concatenate([values[:2], values[2:3] + noise[:1], values[3:]]))  # pos. 0
    after = as_numpy(backbone(inputs)[output])
    assert np.abs(after[:, 0] - before[:, 0]).max() > 1e-2


@pytest.mark.parametrize("name", ["encoder_token_ids", "decoder_token_ids"])
def test_more_tokens_than_positions_are_refused_in_one_line(name):
    model = zoo.build("bart", task="seq2seq_lm", max_sequence_length=8)
    inputs = seq2seq_inputs(batch=1, encoder_length=8, decoder_length=8)
    model(inputs)  # 8 positions fit
    prefix = name.removesuffix("token_ids")
    longer = {**inputs, name: np.full((1, 9), 5, "int32"),
              f"{prefix}padding_mask": np.ones((1, 9), "int32")}
    with pytest.raises(ValueError, match=rf"^{name} has 9 positions: at most 8, the learned "
                                         r"positions \(max_sequence_length\)\. Shorten"):
        model(longer)
    assert model.context == 8


@pytest.mark.slow
def test_seq2seq_lm_round_trips_and_learns_a_batch(tmp_path):
    model = zoo.build("bart", task="seq2seq_lm", dropout=0.0, num_layers=1,
                      num_decoder_layers=1)
    inputs = seq2seq_inputs()
    targets = np.roll(inputs["decoder_token_ids"], -1, axis=1)
    weights = inputs["decoder_padding_mask"]
    run_model_saving_test(model, inputs, tmp_path)
    run_overfit_test(model, inputs, targets, sample_weight=weights, steps=60, max_loss=0.05,
                     learning_rate=2e-2)
    predicted = predict(model, inputs).argmax(-1)
    np.testing.assert_array_equal(predicted[weights == 1], targets[weights == 1])


@pytest.mark.slow
def test_cached_decoding_equals_the_full_forward_pass():
    model = zoo.build("bart", task="seq2seq_lm")
    inputs = seq2seq_inputs()
    inputs["decoder_padding_mask"][:] = 1  # the cached calls below get no decoder padding
    full = predict(model, inputs)
    _, cross_cache = model.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    cache = model.make_cache(BATCH, DECODER_LENGTH + 2)
    assert tuple(cache.shape) == (BATCH, 3, 2, DECODER_LENGTH + 2, 3, 8)
    tokens, context = inputs["decoder_token_ids"], {
        "cross_attention_cache": cross_cache,
        "encoder_padding_mask": inputs["encoder_padding_mask"]}
    logits, cache = model.call_with_cache(tokens[:, :2], cache, 0, **context)  # prefill
    steps = [as_numpy(logits)]
    for index in range(2, DECODER_LENGTH):
        logits, cache = model.call_with_cache(
            tokens[:, index:index + 1], cache, keras.ops.convert_to_tensor(index, "int32"),
            **context)
        steps.append(as_numpy(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5, rtol=1e-5)


def test_head_is_the_token_table_plus_a_non_trainable_final_logits_bias():
    model = zoo.build("bart", task="seq2seq_lm")
    table = model.backbone.token_embedding.token_embedding.embeddings
    bias = model.lm_head.bias
    assert sum(w is table for w in model.weights) == 1
    assert not bias.trainable and bias.path.startswith("final_logits_bias")
    assert model.count_params() == model.backbone.count_params() + 1024
    bias.assign(np.random.default_rng(1).normal(size=1024).astype("float32"))
    inputs = seq2seq_inputs()
    hidden = as_numpy(model.backbone(inputs)["decoder_sequence_output"])
    np.testing.assert_allclose(as_numpy(model(inputs)),
                               hidden @ as_numpy(table).T + as_numpy(bias), atol=1e-5)


def test_last_token_of_finds_the_last_end_token_or_the_last_real_one():
    ids = np.array([[0, 5, 2, 2, 1, 1], [0, 7, 8, 1, 1, 1], [2, 6, 2, 9, 9, 2]])
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    assert np.asarray(last_token_of(ids, END, mask)).tolist() == [3, 2, 5]


def test_classifier_reads_the_decoder_at_the_last_end_token():
    model = zoo.build("bart", task="classifier", num_classes=3)
    ids = np.array([[0, 5, 6, 2, 1, 1], [0, 7, 2, 2, 8, 2]], "int32")  # ends at 3 and 5
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    logits = as_numpy(model({"token_ids": ids, "padding_mask": mask}))
    assert logits.shape == (2, 3)
    decoder_ids = np.concatenate([np.full((2, 1), END, "int32"), ids[:, :-1]], axis=1)
    hidden = as_numpy(model.backbone({
        "encoder_token_ids": ids, "encoder_padding_mask": mask,
        "decoder_token_ids": decoder_ids, "decoder_padding_mask": np.ones_like(mask),
    })["decoder_sequence_output"])
    head = model.get_layer("classification_head")
    expected = as_numpy(head(hidden[[0, 1], [3, 5]]))
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    # Tokens after the last `</s>` (padding here) do not change the prediction.
    changed = ids.copy()
    changed[0, 4:] = 9
    np.testing.assert_allclose(as_numpy(model({"token_ids": changed, "padding_mask": mask})),
                               logits, atol=1e-5)


def test_classifier_round_trips_through_a_keras_file(tmp_path):
    model = zoo.build("bart", task="classifier", num_classes=3, num_layers=1,
                      num_decoder_layers=1)
    rng = np.random.default_rng(4)
    ids = np.concatenate([np.zeros((2, 1)), rng.integers(3, 1024, (2, 6)),
                          np.full((2, 1), END)], axis=1).astype("int32")
    restored = run_model_saving_test(model, {"token_ids": ids, "padding_mask": np.ones_like(ids)},
                                     tmp_path)
    assert restored.get_layer("classification_head").get_config()["num_classes"] == 3


@pytest.mark.parametrize("size,expected,lm_expected", [
    ("base", 139_420_416, 139_420_416 + 50_265),
    ("large", 406_291_456, 406_291_456 + 50_265),
], ids=["facebook/bart-base", "facebook/bart-large"])
@pytest.mark.slow
def test_published_sizes_have_the_reference_parameter_counts(size, expected, lm_expected):
    """`BartModel.num_parameters()` of the published configs; the LM adds final_logits_bias."""
    assert catalog.parameter_counts("bart", size) == (expected, lm_expected)


@pytest.mark.parametrize("overrides,message", [
    ({"num_heads": 5}, "hidden_dim=24 is not divisible by num_heads=5"),
    ({"num_decoder_layers": 0}, "num_decoder_layers must be a positive int, got 0"),
    ({"activation": "tanh"}, "activation='tanh'"),
    ({"attention_dropout": 1.0}, "attention_dropout must be in [0, 1), got 1.0"),
    ({"scale_embedding": 1}, "scale_embedding must be True or False, got 1"),
    ({"end_token_id": 1024}, "end_token_id=1024 is not an id of the vocabulary [0, 1024)"),
    ({"d_model": 64}, "Unknown bart config field(s) ['d_model']"),
])
def test_bad_config_is_a_value_error_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        zoo.build("bart", **overrides)


def test_classifier_needs_a_positive_number_of_classes():
    with pytest.raises(ValueError, match=r"num_classes must be a positive int .* got 0"):
        zoo.build("bart", task="classifier", num_classes=0)


def test_a_tokenizer_with_other_special_ids_is_refused_naming_the_fields():
    from zoo.preprocessing import WordPieceTokenizer, preprocessor_for

    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    model = zoo.build("bart", task="classifier", num_classes=2)  # BART's <pad>=1, </s>=2
    with pytest.raises(ValueError, match=re.escape(
            "build the model with end_token_id=3, decoder_start_token_id=3, pad_token_id=0.")):
        preprocessor_for(model, tokenizer)
    model = zoo.build("bart", task="classifier", num_classes=2, end_token_id=3,
                      decoder_start_token_id=3, pad_token_id=0)
    x = preprocessor_for(model, tokenizer, sequence_length=6)(("a", "a a"))
    # [CLS] a [SEP] [SEP] a [SEP]: the second text cut to fit, its end kept
    assert x["token_ids"].numpy().tolist() == [2, 5, 3, 3, 5, 3]
    assert sorted(x) == ["padding_mask", "token_ids"]


def test_attention_maps_of_the_classifier_are_its_backbone_reading_the_text_twice():
    model = zoo.build("bart", task="classifier", num_classes=2)
    ids = np.array([[0, 5, 6, 2, 1]], "int32")
    mask = np.array([[1, 1, 1, 1, 0]], "int32")
    maps = zoo.attention_maps(model, {"token_ids": ids, "padding_mask": mask})
    assert {kind: len(layers) for kind, layers in maps.items()} == {
        "encoder": 2, "decoder": 3, "cross": 3}
    again = zoo.attention_maps(model.backbone, {
        "encoder_token_ids": ids, "encoder_padding_mask": mask,
        "decoder_token_ids": np.array([[2, 0, 5, 6, 2]], "int32"),
        "decoder_padding_mask": np.ones_like(mask)})
    for kind in maps:
        for ours, theirs in zip(maps[kind], again[kind], strict=True):
            np.testing.assert_array_equal(ours, theirs)
    assert maps["cross"][0][..., 4].max() == 0.0  # the padded source token


def test_decoding_starts_from_the_end_token_without_a_preprocessor():
    from zoo.generation import decoder_start_id_of

    assert decoder_start_id_of(zoo.build("bart", task="seq2seq_lm")) == END
    assert decoder_start_id_of(zoo.build("t5", task="seq2seq_lm")) == 0
