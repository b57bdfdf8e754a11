"""Numbers in reports: formatted by their spec, a dash where there is none; widths named once as ``d = …``."""

from __future__ import annotations

import math

import pytest

from mhc_mup.reporting.numbers import fmt_interval, fmt_number, fmt_widths


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_a_missing_number_prints_a_dash(missing):
    assert fmt_number(missing) == "—"
    assert fmt_interval(missing, 0.25) == "[—, +0.250]"


def test_numbers_follow_their_spec():
    assert fmt_number(-0.0625) == "-0.062"
    assert fmt_number(0.999999, ".6g") == "0.999999"
    assert fmt_number(1.5, "+.2f") == "+1.50"
    assert fmt_interval(-0.1234, 0.05) == "[-0.123, +0.050]"
    assert fmt_interval(-0.1234, 0.05, "+.4f") == "[-0.1234, +0.0500]"


def test_a_whole_missing_interval_prints_one_dash():
    assert fmt_interval(math.nan, math.nan, whole=True) == "—"
    assert fmt_interval(None, 0.5, "+.2f", whole=True) == "—"
    assert fmt_interval(-0.25, 0.5, "+.2f", whole=True) == "[-0.25, +0.50]"


def test_a_capped_interval_names_the_ends_beyond_its_cap():
    assert fmt_interval(-3.4937, 9865.598, cap=10) == "[-3.494, > +10]"
    assert fmt_interval(-12.0, 0.5, "+.2f", cap=10) == "[< -10, +0.50]"
    assert fmt_interval(-10.0, 10.0, "+.2f", cap=10) == "[-10.00, +10.00]"  # at the cap: still a number
    assert fmt_interval(math.nan, 1e4, cap=10) == "[—, > +10]"
    assert fmt_interval(-1e4, 1e4) == "[-10000.000, +10000.000]"  # no cap: as it is


def test_widths_are_named_once_in_the_order_given():
    assert fmt_widths([128]) == "d = 128"
    assert fmt_widths([512, 128, 1024]) == "d = 512, 128, 1024"
    assert fmt_widths(w for w in (16, 32)) == "d = 16, 32"
