"""Learning a vocabulary from a dataset: WordPiece (tf-text's learner) and SentencePiece.

The results suit `zoo.preprocessing.WordPieceTokenizer` and `SentencePieceTokenizer`.
"""

import io

import numpy as np
import tensorflow as tf

from zoo.preprocessing.wordpiece import WORDPIECE_RESERVED_TOKENS


def _as_string_dataset(data):
    if isinstance(data, tf.data.Dataset):
        return data
    return tf.data.Dataset.from_tensor_slices(tf.constant(list(data), tf.string))


def _pad_or_cut(vocabulary, size, keep):
    if len(vocabulary) > size:
        if size < keep:
            raise ValueError(
                f"vocabulary_size {size} is too small: the reserved tokens and the characters "
                f"of the data alone are {keep}."
            )
        return vocabulary[:size]
    return vocabulary + [f"[unused{i}]" for i in range(size - len(vocabulary))]


def train_wordpiece(
    data,
    vocabulary_size,
    lowercase=True,
    reserved_tokens=WORDPIECE_RESERVED_TOKENS,
    vocabulary_file=None,
    **learn_params,
):
    """Learn a WordPiece vocabulary of exactly `vocabulary_size` tokens from strings.

    Uses tf-text's learner (`bert_vocab_from_dataset`) with BERT's word splitting, so the
    result suits `WordPieceTokenizer(vocabulary, lowercase=lowercase)`. The learner aims at
    the size within 5%; the list is then cut (rarest pieces last) or filled with
    `[unusedN]` tokens to the exact size.

    Args:
        data: a `tf.data.Dataset` of strings (scalars or batches) or a list of strings.
        vocabulary_size: the number of tokens.
        lowercase: as the tokenizer's `lowercase`.
        reserved_tokens: tokens that come first, in this order ([PAD] is id 0).
        vocabulary_file: if given, the vocabulary is also written there, one token a line.
        **learn_params: passed to tf-text's learner (`lower_thresh`, `num_iterations`, ...);
            `lower_thresh` defaults to 2 here, so that small corpora reach the size.

    Returns the list of tokens.
    """
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as learner

    learn_params.setdefault("lower_thresh", 2)
    reserved = list(reserved_tokens)
    vocabulary = learner.bert_vocab_from_dataset(
        _as_string_dataset(data),
        vocab_size=vocabulary_size,
        reserved_tokens=reserved,
        bert_tokenizer_params={"lower_case": lowercase},
        learn_params=learn_params,
    )
    characters = sum(1 for token in vocabulary if len(token.removeprefix("##")) == 1)
    vocabulary = _pad_or_cut(list(vocabulary), vocabulary_size, len(reserved) + characters)
    if vocabulary_file is not None:
        with open(vocabulary_file, "w", encoding="utf-8") as file:
            file.write("".join(token + "\n" for token in vocabulary))
    return vocabulary


def train_sentencepiece(
    data,
    vocabulary_size,
    model_type="unigram",
    model_file=None,
    **trainer_options,
):
    """Train a SentencePiece model on strings; needs the `sentencepiece` package.

    Special ids default to `<pad>` 0, `<unk>` 1, `<s>` 2, `</s>` 3 (SentencePiece's own
    defaults have no padding); pass `pad_id=-1` and so on to change them.

    Args:
        data: a `tf.data.Dataset` of strings (scalars or batches) or a list of strings.
        vocabulary_size: the number of pieces.
        model_type: "unigram" (the one `fast=True` supports), "bpe", "word" or "char".
        model_file: if given, the model is also written there.
        **trainer_options: passed to `sentencepiece.SentencePieceTrainer.train`.

    Returns the serialized model, for `SentencePieceTokenizer(proto)`.
    """
    try:
        import sentencepiece
    except ImportError:
        raise ImportError(
            "train_sentencepiece needs the `sentencepiece` package: pip install sentencepiece"
        ) from None

    def sentences():
        for element in _as_string_dataset(data).as_numpy_iterator():
            for text in np.reshape(element, [-1]):
                yield text.decode("utf-8", errors="replace")

    options = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, **trainer_options}
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=sentences(),
            model_writer=model,
            vocab_size=vocabulary_size,
            model_type=model_type,
            minloglevel=2,
            **options,
        )
    except RuntimeError as error:
        raise ValueError(f"SentencePiece training failed: {error}") from None
    proto = model.getvalue()
    if model_file is not None:
        with open(model_file, "wb") as file:
            file.write(proto)
    return proto
