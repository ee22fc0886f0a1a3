"""SavedModel export: TF Serving layout, named signatures per task, parity with Keras in a
fresh process, raw-input signatures against preprocess-then-model, bad inputs, atomicity."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import numpy as np
import pytest
import tensorflow as tf

import export
from export import layout, savedmodel, warmup
from export.report import run_saved_models
from tests.export.models import EXPORT_CASES, TEXTS, build, case_id, keras_outputs, model_inputs

# Every test here exports: most read the `exported` fixture (every family and task, about a
# minute to write), the others write their own versions (10 s or more each).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every family x task exported once: {case id: (model, version folder)}."""
    base = tmp_path_factory.mktemp("exports")
    found = {}
    for case in EXPORT_CASES:
        model = build(*case)
        found[case_id(case)] = (model, export.saved_model(model, base))
    return found


@pytest.fixture(scope="module")
def fresh_process_outputs(exported):
    """{case id: (model inputs, outputs of its SavedModel)}, every SavedModel of the module
    run in one fresh process (`run_saved_models`: it fails if that process imported any
    project module)."""
    inputs = {key: model_inputs(model) for key, (model, _) in exported.items()}
    jobs = [(path, "token_ids" if isinstance(inputs[key], dict) else "pixels",
             inputs[key] if isinstance(inputs[key], dict) else {"pixels": inputs[key]})
            for key, (_, path) in exported.items()]
    results = run_saved_models(jobs)
    return {key: (inputs[key], outputs) for key, (outputs, _) in zip(exported, results,
                                                                     strict=True)}


@pytest.mark.parametrize("case", EXPORT_CASES, ids=case_id)
def test_every_family_and_task_equals_keras_in_a_fresh_process(exported,
                                                               fresh_process_outputs, case):
    model, _ = exported[case_id(case)]
    x, outputs = fresh_process_outputs[case_id(case)]
    for name, expected in keras_outputs(model, x).items():
        np.testing.assert_allclose(outputs[name], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", EXPORT_CASES, ids=case_id)
def test_each_weight_is_stored_once(exported, case):
    """Keras' ExportArchive saved every weight twice (its Keras variable and the tf.Variable
    inside); `export.archive.write_archive` keeps one."""
    model, path = exported[case_id(case)]
    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    stored = sum(int(np.prod(shape)) for shape in reader.get_variable_to_shape_map().values())
    weights = sum(int(np.prod(v.shape)) for v in model.variables)  # + dropout seeds
    assert weights <= stored <= weights + 1  # + the save counter


def test_layout_and_signatures_per_task(exported):
    names = {key: sorted(warmup.signatures(path)) for key, (_, path) in exported.items()}
    assert names == {
        "bert-classifier": ["serving_default", "token_ids"],
        "bert-token_classifier": ["serving_default", "token_ids"],
        "bert-masked_lm": ["fill_mask", "serving_default", "token_ids"],
        "bert-backbone": ["embed", "serving_default", "token_ids"],
        "gpt-classifier": ["serving_default", "token_ids"],
        "gpt-causal_lm": ["generate", "serving_default", "token_ids"],
        "t5-seq2seq_lm": ["generate", "serving_default", "token_ids"],
        "vit-classifier": ["pixels", "serving_default"],
        "bert-question_answering": ["answer", "serving_default", "token_ids"],
        "transformer-seq2seq_lm": ["generate", "serving_default", "token_ids"],
        "bart-seq2seq_lm": ["generate", "serving_default", "token_ids"],
        "bart-classifier": ["serving_default", "token_ids"],
    }
    _, path = exported["gpt-causal_lm"]
    assert warmup.signatures(path)["generate"]["max_new_tokens"] == (tf.int32, [])
    _, path = exported["bert-classifier"]
    assert (path.parent.name, path.name) == ("bert_text_classifier", "1")
    assert warmup.signatures(path)["serving_default"] == {"text": (tf.string, [None])}
    config = (path.parent.parent / "models.config").read_text()
    assert config.count("config {") == len(EXPORT_CASES) and f'base_path: "{path.parent}"' in config


def test_saved_model_cli_lists_the_signatures(exported):
    _, path = exported["bert-masked_lm"]
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", str(path)], capture_output=True,
                           text=True, check=True).stdout
    for name in ("fill_mask", "token_ids", "serving_default"):
        assert f"signature_def['{name}']" in shown
    assert "inputs['text'] tensor_info" in shown and "outputs['tokens']" in shown


@pytest.fixture(scope="module")
def load():
    """`load(path)`: `tf.saved_model.load(path)`, once per SavedModel of the module (the
    tests only call its signatures, which keep no state)."""
    loaded = {}

    def load(path):
        if path not in loaded:
            loaded[path] = tf.saved_model.load(str(path))
        return loaded[path]

    return load


@pytest.fixture(scope="module")
def signature(load):
    """`signature(path, name)`: a signature of the SavedModel at `path`."""
    return lambda path, name: load(path).signatures[name]


def test_text_classifier_raw_text_equals_preprocess_then_model(exported, signature):
    model, path = exported["bert-classifier"]
    served = signature(path, "serving_default")(text=tf.constant(TEXTS))
    logits = model.predict_on_batch(model.preprocessor(tf.constant(TEXTS)))
    np.testing.assert_allclose(served["logits"], logits, atol=1e-6, rtol=0)
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(logits), atol=1e-6)
    assert served["label_id"].numpy().tolist() == logits.argmax(-1).tolist()
    assert served["label_name"].numpy().tolist() == [
        f"LABEL_{i}".encode() for i in logits.argmax(-1)]


def test_bart_answers_raw_text_in_a_fresh_process_as_keras(exported):
    """The classifier's `serving_default` and the seq2seq LM's `generate`, text in, run where
    the project is not imported: Keras' logits and Keras' greedy text."""
    classifier, classifier_path = exported["bart-classifier"]
    seq2seq, seq2seq_path = exported["bart-seq2seq_lm"]
    request = {"prompt": np.array(TEXTS), "max_new_tokens": np.int32(4),
               "temperature": np.float32(0.0), "top_k": np.int32(0),
               "top_p": np.float32(1.0), "seed": np.int32(0)}
    (served, _), (generated, _) = run_saved_models([
        (classifier_path, "serving_default", {"text": np.array(TEXTS)}),
        (seq2seq_path, "generate", request)])
    logits = classifier.predict_on_batch(classifier.preprocessor(tf.constant(TEXTS)))
    np.testing.assert_allclose(served["logits"], logits, atol=1e-5, rtol=0)
    assert [t.decode() for t in generated["text"]] == seq2seq.generate(TEXTS, 4)


def test_embed_is_the_normalized_mean_of_real_tokens(exported, signature):
    model, path = exported["bert-backbone"]
    served = signature(path, "embed")(text=tf.constant(TEXTS))["embedding"].numpy()
    x = model.preprocessor(tf.constant(TEXTS))
    sequence = model.predict_on_batch(x)["sequence_output"]
    mask = x["padding_mask"].numpy()[:, :, None]
    mean = (sequence * mask).sum(1) / mask.sum(1)
    expected = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_token_classifier_tags_words_with_offsets(exported, signature):
    model, path = exported["bert-token_classifier"]
    text = "the  northwind jumps"  # "northwind" is 2 pieces; two spaces before it
    served = signature(path, "serving_default")(text=tf.constant([text, ""]))
    assert served["words"].numpy().tolist() == [[b"the", b"northwind", b"jumps"], [b"", b"", b""]]
    assert served["start"].numpy().tolist() == [[0, 5, 15], [-1, -1, -1]]
    assert served["end"].numpy().tolist() == [[3, 14, 20], [-1, -1, -1]]
    # Tags from the logits at each word's first piece: [CLS] the north ##wind jump ##s [SEP].
    x = model.preprocessor(tf.constant([["the", "northwind", "jumps"]]))
    assert x["token_ids"].numpy()[0, :7].tolist() == [2, 5, 18, 19, 9, 10, 3]
    logits = model.predict_on_batch(x)[0]
    assert served["tag_id"].numpy().tolist() == [logits[[1, 2, 4]].argmax(-1).tolist(),
                                                 [-1, -1, -1]]
    assert served["tag_name"].numpy()[1].tolist() == [b"", b"", b""]


def test_fill_mask_finds_each_mask_and_ranks_the_vocabulary(exported, signature):
    model, path = exported["bert-masked_lm"]
    served = signature(path, "fill_mask")(text=tf.constant(["the [MASK] fox [MASK].", "dog"]))
    assert served["num_masks"].numpy().tolist() == [2, 0]
    positions = served["mask_positions"].numpy()
    assert positions[0, :2].tolist() == [2, 4]  # [CLS] the [MASK] fox [MASK] . [SEP]
    ids = np.array([[2, 5, 4, 8, 4, 14, 3] + [0] * 5])
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": (ids > 0) * 1,
         "mask_positions": positions[:1]}
    probabilities = tf.nn.softmax(model.predict_on_batch(
        {k: v.astype("int32") for k, v in x.items()})).numpy()[0, :2]
    expected = np.argsort(-probabilities, axis=-1)[:, :5]
    assert served["token_ids"].numpy()[0, :2].tolist() == expected.tolist()
    np.testing.assert_allclose(served["scores"].numpy()[0, :2],
                               np.take_along_axis(probabilities, expected, -1), atol=1e-6)


def test_image_bytes_equal_decode_then_model(exported, signature):
    model, path = exported["vit-classifier"]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(2)]
    encoded = [tf.io.encode_png(images[0]).numpy(), tf.io.encode_jpeg(images[1]).numpy()]
    served = signature(path, "serving_default")(image_bytes=tf.constant(encoded))
    pixels = [tf.image.resize(tf.io.decode_image(b, channels=3), model.input.shape[1:3]) / 255
              for b in encoded]
    logits = model.predict_on_batch(np.stack(pixels))
    np.testing.assert_allclose(served["logits"], logits, atol=1e-5, rtol=0)


BAD_TEXT = [b"", b"the " * 25_000, b"\xff\xfe not utf-8 \xc3\x28"]


@pytest.mark.parametrize("key", ["bert-classifier", "bert-token_classifier", "bert-masked_lm",
                                 "bert-backbone"])
def test_bad_text_gives_defined_outputs(exported, load, key):
    _, path = exported[key]
    loaded = load(path)
    name = "fill_mask" if key == "bert-masked_lm" else "embed" if key == "bert-backbone" \
        else "serving_default"
    outputs = loaded.signatures[name](text=tf.constant(BAD_TEXT))
    for value in outputs.values():
        assert value.shape[0] == 3
        if value.dtype.is_floating:
            assert np.isfinite(value.numpy()).all()
    empty = loaded.signatures[name](text=tf.constant([], tf.string))
    assert all(value.shape[0] == 0 for value in empty.values())


def test_bad_image_bytes_are_an_invalid_argument_and_empty_batch_is_empty(exported, signature):
    _, path = exported["vit-classifier"]
    serve = signature(path, "serving_default")
    for bad in (b"", b"not an image", tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy()[:20]):
        with pytest.raises(tf.errors.InvalidArgumentError):
            serve(image_bytes=tf.constant([bad]))
    assert serve(image_bytes=tf.constant([], tf.string))["logits"].shape == (0, 3)


def test_warmup_requests_are_valid_for_every_signature(exported, load):
    pytest.importorskip("tensorflow_serving")
    for key in ("bert-masked_lm", "vit-classifier", "t5-seq2seq_lm"):
        _, path = exported[key]
        requests = warmup.read_warmup(path / "assets.extra" / warmup.WARMUP_FILE)
        assert sorted(name for name, _ in requests) == sorted(warmup.signatures(path))
        loaded = load(path)
        for name, inputs in requests:
            outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
            assert all(v.shape[0] == 1 for v in outputs.values())


def test_versions_are_numbered_and_never_overwritten(tmp_path):
    model = build("vit", "classifier", {"num_classes": 2})
    first = export.saved_model(model, tmp_path, name="digits")
    second = export.saved_model(model, tmp_path, name="digits")
    assert (first.name, second.name) == ("1", "2")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.saved_model(model, tmp_path, name="digits", version=1)
    stamp = (first / "saved_model.pb").stat().st_mtime_ns
    again = export.saved_model(model, tmp_path, name="digits", version=1, overwrite=True)
    assert again == first and (first / "saved_model.pb").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["1", "2"]
    with pytest.raises(ValueError, match="folder name"):
        export.saved_model(model, tmp_path, name="../x")


def test_generate_signature_is_added_to_language_models_only(monkeypatch, tmp_path):
    calls = []

    def add_generate_signature(archive, model):
        calls.append(type(model).__name__)
        archive.add_endpoint("generate", lambda text: {"text": text},
                             input_signature=[tf.TensorSpec([None], tf.string, name="text")])

    monkeypatch.setattr(savedmodel, "generation",
                        types.SimpleNamespace(add_generate_signature=add_generate_signature))
    path = export.saved_model(build("gpt", "causal_lm", {}), tmp_path)
    assert calls == ["CausalLM"] and "generate" in warmup.signatures(path)
    export.saved_model(build("gpt", "classifier", {"num_classes": 2}), tmp_path)
    assert calls == ["CausalLM"]


KILLED_EXPORT = textwrap.dedent("""
    import sys, time
    import export, zoo
    from export import warmup
    def stall(folder, name):
        open(sys.argv[2], "w").close()  # the SavedModel is written: tell the test
        time.sleep(600)
    warmup.write_warmup = stall
    export.saved_model(zoo.build("vit", task="classifier", num_classes=2), sys.argv[1], "m")
""")


def test_an_export_killed_mid_write_leaves_no_version_folder(tmp_path):
    ready = tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(tmp_path), str(ready)],
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 120
        while not ready.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the export did not reach the point of writing"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    model_dir = tmp_path / "m"
    assert layout.versions(model_dir) == []
    assert [p.name for p in model_dir.iterdir()] == [f".tmp-1-{process.pid}"]
    # The next export removes the dead one's temporary folder and writes version 1.
    path = export.saved_model(build("vit", "classifier", {"num_classes": 2}), tmp_path, "m")
    assert path.name == "1" and [p.name for p in model_dir.iterdir()] == ["1"]


# (question, context): an ordinary pair, an empty question, an empty context, a context of
# 100,000 characters with its answer at the end, and bytes that are not UTF-8.
QA_PAIRS = [(b"the quick fox", b"the quick brown fox jumps over the lazy dog."),
            (b"", b"north wind"), (b"a b", b""), (b"dog", b"the " * 24_998 + b"lazy dog"),
            (b"fox \xff", b"\xff\xfe not utf-8 \xc3\x28 fox")]


def test_answer_signature_equals_keras_answers_in_a_fresh_process(exported):
    model, path = exported["bert-question_answering"]
    questions, contexts = (np.array(column, object) for column in zip(*QA_PAIRS, strict=True))
    assert len(contexts[3]) == 100_000
    (served, _), = run_saved_models([(path, "answer", {"question": questions,
                                                       "context": contexts})])
    expected = model.answer(list(questions), list(contexts))
    assert served["start"].tolist() == [a["start"] for a in expected]
    assert served["end"].tolist() == [a["end"] for a in expected]
    np.testing.assert_allclose(served["score"], [a["score"] for a in expected], atol=1e-6)
    for answer, context, start, end in zip(served["answer"], contexts, served["start"],
                                           served["end"], strict=True):
        assert answer == (context[start:end] if start >= 0 else b"")
        assert 0 <= start < end <= len(context) or start == end == -1
    assert served["start"][2] == -1  # no context, no answer


def test_answer_signature_rejects_unequal_counts_and_answers_an_empty_batch(exported, signature):
    _, path = exported["bert-question_answering"]
    answer = signature(path, "answer")
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many questions as contexts"):
        answer(question=tf.constant(["a", "b"]), context=tf.constant(["c"]))
    empty = answer(question=tf.constant([], tf.string), context=tf.constant([], tf.string))
    assert all(value.shape[0] == 0 for value in empty.values())
