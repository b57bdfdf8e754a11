"""The package's file helpers: losses stored as float32's shortest decimals."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mhc_mup._io import shortest_float32

FLOAT32S = arrays(np.float32, st.integers(0, 40), elements=st.floats(width=32, allow_nan=False, allow_infinity=False))


@given(FLOAT32S)
def test_shortest_float32_reads_back_as_the_same_float32s_in_fewer_characters(single):
    given_values = single.astype(np.float64).tolist()  # what a float32 tensor's tolist gives
    stored = json.loads(json.dumps(shortest_float32(given_values)))
    np.testing.assert_array_equal(np.asarray(stored, dtype=np.float32), single)
    assert len(json.dumps(stored)) <= len(json.dumps(given_values))
    assert all(v == float(str(np.float32(v))) for v in stored)  # float32's shortest decimal, no digit beyond


def test_shortest_float32_halves_a_loss_curve_and_keeps_what_is_not_finite():
    losses = np.linspace(6.0, 1.5, 2000, dtype=np.float32).astype(np.float64).tolist()
    assert len(json.dumps(shortest_float32(losses))) < 0.6 * len(json.dumps(losses))
    assert shortest_float32([5.996711730957031, math.inf]) == [5.9967117, math.inf]
    assert math.isnan(shortest_float32([math.nan, 1.0])[0])


def test_shortest_float32_leaves_float64_values_alone():
    values = [0.1, 2.0 / 3.0, 1.0]  # 0.1 and 2/3 are no float32
    assert shortest_float32(values) == values and shortest_float32([]) == []


def test_gzip_text_round_trips_and_has_no_timestamp():
    """The same text gives the same bytes whenever it is written (no mtime in the header), so a record or a table
    written again is byte-identical."""
    import gzip
    import time

    from mhc_mup._io import gzip_text

    first = gzip_text("a,b\n1,2 ✓\n")
    time.sleep(1.1)
    assert gzip_text("a,b\n1,2 ✓\n") == first and gzip.decompress(first).decode("utf-8") == "a,b\n1,2 ✓\n"
