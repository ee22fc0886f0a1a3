import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

# The script that made the reference fixtures needs torch; it is run by hand, not collected.
collect_ignore_glob = ["fixtures/*.py"]


@pytest.fixture(autouse=True)
def fresh_keras_state():
    """Each test starts with float32, a fixed seed and no leftover layer names."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()
