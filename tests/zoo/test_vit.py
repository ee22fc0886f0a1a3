import numpy as np
import pytest

import zoo
from tests.helpers import as_numpy, predict, run_backbone_test, run_task_test
from zoo import catalog

BATCH = 4


def images(size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(BATCH, size, size, 3)).astype("float32")


def vit_model_params(hidden, layers, mlp, patch=16, image=224, channels=3, pooler=True):
    """Parameters of Hugging Face's ViTModel, term by term."""
    d = hidden
    patches = (image // patch) ** 2
    embeddings = patch * patch * channels * d + d + d + (patches + 1) * d  # conv, cls, positions
    layer = 4 * (d * d + d) + 2 * (d * mlp) + mlp + d + 4 * d  # q k v out, MLP, two norms
    return embeddings + layers * layer + 2 * d + (d * d + d if pooler else 0)


def test_backbone_outputs_and_round_trip(tmp_path):
    _, outputs = run_backbone_test(
        "vit", "tiny", images(),
        {"sequence_output": (BATCH, 1 + 4 * 4, 32),  # class token + patches
         "pooled_output": (BATCH, 32)}, tmp_path)
    assert np.all(np.abs(outputs["pooled_output"]) <= 1.0)  # tanh


@pytest.mark.slow
def test_classifier_round_trips_and_overfits_a_batch(tmp_path):
    model = zoo.build("vit", task="classifier", num_classes=3, dropout=0.0)
    labels = np.random.default_rng(9).integers(0, 3, BATCH)  # [1, 2, 2, 0]
    # Loss ~1.1 -> ~0.002 in 25 steps under TensorFlow and JAX, for several seeds.
    run_task_test(model, images(), labels, tmp_path, (BATCH, 3), steps=25, max_loss=0.02,
                  learning_rate=1e-2)


def test_classifier_has_no_pooler_and_classifies_the_class_token():
    model = zoo.build("vit", task="classifier", num_classes=3)
    assert not model.backbone.config.use_pooler and model.backbone.pooler is None
    assert model.pooling == "first_token"
    assert not [w.path for w in model.weights if "pooler" in w.path]
    backbone_params = zoo.count_params("vit", use_pooler=False)
    assert model.count_params() == backbone_params + 32 * 3 + 3
    pooled = zoo.build("vit", task="classifier", num_classes=3, use_pooler=True)
    assert pooled.pooling == "pooled"
    assert pooled.count_params() == model.count_params() + 32 * 32 + 32


def test_larger_images_take_the_weights_and_interpolate_positions():
    small = zoo.build("vit")
    large = zoo.build("vit", image_shape=(48, 48, 3))
    # The table stays laid out for 32x32 (4x4 patches + class) and is resized when called.
    assert tuple(large.patch_embedding.position_embeddings.shape) == (1 + 4 * 4, 32)
    large.set_weights(small.get_weights())
    outputs = predict(large, images(48))
    assert outputs["sequence_output"].shape == (BATCH, 1 + 6 * 6, 32)
    assert np.isfinite(outputs["sequence_output"]).all()

    again = zoo.build("vit")
    again.set_weights(large.get_weights())
    expected = predict(small, images())
    for key, value in predict(again, images()).items():
        np.testing.assert_array_equal(as_numpy(value), as_numpy(expected[key]))


@pytest.mark.parametrize(
    "size,hidden,layers,mlp,expected,timm_classifier",
    [
        ("s16", 384, 12, 1536, 21_813_504, 22_050_664),
        ("b16", 768, 12, 3072, 86_389_248, 86_567_656),
        ("l16", 1024, 24, 4096, 304_351_232, 304_326_632),
    ],
)
@pytest.mark.slow
def test_published_sizes_have_the_reference_parameter_counts(
    size, hidden, layers, mlp, expected, timm_classifier
):
    # expected: Hugging Face's ViTModel, with its pooler. timm_classifier: timm's
    # vit_{small,base,large}_patch16_224, with no pooler and a 1000-class head.
    assert vit_model_params(hidden, layers, mlp) == expected
    head = hidden * 1000 + 1000
    assert vit_model_params(hidden, layers, mlp, pooler=False) + head == timm_classifier
    # The catalog's count (cached: the README table test reuses it) is zoo.count_params'.
    assert catalog.parameter_counts("vit", size)[0] == expected


@pytest.mark.slow
def test_b16_without_pooler_matches_vit_for_image_classification():
    assert vit_model_params(768, 12, 3072, pooler=False) == 85_798_656
    assert zoo.count_params("vit", "b16", use_pooler=False) == 85_798_656
    # google/vit-base-patch16-224 (ViTForImageClassification, 1000 ImageNet classes).
    assert zoo.count_params("vit", "b16", task="classifier", num_classes=1000) == 86_567_656


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"image_shape": (30, 30, 3)}, r"image_shape \(30, 30, 3\).*patch_size=8.*24x24"),
        ({"image_shape": (32, 36, 3)}, r"image_shape \(32, 36, 3\).*patch_size=8"),
        ({"patch_size": 5}, r"image_shape \(32, 32, 3\).*patch_size=5"),
        ({"position_image_size": (40, 44)}, r"position_image_size \(40, 44\).*patch_size=8"),
        ({"hidden_dim": 30, "num_heads": 4}, r"hidden_dim=30 is not divisible by num_heads=4"),
        ({"num_layers": 0}, r"num_layers must be a positive int, got 0"),
    ],
)
def test_bad_configs_are_value_errors_that_name_the_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("vit", **overrides)
