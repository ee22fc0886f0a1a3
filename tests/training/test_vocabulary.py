"""Learning vocabularies (WordPiece, SentencePiece) on a real novel."""

import numpy as np
import pytest
import tensorflow as tf

from tests.zoo.preprocessing.test_tokenizers import ids_of
from training.vocabulary import train_sentencepiece, train_wordpiece
from zoo import paths
from zoo.preprocessing import SentencePieceTokenizer, WordPieceTokenizer


@pytest.fixture(scope="module")
def corpus():
    text = paths.data_file("sentencepiece", "botchan.txt").read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line.strip()]


@pytest.mark.slow
def test_train_wordpiece_on_botchan(corpus, tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(corpus[:1500]).batch(100)
    vocabulary = train_wordpiece(
        dataset, 400, vocabulary_file=tmp_path / "vocab.txt", num_iterations=2  # fast enough
    )
    assert len(vocabulary) == 400 and len(set(vocabulary)) == 400
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "the" in vocabulary and "##s" in vocabulary

    tokenizer = WordPieceTokenizer(tmp_path / "vocab.txt")
    assert tokenizer.vocabulary_size() == 400 and tokenizer.get_vocabulary() == vocabulary
    ids = tokenizer(tf.constant(corpus[2000:2050]))
    assert int(tf.reduce_max(ids.flat_values)) < 400
    assert np.mean(ids.flat_values.numpy() == tokenizer.unk_id) < 0.01
    text = tokenizer.detokenize(tokenizer("The school was in an uproar.")).numpy()
    assert text == b"the school was in an uproar ."
    assert tokenizer("The school").numpy().tolist() == [
        vocabulary.index("the"), vocabulary.index("school")
    ]


def test_train_sentencepiece_on_botchan(corpus, tmp_path):
    pytest.importorskip("sentencepiece")
    proto = train_sentencepiece(
        tf.data.Dataset.from_tensor_slices(corpus[:2000]), 300, model_file=tmp_path / "m.model"
    )
    assert (tmp_path / "m.model").read_bytes() == proto
    tokenizer = SentencePieceTokenizer(proto)
    assert tokenizer.vocabulary_size() == 300 and tokenizer.model_type == "unigram"
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id) == (
        0, 1, 2, 3
    )
    sentence = "The school was in an uproar."
    ids = tokenizer(sentence).numpy()
    assert 3 < len(ids) < len(sentence) and tokenizer.unk_id not in ids
    assert tokenizer.detokenize(ids).numpy().decode() == sentence
    fast = SentencePieceTokenizer(proto, fast=True)
    assert ids_of(fast, corpus[2000:2030]) == ids_of(tokenizer, corpus[2000:2030])
    bpe = SentencePieceTokenizer(train_sentencepiece(corpus[:2000], 300, model_type="bpe"))
    assert bpe.model_type == "bpe" and bpe.vocabulary_size() == 300
