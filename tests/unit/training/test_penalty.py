"""What transferring costs: the parabola reading against closed forms, the table's penalty against a(Δx)² on exact
parabolas, its notes, and the whole analysis on curves whose optimum drifts by a known amount; a multiplier sweep's
cost of the rule's own value the same way."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_mup.training.transfer import BUILTIN_CONFIGS, SweepGrid, TransferAnalysis, TransferConfig, analyse, lr_grid
from mhc_mup.training.transfer.joint import WidthCurves
from mhc_mup.training.transfer.penalty import penalty_table, quadratic_reading, rule_penalty_table
from tests.helpers import transfer_record

GRID = np.arange(-10.0, -3.0)  # log2 values, one octave apart


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.01, 1.0), x0=st.floats(-9.5, -4.5), c=st.floats(1.0, 3.0),
       p=st.floats(-10.0, -4.0), q=st.floats(-10.0, -4.0))  # fmt: skip
def test_a_parabola_reads_exactly_wherever_the_points_lie(a, x0, c, p, q):
    y = c + a * (GRID - x0) ** 2
    read = quadratic_reading(GRID, y, (p, q))
    np.testing.assert_allclose(read, [c + a * (p - x0) ** 2, c + a * (q - x0) ** 2], rtol=1e-9, atol=1e-9)


def test_close_points_share_one_parabola_and_far_ones_do_not():
    """A curve that is not a parabola: two points within one three-value span read off the same parabola (equal
    points read equal, and their difference is that parabola's); points farther apart each off their own; a point
    outside the values, or next to a NaN, reads NaN."""
    y = np.cosh(0.8 * (GRID + 6.5))
    left, right = quadratic_reading(GRID, y, (-6.6, -6.6))
    assert left == right
    got = quadratic_reading(GRID, y, (-6.8, -6.2))
    xs = GRID[3:6]  # −7, −6, −5: the three centred on the midpoint −6.5 (nearest: −7 at a tie broken low)
    coef = np.polyfit(xs, y[3:6], 2)
    np.testing.assert_allclose(got, np.polyval(coef, [-6.8, -6.2]), rtol=1e-12)
    far = quadratic_reading(GRID, y, (-9.4, -4.4))  # 5 octaves apart: each through the three centred on itself
    np.testing.assert_allclose(far, [np.polyval(np.polyfit(GRID[0:3], y[0:3], 2), -9.4),
                                     np.polyval(np.polyfit(GRID[4:7], y[4:7], 2), -4.4)], rtol=1e-12)  # fmt: skip
    assert math.isnan(quadratic_reading(GRID, y, (-3.5, -6.0))[0])  # beyond the last value
    holed = y.copy()
    holed[5] = math.nan  # a diverged run at 2^-5
    assert math.isnan(quadratic_reading(GRID, holed, (-5.2,))[0])
    assert math.isnan(quadratic_reading(GRID[:2], y[:2], (-9.5,))[0])


def curves_of(optima: dict[int, float], a: float = 0.05, seeds: int = 3) -> list[WidthCurves]:
    """Exact parabolas ``2 + a·(x − x*_d)²`` at each width, every seed alike."""
    return [WidthCurves(w, GRID, np.tile(2.0 + a * (GRID - x) ** 2, (seeds, 1)), tuple(range(seeds)))
            for w, x in optima.items()]  # fmt: skip


def test_the_penalty_is_the_curvature_times_the_squared_move():
    optima = {128: -7.0, 256: -7.3, 512: -8.5, 1024: -12.0}
    curves = curves_of(optima)
    curves[3] = WidthCurves(1024, GRID - 6, np.tile(2.0 + 0.05 * (GRID + 6.0) ** 2, (3, 1)), (0, 1, 2))  # 2^-16 … 2^-10
    table = penalty_table("mup", curves, optima, 128, 0.95).set_index("width")
    assert list(table.index) == [256, 512, 1024]  # the base width itself costs nothing by definition
    assert table.loc[256, "penalty"] == pytest.approx(0.05 * 0.3**2, abs=1e-12)  # one parabola for both points
    assert table.loc[512, "penalty"] == pytest.approx(0.05 * 1.5**2, abs=1e-12)  # one each
    assert table.loc[512, "ci_low"] == pytest.approx(table.loc[512, "penalty"])  # seeds that agree: no spread
    assert table.loc[512, "n_seeds"] == 3 and table.loc[512, "base_log2"] == -7.0
    assert math.isnan(table.loc[1024, "penalty"]) and "outside this width's values" in table.loc[1024, "note"]
    assert table.loc[1024, "note"].endswith(f"at that end {0.05 * 2**2:+.4f}, a lower bound where the loss keeps "
                                            "rising beyond it")  # 2^-10, 2 octaves above 1024's optimum  # fmt: skip
    assert table.loc[1024, "at_grid_end"] == pytest.approx(0.05 * 2**2) and table.at_grid_end.isna().sum() == 2
    no_base = penalty_table("mup", curves_of(optima), optima | {128: math.nan}, 128, 0.95)
    assert no_base.note.str.startswith("no optimum at the base width 128").all()


def test_seeds_that_disagree_give_a_t_interval_over_them():
    optima = {128: -7.0, 256: -8.0}
    curves = curves_of(optima)
    spread = np.array([0.04, 0.05, 0.06])[:, None]  # the seeds' curvatures
    curves[1] = WidthCurves(256, GRID, 2.0 + spread * (GRID + 8.0) ** 2, (0, 1, 2))
    row = penalty_table("mup", curves, optima, 128, 0.95).iloc[0]
    assert row.penalty == pytest.approx(0.05)
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(2, 0.975) · sd / √3
    assert (row.ci_low, row.ci_high) == pytest.approx((0.05 - half, 0.05 + half))


def test_the_analysis_prices_a_drift_and_not_its_absence():
    """mup's optimum falls 0.4 octave per doubling; the control's stays: at 512 (three doublings from 64) mup
    pays 0.2·1.2² = 0.288 nats, the control nothing."""
    widths = (64, 128, 256, 512)
    grid = SweepGrid(configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]), widths=widths,
                     lrs=lr_grid(2**-12, 2**-1, 23), seeds=2)  # fmt: skip
    cfg = TransferConfig(grid=grid, analysis=TransferAnalysis(), device="cpu")
    records = [transfer_record(name, w, s, lr, 3 + 0.2 * (math.log2(lr) - (-6 + beta * math.log2(w / 64))) ** 2)
               for name, beta in (("mup", -0.4), ("control-mup", 0.0)) for w in widths for s in range(2)
               for lr in grid.lrs]  # fmt: skip
    result = analyse(cfg, records)
    table = result.penalty.set_index(["config", "width"])
    assert table.loc[("mup", 512), "penalty"] == pytest.approx(0.2 * 1.2**2, rel=1e-6)
    assert table.loc[("control-mup", 512), "penalty"] == pytest.approx(0.0, abs=1e-9)
    assert (table.base_width == 64).all()
    # the report's summary: a line per configuration, the cost at its widest width
    from mhc_mup.reporting.blocks import render_markdown
    from mhc_mup.training.transfer.report import build_transfer_report

    report = render_markdown(build_transfer_report(result, b""))
    summary = report.split("## Summary")[1].split("##")[0]
    mup = next(line for line in summary.splitlines() if line.startswith("| mup |"))
    assert "drifts (η* shrinks with width)" in mup and "+0.2880 [+0.2880, +0.2880] at d = 512" in mup, mup
    # the penalty table prints the interval to the penalty's own four places
    assert "| +0.2880 | [+0.2880, +0.2880] |" in report
    control = next(line for line in summary.splitlines() if line.startswith("| control-mup |"))
    assert "| transfers |" in control and "at d = 512" in control and "| 3.0000 at d = 512 |" in control, control


MULTIPLIERS = np.arange(-6.0, 8.0, 2.0)  # log2 multipliers 2^-6 … 2^6, two octaves apart


def test_the_rule_costs_the_curvature_times_its_squared_distance_from_the_optimum():
    """Exact parabolas a·(x − x*)² over log2 multipliers: the rule's own value, x = 0, costs a·x*² at every width
    (the base width too), whatever the grid's spacing; a width without an optimum, or whose values leave out 0,
    says why instead."""
    optima = {64: 3.0, 128: 2.5, 256: -1.0, 512: math.nan, 1024: 1.0}
    curves = [WidthCurves(w, MULTIPLIERS, np.tile(2.0 + 0.01 * (MULTIPLIERS - x) ** 2, (3, 1)), (0, 1, 2))
              for w, x in optima.items() if w != 1024]  # fmt: skip
    curves.append(WidthCurves(1024, MULTIPLIERS + 8, np.tile(2.0 + 0.01 * (MULTIPLIERS + 7) ** 2, (3, 1)), (0, 1, 2)))
    table = rule_penalty_table("mup", curves, optima, 0.95).set_index("width")
    assert list(table.index) == [64, 128, 256, 512, 1024]
    for w in (64, 128, 256):
        assert table.loc[w, "penalty"] == pytest.approx(0.01 * optima[w] ** 2, abs=1e-12)
        assert table.loc[w, "ci_low"] == pytest.approx(table.loc[w, "penalty"]) and table.loc[w, "n_seeds"] == 3
    assert table.loc[512, "note"] == "no optimum at this width" and math.isnan(table.loc[512, "penalty"])
    assert table.loc[1024, "note"] == "the rule's value 2^0.00 lies outside this width's values (2^2 … 2^14)"
    spread = np.array([0.01, 0.02, 0.03])[:, None]  # seeds that disagree: a t-interval over them
    row = rule_penalty_table("mup", [WidthCurves(64, MULTIPLIERS, 2.0 + spread * (MULTIPLIERS - 2.0) ** 2,
                                                 (0, 1, 2))], {64: 2.0}, 0.95).iloc[0]  # fmt: skip
    half = 4.302652729911275 * 0.04 / math.sqrt(3)  # t(2, 0.975) · sd of 0.04, 0.08, 0.12 / √3
    assert row.penalty == pytest.approx(0.08) and (row.ci_low, row.ci_high) == pytest.approx((0.08 - half, 0.08 + half))


def test_a_multiplier_sweep_prices_its_rule_and_an_lr_sweep_does_not():
    """The analysis of a multiplier sweep whose optimum sits 2 octaves above the rule at every width: the rule
    costs 0.02·2² at each; the report says so in a section of its own. An lr sweep has no such table."""
    widths = (64, 128, 256)
    grid = SweepGrid(configs=(BUILTIN_CONFIGS["mup"],), widths=widths, lrs=tuple(2.0**MULTIPLIERS), seeds=2)
    cfg = TransferConfig(grid=grid, analysis=TransferAnalysis(), device="cpu").with_leaves(hyper="lr_fn",
                                                                                          base_lr=2**-7)  # fmt: skip
    records = [transfer_record("mup", w, s, v, 2.0 + 0.02 * (math.log2(v) - 2.0) ** 2)  # value: the record's lr
               for w in widths for s in range(2) for v in grid.lrs]  # fmt: skip
    result = analyse(cfg, records)
    np.testing.assert_allclose(result.rule_penalty.penalty, [0.08, 0.08, 0.08], rtol=1e-6)
    assert list(result.rule_penalty.width) == list(widths)
    from mhc_mup.reporting.blocks import render_markdown
    from mhc_mup.training.transfer.report import build_transfer_report

    report = render_markdown(build_transfer_report(result, b""))
    assert "## What does the rule's own lr_fn cost?" in report and "| mup | 256 | 2^2.00 | +0.0800 |" in report
    lr_sweep = analyse(cfg.with_leaves(hyper="lr", base_lr=None), records)
    assert lr_sweep.rule_penalty.empty
    assert "rule's own" not in render_markdown(build_transfer_report(lr_sweep, b""))
