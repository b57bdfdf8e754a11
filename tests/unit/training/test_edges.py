"""The band of grid values within the seeds' noise of the best, its edges, the first divergence, and their drift
with width: against curves built so that every answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mhc_mup.stats.fitting import welch_slope_interval
from mhc_mup.training.transfer import EDGE_COLUMNS, EDGE_DRIFT_COLUMNS, TransferConfig
from mhc_mup.training.transfer.edges import EDGES, band_edges, degraded_edge, edge_drift, edges_table, quantization
from mhc_mup.training.transfer.joint import WidthCurves

CFG = TransferConfig(device="cpu")


def test_band_edges_by_hand():
    m = np.array([
        [3.0, 2.5, 2.05, 2.0, 2.02, 2.2, np.nan],  # a band of 3 points, a seed diverged at the end
        [3.0, 2.0, 2.01, 2.02, 2.03, 2.04, 2.01],  # the band runs off the grid's top: open
        [np.nan] * 7,  # nothing finite
    ])  # fmt: skip
    best, low, high, diverged = band_edges(m, 0.06)
    assert best.tolist() == [3, 1, -1] and low.tolist() == [2, 1, -1] and high.tolist() == [4, 6, -1]
    assert diverged.tolist() == [6, -1, -1]
    assert [v.tolist() for v in band_edges(m[:2], math.nan)[1:3]] == [[3, 1], [3, 1]]  # no band: the best alone


def test_band_edges_stop_at_the_first_point_outside():
    """Contiguity: a point back inside the band beyond one outside it does not extend the band."""
    m = np.array([2.0, 2.01, 2.5, 2.01, 2.0])
    _, low, high, _ = band_edges(m, 0.05)
    assert (int(low), int(high)) == (0, 1)


def test_degraded_edge_by_hand():
    """Linear in x between the values around the first crossing of best + δ above the best; none where the grid
    ends first, a seed's NaN comes first, or nothing is finite; below the best a rise does not count."""
    x = np.array([0.0, 1.0, 2.0, 4.0])
    m = np.array([
        [2.5, 2.0, 2.04, 2.2],  # crosses 2.1 between x = 2 (2.04) and 4 (2.2): 2 + 0.06/0.16·2 = 2.75
        [2.0, 2.05, 2.3, 2.0],  # crosses between 0 and 1 (2.05 < 2.1 < 2.3 at x = 2): 1 + 0.05/0.25
        [2.0, 2.02, np.nan, 3.0],  # a diverged seed before the crossing
        [2.0, 2.02, 2.04, 2.06],  # never reaches it on the grid
        [np.nan] * 4,
    ])  # fmt: skip
    got = degraded_edge(x, m, 0.1)
    assert got[:2] == pytest.approx([2.75, 1.2])
    assert np.isnan(got[2:]).all()
    assert degraded_edge(x, m[None, :2], 0.1).shape == (1, 2)  # batched like band_edges


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 12), st.floats(0.25, 1.0), st.integers(0, 3), st.floats(0.01, 0.5), st.floats(0.02, 0.3))
def test_degraded_edge_of_a_curve_flat_then_linear_is_exact(n, step, kink, slope, delta):
    """Flat to a grid value, then rising ``slope`` per unit x: the crossing of best + δ is kink + δ/slope on any
    grid spacing, wherever the grid reaches it (interpolation is exact on a straight piece)."""
    x = np.arange(n) * step
    m = 1.0 + slope * np.clip(x - x[kink], 0.0, None)
    m[:kink] += 0.5 * (x[kink] - x[:kink])  # falling to the kink: the best is there
    got = float(degraded_edge(x, m, delta))
    want = x[kink] + delta / slope
    assume(abs(want - x[-1]) > 1e-9)  # on the grid's last value, round-off decides whether it is reached
    assert got == pytest.approx(want) if want < x[-1] else math.isnan(got)


def curves(edges: dict[int, float], x: np.ndarray, diverge_above: float | None = None) -> list[WidthCurves]:
    """3 seeds per width: flat at 2 up to the width's edge, then rising by 1/8 per grid step; seed offsets 0,
    1/4, 1/2 (exact in binary, so the seeds' noise is exactly 0); seed 0 diverged at edge + ``diverge_above``."""
    out = []
    for width, edge in edges.items():
        point = 2.0 + np.where(x <= edge, 0.0, (x - edge) / 4)
        loss = point[None, :] + np.array([0.0, 0.25, 0.5])[:, None]
        if diverge_above is not None:
            loss[0, np.isclose(x, edge + diverge_above)] = np.nan
        out.append(WidthCurves(width, x, loss, (0, 1, 2)))
    return out


def test_edges_table_reads_the_built_edges():
    x = np.arange(-10.0, -1.5, 0.5)
    widths = {128: -4.0, 256: -5.0, 512: -6.0, 1024: -7.0}
    table = edges_table(CFG, "mup", curves(widths, x, diverge_above=2.0))
    assert list(table.columns) == list(EDGE_COLUMNS)
    assert table.high_edge_log2.tolist() == list(widths.values())
    assert table.low_edge_log2.tolist() == [-10.0] * 4 and table.low_open.all() and not table.high_open.any()
    assert table.first_diverged_log2.tolist() == [e + 2 for e in widths.values()]
    assert table.degraded_log2.tolist() == pytest.approx([e + 0.4 for e in widths.values()])  # 0.1 at 1/4 a unit
    assert (table.band_nats == 0).all()  # the seeds' noise is exactly 0 here


def test_an_edge_moving_one_step_per_doubling_drifts_with_slope_minus_one():
    x = np.arange(-10.0, -1.5, 0.5)
    widths = {128: -4.0, 256: -5.0, 512: -6.0, 1024: -7.0}
    built = curves(widths, x, diverge_above=2.0)
    frame = edge_drift(CFG, "baseline", built, edges_table(CFG, "baseline", built))
    assert list(frame.columns) == list(EDGE_DRIFT_COLUMNS)
    drift = frame.set_index("edge")
    q = quantization(np.diff(x), list(widths))  # an evenly spaced grid: every edge is one half-octave from the next
    assert q == pytest.approx(0.5 / 3)
    for edge in ("high_edge", "first_diverged"):
        row = drift.loc[edge]
        assert row.exponent == pytest.approx(-1.0)
        assert (row.ci_low, row.ci_high) == pytest.approx((-1.0 - q, -1.0 + q))  # every resample agrees
        assert row.verdict == "drifts" and row.direction == "shrinks with width" and row.n_widths == 4
    degraded = drift.loc["degraded"]  # interpolated: the seeds' interval alone, no grid widening
    assert degraded.exponent == pytest.approx(-1.0) and degraded.verdict == "drifts"
    assert (degraded.ci_low, degraded.ci_high) == pytest.approx((-1.0, -1.0), abs=1e-9)
    assert "interpolated where the loss reaches +0.1 over the best" in degraded.note
    low = drift.loc["low_edge"]  # open at every width: no fit
    assert math.isnan(low.exponent) and low.n_widths == 0 and "open or absent at d = 128, 256, 512, 1024" in low.note


def drift_of(widths: dict[int, float], x: np.ndarray) -> pd.DataFrame:
    built = curves(widths, x)
    return edge_drift(CFG, "mup", built, edges_table(CFG, "mup", built)).set_index("edge")


def test_a_fixed_edge_transfers_only_where_the_grid_is_fine_enough():
    widths = dict.fromkeys((128, 256, 512, 1024, 2048), -5.0)
    fine = drift_of(widths, np.arange(-8.0, -1.9, 0.25)).loc["high_edge"]
    assert fine.exponent == pytest.approx(0.0, abs=1e-12) and fine.verdict == "transfers"
    assert (fine.ci_low, fine.ci_high) == pytest.approx((-0.0625, 0.0625))
    coarse = drift_of(widths, np.arange(-8.0, -1.9, 0.5)).loc["high_edge"]
    assert coarse.verdict == "unclear" and coarse.ci_high == pytest.approx(0.125)  # half-octave steps over 16×


def test_one_seed_has_no_band():
    x = np.arange(-8.0, -3.9, 0.5)
    one = [WidthCurves(c.width, x, c.loss[:1], (0,)) for c in curves({64: -6.0, 128: -6.0}, x)]
    table = edges_table(CFG, "mup", one)
    assert table.band_nats.isna().all() and table.high_edge_log2.isna().all() and table.low_edge_log2.isna().all()
    assert table.best_log2.notna().all()


def test_the_sweep_writes_edges(small_corpus_file, tmp_path):
    from mhc_mup.training.transfer import run_transfer
    from tests.helpers import tiny_transfer_config as tiny_cfg

    result = run_transfer(tiny_cfg(small_corpus_file, seeds=2), tmp_path / "out")
    assert set(result.edges.width) == {16, 32} and list(result.edge_drift.edge) == list(EDGES)
    assert list(pd.read_csv(tmp_path / "out" / "edges.csv").columns) == list(EDGE_COLUMNS)
    assert "the band's edges" in (tmp_path / "out" / "transfer_report.md").read_text()


def two_width_curves(seed_edges: dict[int, np.ndarray], x: np.ndarray) -> list[WidthCurves]:
    """Per width, each seed flat at 2 up to its own edge, then rising 1/4 a unit per unit of x."""
    out = []
    for width, edges in seed_edges.items():
        loss = 2.0 + np.where(x[None, :] <= edges[:, None], 0.0, (x[None, :] - edges[:, None]) / 4)
        out.append(WidthCurves(width, x, loss, tuple(range(len(edges)))))
    return out


def degraded_row(built: list[WidthCurves]) -> pd.Series:
    return edge_drift(CFG, "mup", built, edges_table(CFG, "mup", built)).set_index("edge").loc["degraded"]


def test_a_degraded_edge_over_two_widths_joins_the_seeds_welch_interval():
    """Two widths leave a regression no residual: the seeds' own crossings give the interval's width (a bootstrap
    over 3 seeds alone under-covers), here wider than the bootstrap, placed around the exponent read off the
    seed-mean curves."""
    x = np.arange(-10.0, -1.5, 0.5)
    seed_edges = {128: np.array([-4.0, -3.75, -3.0]), 256: np.array([-5.0, -4.5, -4.25])}
    row = degraded_row(two_width_curves(seed_edges, x))
    crossings = [e + 0.4 for e in seed_edges.values()]  # +0.1 at a quarter a unit per unit
    low, high = welch_slope_interval(crossings[0], crossings[1], 1.0, 0.95)
    half = (high - low) / 2
    assert (row.ci_low, row.ci_high) == pytest.approx((row.exponent - half, row.exponent + half))
    assert "united with the seeds' Welch t-interval" in row.note and "bootstrap only" not in row.note


def test_a_two_width_degraded_edge_without_every_seeds_crossing_or_with_one_seed():
    """A seed whose own curve never rises far enough would leave the highest crossings out of Welch's: the
    bootstrap alone, said; one seed at a width: no interval and no verdict, as for the optimum's drift."""
    x = np.arange(-10.0, -1.5, 0.5)
    flat = two_width_curves({128: np.array([-4.0, -3.75, -3.0]), 256: np.array([-5.0, -4.5, -1.0])}, x)
    row = degraded_row(flat)
    assert "bootstrap only (1 seed curve(s) never reach the level alone)" in row.note
    one = two_width_curves({128: np.array([-4.0, -3.5]), 256: np.array([-5.0])}, x)
    row = degraded_row(one)
    assert math.isnan(row.ci_low) and row.verdict == "unclear" and "1 seed at some width: no interval" in row.note
