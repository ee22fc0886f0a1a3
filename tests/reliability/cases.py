"""The table format of the bad-input tests: one `Case` per input a user would call invalid.

Each case names what it tries, the call that tries it, and what must come out: the error
type and words of its message (a regular expression, searched), or, for inputs with a
defined answer, a check of the output.
"""

import re
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Case:
    """`call()` must raise `error` with a message matching `words` (re.search, ignoring
    case) that is one line."""

    name: str
    call: object
    error: type
    words: str

    def __repr__(self):
        return self.name


def params(cases):
    """`cases` as pytest parameters with their names as ids (names must be unique)."""
    names = [case.name for case in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"duplicate case names: {duplicates}"
    return [pytest.param(case, id=case.name) for case in cases]


def assert_raises(case):
    """Run `case.call` and check its error type, words and that the message is one line."""
    with pytest.raises(case.error) as raised:
        case.call()
    assert_message(str(raised.value), case.words)


def assert_message(message, words):
    assert re.search(words, message, re.IGNORECASE | re.DOTALL), \
        f"message does not say {words!r}: {message!r}"
    assert "\n" not in message.strip(), f"the message is not one line: {message!r}"
    assert len(message) < 600, f"the message is {len(message)} characters long: {message!r}"
