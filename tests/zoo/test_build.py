import re
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo.catalog import markdown_table


def test_names_sizes_and_tasks():
    assert zoo.names() == ["bart", "bert", "gpt", "t5", "transformer", "vit"]
    assert zoo.sizes("bert") == ["base", "large", "mini", "tiny"]
    assert zoo.tasks("bert") == ["classifier", "masked_lm", "question_answering",
                                 "token_classifier"]
    assert zoo.task_arguments("bert", "classifier") == ["num_classes", "pooling", "dropout"]


def test_unknown_model_lists_the_models():
    with pytest.raises(ValueError, match=r"Unknown model 'xlnet'\. Models: \['bart', 'bert'"):
        zoo.build("xlnet")


def test_unknown_size_lists_the_sizes():
    with pytest.raises(ValueError, match=r"Unknown size 'huge' for 'bert'\. Sizes: \['base'"):
        zoo.build("bert", size="huge")


def test_unknown_task_lists_the_tasks():
    with pytest.raises(ValueError, match=r"Unknown task 'seq2seq_lm' for 'bert'.*'classifier'"):
        zoo.build("bert", task="seq2seq_lm")


def test_unknown_field_lists_the_fields_and_task_arguments():
    with pytest.raises(ValueError, match=r"Unknown bert config field\(s\) \['num_layer'\]"):
        zoo.build("bert", num_layer=3)
    with pytest.raises(ValueError, match=r"arguments: \['num_classes', 'pooling', 'dropout'\]"):
        zoo.build("bert", task="classifier", num_class=3)


def test_impossible_config_names_the_values():
    with pytest.raises(ValueError, match=r"hidden_dim=30 is not divisible by num_heads=4"):
        zoo.build("bert", hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match=r"num_layers must be a positive int, got 0"):
        zoo.build("bert", num_layers=0)


def test_overrides_replace_preset_fields():
    backbone = zoo.build("bert", num_layers=3, hidden_dim=48, num_heads=3)
    assert backbone.config.num_layers == 3 and len(backbone.transformer_layers) == 3
    assert backbone.output["sequence_output"].shape[-1] == 48
    assert zoo.config("bert", "base", num_layers=6).num_layers == 6
    assert zoo.config("bert", "base").num_layers == 12  # presets are not changed


def test_dtype_policy_reaches_every_layer():
    backbone = zoo.build("bert", dtype="mixed_bfloat16")
    inputs = {"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32"),
              "padding_mask": np.ones((1, 4), "int32")}
    output = backbone(inputs)["sequence_output"]
    assert keras.backend.standardize_dtype(output.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in backbone.weights)


@pytest.mark.slow
def test_readme_table_is_the_generated_one():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(r"<!-- zoo-table -->\n(.*?)<!-- /zoo-table -->", readme, flags=re.S)
    assert found, "README.md lacks the zoo table markers"
    assert found.group(1) == markdown_table(), "run `python -m zoo.catalog` and paste its output"


def test_mixed_precision_survives_a_keras_round_trip(tmp_path):
    backbone = zoo.build("bert", dtype="mixed_bfloat16")
    backbone.save(tmp_path / "bert.keras")
    restored = keras.models.load_model(tmp_path / "bert.keras")
    assert restored.get_layer("transformer_layer_0").dtype_policy.name == "mixed_bfloat16"


def test_task_heads_take_the_backbone_dtype_policy():
    model = zoo.build("bert", task="classifier", num_classes=2, dtype="mixed_bfloat16")
    assert model.get_layer("logits").dtype_policy.name == "mixed_bfloat16"


def test_an_override_named_like_a_field_and_a_task_argument_sets_both():
    model = zoo.build("bert", task="classifier", num_classes=3, dropout=0.0)
    assert model.backbone.config.dropout == 0.0 and model.dropout == 0.0


def test_default_loss_averages_over_real_tokens_only():
    model = zoo.build("gpt", task="causal_lm")
    model.compile()
    logits = np.zeros((1, 4, 1024), "float32")  # uniform: ln(1024) per real token
    weights = np.array([[1, 1, 0, 0]], "float32")
    loss = model.loss(np.zeros((1, 4), "int32"), logits, sample_weight=weights)
    np.testing.assert_allclose(float(loss), np.log(1024), rtol=1e-5)
