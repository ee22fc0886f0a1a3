"""Files written by the layout before the restructure (tokenizers and preprocessors in
`training`, checkpoints in `zoo/hf_*.py`) still load, with the same outputs: `.keras` files
of every family and task with their preprocessors, and SavedModels in TF Serving's layout.
Made by `tests/fixtures/make_legacy.py` at commit c80ee63."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo  # noqa: F401  (registers the model classes)
from tests.export import models

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
OUTPUTS = np.load(LEGACY / "outputs.npz")


def stored(prefix):
    return {key.removeprefix(prefix): OUTPUTS[key] for key in OUTPUTS.files
            if key.startswith(prefix)}


@pytest.mark.parametrize("case", models.CASES, ids=models.case_id)
def test_old_keras_files_load_with_their_preprocessor_and_outputs(case):
    name = models.case_id(case)
    model = keras.models.load_model(LEGACY / f"{name}.keras")
    inputs = stored(f"{name}/input/")
    x = inputs["images"] if "images" in inputs else inputs
    for key, value in models.keras_outputs(model, x).items():
        # float32 sums in another order on another CPU: 1e-5, as the parity tests
        np.testing.assert_allclose(value, OUTPUTS[f"{name}/{key}"], rtol=1e-5, atol=1e-5)
    if case[0] != "vit" and case[1] is not None:  # a backbone does not save one
        assert model.preprocessor.tokenizer.get_vocabulary() == models.VOCABULARY
        assert type(model.preprocessor).__module__.startswith("zoo.preprocessing.")


def test_an_old_byte_pair_tokenizer_loads_and_tokenizes_the_same():
    model = keras.models.load_model(LEGACY / "gpt-causal_lm-bpe.keras")
    x = model.preprocessor(["the theme"])[0]
    np.testing.assert_array_equal(x["token_ids"], OUTPUTS["gpt-causal_lm-bpe/input/token_ids"])
    np.testing.assert_allclose(model.predict_on_batch(x), OUTPUTS["gpt-causal_lm-bpe/logits"],
                               atol=1e-6)


@pytest.mark.parametrize("name", ["bert-classifier", "vit-classifier"])
def test_old_saved_models_serve_the_same_outputs(name):
    serving = tf.saved_model.load(str(LEGACY / "savedmodels" / name / "1"))
    inputs = stored(f"{name}/input/")
    if "images" in inputs:
        outputs = serving.signatures["pixels"](pixels=tf.constant(inputs["images"]))
    else:
        outputs = serving.signatures["token_ids"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_allclose(outputs["logits"].numpy(), OUTPUTS[f"{name}/logits"], atol=1e-6)
