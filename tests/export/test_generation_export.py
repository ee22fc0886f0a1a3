"""Exported generation (`export/generation.py`): the SavedModel `generate` signature in a fresh
process without the project, and the TFLite prefill/decode loop in LiteRT, against Keras."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from tests.zoo.test_generation import PROMPTS, lively, text_model

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="exports are TensorFlow")

# Run in a fresh interpreter: TensorFlow and tf-text only, not this project.
SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tokenizer's ops)
assert not any(m.split(".")[0] in ("zoo", "training", "export", "keras_transformers")
               for m in sys.modules)
generate = tf.saved_model.load(sys.argv[1]).signatures["generate"]
def call(prompts, **kwargs):
    args = dict(max_new_tokens=5, temperature=0.0, top_k=0, top_p=1.0, seed=0)
    args.update(kwargs)
    out = generate(prompt=tf.constant(prompts),
                   **{k: tf.constant(v, tf.float32 if k in ("temperature", "top_p") else tf.int32)
                      for k, v in args.items()})
    return {"text": [t.decode() for t in out["text"].numpy()],
            "token_ids": out["token_ids"].numpy().tolist(),
            "padding_mask": out["padding_mask"].numpy().tolist()}
print(json.dumps({"greedy": call(["the cat", "a dog ran on the mat"]),
                  "sampled": call(["the cat"], temperature=1.0, top_k=4, seed=7),
                  "again": call(["the cat"], temperature=1.0, top_k=4, seed=7),
                  "other": call(["the cat"], temperature=1.0, top_k=4, seed=8)}))
"""


@pytest.mark.slow
def test_savedmodel_generate_signature_reproduces_keras_greedy_in_a_fresh_process(tmp_path):
    from export.generation import add_generate_signature

    model, _ = text_model()
    prompts = ["the cat", "a dog ran on the mat"]
    texts = model.generate(prompts, 5)
    expected_ids = model.generate([[2, 5, 6], [2, 10, 11, 12, 8, 5, 9]], 5)
    archive = keras.export.ExportArchive()
    add_generate_signature(archive, model, max_length=32)
    archive.write_out(str(tmp_path / "generate"), verbose=False)

    result = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "generate")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["greedy"]["text"] == texts
    for row, mask, expected in zip(served["greedy"]["token_ids"],
                                   served["greedy"]["padding_mask"], expected_ids, strict=True):
        assert row[:sum(mask)] == expected
    assert served["sampled"] == served["again"]
    assert served["sampled"]["token_ids"] != served["other"]["token_ids"]


@pytest.mark.slow
@pytest.mark.parametrize("size", ["tiny", "tiny_llama"])
def test_tflite_prefill_decode_loop_in_litert_reproduces_keras_greedy(size):
    from export.generation import litert_generate, tflite_decoder

    model = lively(zoo.build("gpt", size=size, task="causal_lm", vocabulary_size=97))
    content = tflite_decoder(model, prompt_length=8, max_length=16)
    expected = model.generate(PROMPTS, 7)
    assert [litert_generate(content, prompt, 7) for prompt in PROMPTS] == expected
    assert len({t for row in expected for t in row}) > 3


def test_export_refuses_what_it_cannot_do():
    from export.generation import add_generate_signature, litert_generate, tflite_decoder

    model = zoo.build("gpt", size="tiny", task="causal_lm")
    with pytest.raises(ValueError, match="needs a model with a preprocessor"):
        add_generate_signature(keras.export.ExportArchive(), model)
    with pytest.raises(ValueError, match=r"prompt_length \(16\) < max_length \(8\)"):
        tflite_decoder(model, prompt_length=16, max_length=8)
    with pytest.raises(ValueError, match="causal language models"):
        tflite_decoder(zoo.build("t5", task="seq2seq_lm"), 4, 8)
    content = tflite_decoder(model, prompt_length=4, max_length=8)
    with pytest.raises(ValueError, match="exceed the cache's 8 positions"):
        litert_generate(content, [1, 2, 3], 6)
    with pytest.raises(ValueError, match="this model takes 1 to 4"):
        litert_generate(content, [1, 2, 3, 4, 5], 2)
    assert np.asarray(litert_generate(content, [1, 2], 2)).shape == (2,)
