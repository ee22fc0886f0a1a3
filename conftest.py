"""Markers the whole suite shares (tests/ and the doctests of the packages).

`pytest -m "not slow"` is the quick loop. Tests mark themselves `slow`; a doctest cannot, so
the modules whose examples train or export (several seconds each) are named here.
`slow_once` is slow and checks nothing backend-specific: the JAX pass leaves it out.
"""

import pytest

SLOW_DOCTESTS = {
    "training.train",
    "export.generation",
    "export.litert",
    "export.report",
    "zoo.generation",
    "zoo.attention_maps",
    "zoo.pretrained",
}


def pytest_collection_modifyitems(items):
    for item in items:
        is_doctest = type(item).__name__ == "DoctestItem"
        if item.get_closest_marker("slow_once") or (
                is_doctest and item.name in SLOW_DOCTESTS):
            item.add_marker(pytest.mark.slow)
