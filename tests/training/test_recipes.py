import keras
import numpy as np
import pytest

import zoo
from training import recipes


def test_schedule_warms_up_then_decays_to_the_floor():
    recipe = recipes.Recipe(learning_rate=1e-3, warmup_ratio=0.1, decay="cosine",
                            min_learning_rate_ratio=0.1)
    rate = recipes.schedule(recipe, total_steps=200)
    values = [float(rate(step)) for step in (0, 10, 20, 110, 200, 400)]
    cosine_middle = 1e-3 * (0.1 + 0.9 * 0.5)
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, cosine_middle, 1e-4, 1e-4], rtol=1e-5)
    linear = recipes.schedule(recipes.Recipe(decay="linear", warmup_ratio=0.0), 100)
    np.testing.assert_allclose([float(linear(s)) for s in (0, 50, 100)], [1e-3, 5e-4, 0.0],
                               atol=1e-9)


def test_schedule_round_trips_through_its_config():
    rate = recipes.schedule(recipes.Recipe(decay="linear"), total_steps=50)
    again = recipes.WarmupDecay.from_config(rate.get_config())
    assert [float(again(s)) for s in range(0, 60, 7)] == [float(rate(s)) for s in range(0, 60, 7)]


def test_the_transformer_papers_recipe_is_its_formula_and_its_adam():
    """Vaswani et al. (2017), equation (3): d ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)."""
    recipe = recipes.recipe_for("seq2seq_lm", name="transformer_paper")
    rate = recipes.schedule(recipe, total_steps=100)  # the schedule ignores the total
    steps = [1, 400, 4000, 4001, 16000, 100000]
    expected = [512**-0.5 * min(s**-0.5, s * 4000**-1.5) for s in steps]
    np.testing.assert_allclose([float(rate(s)) for s in steps], expected, rtol=1e-5)
    assert recipes.transformer_paper(hidden_dim=128).learning_rate == 128**-0.5 * 4000**-0.5
    model = zoo.build("transformer", task="seq2seq_lm")
    recipes.compile(model, recipe, total_steps=100)
    adam = model.optimizer
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.98, 1e-9)
    assert (adam.weight_decay, adam.global_clipnorm) == (0.0, None)
    assert model.loss.label_smoothing == 0.1
    assert recipes.PAPER_GENERATION == {"sampler": "beam", "num_beams": 4, "length_penalty": 0.6}
    # By name, for a model's width, with a field changed (kt train --recipe ... --lr ...).
    narrow = recipes.recipe_for("seq2seq_lm", name="transformer_paper", hidden_dim=128,
                                label_smoothing=0.2, learning_rate=None)
    assert (narrow.learning_rate, narrow.label_smoothing) == (128**-0.5 * 4000**-0.5, 0.2)
    with pytest.raises(ValueError, match="Unknown recipe 'paper'. Recipes: "):
        recipes.recipe_for("seq2seq_lm", name="paper")


def test_weight_decay_skips_biases_and_norms():
    model = zoo.build("bert", task="classifier", num_classes=2)
    optimizer = recipes.optimizer(model, recipes.Recipe(), total_steps=10)
    decayed = [v for v in model.trainable_variables if optimizer._use_weight_decay(v)]
    assert decayed and all(len(v.shape) >= 2 for v in decayed)
    skipped = [v.path for v in model.trainable_variables if not optimizer._use_weight_decay(v)]
    assert any("gamma" in p for p in skipped) and any("bias" in p for p in skipped)
    assert len(decayed) + len(skipped) == len(model.trainable_variables)


def test_label_smoothing_loss_equals_the_formula_and_ignores_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 4, -100], [0, -100, 2]])
    weights = (labels != -100).astype("float32")
    loss = recipes.SmoothedSparseCrossentropy(0.2, ignore_class=-100)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_token = -0.8 * np.take_along_axis(log_probs, np.maximum(labels, 0)[..., None], -1)[..., 0]
    per_token -= 0.2 * log_probs.mean(-1)
    expected = (per_token * weights).sum() / weights.sum()
    np.testing.assert_allclose(float(loss(labels, logits, sample_weight=weights)), expected,
                               rtol=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    unsmoothed = recipes.SmoothedSparseCrossentropy(0.0)
    np.testing.assert_allclose(float(unsmoothed(labels[:, :2] * 0 + 1, logits[:, :2])),
                               float(plain(labels[:, :2] * 0 + 1, logits[:, :2])), rtol=1e-5)


@pytest.mark.slow
def test_compile_sets_the_recipe_and_the_task_metrics():
    model = zoo.build("gpt", task="causal_lm")
    recipes.compile(model, recipes.recipe_for("causal_lm", clipnorm=0.5), total_steps=100)
    assert model.jit_compile is True
    assert model.optimizer.global_clipnorm == 0.5
    x = {"token_ids": np.ones((2, 8), "int32"), "padding_mask": np.ones((2, 8), "int32")}
    logs = model.evaluate(x, np.ones((2, 8), "int32"), return_dict=True, verbose=0)
    assert {"loss", "accuracy", "perplexity"} <= set(logs), logs


def test_bad_recipes_are_refused():
    with pytest.raises(ValueError, match="Unknown decay 'step'"):
        recipes.Recipe(decay="step")
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        recipes.Recipe(learning_rate=0.0)
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 0 or None, got 1.5"):
        recipes.Recipe(warmup_steps=1.5)
    with pytest.raises(ValueError, match=r"beta_2 must be in \(0, 1\)"):
        recipes.Recipe(beta_2=1.0)
    with pytest.raises(ValueError, match="Unknown task 'ranker'"):
        recipes.recipe_for("ranker")
    with pytest.raises(ValueError, match=r"Unknown recipe fields \['lr'\]"):
        recipes.recipe_for("classifier", lr=1.0)
    assert recipes.recipe_for("classifier", pretrained=True).learning_rate == 5e-5
