"""Bad inputs to exported models: a SavedModel's `token_ids` signature, called in a fresh
process that imports only TensorFlow (as TF Serving does), fails with InvalidArgumentError
naming the input, the bad value and the valid range; a TFLite model gives NaN for the rows
with a bad input; the LiteRT and verify runners raise a one-line ValueError first. Valid
inputs, the edges of every range included, still give the Keras model's numbers."""

import functools

import numpy as np
import pytest
import tensorflow as tf

import export
import zoo
from export import warmup
from export.generation import litert_generate, tflite_decoder
from export.litert import run_tflite
from export.report import SignatureError, run_saved_models
from tests.export import models
from tests.export.models import keras_outputs
from tests.reliability.cases import Case, assert_message, assert_raises, params

# Seven SavedModels, one fresh process for all their calls, two TFLite conversions: about
# 35 s on 2 cores.
pytestmark = pytest.mark.slow

MODELS = {
    "bert-classifier": ("bert", "classifier", {"num_classes": 3}),
    "bert-masked_lm": ("bert", "masked_lm", {}),
    "bert-question_answering": ("bert", "question_answering", {}),
    "bert-backbone": ("bert", None, {}),
    "gpt-causal_lm": ("gpt", "causal_lm", {}),
    "t5-seq2seq_lm": ("t5", "seq2seq_lm", {}),
    "bert-one-segment": ("bert", "classifier", {"num_classes": 3, "num_segments": 1}),
}
# The tiny models' ranges: ids in [0, 1024), segments in [0, 2), 128 learned positions.
VOCABULARY, POSITIONS = 1024, 128
IDS = np.array([[0, 5, 1023, 7], [9, 8, 3, 0]], "int32")  # both ends of the vocabulary
MASK = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], "int32")


GENERATOR = "gpt-causal_lm-with-tokenizer"  # strings in: the generate signature


@functools.cache
def model(key):
    if key == GENERATOR:
        return models.build("gpt", "causal_lm", {"num_layers": 1})
    family, task, arguments = MODELS[key]
    return zoo.build(family, task=task, num_layers=1, **arguments)


def valid_inputs(key, length=None):
    """Valid `token_ids`-signature inputs of `model(key)`: two rows of 4 positions (or
    `length` positions of id 5, no padding)."""
    ids, mask = IDS, MASK
    if length is not None:
        ids, mask = np.full((1, length), 5, "int32"), np.ones((1, length), "int32")
    inputs = {}
    for name in model(key).input:
        if name.endswith("token_ids"):
            inputs[name] = ids
        elif name.endswith("padding_mask"):
            inputs[name] = mask
        elif name == "segment_ids":
            inputs[name] = (np.arange(ids.shape[1]) >= ids.shape[1] // 2).astype("int32") * mask
        elif name == "mask_positions":
            inputs[name] = np.array([[1, 3]] * len(ids), "int32")
    return inputs


def with_value(values, where, value):
    changed = np.array(values)
    changed[where] = value
    return changed


def job(key, length=None, **changes):
    """A call that gives `(key, inputs)`: valid inputs of `model(key)` but for `changes`."""
    return lambda: (key, {**valid_inputs(key, length), **changes})


def warmup_job(key):
    """A call that gives `(key, inputs)`: the `token_ids` request of TF Serving's warmup file
    (which must pass the checks, or TF Serving does not load the version)."""
    return lambda: (key, {name: warmup.example_input(name, tf.int32, [None, None])
                          for name in model(key).input})


def assertion(message):
    """The line of a signature's error that its Assert wrote (what TF Serving answers)."""
    return next((line for line in message.splitlines() if "assertion failed" in line), message)


INVALID = tf.errors.InvalidArgumentError
VOCABULARY_WORDS = r"ids must be in \[0, 1024\), the vocabulary \(vocabulary_size\)"
MASK_WORDS = r"values must be in \[0, 2\), a padding mask"
SEGMENT_WORDS = r"ids must be in \[0, 2\), the segments \(num_segments\)"
LENGTH_WORDS = r"token_ids has 129 positions: at most 128, the learned positions"

SAVED_MODEL = [
    Case("bert classifier negative id", job("bert-classifier", token_ids=with_value(
        IDS, (0, 2), -1)), INVALID, r"token_ids holds -1 at \[0, 2\]: " + VOCABULARY_WORDS),
    Case("bert classifier id = vocabulary_size", job("bert-classifier", token_ids=with_value(
        IDS, (1, 0), VOCABULARY)), INVALID, r"token_ids holds 1024 at \[1, 0\]: " +
         VOCABULARY_WORDS),
    Case("bert classifier largest int32 id", job("bert-classifier", token_ids=with_value(
        IDS, (0, 0), 2**31 - 1)), INVALID, r"token_ids holds 2147483647"),
    Case("bert classifier padding mask 2", job("bert-classifier", padding_mask=with_value(
        MASK, (1, 3), 2)), INVALID, r"padding_mask holds 2 at \[1, 3\]: " + MASK_WORDS),
    Case("bert classifier padding mask -1", job("bert-classifier", padding_mask=with_value(
        MASK, (0, 0), -1)), INVALID, r"padding_mask holds -1 at \[0, 0\]: " + MASK_WORDS),
    Case("bert classifier segment id 2", job("bert-classifier", segment_ids=with_value(
        np.zeros_like(IDS), (0, 1), 2)), INVALID, r"segment_ids holds 2 at \[0, 1\]: " +
         SEGMENT_WORDS),
    Case("bert classifier negative segment id", job("bert-classifier", segment_ids=with_value(
        np.zeros_like(IDS), (1, 2), -1)), INVALID, r"segment_ids holds -1 .*" + SEGMENT_WORDS),
    Case("bert classifier too many positions", job("bert-classifier", length=POSITIONS + 1),
         INVALID, LENGTH_WORDS),
    Case("bert classifier mask of another shape", job(
        "bert-classifier", padding_mask=np.ones((2, 5), "int32")), INVALID,
         r"padding_mask has the shape \[2, 5\]: it must have the shape of token_ids, \[2, 4\]"),
    Case("bert classifier segments of another batch", job(
        "bert-classifier", segment_ids=np.zeros((1, 4), "int32")), INVALID,
         r"segment_ids has the shape \[1, 4\]: it must have the shape of token_ids"),
    Case("bert masked_lm mask position past the end", job("bert-masked_lm", mask_positions=(
        np.array([[1, 4], [0, 2]], "int32"))), INVALID,
         r"mask_positions holds 4 at \[0, 1\]: ids must be in \[0, 4\), the positions of "
         r"token_ids"),
    Case("bert masked_lm negative mask position", job("bert-masked_lm", mask_positions=(
        np.array([[1, 2], [-1, 2]], "int32"))), INVALID, r"mask_positions holds -1 at \[1, 0\]"),
    Case("bert masked_lm mask positions of another batch", job(
        "bert-masked_lm", mask_positions=np.array([[1, 2]], "int32")), INVALID,
         r"mask_positions has the shape \[1, 2\]: it must have as many rows as token_ids, "
         r"\[2, 4\]"),
    Case("bert masked_lm negative id", job("bert-masked_lm", token_ids=with_value(
        IDS, (1, 1), -5)), INVALID, r"token_ids holds -5 .*" + VOCABULARY_WORDS),
    Case("bert masked_lm too many positions", job("bert-masked_lm", length=POSITIONS + 1),
         INVALID, LENGTH_WORDS),
    Case("bert question answering id = vocabulary_size", job(
        "bert-question_answering", token_ids=with_value(IDS, (0, 3), VOCABULARY)), INVALID,
         r"token_ids holds 1024 .*" + VOCABULARY_WORDS),
    Case("bert backbone negative id", job("bert-backbone", token_ids=with_value(
        IDS, (0, 1), -1)), INVALID, r"token_ids holds -1 .*" + VOCABULARY_WORDS),
    Case("gpt causal_lm negative id", job("gpt-causal_lm", token_ids=with_value(
        IDS, (0, 3), -1)), INVALID, r"token_ids holds -1 at \[0, 3\]: " + VOCABULARY_WORDS),
    Case("gpt causal_lm id = vocabulary_size", job("gpt-causal_lm", token_ids=with_value(
        IDS, (1, 2), VOCABULARY)), INVALID, r"token_ids holds 1024 at \[1, 2\]"),
    Case("gpt causal_lm padding mask 2", job("gpt-causal_lm", padding_mask=with_value(
        MASK, (0, 1), 2)), INVALID, r"padding_mask holds 2 .*" + MASK_WORDS),
    Case("gpt causal_lm too many positions", job("gpt-causal_lm", length=POSITIONS + 1),
         INVALID, LENGTH_WORDS),
    Case("t5 negative encoder id", job("t5-seq2seq_lm", encoder_token_ids=with_value(
        IDS, (0, 0), -1)), INVALID, r"encoder_token_ids holds -1 at \[0, 0\]: " +
         VOCABULARY_WORDS),
    Case("t5 decoder id = vocabulary_size", job("t5-seq2seq_lm", decoder_token_ids=with_value(
        IDS, (1, 1), VOCABULARY)), INVALID, r"decoder_token_ids holds 1024 .*" +
         VOCABULARY_WORDS),
    Case("t5 encoder padding mask 2", job("t5-seq2seq_lm", encoder_padding_mask=with_value(
        MASK, (0, 2), 2)), INVALID, r"encoder_padding_mask holds 2 .*" + MASK_WORDS),
    Case("t5 decoder padding mask -1", job("t5-seq2seq_lm", decoder_padding_mask=with_value(
        MASK, (1, 0), -1)), INVALID, r"decoder_padding_mask holds -1 .*" + MASK_WORDS),
    Case("t5 decoder mask of another length", job(
        "t5-seq2seq_lm", decoder_padding_mask=np.ones((2, 3), "int32")), INVALID,
         r"decoder_padding_mask has the shape \[2, 3\]: it must have the shape of "
         r"decoder_token_ids"),
]

# The generate signature's settings (a tiny GPT: 128 positions, 20 tokens).
GREEDY = {"prompt": np.array([b"the quick brown"]), "max_new_tokens": np.int32(3),
          "temperature": np.float32(0), "top_k": np.int32(0), "top_p": np.float32(1),
          "seed": np.int32(0)}


def generate_job(**changes):
    return lambda: (GENERATOR, {**GREEDY, **{k: np.asarray(v, GREEDY[k].dtype)
                                            for k, v in changes.items()}})


STEPS_WORDS = r"max_new_tokens must be in \[1, 128\) \(max_length\), got"
GENERATE = [
    Case("generate max_new_tokens 0", generate_job(max_new_tokens=0), INVALID,
         STEPS_WORDS + r".*\b0\b"),
    Case("generate max_new_tokens negative", generate_job(max_new_tokens=-4), INVALID,
         STEPS_WORDS + r".*-4"),
    Case("generate max_new_tokens = max_length", generate_job(max_new_tokens=128), INVALID,
         STEPS_WORDS + r".*128"),
    Case("generate negative temperature", generate_job(temperature=-1.0), INVALID,
         r"temperature must be a number >= 0 \(0: greedy\), got.*-1"),
    Case("generate NaN temperature", generate_job(temperature=np.nan), INVALID,
         r"temperature must be a number >= 0.*got.*nan"),
    Case("generate negative top_k", generate_job(top_k=-1), INVALID,
         r"top_k must be in \[0, 20\] \(0: every token\), got.*-1"),
    Case("generate top_k past the vocabulary", generate_job(top_k=21), INVALID,
         r"top_k must be in \[0, 20\].*21"),
    Case("generate top_p 0", generate_job(top_p=0.0), INVALID,
         r"top_p must be in \(0, 1\] \(1: every token\), got"),
    Case("generate top_p 1.5", generate_job(top_p=1.5), INVALID, r"top_p must be in \(0, 1\].*1.5"),
]

# (name, job): valid inputs, the edges of each range among them, equal Keras' outputs.
VALID = [
    ("bert classifier", job("bert-classifier")),
    ("bert classifier at the learned positions' end", job("bert-classifier",
                                                          length=POSITIONS)),
    ("bert masked_lm", job("bert-masked_lm")),
    ("bert question answering", job("bert-question_answering")),
    ("bert backbone", job("bert-backbone")),
    ("gpt causal_lm", job("gpt-causal_lm")),
    ("gpt causal_lm at the learned positions' end", job("gpt-causal_lm", length=POSITIONS)),
    ("t5 seq2seq_lm", job("t5-seq2seq_lm")),
    ("t5 past 128 positions (relative positions: no limit)", job("t5-seq2seq_lm",
                                                                 length=POSITIONS + 72)),
    ("bert with one segment: the warmup request", warmup_job("bert-one-segment")),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """{case name: outputs or `SignatureError`}: every model of the module exported once,
    and every case's call made in one fresh process."""
    base = tmp_path_factory.mktemp("exports")
    paths = {key: export.saved_model(model(key), base) for key in MODELS}
    paths[GENERATOR] = export.saved_model(model(GENERATOR), base)
    calls = [(case.name, case.call) for case in SAVED_MODEL + GENERATE] + VALID + [
        ("generate greedy", generate_job()), ("generate at the largest settings", generate_job(
            max_new_tokens=127, temperature=5.0, top_k=20, top_p=1.0))]
    jobs = [(paths[key], "generate" if key == GENERATOR else "token_ids", inputs)
            for key, inputs in (call() for _, call in calls)]
    results = run_saved_models(jobs, repeats=0, keep_errors=True)
    return {name: outputs for (name, _), (outputs, _) in zip(calls, results, strict=True)}


@pytest.mark.parametrize("case", params(SAVED_MODEL + GENERATE))
def test_bad_input_fails_the_signature_naming_it(served, case):
    result = served[case.name]
    assert isinstance(result, SignatureError), f"no error: it gave outputs {sorted(result)}"
    assert result.type == case.error.__name__
    assert_message(assertion(result.message), case.words)


@pytest.mark.parametrize("name,call", VALID, ids=[name for name, _ in VALID])
def test_valid_input_gives_the_keras_outputs(served, name, call):
    outputs = served[name]
    assert not isinstance(outputs, SignatureError), outputs.message
    key, inputs = call()
    for output, expected in keras_outputs(model(key), inputs).items():
        np.testing.assert_allclose(outputs[output], expected, atol=1e-5, rtol=0)


def test_generate_signature_answers_as_keras_within_its_ranges(served):
    greedy = served["generate greedy"]
    assert not isinstance(greedy, SignatureError), greedy.message
    expected = model(GENERATOR).generate(["the quick brown"], max_new_tokens=3)
    assert greedy["text"].astype(str).tolist() == expected
    widest = served["generate at the largest settings"]
    assert not isinstance(widest, SignatureError), widest.message
    assert widest["token_ids"].shape == (1, 127)


# TFLite: a row with a bad input gives NaN in every output; the other rows are unaffected.
TFLITE_LENGTH = POSITIONS  # `export.tflite`'s fixed length for a model without preprocessor
TFLITE_ROWS = [
    ("valid", "token_ids", 0, 5),
    ("negative id", "token_ids", 3, -1),
    ("id = vocabulary_size", "token_ids", TFLITE_LENGTH - 1, VOCABULARY),
    ("padding mask 2", "padding_mask", 0, 2),
    ("segment id 2", "segment_ids", 5, 2),
    ("negative segment id", "segment_ids", 1, -1),
]


@pytest.fixture(scope="module")
def tflite_outputs(tmp_path_factory):
    """(inputs, outputs) of the bert classifier's TFLite model on one row per TFLITE_ROWS."""
    bert = model("bert-classifier")
    path = export.tflite(bert, tmp_path_factory.mktemp("tflite") / "bert.tflite")
    rows = len(TFLITE_ROWS)
    inputs = {"token_ids": np.full((rows, TFLITE_LENGTH), 7, "int32"),
              "segment_ids": np.zeros((rows, TFLITE_LENGTH), "int32"),
              "padding_mask": np.ones((rows, TFLITE_LENGTH), "int32")}
    for row, (_, name, position, value) in enumerate(TFLITE_ROWS):
        inputs[name][row, position] = value
    return path, inputs, run_tflite(path, inputs)


@pytest.mark.parametrize("row", range(len(TFLITE_ROWS)), ids=[r[0] for r in TFLITE_ROWS])
def test_tflite_rows_with_a_bad_input_are_nan(tflite_outputs, row):
    _, inputs, outputs = tflite_outputs
    if TFLITE_ROWS[row][0] == "valid":
        expected = keras_outputs(model("bert-classifier"),
                                 {k: v[row:row + 1] for k, v in inputs.items()})
        np.testing.assert_allclose(outputs["logits"][row:row + 1], expected["logits"],
                                   atol=1e-5, rtol=0)
    else:
        assert np.isnan(outputs["logits"][row]).all()


def test_verify_refuses_bad_ids_before_running_anything(tflite_outputs):
    path, inputs, _ = tflite_outputs
    with pytest.raises(ValueError) as raised:
        export.verify(model("bert-classifier"), path, inputs)
    assert_message(str(raised.value), r"token_ids holds -1 at \[1, 3\]: " + VOCABULARY_WORDS)


@pytest.fixture(scope="module")
def decoder():
    """A tiny GPT's TFLite `prefill` (4 ids) and `decode` (8 cache positions) model."""
    return tflite_decoder(model("gpt-causal_lm"), prompt_length=4, max_length=8)


def generate(prompt_ids):
    return lambda content: litert_generate(content, prompt_ids, max_new_tokens=2)


LITERT = [
    Case("litert_generate negative id", generate([5, -1]), ValueError,
         r"prompt_ids holds -1 at \[1\]: " + VOCABULARY_WORDS),
    Case("litert_generate id = vocabulary_size", generate([VOCABULARY, 5]), ValueError,
         r"prompt_ids holds 1024 at \[0\]"),
    Case("litert_generate float ids", generate([5.5, 6.0]), ValueError,
         r"prompt_ids holds float64 values: give integer ids"),
]


@pytest.mark.parametrize("case", params(LITERT))
def test_litert_generate_refuses_bad_ids(decoder, case):
    assert_raises(Case(case.name, lambda: case.call(decoder), case.error, case.words))


# decode(token_id, index) after a valid prefill: (token id, index, NaN expected).
DECODE_STEPS = [(5, 4, False), (-1, 4, True), (VOCABULARY, 4, True), (5, 8, True),
                (5, -1, True)]


def test_tflite_prefill_and_decode_give_nan_for_bad_ids(decoder):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=decoder)
    prefill = interpreter.get_signature_runner("prefill")
    decode = interpreter.get_signature_runner("decode")
    bad = prefill(token_ids=np.array([[5, 6, -1, 0]], "int32"))
    assert np.isnan(bad["logits"]).all() and np.isnan(bad["cache"]).all()
    cache = prefill(token_ids=np.array([[5, 6, 7, 8]], "int32"))["cache"]
    assert np.isfinite(cache).all()
    for token_id, index, nan in DECODE_STEPS:
        out = decode(token_id=np.array([[token_id]], "int32"), cache=cache,
                     index=np.array(index, "int32"))
        assert np.isnan(out["logits"]).all() == nan, (token_id, index)
        assert np.isfinite(out["logits"]).all() != nan, (token_id, index)


CASE_COUNT = (len(SAVED_MODEL) + len(GENERATE) + 2 + len(VALID) + len(TFLITE_ROWS) + 1 + len(LITERT)
              + len(DECODE_STEPS) + 1)
