"""Answer extraction on hand-made logits: only spans of context tokens within one window, no
longer than the maximum; the best over a pair's windows; "no answer" when the null score
wins (SQuAD 2.0) and only then."""

import numpy as np
import pytest

from zoo.preprocessing import best_answers

# "abc def ghi jkl": the words' byte spans.
CONTEXT = "abc def ghi jkl"
SPANS = [(0, 3), (4, 7), (8, 11), (12, 15)]
LENGTH = 8  # [CLS] q q [SEP] c c c [SEP]


def window(words):
    """token_start, token_end rows of a window holding the context words `words`."""
    start, end = [-1] * LENGTH, [-1] * LENGTH
    for position, word in enumerate(words, start=4):
        start[position], end[position] = SPANS[word]
    return start, end


def logits(*rows):
    """[windows, 2, LENGTH] from {position: value} dicts for (start, end) of each window."""
    out = np.zeros((len(rows), 2, LENGTH), "float32")
    for row, (starts, ends) in enumerate(rows):
        for position, value in starts.items():
            out[row, 0, position] = value
        for position, value in ends.items():
            out[row, 1, position] = value
    return out


def extract(values, windows_words, example_index=None, **kwargs):
    rows = [window(words) for words in windows_words]
    windows = {"example_index": example_index or [0] * len(rows),
               "token_start": [r[0] for r in rows], "token_end": [r[1] for r in rows],
               "context": [CONTEXT] * (max(example_index or [0]) + 1)}
    found = best_answers(values, windows, **kwargs)
    return [(a.decode(), int(s), int(e)) for a, s, e in
            zip(*(found[k].numpy() for k in ("answer", "start", "end")), strict=True)], found


def test_spans_starting_in_the_question_or_ending_past_the_context_are_not_answers():
    values = logits(({1: 9.0, 5: 2.0}, {7: 9.0, 6: 1.0}))  # question start, [SEP] end
    answers, _ = extract(values, [[0, 1, 2]])
    assert answers == [("def ghi", 4, 11)]  # the best span of context tokens


def test_spans_longer_than_the_maximum_are_skipped():
    values = logits(({4: 5.0, 5: 1.0}, {6: 5.0, 5: 1.0}))
    assert extract(values, [[0, 1, 2]])[0] == [("abc def ghi", 0, 11)]
    assert extract(values, [[0, 1, 2]], max_answer_length=2)[0] == [("abc def", 0, 7)]
    assert extract(values, [[0, 1, 2]], max_answer_length=1)[0] == [("abc", 0, 3)]


def test_an_end_before_its_start_is_never_taken():
    values = logits(({6: 5.0}, {4: 5.0}))
    answers, _ = extract(values, [[0, 1, 2]])
    assert answers[0][1] <= answers[0][2] and answers[0][0] in ("ghi", "abc", "abc def ghi")


def test_a_span_never_crosses_a_stride_boundary_and_the_best_window_wins():
    # Window 0 holds words 0-2, window 1 words 1-3. A start high in window 0 and an end high
    # in window 1 at a word window 0 does not hold (jkl) would be "def ghi jkl" across windows.
    values = logits(({5: 8.0}, {6: 0.5}), ({6: 0.1}, {6: 8.0}))
    answers, found = extract(values, [[0, 1, 2], [1, 2, 3]])
    assert answers == [("def ghi", 4, 11)]  # window 0's 8.5 beats window 1's "jkl" 8.1
    values = logits(({5: 1.0}, {5: 1.0}), ({5: 3.0}, {6: 3.0}))
    answers, _ = extract(values, [[0, 1, 2], [1, 2, 3]])
    assert answers == [("ghi jkl", 8, 15)]  # window 1's span, its own offsets


def test_pairs_are_answered_from_their_own_windows():
    values = logits(({4: 2.0}, {4: 2.0}), ({5: 3.0}, {6: 3.0}), ({6: 3.0}, {6: 3.0}))
    answers, _ = extract(values, [[0, 1, 2], [1, 2, 3], [0]], example_index=[0, 0, 1])
    assert answers == [("ghi jkl", 8, 15), ("abc", 0, 3)]  # pair 1 has one word


def test_no_answer_when_the_null_score_wins_and_only_with_allow_no_answer():
    values = logits(({0: 6.0, 5: 2.0}, {0: 6.0, 5: 2.0}))
    answers, found = extract(values, [[0, 1, 2]], allow_no_answer=True)
    assert answers == [("", -1, -1)]
    expected = (np.exp(6.0) / (np.exp(6.0) + np.exp(2.0) + 2)) ** 2  # [CLS] among 4 choices
    np.testing.assert_allclose(found["score"].numpy(), [expected], rtol=1e-5)
    assert extract(values, [[0, 1, 2]])[0] == [("def", 4, 7)]
    values = logits(({0: 1.0, 5: 2.0}, {0: 1.0, 5: 2.0}))  # the span wins
    assert extract(values, [[0, 1, 2]], allow_no_answer=True)[0] == [("def", 4, 7)]


def test_the_null_score_of_a_pair_is_its_smallest_over_windows():
    # Window 0 is sure there is no answer (null 10), window 1 is not (null 0) and holds a
    # span of 4: the pair's null score is 0, so the span is the answer (Hugging Face's rule).
    values = logits(({0: 5.0}, {0: 5.0}), ({5: 2.0}, {5: 2.0}))
    answers, _ = extract(values, [[0, 1, 2], [1, 2, 3]], allow_no_answer=True)
    assert answers == [("ghi", 8, 11)]


def test_the_score_is_the_start_times_the_end_probability_over_context_tokens():
    values = logits(({4: 1.0, 5: 2.0}, {5: 3.0}))
    _, found = extract(values, [[0, 1, 2]])
    start = np.exp(2.0) / (np.exp(1.0) + np.exp(2.0) + 1)
    end = np.exp(3.0) / (np.exp(3.0) + 2)
    np.testing.assert_allclose(found["score"].numpy(), [start * end], rtol=1e-5)


@pytest.mark.parametrize("allow_no_answer", [False, True])
def test_a_window_without_context_tokens_answers_nothing(allow_no_answer):
    values = logits(({1: 5.0}, {2: 5.0}))
    answers, found = extract(values, [[]], allow_no_answer=allow_no_answer)
    assert answers == [("", -1, -1)] and found["score"].numpy().tolist() == [0.0]
