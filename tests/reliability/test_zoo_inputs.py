"""Bad inputs to the zoo's Python API: `zoo.build`, `zoo.from_pretrained`, model calls,
`predict` and `generate`. Each must be a clear one-line error, never a number."""

import functools
import json

import numpy as np
import pytest
import safetensors.numpy

import zoo
from tests.hub_fixtures import add_repo, offline
from tests.reliability.cases import Case, assert_raises, params


@functools.cache
def model(name, task):
    classes = {"num_classes": 3} if task in ("classifier", "token_classifier") else {}
    return zoo.build(name, task=task, **classes)


def text_inputs(name, token_ids, **extra):
    ids = np.array(token_ids)
    ids = ids.astype("int32") if ids.dtype.kind == "i" else ids
    inputs = {"token_ids": ids, "padding_mask": np.ones(ids.shape, "int32")}
    if name == "bert":
        inputs["segment_ids"] = np.zeros(ids.shape, "int32")
    return {**inputs, **extra}


def call(name, task, how="call", **inputs):
    def run():
        m = model(name, task)
        if how == "predict":
            return m.predict(inputs, verbose=0)
        if how == "backbone":
            return m.backbone(inputs)
        return m(inputs)
    return run


def build(name, **kwargs):
    return lambda: zoo.build(name, **kwargs)


BUILD = [
    Case("unknown family", build("bret"), ValueError, r"unknown model 'bret'.*bert"),
    Case("unknown size", build("bert", size="huge"), ValueError, r"unknown size 'huge'.*base"),
    Case("unknown field", build("gpt", num_layer=2), ValueError, r"num_layer.*fields"),
    Case("unknown task", build("vit", task="causal_lm"), ValueError, r"unknown task.*classifier"),
    Case("num_layers=True", build("gpt", num_layers=True), ValueError,
         r"num_layers must be a positive int, got True"),
    Case("num_layers=0", build("bert", num_layers=0), ValueError, r"num_layers .*positive"),
    Case("num_layers=-1", build("t5", num_layers=-1), ValueError, r"num_layers .*positive"),
    Case("num_layers=1.5", build("vit", num_layers=1.5), ValueError, r"num_layers .*positive"),
    Case("num_layers='2'", build("gpt", num_layers="2"), ValueError, r"num_layers .*positive"),
    Case("num_heads=0", build("bert", num_heads=0), ValueError, r"num_heads .*positive"),
    Case("heads do not divide", build("bert", num_heads=3), ValueError,
         r"not divisible by num_heads=3"),
    Case("kv heads do not divide", build("gpt", size="tiny_llama", num_kv_heads=3), ValueError,
         r"num_kv_heads=3"),
    Case("vocabulary_size=0", build("gpt", vocabulary_size=0), ValueError, r"vocabulary_size"),
    Case("vocabulary_size=False", build("t5", vocabulary_size=False), ValueError,
         r"vocabulary_size .*got False"),
    Case("max_sequence_length=0", build("bert", max_sequence_length=0), ValueError,
         r"max_sequence_length"),
    Case("num_segments=0", build("bert", num_segments=0), ValueError, r"num_segments"),
    Case("gpt dropout 1.5", build("gpt", dropout=1.5), ValueError, r"dropout must be in \[0, 1\)"),
    Case("bert dropout -0.1", build("bert", dropout=-0.1), ValueError, r"dropout .*\[0, 1\)"),
    Case("vit dropout 1", build("vit", dropout=1.0), ValueError, r"dropout .*\[0, 1\)"),
    Case("t5 dropout 2", build("t5", dropout=2.0), ValueError, r"dropout .*\[0, 1\)"),
    Case("unknown gpt position", build("gpt", position="absolute"), ValueError,
         r"position must be one of"),
    Case("unknown t5 activation", build("t5", activation="swish2"), ValueError,
         r"activation='swish2' is unknown"),
    Case("vit image_shape 2-d", build("vit", image_shape=(32, 32)), ValueError,
         r"image_shape must be \(height, width, channels\)"),
    Case("vit patch does not divide", build("vit", patch_size=5), ValueError, r"patch_size|divis"),
    Case("classifier num_classes=0", build("bert", task="classifier", num_classes=0),
         ValueError, r"num_classes must be a positive int"),
    Case("classifier num_classes=True", build("vit", task="classifier", num_classes=True),
         ValueError, r"num_classes must be a positive int"),
    Case("classifier num_classes=2.5", build("gpt", task="classifier", num_classes=2.5),
         ValueError, r"num_classes must be a positive int"),
    Case("token classifier num_classes=-3", build("bert", task="token_classifier",
                                                   num_classes=-3),
         ValueError, r"num_classes must be a positive int"),
    Case("unknown task argument", build("bert", task="classifier", num_class=2), ValueError,
         r"num_class.*arguments"),
    Case("unknown dtype", build("bert", dtype="float33"), ValueError, r"float33"),
]


def from_pretrained(path_of, **kwargs):
    def run(tmp_path):
        return zoo.from_pretrained(path_of(tmp_path), **kwargs)
    return run


def folder_with(config_text, files=()):
    def make(tmp_path):
        folder = tmp_path / "checkpoint"
        folder.mkdir(exist_ok=True)
        if config_text is not None:
            (folder / "config.json").write_text(config_text)
        for name, data in dict(files).items():
            (folder / name).write_bytes(data)
        return folder
    return make


def from_hub(name, repos=()):
    """`zoo.from_pretrained(name)` offline, against a cache holding `repos`."""
    def run(tmp_path):
        for repo_id, files in dict(repos).items():
            add_repo(tmp_path / "hub", repo_id, files)
        with offline(tmp_path / "hub"):
            return zoo.from_pretrained(name)
    return run


BERT_CONFIG = json.dumps({"model_type": "bert", "vocab_size": 32, "hidden_size": 8,
                          "num_hidden_layers": 1, "num_attention_heads": 2,
                          "intermediate_size": 16, "max_position_embeddings": 16})

FROM_PRETRAINED = [
    Case("missing path", from_pretrained(lambda t: t / "nowhere"), ValueError,
         r"nowhere does not exist"),
    Case("folder without config.json", from_pretrained(folder_with(None)), ValueError,
         r"has no config.json"),
    Case("config.json not JSON", from_pretrained(folder_with("{model_type: bert")), ValueError,
         r"config.json.*not valid JSON"),
    Case("config.json a list", from_pretrained(folder_with("[1, 2]")), ValueError,
         r"config.json.*(object|dict)"),
    Case("unknown model_type", from_pretrained(folder_with('{"model_type": "mamba"}', {
        "model.safetensors": safetensors.numpy.save({"x": np.zeros(1, "float32")})})),
         ValueError, r"mamba"),
    Case("no weights file", from_pretrained(folder_with(BERT_CONFIG)), ValueError,
         r"has no model.safetensors"),
    Case("truncated safetensors",
         from_pretrained(folder_with(BERT_CONFIG, {"model.safetensors": b"\x10\x00\x00"})),
         ValueError, r"model.safetensors"),
    Case("gguf with a wrong magic",
         from_pretrained(lambda t: (t / "m.gguf").write_bytes(b"NOPE" + bytes(60))
                         and t / "m.gguf"),
         ValueError, r"gguf"),
    Case("truncated gguf",
         from_pretrained(lambda t: (t / "m.gguf").write_bytes(b"GGUF\x03\x00") and t / "m.gguf"),
         ValueError, r"m.gguf"),
    Case("unknown task on import", from_pretrained(
        lambda t: "tests/fixtures/reference/bert", task="generate"), ValueError,
         r"unknown task 'generate'"),
    Case("hub name not in the cache, offline", from_hub("test-org/nowhere"), ValueError,
         r"test-org/nowhere is not a local path; the Hugging Face cache .*HF_HUB_OFFLINE"),
    Case("hub revision not in the cache, offline", from_hub(
        "hf://test-org/bert@v2", {"test-org/bert": {"config.json": BERT_CONFIG.encode()}}),
         ValueError, r"hf://test-org/bert@v2: the Hugging Face cache .* lacks its revision v2"),
    Case("hub repo of pickles only", from_hub("hf://test-org/pickles", {"test-org/pickles": {
        "config.json": BERT_CONFIG.encode(), "pytorch_model.bin": b"\x80\x04"}}), ValueError,
         r"only as pickles \(pytorch_model.bin\).*give a revision with model.safetensors"),
    Case("malformed hf:// name", from_hub("hf://bert-base-uncased"), ValueError,
         r"hf://bert-base-uncased is not a Hugging Face name: write hf://ORG/NAME"),
]

BERT_MASK = {"mask_positions": np.array([[1]], "int32")}

CALLS = [
    Case("gpt negative id", call("gpt", "causal_lm", **text_inputs("gpt", [[5, -1]])),
         ValueError, r"token_ids holds -1 at \[0, 1\]: ids must be in \[0, 1024\)"),
    Case("gpt id = vocabulary", call("gpt", "causal_lm", **text_inputs("gpt", [[1024]])),
         ValueError, r"token_ids holds 1024 .*\[0, 1024\)"),
    Case("gpt huge id", call("gpt", "causal_lm", **text_inputs("gpt", [[2**31 - 1]])),
         ValueError, r"token_ids holds 2147483647"),
    Case("gpt predict negative id",
         call("gpt", "causal_lm", "predict", **text_inputs("gpt", [[3, 4], [1, -5]])),
         ValueError, r"token_ids holds -5 at \[1, 1\]"),
    Case("gpt predict id past the vocabulary",
         call("gpt", "causal_lm", "predict", **text_inputs("gpt", [[3, 5000]])),
         ValueError, r"token_ids holds 5000"),
    Case("gpt too many positions",
         call("gpt", "causal_lm", **text_inputs("gpt", [[1] * 129])), ValueError,
         r"token_ids has 129 positions: at most 128"),
    Case("gpt padding mask 2", call("gpt", "causal_lm", token_ids=np.array([[1, 2]]),
                                    padding_mask=np.array([[1, 2]])),
         ValueError, r"padding_mask holds 2 .*\[0, 2\)"),
    Case("gpt backbone negative id",
         call("gpt", "causal_lm", "backbone", **text_inputs("gpt", [[-2]])),
         ValueError, r"token_ids holds -2"),
    Case("gpt classifier negative id",
         call("gpt", "classifier", "predict", **text_inputs("gpt", [[-1, 3]])),
         ValueError, r"token_ids holds -1"),
    Case("bert negative id", call("bert", "classifier", **text_inputs("bert", [[2, -1, 3]])),
         ValueError, r"token_ids holds -1 at \[0, 1\]"),
    Case("bert predict negative id",
         call("bert", "classifier", "predict", **text_inputs("bert", [[2, -7]])),
         ValueError, r"token_ids holds -7"),
    Case("bert segment 2", call("bert", "classifier", "predict", token_ids=np.array([[2, 3]]),
                                segment_ids=np.array([[0, 2]]), padding_mask=np.ones((1, 2))),
         ValueError, r"segment_ids holds 2 .*\[0, 2\), the segments"),
    Case("bert negative segment", call("bert", "classifier", token_ids=np.array([[2, 3]]),
                                       segment_ids=np.array([[-1, 0]]),
                                       padding_mask=np.ones((1, 2))),
         ValueError, r"segment_ids holds -1"),
    Case("bert too many positions",
         call("bert", "classifier", "predict", **text_inputs("bert", [[1] * 129])), ValueError,
         r"129 positions: at most 128, the learned positions"),
    Case("bert float ids", call("bert", "classifier", **text_inputs("bert", [[2.5, 3.0]])),
         ValueError, r"token_ids holds 2.5"),
    Case("bert nan ids",
         call("bert", "classifier", **text_inputs("bert", [[np.nan, 3.0]])), ValueError,
         r"token_ids holds nan"),
    Case("bert mask position past the end",
         call("bert", "masked_lm", **text_inputs("bert", [[2, 3, 4]], **BERT_MASK | {
             "mask_positions": np.array([[3]], "int32")})),
         ValueError, r"mask_positions holds 3 .*\[0, 3\)"),
    Case("bert negative mask position",
         call("bert", "masked_lm", "predict", **text_inputs("bert", [[2, 3]], mask_positions=(
             np.array([[-1]], "int32")))),
         ValueError, r"mask_positions holds -1"),
    Case("bert token classifier negative id",
         call("bert", "token_classifier", "predict", **text_inputs("bert", [[-3]])),
         ValueError, r"token_ids holds -3"),
    Case("bert question answering id past the vocabulary",
         call("bert", "question_answering", **text_inputs("bert", [[2, 1024, 3]])),
         ValueError, r"token_ids holds 1024"),
    Case("t5 negative encoder id", call(
        "t5", "seq2seq_lm", encoder_token_ids=np.array([[3, -1]]),
        encoder_padding_mask=np.ones((1, 2)), decoder_token_ids=np.array([[0]]),
        decoder_padding_mask=np.ones((1, 1))),
         ValueError, r"encoder_token_ids holds -1"),
    Case("t5 decoder id past the vocabulary", call(
        "t5", "seq2seq_lm", "predict", encoder_token_ids=np.array([[3, 4]]),
        encoder_padding_mask=np.ones((1, 2)), decoder_token_ids=np.array([[0, 99999]]),
        decoder_padding_mask=np.ones((1, 2))),
         ValueError, r"decoder_token_ids holds 99999"),
    Case("t5 decoder padding mask -1", call(
        "t5", "seq2seq_lm", encoder_token_ids=np.array([[3, 4]]),
        encoder_padding_mask=np.ones((1, 2)), decoder_token_ids=np.array([[0]]),
        decoder_padding_mask=np.array([[-1]])),
         ValueError, r"decoder_padding_mask holds -1"),
    Case("predict rows differ", call("gpt", "causal_lm", "predict", token_ids=np.ones((2, 3)),
                                     padding_mask=np.ones((3, 3))),
         ValueError, r"different numbers of rows"),
]


def generate(*args, **kwargs):
    return lambda: model("gpt", "causal_lm").generate(*args, **kwargs)


GENERATE = [
    Case("max_new_tokens 0", generate([[5, 6]], max_new_tokens=0), ValueError,
         r"max_new_tokens must be a positive int, got 0"),
    Case("max_new_tokens -3", generate([[5, 6]], max_new_tokens=-3), ValueError,
         r"max_new_tokens must be a positive int"),
    Case("max_new_tokens True", generate([[5, 6]], max_new_tokens=True), ValueError,
         r"max_new_tokens must be a positive int, got True"),
    Case("max_new_tokens 2.5", generate([[5, 6]], max_new_tokens=2.5), ValueError,
         r"max_new_tokens must be a positive int"),
    Case("unknown sampler", generate([[5]], max_new_tokens=2, sampler="beam_me_up"),
         ValueError, r"unknown sampler 'beam_me_up'"),
    Case("temperature 0", generate([[5]], max_new_tokens=2, sampler="top_k", temperature=0),
         ValueError, r"temperature must be > 0"),
    Case("top_k 0", generate([[5]], max_new_tokens=2, sampler="top_k", top_k=0), ValueError,
         r"top_k must be in \[1, 1024\]"),
    Case("top_p 1.5", generate([[5]], max_new_tokens=2, sampler="top_p", top_p=1.5),
         ValueError, r"top_p must be in \(0, 1\]"),
    Case("num_beams 0", generate([[5]], max_new_tokens=2, num_beams=0), ValueError,
         r"num_beams must be in"),
    Case("negative prompt id", generate([[5, -1]], max_new_tokens=2), ValueError,
         r"outside the vocabulary \[0, 1024\)"),
    Case("prompt id past the vocabulary", generate([[5, 1024]], max_new_tokens=2), ValueError,
         r"outside the vocabulary"),
    Case("empty prompt", generate([[]], max_new_tokens=2), ValueError, r"prompt 0 is empty"),
    Case("no prompts", generate([], max_new_tokens=2), ValueError, r"no prompts"),
    Case("text without a tokenizer", generate("Once upon", max_new_tokens=2), ValueError,
         r"tokenizer|preprocessor"),
]


@pytest.mark.parametrize("case", params(BUILD + GENERATE + CALLS))
def test_bad_input_is_a_clear_error(case):
    assert_raises(case)


@pytest.mark.parametrize("case", params(FROM_PRETRAINED))
def test_bad_checkpoint_is_a_clear_error(case, tmp_path):
    assert_raises(Case(case.name, lambda: case.call(tmp_path), case.error, case.words))


def test_valid_inputs_still_give_numbers():
    """The checks reject only what is invalid: the edges of every range are accepted."""
    gpt = model("gpt", "causal_lm")
    logits = gpt.predict(text_inputs("gpt", [[0, 1023] + [5] * 126]), verbose=0)
    assert logits.shape == (1, 128, 1024) and np.isfinite(logits).all()
    bert = model("bert", "classifier")
    inputs = text_inputs("bert", [[0, 1023]])
    inputs["segment_ids"] = np.array([[0, 1]], "int32")
    np.testing.assert_allclose(bert.predict(inputs, verbose=0), bert(inputs), atol=1e-6)


# Where no check runs in Python (a tf.data dataset, a compiled step): a row with an id
# outside its table gives NaN, every family, not a number read from another row.
DATASET_ROWS = {"gpt-causal_lm": [[5, 6, 7], [5, -1, 7], [5, 6, 1024]],
                "bert-classifier": [[5, 6, 7], [-3, 6, 7], [5, 1024, 7]],
                "t5-seq2seq_lm": [[5, 6, 7], [5, 6, -1], [1024, 6, 7]]}


@pytest.mark.parametrize("key", sorted(DATASET_ROWS))
def test_ids_outside_the_vocabulary_give_nan_rows_where_no_python_check_runs(key):
    import tensorflow as tf

    name, task = key.split("-")
    m = model(name, task)
    inputs = text_inputs(name, DATASET_ROWS[key])
    for side in ("encoder", "decoder"):
        if f"{side}_token_ids" in m.input:
            inputs[f"{side}_token_ids"] = inputs["token_ids"]
            inputs[f"{side}_padding_mask"] = inputs["padding_mask"]
    inputs = {k: v for k, v in inputs.items() if k in m.input}
    if name == "bert":  # a fourth row: a segment id past num_segments
        inputs = {k: np.concatenate([v, v[:1]]) for k, v in inputs.items()}
        inputs["segment_ids"][3, 1] = 2
    m.compile()  # jit_compile=True
    out = m.predict(tf.data.Dataset.from_tensor_slices(inputs).batch(4), verbose=0)
    rows = np.isnan(out.reshape(len(out), -1))
    assert rows.all(axis=1).tolist() == [False] + [True] * (len(out) - 1)
    assert not rows[0].any()


CASE_COUNT = len(BUILD) + len(FROM_PRETRAINED) + len(CALLS) + len(GENERATE)
