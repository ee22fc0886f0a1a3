import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

# The script that made the reference fixtures needs torch; it is run by hand, not collected.
collect_ignore_glob = ["fixtures/*.py"]


def pytest_collection_finish(session):
    """Once every test module is imported (TensorFlow, Keras, tf-text, the project: some
    half a million long-lived objects), move them out of the garbage collector's reach, so
    that the `gc.collect()` of each test's `clear_session()` scans only what the tests made:
    it took 0.5-2 s a test, most of the suite's time in the quick tests."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts with float32, a fixed seed and no leftover layer names."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
