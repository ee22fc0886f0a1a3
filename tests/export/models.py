"""Tiny zoo models of every family and task, with preprocessors, for the export tests."""

import numpy as np

import zoo
from export.signatures import named_outputs
from zoo.preprocessing import TextClassifierPreprocessor, WordPieceTokenizer, preprocessor_for

# [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then words.
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox",
              "jump", "##s", "over", "lazy", "dog", ".", "a", "b", "c", "north", "##wind"]
SEQUENCE_LENGTH = 12
# (family, task, task arguments); task None is a backbone with a text preprocessor (embed).
CASES = [
    ("bert", "classifier", {"num_classes": 3}),
    ("bert", "token_classifier", {"num_classes": 4}),
    ("bert", "masked_lm", {}),
    ("bert", None, {}),
    ("gpt", "classifier", {"num_classes": 2}),
    ("gpt", "causal_lm", {}),
    ("t5", "seq2seq_lm", {}),
    ("vit", "classifier", {"num_classes": 3}),
]
# The legacy .keras fixtures (tests/fixtures/legacy) hold CASES; tasks added since come here.
# BART reading this vocabulary: [SEP] ends texts and starts its decoder, [PAD] pads.
BART_IDS = {"end_token_id": 3, "decoder_start_token_id": 3, "pad_token_id": 0}
EXPORT_CASES = [*CASES, ("bert", "question_answering", {}), ("transformer", "seq2seq_lm", {}),
                ("bart", "seq2seq_lm", BART_IDS), ("bart", "classifier",
                                                   {"num_classes": 3, **BART_IDS})]
TEXTS = ["the quick brown fox jumps over the lazy dog.", "north wind", "",
         "a b c " * 20]


def case_id(case):
    return f"{case[0]}-{case[1] or 'backbone'}"


def build(family, task, arguments, tokenizer=None):
    """A tiny model with `model.preprocessor` (text models) attached."""
    if family == "vit":
        return zoo.build(family, task=task, **arguments)
    tokenizer = tokenizer or WordPieceTokenizer(VOCABULARY)
    model = zoo.build(family, task=task, vocabulary_size=len(VOCABULARY), **arguments)
    if task is None:
        model.preprocessor = TextClassifierPreprocessor(tokenizer, SEQUENCE_LENGTH)
    else:
        model.preprocessor = preprocessor_for(model, tokenizer, SEQUENCE_LENGTH)
    return model


def model_inputs(model, batch=3, seed=0):
    """Random valid model inputs: ids in the vocabulary, masks with real lengths >= 1."""
    rng = np.random.default_rng(seed)
    if not isinstance(model.input, dict):
        return rng.random((batch, *model.input.shape[1:])).astype("float32")
    length = SEQUENCE_LENGTH
    real = np.arange(length)[None] < rng.integers(1, length + 1, (batch, 1))
    inputs = {}
    for name in model.input:
        if name.endswith("token_ids"):
            inputs[name] = rng.integers(5, len(VOCABULARY), (batch, length))
        elif name.endswith("padding_mask"):
            inputs[name] = real
        elif name == "mask_positions":
            inputs[name] = rng.integers(0, length, (batch, 2))
        else:
            inputs[name] = np.zeros((batch, length))
    return {name: value.astype("int32") for name, value in inputs.items()}


def keras_outputs(model, x):
    """The Keras model's outputs named as the exports name them (`{"logits": ...}` for a
    single tensor, `start_logits` / `end_logits` for question answering)."""
    return {name: np.asarray(value)
            for name, value in named_outputs(model, model.predict_on_batch(x)).items()}
