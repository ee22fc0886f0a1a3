"""LoRA runs and int8 exports from `kt`: `kt train --lora-rank R` trains the pairs (and says
how many parameters), stores the setting and writes a merged model; an interrupted LoRA run
resumes exactly; `kt export --quantize int8-weights` writes an int8 SavedModel."""

import contextlib
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.fixtures.make_trained import OUT, held_out
from training import backup, cli, runs
from training.train import TrainSettings, train
from zoo import lora

VIT = dict(model="vit", dataset="digits", epochs=2, steps_per_epoch=3, batch_size=16,
           validation_split=None, overrides={"image_shape": (8, 8, 1), "patch_size": 2},
           lora_rank=2)


def kt(*args):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main([str(a) for a in args])
    return status, printed.getvalue()


@pytest.mark.slow
def test_kt_train_lora_rank_trains_the_pairs_and_writes_a_merged_model(tmp_path):
    status, printed = kt("train", "vit", "--dataset", "digits", "--set", "image_shape=8,8,1",
                         "--set", "patch_size=2", "--epochs", "1", "--steps-per-epoch", "2",
                         "--batch-size", "8", "--validation-split", "none", "--lora-rank", "2",
                         "--out", tmp_path / "run")
    assert status == 0
    # ViT tiny: 2 layers x 4 projections; the head (32 * 10 + 10) trains too.
    pairs = 2 * (3 * (32 * 2 * 2 + 2 * 16) + (2 * 16 * 2 + 2 * 32))
    assert f"LoRA rank 2: {pairs + 330:,} trainable parameters (of " in printed
    assert json.loads((tmp_path / "run" / runs.CONFIG).read_text())["lora_rank"] == 2
    model = runs.load_model(tmp_path / "run")
    assert lora.lora_layers(model) == []  # model.keras holds the merged kernels


def test_old_run_configs_without_lora_rank_still_load():
    settings = TrainSettings.from_json({"kind": "kt-run", "model": "vit", "dataset": "digits",
                                        "out": "runs/old", "epochs": 3})
    assert settings.lora_rank is None


@pytest.mark.slow
def test_an_interrupted_lora_run_resumes_exactly(tmp_path, monkeypatch):
    whole = train(TrainSettings(out=str(tmp_path / "whole"), **VIT), verbose=0)

    real_save = backup.save

    def save_then_die(model, folder, epoch):
        real_save(model, folder, epoch)
        raise KeyboardInterrupt("killed after the first backup")

    monkeypatch.setattr(backup, "save", save_then_die)
    settings = TrainSettings(out=str(tmp_path / "resumed"), **VIT)
    with pytest.raises(KeyboardInterrupt):
        train(settings, verbose=0)
    monkeypatch.setattr(backup, "save", real_save)
    resumed = train(settings, verbose=0)

    assert resumed.resumed_from == 1
    assert resumed.history[-1]["loss"] == whole.history[-1]["loss"]
    for a, b in zip(resumed.model.weights, whole.model.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


@pytest.mark.slow
def test_a_lora_backup_keeps_the_pairs_not_the_merged_kernels(tmp_path):
    model = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    model.backbone.enable_lora(2)
    layer = lora.lora_layers(model)[0]
    layer.lora_kernel_b.assign(np.ones(layer.lora_kernel_b.shape))
    model.compile()
    model.optimizer.build(model.trainable_variables)  # as after the first step of `fit`
    backup.save(model, tmp_path, epoch=1)
    fresh = zoo.build("gpt", size="tiny_llama", task="causal_lm")
    fresh.backbone.enable_lora(2)
    fresh.compile()
    assert backup.restore(fresh, tmp_path).epoch == 1
    for a, b in zip(model.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


@pytest.mark.slow
def test_kt_export_int8_weights_writes_an_int8_savedmodel(tmp_path):
    status, printed = kt("export", OUT / "bert.keras", "--to", "savedmodel", "--quantize",
                         "none,int8-weights", "--out", tmp_path, "--name", "topics")
    assert status == 0
    float_dir, int8_dir = tmp_path / "savedmodel" / "topics" / "1", \
        tmp_path / "savedmodel" / "topics_int8" / "1"
    assert f"SavedModel: {float_dir}" in printed
    assert f"SavedModel (int8-weights): {int8_dir}" in printed
    x, _ = held_out("bert", rows=8)
    model = keras.models.load_model(OUT / "bert.keras")
    model.quantize("int8")
    loaded = tf.saved_model.load(str(int8_dir))
    outputs = loaded.signatures["token_ids"](**{k: tf.constant(v) for k, v in x.items()})
    np.testing.assert_allclose(outputs["logits"].numpy(), model.predict(x, verbose=0),
                               atol=1e-6)
    assert any(v.dtype == tf.int8 for v in loaded.variables)


@pytest.mark.slow
def test_kt_export_refuses_a_variant_of_a_format_it_does_not_write(tmp_path, capsys):
    status = cli.main(["export", str(OUT / "bert.keras"), "--to", "tflite", "--quantize",
                       "int8-weights", "--out", str(tmp_path)])
    assert status != 0
    assert ("--quantize int8-weights is a savedmodel variant, and --to names tflite: add "
            "savedmodel to --to or drop int8-weights.") in capsys.readouterr().err
