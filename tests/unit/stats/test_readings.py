"""Readings of an exponent: the O(1) band, and the str enum that prints and serialises as its bare value."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from mhc_mup._io import _StrEnumFallback, csv_text, json_text
from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import DECAYS, GROWS, O1, UNCLEAR, Reading, classify, drift_verdict


def _fit(exponent, lo, hi):
    return PowerLawFit(exponent, lo, hi, 1.0, 1.0, lo, hi, lo, hi, 4, 100, 0.95)


def test_classify():
    assert classify(_fit(0.02, -0.05, 0.09)) == O1
    assert classify(_fit(0.02, -0.05, 0.11)) == UNCLEAR  # estimate inside the band, interval not
    assert classify(_fit(0.5, 0.45, 0.55)) == GROWS
    assert classify(_fit(0.15, 0.05, 0.25)) == GROWS
    assert classify(_fit(-0.3, -0.4, -0.2)) == DECAYS
    assert classify(_fit(0.15, 0.05, 0.25), tolerance=0.3) == O1
    assert classify(_fit(float("nan"), float("nan"), float("nan"))) == UNCLEAR


def test_the_module_names_are_the_enum_members_and_equal_their_strings():
    assert (O1, GROWS, DECAYS, UNCLEAR) == (Reading.O1, Reading.GROWS, Reading.DECAYS, Reading.UNCLEAR)
    assert [r.value for r in Reading] == ["O(1)", "grows", "decays", "unclear"]
    assert O1 == "O(1)" and isinstance(O1, str) and {"O(1)": 1}[O1] == 1  # dict lookups by the plain string
    assert isinstance(classify(_fit(0.5, 0.45, 0.55)), Reading)


class _Fallback(_StrEnumFallback):  # what Python 3.10 gets in place of enum.StrEnum
    O1 = "O(1)"


@pytest.mark.parametrize("member", [Reading.O1, _Fallback.O1], ids=["StrEnum", "3.10 fallback"])
def test_a_reading_prints_and_serialises_as_its_bare_value(member):
    assert str(member) == f"{member}" == "{}".format(member) == "O(1)"  # noqa: UP032
    assert format(member, ">6") == "  O(1)"
    assert json.dumps({member: [member]}) == '{"O(1)": ["O(1)"]}'
    assert json_text({"reading": member}) == '{\n  "reading": "O(1)"\n}\n'
    buf = io.StringIO()
    csv.writer(buf).writerow([member])
    assert buf.getvalue().strip() == "O(1)"
    assert csv_text([{"reading": member}], ["reading"]) == "reading\nO(1)\n"
    frame = pd.DataFrame({"reading": [member]})
    assert frame.to_csv(index=False) == "reading\nO(1)\n"
    assert pd.read_csv(io.StringIO(frame.to_csv(index=False))).reading[0] == "O(1)"


def test_drift_verdict_names_the_direction_of_a_drift_only():
    assert drift_verdict(O1, "η*") == ("transfers", "")
    assert drift_verdict(GROWS, "η*") == ("drifts", "η* grows with width")
    assert drift_verdict(DECAYS) == ("drifts", "shrinks with width")
    assert drift_verdict(UNCLEAR, "η*") == ("unclear", "")
