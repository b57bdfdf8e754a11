"""The document-shape checker names the first key whose value has the wrong type."""

from __future__ import annotations

import pytest

from mhc_mup._schema import ListOf, MapOf, Optional, first_problem

SHAPE = {
    "widths": ListOf(int),
    "results": MapOf({"mean": float, "note": Optional(str)}),
    "ok": bool,
}
GOOD = {"widths": [32, 64], "results": {"32": {"mean": 1.5}, "64": {"mean": None, "note": "nan"}}, "ok": True, "x": 1}


def test_a_document_of_the_shape_passes():
    assert first_problem(GOOD, SHAPE) == ""
    assert first_problem({**GOOD, "results": {}}, SHAPE) == ""  # an empty map is a map


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"widths": "xyz"}, "widths must be a list, got 'xyz'"),
        ({"widths": [32, 6.5]}, "widths.1 must be an integer, got 6.5"),
        ({"widths": [True]}, "widths.0 must be an integer, got True"),
        ({"results": {"32": {"mean": "abc"}}}, "results.32.mean must be a number, got 'abc'"),
        ({"results": {"32": {"mean": False}}}, "results.32.mean must be a number, got False"),
        ({"results": {"32": {}}}, "results.32.mean is missing"),
        ({"results": {"32": {"mean": 1.0, "note": 3}}}, "results.32.note must be a string, got 3"),
        ({"results": [1]}, "results must be an object, got [1]"),
        ({"ok": "yes"}, "ok must be true or false, got 'yes'"),
    ],
)
def test_the_first_wrong_value_is_named(change, problem):
    assert first_problem({**GOOD, **change}, SHAPE) == problem


def test_a_long_value_is_shortened_and_a_missing_top_key_named():
    doc = {k: v for k, v in GOOD.items() if k != "ok"}
    assert first_problem(doc, SHAPE) == "ok is missing"
    assert first_problem({**GOOD, "ok": "x" * 100}, SHAPE).startswith("ok must be true or false, got str 'xxxx")
    assert first_problem([1], SHAPE) == "the document must be an object, got [1]"
