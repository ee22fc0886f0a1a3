"""The preprocessor of a zoo task model, chosen by its `task_name` and configured for it."""

from zoo.preprocessing.image import ImageClassifierPreprocessor
from zoo.preprocessing.language_model import (
    CausalLMPreprocessor,
    MaskedLMPreprocessor,
    Seq2SeqLMPreprocessor,
)
from zoo.preprocessing.question_answering import QuestionAnsweringPreprocessor
from zoo.preprocessing.text import TextClassifierPreprocessor, TokenClassifierPreprocessor

DEFAULT_SEQUENCE_LENGTH = 128
# SQuAD's windows are longer: 384, as in BERT's paper and Hugging Face's script.
TASK_SEQUENCE_LENGTHS = {"question_answering": 384}
TEXT_PREPROCESSORS = {
    "question_answering": QuestionAnsweringPreprocessor,
    "token_classifier": TokenClassifierPreprocessor,
    "masked_lm": MaskedLMPreprocessor,
    "causal_lm": CausalLMPreprocessor,
    "seq2seq_lm": Seq2SeqLMPreprocessor,
}


def is_image_model(model):
    """Whether the model takes images (one tensor) rather than a dict of token inputs."""
    return not isinstance(model.input, dict)


def default_image_preprocessor(model, **kwargs):
    """An image model's preprocessor when it has none: bytes or pixels at its input size."""
    return ImageClassifierPreprocessor(model.input.shape[1:], **kwargs)


def _text_classifier(tokenizer, sequence_length, model, **kwargs):
    kwargs.setdefault("style", "bert" if "segment_ids" in model.input else "gpt")
    return TextClassifierPreprocessor(tokenizer, sequence_length, **kwargs)


def preprocessor_for(model, tokenizer=None, sequence_length=None, **kwargs):
    """The preprocessor of a zoo task model, configured for it.

    Args:
        model: a zoo task (`zoo.build(name, task=...)`).
        tokenizer: for text tasks; its vocabulary must fit the model's `vocabulary_size`
            (build the model with `vocabulary_size=tokenizer.vocabulary_size()`).
        sequence_length: for text tasks; `min(128, max_sequence_length)` when None (384 for
            question answering).
        **kwargs: passed to the preprocessor (`mask_rate`, `augment`, `mean`, `std`, ...),
            over what the backbone's `preprocessor_arguments(task, tokenizer)` asks for, if
            it has that method (BART: `<s> ... </s>` and its decoder start).

    Raises ValueError for a backbone, an unknown task, a missing tokenizer, a vocabulary or
    length the model cannot take.
    """
    task = getattr(model, "task_name", None)
    tasks = sorted([*TEXT_PREPROCESSORS, "classifier"])
    if task not in tasks:
        raise ValueError(
            f"No preprocessor for a {type(model).__name__}: give a task model "
            f"(zoo.build(name, task=...)) of the tasks {tasks}."
        )
    config = model.backbone.config
    if is_image_model(model):
        return default_image_preprocessor(model, **kwargs)
    if tokenizer is None:
        raise ValueError(
            f"A {type(model).__name__} reads text: pass tokenizer=, a zoo.preprocessing "
            "tokenizer (WordPieceTokenizer, SentencePieceTokenizer, BytePairTokenizer)."
        )
    if tokenizer.vocabulary_size() > config.vocabulary_size:
        raise ValueError(
            f"The tokenizer has {tokenizer.vocabulary_size()} tokens but the model's "
            f"vocabulary_size is {config.vocabulary_size}: ids past it have no embedding. Build "
            f"the model with vocabulary_size=tokenizer.vocabulary_size()."
        )
    limit = getattr(config, "max_sequence_length", None)
    if sequence_length is None:
        default = TASK_SEQUENCE_LENGTHS.get(task, DEFAULT_SEQUENCE_LENGTH)
        sequence_length = min(default, limit or default)
    if limit is not None and sequence_length > limit:
        raise ValueError(
            f"sequence_length {sequence_length} exceeds the model's max_sequence_length "
            f"{limit}. Use at most {limit}."
        )
    # A family's own packing (BART's `<s> ... </s>`, its decoder start), where it has one.
    family_arguments = getattr(model.backbone, "preprocessor_arguments", None)
    if family_arguments is not None:
        kwargs = {**family_arguments(task, tokenizer), **kwargs}
    if task == "classifier":
        return _text_classifier(tokenizer, sequence_length, model, **kwargs)
    return TEXT_PREPROCESSORS[task](tokenizer, sequence_length, **kwargs)
