"""Task.predict's in-memory path: the same numbers as Keras' own predict."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo


@pytest.fixture(scope="module")
def bert():
    model = zoo.build("bert", size="tiny", task="classifier", num_classes=3)
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(1, 100, (37, 12), dtype="int32"),
         "segment_ids": np.zeros((37, 12), "int32"), "padding_mask": np.ones((37, 12), "int32")}
    return model, x


def test_predict_on_arrays_equals_keras_predict(bert):
    model, x = bert
    ours = model.predict(x, batch_size=16, verbose=0)  # three batches, the last of 5 rows
    theirs = keras.Model.predict(model, x, batch_size=16, verbose=0)
    assert ours.shape == (37, 3)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_predict_on_a_dataset_goes_to_keras(bert):
    model, x = bert
    data = tf.data.Dataset.from_tensor_slices(x).batch(10)
    np.testing.assert_allclose(model.predict(data, verbose=0),
                               model.predict(x, batch_size=10, verbose=0), atol=1e-6)


def test_predict_refuses_ragged_rows(bert):
    model, x = bert
    with pytest.raises(ValueError, match=r"different numbers of rows: \[36, 37\]"):
        model.predict({**x, "padding_mask": x["padding_mask"][:36]}, verbose=0)


def test_predict_shows_progress(bert, capsys):
    model, x = bert
    model.predict(x, batch_size=16, verbose=1)
    assert "3/3" in capsys.readouterr().out
