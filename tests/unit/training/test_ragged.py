"""Ragged grids: a folder grown adaptively (a coarse grid everywhere, then more values only where needed) is
analysed as a whole, each configuration × width over its own values. Synthetic runs whose answers are known, and
real commands into one folder for the folder's union grid and what ``missing`` counts."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mhc_mup.errors import TransferError
from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.transfer import (
    BUILTIN_CONFIGS,
    SweepGrid,
    TransferAnalysis,
    TransferConfig,
    analyse,
    analyse_folder,
    fit_parabola,
    log2_key,
    plan,
    run_transfer,
)
from mhc_mup.training.transfer.config import distinct_values, grid_seeds, grid_values, log2_text
from mhc_mup.training.transfer.edges import edge_drift, edges_table
from mhc_mup.training.transfer.joint import WidthCurves, values_every_seed_ran, width_curves
from mhc_mup.training.transfer.noise import noise_table, paired_batch_se
from mhc_mup.training.transfer.report import build_transfer_report
from mhc_mup.training.transfer.store import SWEEP_FORMAT, folder_config, folder_grids, stored_config, write_sweep_file
from tests.helpers import tiny_transfer_config as tiny_cfg
from tests.helpers import transfer_record

MUP = BUILTIN_CONFIGS["mup"]
COARSE = tuple(2.0**k for k in range(-12, -1))  # one octave apart: 2^-12 … 2^-2
HALF = (2.0**-7.5, 2.0**-6.5, 2.0**-5.5)  # half-octave points around 2^-6.55


def bowl(x: float, x0: float) -> float:
    """A smooth loss in ``x = log2 η`` with its minimum at ``x0``, not a parabola (so a parabola through 3 points
    of it is biased, less so where the points are closer)."""
    return 3.0 + 0.4 * math.log(math.cosh(1.3 * (x - x0)))


def records_over(values: dict[int, tuple[float, ...]], loss: Callable[[int, int, float], float], seeds: int = 2
                 ) -> list[dict]:  # fmt: skip
    """One record per width ``w``, seed and value in ``values[w]``, with final loss ``loss(w, seed, log2 value)``."""
    return [transfer_record("mup", w, s, v, loss(w, s, math.log2(v))) for w, vs in values.items()
            for s in range(seeds) for v in vs]  # fmt: skip


def config_of(widths: tuple[int, ...], values: tuple[float, ...], seeds: int = 2) -> TransferConfig:
    return TransferConfig(grid=SweepGrid(configs=(MUP,), widths=widths, lrs=values, seeds=seeds),
                          analysis=TransferAnalysis(fit=FitSettings(n_boot=100)), device="cpu")  # fmt: skip


def refined_folder() -> tuple[TransferConfig, tuple[SweepGrid, ...], list[dict]]:
    """The coarse grid at d = 64, 128, 256, then half-octave points around the optimum (2^-6.55) at d = 256 alone,
    each a grid of its own; two seeds that agree."""
    coarse = SweepGrid(configs=(MUP,), widths=(64, 128, 256), lrs=COARSE, seeds=2)
    refine = SweepGrid(configs=(MUP,), widths=(256,), lrs=HALF, seeds=2)
    cfg = config_of((64, 128, 256), distinct_values(COARSE, HALF))
    values = {64: COARSE, 128: COARSE, 256: distinct_values(COARSE, HALF)}
    return cfg, (coarse, refine), records_over(values, lambda w, s, x: bowl(x, -6.55))


# ── each configuration × width over its own values ─────────────────────────────────────────────────
def test_each_width_is_fitted_over_its_own_values():
    """The refined width uses its half-octave points (its parabola's bias falls from 0.016 to 0.003) and the coarse
    widths are complete without them."""
    cfg, grids, records = refined_folder()
    result = analyse(cfg, records, grids)
    assert result.values[("mup", 64)] == COARSE and result.values[("mup", 128)] == COARSE
    assert result.values[("mup", 256)] == distinct_values(COARSE, HALF) and result.ragged
    seeds = result.seed_optima.set_index(["width", "seed"])
    assert (seeds.note == "").all() and seeds.log2_lr_opt.notna().all()
    assert abs(seeds.loc[(256, 0), "log2_lr_opt"] + 6.55) < 0.005
    assert abs(seeds.loc[(64, 0), "log2_lr_opt"] + 6.55) > 0.015  # the coarse grid's 3 points: biased
    assert (result.optima.n_seeds_fit == 2).all()
    assert result.drift.iloc[0].joint_widths == 3 and result.drift.iloc[0].n_widths == 3


def test_a_seed_missing_one_of_its_widths_values_is_not_finished():
    """Seed 1 has not run 2^-6.5 at d = 256 yet: its curve there is not fitted, nor is the width's in the joint
    or per-seed drift fit, the noise table or the edges; seed 0's curve is, and the other widths are untouched."""
    cfg, grids, records = refined_folder()
    records = [r for r in records if not (r["width"] == 256 and r["seed"] == 1 and r["lr"] == 2.0**-6.5)]
    result = analyse(cfg, records, grids)
    seeds = result.seed_optima.set_index(["width", "seed"])
    assert seeds.loc[(256, 1), "note"] == "1 of 14 runs not finished yet"
    assert math.isnan(seeds.loc[(256, 1), "log2_lr_opt"]) and math.isfinite(seeds.loc[(256, 0), "log2_lr_opt"])
    assert (seeds.drop(index=[(256, 1)]).note == "").all()
    assert result.drift.iloc[0].joint_widths == 2 and 256 not in set(result.edges.width)
    assert result.drift.iloc[0].joint_note == ("not finished yet, left out: d = 256; --partial reads d = 256 over "
                                                "the values every seed has run")  # said, not silent; and how to read it
    # the per-seed fit leaves it out too: seed 0's optimum alone would stand for the width
    assert result.drift.iloc[0].n_widths == 2 and result.drift.iloc[0].note.startswith(
        "not finished yet, left out: d = 256")
    table = next(b for b in build_transfer_report(result, b"").blocks if "per-seed β" in getattr(b, "header", ()))
    assert table.rows[0][-1].count("not finished yet") == 1  # the two fits' notes, said once
    noise = result.noise.set_index("width")
    assert math.isnan(noise.loc[256, "seed_sigma"]) and noise.loc[256, "seed_dof"] == 0


def test_a_partial_reading_is_the_reading_without_the_values_some_seed_lacks():
    """With ``partial``, a width whose seed 1 has not run 2^-6.5 yet is read over the values both seeds have: every
    fitted table is the one the folder gives with that value's runs removed from both seeds (the run, routing and
    logit tables still list every run), and the notes and the
    report's caveat name what was left out. Without ``partial`` the width is left out (above)."""
    cfg, grids, records = refined_folder()
    lacking = [r for r in records if not (r["width"] == 256 and r["seed"] == 1 and r["lr"] == 2.0**-6.5)]
    without = [r for r in records if not (r["width"] == 256 and r["lr"] == 2.0**-6.5)]
    partial = dataclasses.replace(cfg, analysis=dataclasses.replace(cfg.analysis, partial=True))
    refined = dataclasses.replace(grids[1], lrs=tuple(v for v in HALF if v != 2.0**-6.5))
    got, want = analyse(partial, lacking, grids), analyse(partial, without, (grids[0], refined))
    note = "read partly, left out the values not every seed has run yet (d = 256: 2^-6.50)"
    assert got.left_out == {("mup", 256): (2.0**-6.5,)} and want.left_out == {}
    assert got.values == want.values and got.drift.iloc[0].joint_note == note
    assert got.optima.set_index("width").note[256] == note
    for table in ("seed_optima", "edges", "edge_drift", "noise", "penalty"):
        pd.testing.assert_frame_equal(getattr(got, table), getattr(want, table))
    pd.testing.assert_frame_equal(got.drift.drop(columns="joint_note"), want.drift.drop(columns="joint_note"))
    pd.testing.assert_frame_equal(got.optima.drop(columns="note"), want.optima.drop(columns="note"))
    caveat = build_transfer_report(got, b"").blocks[0].text
    assert caveat.startswith("Read partly (--partial)") and "mup at d = 256: 2^-6.50" in caveat
    assert not build_transfer_report(want, b"").blocks[0].text.startswith("Read partly")


def test_a_partial_reading_leaves_a_minimum_next_to_a_diverged_run_as_the_fit_said():
    """Only a minimum at the end of the values read is "runs due"; one next to a diverged run keeps its note."""
    from mhc_mup.training.transfer.analysis import ParabolaFit, _partial_edge

    kept, left_out = (2.0**-9, 2.0**-8, 2.0**-7), (2.0**-6,)
    diverged = ParabolaFit(math.nan, math.nan, math.nan, -8.0, "high",
                           "minimum at 2^-8.00 next to a diverged run (higher η): refine the grid there")  # fmt: skip
    assert _partial_edge(diverged, kept, left_out) == diverged
    end = dataclasses.replace(diverged, argmin=-7.0, note="minimum at the largest η 2^-7.00: extend the grid up",
                              off_grid=True)  # fmt: skip
    assert _partial_edge(end, kept, left_out).note == ("minimum at the largest η 2^-7.00 of those read partly; the "
                                                       "values above it are not run by every seed yet")  # fmt: skip


def test_a_partial_reading_keeps_a_width_unfinished_below_a_parabolas_values_and_says_where_runs_are_due():
    """Two shared values give no parabola: the width stays "not finished". Where seed 1 has run only the low end
    (2^-12 … 2^-8, below the optimum at 2^-6.55), the minimum at the top of those read is not a grid to extend."""
    cfg, grids, records = refined_folder()
    partial = dataclasses.replace(cfg, analysis=dataclasses.replace(cfg.analysis, partial=True))

    def lacking(kept: int) -> list[dict]:
        return [r for r in records if not (r["width"] == 256 and r["seed"] == 1 and r["lr"] > 2.0 ** (-13 + kept))]

    two = analyse(partial, lacking(2), grids)
    assert ("mup", 256) not in two.left_out and two.drift.iloc[0].joint_note == "not finished yet, left out: d = 256"
    unread = analyse(cfg, lacking(2), grids).drift.iloc[0].joint_note  # nor is --partial offered for it
    assert unread == "not finished yet, left out: d = 256"
    low = analyse(partial, lacking(5), grids)
    assert low.values[("mup", 256)] == COARSE[:5]
    notes = low.seed_optima.set_index(["width", "seed"]).note
    assert notes[(256, 0)] == ("minimum at the largest learning rate 2^-8.00 of those read partly; the values above "
                               "it are not run by every seed yet")  # fmt: skip
    assert "extend the grid" not in " ".join(low.optima.note)


def test_values_every_seed_ran_keeps_the_values_common_to_the_seeds_present():
    runs = pd.DataFrame({"seed": [0, 0, 0, 2, 2], "value": [0.25, 0.5, 1.0, 0.5, 1.0]})
    assert values_every_seed_ran(runs, (0.25, 0.5, 1.0, 2.0)) == (0.5, 1.0)  # 2.0 planned, run by none
    assert values_every_seed_ran(runs.iloc[:0], (0.25, 0.5)) == (0.25, 0.5)  # no runs: nothing to leave out
    assert log2_text((0.125, 2.0**2.5)) == "2^-3.00, 2^2.50"


def test_a_seed_planned_but_not_started_is_named():
    """A width whose seed 1 has not started is fitted with seed 0 (its curve is whole), and the optima table says
    which seed the grids planned there has no run, where it would otherwise look whole; a third grid asking 3 seeds
    at 64 plans seed 2 there alone."""
    cfg, grids, records = refined_folder()
    more = SweepGrid(configs=(MUP,), widths=(64,), lrs=COARSE, seeds=3)
    assert grid_seeds((*grids, more)) == {("mup", 64): 3, ("mup", 128): 2, ("mup", 256): 2}
    optima = analyse(cfg, [r for r in records if (r["width"], r["seed"]) != (128, 1)], (*grids, more))
    notes = optima.optima.set_index("width").note
    assert notes[128].endswith("; seed 1: no runs yet") and notes[64] == "seed 2: no runs yet" and notes[256] == ""
    assert optima.optima.set_index("width").n_seeds_fit[128] == 1


def test_a_width_without_runs_says_so():
    """A planned width none of whose runs is stored (not started, or its runs moved out) is named in the optima
    table, not left blank."""
    cfg, grids, records = refined_folder()
    optima = analyse(cfg, [r for r in records if r["width"] != 128], grids).optima.set_index("width")
    assert optima.loc[128, "note"] == "no runs yet" and optima.loc[128, "n_seeds"] == 0
    assert optima.loc[64, "note"] == ""


def test_the_figure_says_how_few_widths_a_verdict_rests_on():
    """A panel whose joint fit left a width out says so in its title; a complete one does not."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import transfer_figure

    cfg, grids, records = refined_folder()
    assert "widths" not in transfer_figure(analyse(cfg, records, grids)).axes[0].get_title()
    partial = [r for r in records if not (r["width"] == 256 and r["seed"] == 1 and r["lr"] == 2.0**-6.5)]
    assert transfer_figure(analyse(cfg, partial, grids)).axes[0].get_title().endswith("(2 of 3 widths)")
    # a configuration planned at fewer widths than the folder holds counts its own: complete, so nothing said
    baseline = BUILTIN_CONFIGS["baseline"]
    both = TransferConfig(grid=SweepGrid(configs=(MUP, baseline), widths=(64, 128, 256), lrs=COARSE, seeds=2),
                          analysis=TransferAnalysis(fit=FitSettings(n_boot=50)), device="cpu")  # fmt: skip
    grids = (SweepGrid(configs=(MUP,), widths=(64, 128, 256), lrs=COARSE, seeds=2),
             SweepGrid(configs=(baseline,), widths=(64, 128), lrs=COARSE, seeds=2))  # fmt: skip
    runs = records_over({64: COARSE, 128: COARSE, 256: COARSE}, lambda w, s, x: bowl(x, -6.55 - 0.1 * math.log2(w)))
    runs += [r | {"config": "baseline"} for r in runs if r["width"] < 256]
    titles = [ax.get_title() for ax in transfer_figure(analyse(both, runs, grids)).axes]
    assert titles[1].startswith("baseline\nη* ∝ d^") and "widths" not in titles[1]
    # a multiplier sweep's panels name its own symbol, not the learning rate's
    swept = dataclasses.replace(analyse(cfg, records, grids), config=cfg.with_leaves(hyper="lr_fn", base_lr=2**-7))
    assert transfer_figure(swept).axes[0].get_title().startswith("mup\nlr_fn* ∝ d^")
    method = str(build_transfer_report(swept, b""))
    assert "t = log2 lr_fn − x0" in method and "log2 lr_fn* with an interval" in method and "log2 η" not in method


def test_the_figure_legend_names_every_width_drawn_in_any_panel():
    """The legend sits in the last panel; a width run only in an earlier panel is still in it, in width order."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import transfer_figure

    cfg = TransferConfig(grid=SweepGrid(configs=(MUP, BUILTIN_CONFIGS["baseline"]), widths=(64, 128), lrs=COARSE,
                                        seeds=2), analysis=TransferAnalysis(fit=FitSettings(n_boot=50)), device="cpu")
    records = records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, -6.55))
    records += [r | {"config": "baseline"} for r in records if r["width"] == 64]
    fig = transfer_figure(analyse(cfg, records))
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["d=64", "d=128"]


def test_an_interval_wider_than_the_grid_runs_off_the_panel_not_the_grid_off_the_figure():
    """With two seeds a width's optimum interval can span dozens of octaves (t(1) = 12.7): the panels keep the
    swept values' range (padded), so the curves stay readable and the bar runs off the edge."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import optima_figure, transfer_figure

    cfg = TransferConfig(grid=SweepGrid(configs=(MUP,), widths=(64, 128), lrs=COARSE, seeds=2),
                         analysis=TransferAnalysis(fit=FitSettings(n_boot=50)), device="cpu")  # fmt: skip
    result = analyse(cfg, records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, -6.55)))
    result.optima.loc[result.optima.width == 64, ["ci_low", "ci_high"]] = (-40.0, 30.0)
    grid = np.log2(COARSE)
    pad = max(0.3, 0.04 * (grid.max() - grid.min()))
    assert transfer_figure(result).axes[0].get_xlim() == pytest.approx((grid.min() - pad, grid.max() + pad))
    low, high = optima_figure(result).axes[0].get_ylim()
    assert grid.min() - 1 < low < grid.min() and grid.max() < high < grid.max() + 1


def test_the_logits_figure_draws_what_the_runs_recorded():
    """One panel per configuration whose runs recorded their logits, one line per width through the seed-mean
    largest attention logit at each value, on a log scale; a diverged run is left out. No figure without logits."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import logits_figure

    cfg = TransferConfig(grid=SweepGrid(configs=(MUP, BUILTIN_CONFIGS["baseline"]), widths=(64, 128), lrs=COARSE,
                                        seeds=2), analysis=TransferAnalysis(fit=FitSettings(n_boot=50)), device="cpu")
    plain = records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, -6.55))
    assert logits_figure(analyse(cfg, plain)) is None

    def peak(r: dict) -> float:
        return 2.0 ** (r["log2_lr"] + 12) * r["width"] / 64 + r["seed"]

    probed = [r | {"logits": {"attn_logit_max": peak(r)}} for r in plain]
    probed += [r | {"config": "baseline"} for r in plain]  # runs from before the probe: no panel
    blown = transfer_record("mup", 64, 1, COARSE[0] * 1.5, math.nan, diverged=True)  # a value of its own
    probed.append(blown | {"logits": {"attn_logit_max": 1e9}})
    fig = logits_figure(analyse(cfg, probed))
    assert [ax.get_title() for ax in fig.axes] == ["mup"] and fig.axes[0].get_yscale() == "log"
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines) == ["d=64", "d=128"]
    np.testing.assert_allclose(lines["d=64"].get_xdata(), [math.log2(v) for v in COARSE])  # not the diverged one's
    np.testing.assert_allclose(lines["d=64"].get_ydata(), [2.0 ** (k + 12) + 0.5 for k in range(-12, -1)])
    np.testing.assert_allclose(lines["d=128"].get_ydata(), [2.0 ** (k + 12) * 2 + 0.5 for k in range(-12, -1)])


def test_the_routing_figure_draws_each_gates_logit_rms_against_width():
    """One panel per gate, a solid line (end of training) and a dashed one (start) per mHC configuration through
    the seed-mean logit RMS at each width's best value, on log-log axes; no figure for controls alone."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import ROUTING_GATES, routing_figure

    cfg = TransferConfig(grid=SweepGrid(configs=(MUP, BUILTIN_CONFIGS["control-mup"]), widths=(64, 128),
                                        lrs=COARSE, seeds=2), analysis=TransferAnalysis(fit=FitSettings(n_boot=50)),
                         device="cpu")  # fmt: skip
    plain = records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, -6.55))
    controls = [r | {"config": "control-mup"} for r in plain]
    assert routing_figure(analyse(cfg, controls)) is None

    def gates(r: dict, scale: float) -> dict:
        return {f"{g}_rms": scale * (k + 1) * r["width"] / 64 + r["seed"] for k, g in enumerate(ROUTING_GATES)}

    routed = [r | {"routing": gates(r, 1.0), "routing_init": gates(r, 1e-3)} for r in plain]
    fig = routing_figure(analyse(cfg, routed + controls))
    assert [ax.get_title() for ax in fig.axes] == ["comb logits", "pre logits", "post logits"]
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    for k, ax in enumerate(fig.axes):
        end, start = ax.get_lines()  # mup only: the control has no routing
        assert end.get_label() == "mup" and start.get_linestyle() == "--"
        np.testing.assert_allclose(end.get_xdata(), [64, 128])
        np.testing.assert_allclose(end.get_ydata(), [(k + 1) + 0.5, (k + 1) * 2 + 0.5])
        np.testing.assert_allclose(start.get_ydata(), [1e-3 * (k + 1) + 0.5, 1e-3 * (k + 1) * 2 + 0.5])


def test_the_optima_figure_draws_each_optimum_and_its_difference_from_the_control():
    """Left: each configuration's per-seed optimum at each width (points, with bars) and its joint fit (line);
    right: the mHC configuration's optimum less its control's. The control sits at 2^-6.55 at both widths, mup
    half an octave higher at 128; no right panel without a control, no figure without an optimum."""
    import matplotlib

    matplotlib.use("Agg")
    from mhc_mup.training.transfer.figures import optima_figure

    cfg = TransferConfig(grid=SweepGrid(configs=(MUP, BUILTIN_CONFIGS["control-mup"]), widths=(64, 128),
                                        lrs=COARSE, seeds=2), analysis=TransferAnalysis(fit=FitSettings(n_boot=50)),
                         device="cpu")  # fmt: skip
    mup = records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, -6.55 + 0.5 * math.log2(w / 64)))
    control = [r | {"config": "control-mup", "final_val_loss": bowl(r["log2_lr"], -6.55)} for r in mup]
    fig = optima_figure(analyse(cfg, mup + control))
    left, right = fig.axes
    points = {c.get_label().split(":")[0]: c for c in left.containers}
    assert list(points) == ["mup", "control-mup"]
    assert re.fullmatch(r"mup: β \+0\.\d\d \[[+-]\d\.\d\d, \+\d\.\d\d\]", points["mup"].get_label())
    mine, theirs = points["mup"].lines[0], points["control-mup"].lines[0]
    np.testing.assert_allclose(mine.get_ydata(), [-6.55, -6.05], atol=0.1)
    np.testing.assert_allclose(theirs.get_ydata(), [-6.55, -6.55], atol=0.1)
    np.testing.assert_allclose(np.round(mine.get_xdata()), [6, 7])  # log2 width, a little apart
    (apart,) = right.containers
    assert apart.get_label().startswith("mup − control-mup: δ +0.")
    np.testing.assert_allclose(apart.lines[0].get_ydata(), [0.0, 0.5], atol=0.1)
    line = [ln for ln in right.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2]
    np.testing.assert_allclose(line[-1].get_ydata(), [0.0, 0.5], atol=0.1)  # the joint fits' difference
    alone = TransferConfig(grid=SweepGrid(configs=(MUP,), widths=(64, 128), lrs=COARSE, seeds=2),
                           analysis=TransferAnalysis(fit=FitSettings(n_boot=50)), device="cpu")  # fmt: skip
    assert len(optima_figure(analyse(alone, mup)).axes) == 1
    beyond = records_over({64: COARSE, 128: COARSE}, lambda w, s, x: bowl(x, 3.0))  # every minimum at the edge
    assert optima_figure(analyse(alone, beyond)) is None


def test_the_fits_read_the_loss_the_analysis_names():
    """``loss="train"``: every estimator reads ``final_train_loss`` (here a bowl at 2^-5.4 that drifts −0.5 octave
    per doubling, where the validation loss sits still at 2^-6.55), the routing's best value follows it, and a note
    says so; the default reads the validation loss. An unknown loss is refused by name."""
    widths = (64, 128, 256)
    records = records_over(dict.fromkeys(widths, COARSE), lambda w, s, x: bowl(x, -6.55))
    for r in records:
        r["final_train_loss"] = bowl(r["log2_lr"], -5.4 - 0.5 * math.log2(r["width"] / 64)) - 0.1
        r["routing"] = {"comb_rms": r["final_train_loss"]}
    val = analyse(config_of(widths, COARSE), records)
    train = analyse(dataclasses.replace(config_of(widths, COARSE), analysis=TransferAnalysis(
        fit=FitSettings(n_boot=100), loss="train")), records)  # fmt: skip
    assert val.drift.joint_exponent[0] == pytest.approx(0.0, abs=0.02) and not any("--loss" in n for n in val.notes)
    assert train.drift.joint_exponent[0] == pytest.approx(-0.5, abs=0.05)
    assert train.drift.exponent[0] == pytest.approx(-0.5, abs=0.1)
    assert train.optima.log2_lr_opt.tolist() == pytest.approx([-5.4, -5.9, -6.4], abs=0.15)
    assert train.routing.value.tolist() == [2.0**-5, 2.0**-6, 2.0**-6]  # the grid's best by the training loss
    assert val.routing.value.tolist() == [2.0**-7] * 3
    assert any("reads each run's training loss of the last 10% of steps (--loss train)" in n for n in train.notes)
    with pytest.raises(TransferError, match="loss must be one of val, train, got 'test'"):
        TransferAnalysis(loss="test")


def test_a_width_whose_seed_ran_part_of_its_planned_values_is_not_fitted():
    """What the grids planned counts, not only what ran: the one seed present at d = 128 has run 6 of its 11
    planned values (a time budget stopped it), so it is not finished, though it has run every value run there."""
    cfg = config_of((64, 128), COARSE, seeds=1)
    records = records_over({64: COARSE, 128: COARSE[:6]}, lambda w, s, x: bowl(x, -6.55), seeds=1)
    seeds = analyse(cfg, records).seed_optima.set_index("width")
    assert seeds.loc[128, "note"] == "5 of 11 runs not finished yet" and seeds.loc[64, "note"] == ""


def test_a_parabola_on_a_non_uniform_grid_recovers_the_optimum():
    """Half-octave and quarter-octave points inside a one-octave grid: the parabola is a least-squares fit in
    log2 η, so the vertex of a parabola through uneven points is exact."""
    x = np.array(distinct_values(COARSE, (2.0**-6.5, 2.0**-6.25)))
    x = np.log2(x)
    fit = fit_parabola(x, 2.0 + 0.1 * (x + 6.4) ** 2)
    assert fit.log2_opt == pytest.approx(-6.4, abs=1e-9) and fit.argmin == -6.5
    assert fit.curvature == pytest.approx(0.1, rel=1e-9)


def test_the_joint_fit_follows_a_drift_over_each_widths_own_values():
    """η* ∝ d^−0.5 measured with values that follow the optimum: a coarse grid at d = 64, a narrower one with
    half-octave points at d = 256 and 1024; both estimators recover β."""
    rng = np.random.default_rng(3)
    widths = (64, 128, 256, 512, 1024)
    optimum = {w: -6 - 0.5 * math.log2(w / 64) for w in widths}
    values = {w: COARSE if w in (64, 128, 512) else
              tuple(2.0**x for x in np.arange(optimum[w] - 3.5, optimum[w] + 3.01, 0.5)) for w in widths}  # fmt: skip
    shift = {(w, s): 0.02 * rng.standard_normal() for w in widths for s in range(3)}
    records = records_over(values, lambda w, s, x: 3 + 0.2 * (x - optimum[w] - shift[(w, s)]) ** 2, seeds=3)
    cfg = config_of(widths, distinct_values(*values.values()), seeds=3)
    grids = tuple(SweepGrid(configs=(MUP,), widths=(w,), lrs=values[w], seeds=3) for w in widths)
    result = analyse(cfg, records, grids)
    row = result.drift.iloc[0]
    assert len({result.values[("mup", w)] for w in widths}) == 3
    assert row.joint_widths == 5 and row.joint_exponent == pytest.approx(-0.5, abs=0.03)
    assert row.joint_low <= -0.5 <= row.joint_high and row.joint_verdict == "drifts"
    assert row.exponent == pytest.approx(-0.5, abs=0.03) and row.verdict == "drifts"


# ── noise pairs and the band's edges on ragged values ─────────────────────────────────────────────
def test_noise_pairs_are_neighbours_within_each_widths_own_values():
    """The paired batch SE pairs each value with the next of its own width: at the coarse width octave pairs,
    at the refined one half-octave pairs too. The runs near the optimum wobble most, so that leaving out the
    coarse width's pairs there (as neighbours on the folder's union grid would) moves the median."""
    cfg, grids, _ = refined_folder()
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 0.3, 6)
    values = {64: COARSE, 256: distinct_values(COARSE, HALF)}
    records = []
    for w, vs in values.items():
        for s in range(2):
            for v in vs:
                wobble = 0.03 if -8 <= math.log2(v) <= -5 else 0.01
                batches = bowl(math.log2(v), -6.55) + difficulty + rng.normal(0, wobble, 6)
                records.append(transfer_record("mup", w, s, v, float(batches.mean()))
                               | {"value": v, "final_val_batch_losses": batches.tolist()})  # fmt: skip
    table = noise_table(cfg, pd.DataFrame(records), records, grid_values(grids)).set_index("width")
    assert list(table.index) == [64, 256]
    for w, vs in values.items():
        by = {(r["seed"], log2_key(r["lr"])): r["final_val_batch_losses"] for r in records if r["width"] == w}
        pairs = [paired_batch_se(by[(s, log2_key(a))], by[(s, log2_key(b))]) for s in range(2)
                 for a, b in itertools.pairwise(vs)]  # fmt: skip
        assert len(pairs) == 2 * (len(vs) - 1) and table.loc[w, "val_pair_se"] == pytest.approx(np.median(pairs))


def edge_curves(edges: dict[int, float]) -> list[WidthCurves]:
    """3 seeds per width, flat at 2 up to the width's high edge, then rising by 1/4 per octave, seed offsets 0,
    1/4, 1/2 (so the seeds' noise is exactly 0); seed 0 diverged 2 octaves above the edge. Each width has the
    one-octave grid 2^-10 … 2^-2, a half-octave point just above its edge, and a stray value a quarter octave
    above the first diverged one whose loss is back at 2 (beyond the rise: it must not extend the band); the
    widest has one more value, 2^-9.5. So the spacing differs on the two sides of each edge."""
    out = []
    for width, edge in edges.items():
        extra = {-9.5} if width == max(edges) else set()
        x = np.array(sorted({*np.arange(-10.0, -1.5), edge + 0.5, edge + 2.25, *extra}))
        point = 2.0 + np.where(x <= edge, 0.0, (x - edge) / 4)
        point[np.isclose(x, edge + 2.25)] = 2.0
        loss = point[None, :] + np.array([0.0, 0.25, 0.5])[:, None]
        loss[0, np.isclose(x, edge + 2)] = np.nan
        out.append(WidthCurves(width, x, loss, (0, 1, 2)))
    return out


def test_edges_on_each_widths_own_values_use_the_spacing_next_to_each_edge():
    """A high edge moving down one octave per doubling, read on each width's own values: contiguous bands, the
    edges where they were built, and each drift's interval widened by the spacing beside that edge on its open
    side (0.5 above the high edge, not the 1 below it; 1 below the first diverged value, not the 0.25 above it)
    over the 3 octaves of width."""
    edges = {128: -4.0, 256: -5.0, 512: -6.0, 1024: -7.0}
    built = edge_curves(edges)
    assert len({tuple(c.x) for c in built}) == 4 and len({len(c.x) for c in built}) == 2  # each width its own
    cfg = TransferConfig(device="cpu")
    table = edges_table(cfg, "mup", built)
    assert table.high_edge_log2.tolist() == list(edges.values()) and not table.high_open.any()
    assert table.first_diverged_log2.tolist() == [e + 2 for e in edges.values()] and table.low_open.all()
    drift = edge_drift(cfg, "mup", built, table).set_index("edge")
    for which, spacing in (("high_edge", 0.5), ("first_diverged", 1.0)):
        row = drift.loc[which]
        assert row.exponent == pytest.approx(-1.0) and row.n_widths == 4
        assert (row.ci_low, row.ci_high) == pytest.approx((-1 - spacing / 3, -1 + spacing / 3))
        assert f"widened by ±{spacing / 3:.3f}" in row.note


# ── a folder grown by several commands ─────────────────────────────────────────────────────────────
def test_the_folders_union_grid_and_its_grids(small_corpus_file, tmp_path):
    """``folder_config``: the command's configurations then the earlier ones, every width, the most seeds, every
    value (one float per key, the earliest), the base width kept; ``folder_grids``: each command's grid; a folder
    written before grids were recorded stands for them with its union."""
    out = tmp_path / "out"
    out.mkdir()
    first = tiny_cfg(small_corpus_file, widths=(32, 16), seeds=2, base_d=16)
    assert folder_config(first, out) is first and folder_grids(first, out) == (first.grid,)
    write_sweep_file(first, out)
    assert folder_config(first, out).grid == first.grid  # one command: its own grid, in its order
    nearly = 2.0**-8 * (1 + 1e-9)  # the same key as 2^-8: the same run file
    second = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["control-sp"],), widths=(64,),
                      lrs=(2.0**-10, 2.0**-9, nearly), base_d=16)  # fmt: skip
    write_sweep_file(second, out)
    union = folder_config(second, out)
    assert [c.name for c in union.grid.configs] == ["control-sp", "control-mup"]
    assert union.grid.widths == (16, 32, 64) and union.grid.seeds == 2 and union.base_d == 16
    assert union.grid.lrs == (2.0**-10, 2.0**-9, 2.0**-8, 2.0**-6, 2.0**-4)
    grids = folder_grids(second, out)
    assert [(g.configs[0].name, g.widths, g.seeds) for g in grids] == [("control-mup", (32, 16), 2),
                                                                       ("control-sp", (64,), 1)]  # fmt: skip
    assert grid_values(grids)[("control-sp", 64)] == (2.0**-10, 2.0**-9, nearly)
    write_sweep_file(second, out)  # the same command again: no second copy of its grid
    assert len(json.loads((out / "sweep.json").read_text())["grids"]) == 2
    doc = json.loads((out / "sweep.json").read_text())
    del doc["grids"]
    (out / "sweep.json").write_text(json.dumps(doc))
    old, mine = folder_grids(second, out)
    assert old.widths == (16, 32, 64) and [c.name for c in old.configs] == ["control-sp", "control-mup"]
    assert mine == second.grid


def test_a_folder_grown_by_two_commands_is_analysed_as_a_whole(small_corpus_file, tmp_path):
    """A coarse command, then a second configuration at one width over another range of learning rates: the
    second command's analysis covers both, each configuration × width over its own values; ``missing`` counts
    only the command's own grid; a third command stopped before training leaves its width not finished."""
    out = tmp_path / "out"
    first = tiny_cfg(small_corpus_file, base_d=16)  # control-mup, d = 16, 32, 2^-8 … 2^-4
    run_transfer(first, out)
    second = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["control-sp"],), widths=(32,),
                      lrs=(2.0**-10, 2.0**-9, 2.0**-8), base_d=16)  # fmt: skip
    with pytest.raises(TransferError, match=r"other settings \(base_d: 16 there, 32 now\)"):
        plan(second.with_leaves(base_d=None), out)  # its own smallest width would be another base width
    result = run_transfer(second, out)
    assert (result.executed, result.missing, len(result.runs)) == (3, 0, 9)
    assert len(pd.read_csv(out / "transfer.csv")) == 9
    assert result.values == {("control-sp", 32): second.grid.lrs, ("control-mup", 16): first.grid.lrs,
                             ("control-mup", 32): first.grid.lrs}  # fmt: skip
    assert list(zip(result.optima.config, result.optima.width, strict=True)) == [
        ("control-sp", 32), ("control-mup", 16), ("control-mup", 32)]  # fmt: skip
    assert not result.seed_optima.note.str.contains("not finished").any() and result.ragged
    report = (out / "transfer_report.md").read_text()
    assert "values per configuration and width: see transfer.csv" in report
    assert "η = 2^-10, 2^-9, 2^-8 (3 values) at control-sp d = 32" in report
    assert "η = 2^-8, 2^-6, 2^-4 (3 values) at control-mup d = 16, 32" in report

    third = second.with_leaves(lrs=(2.0**-11, 2.0**-10, 2.0**-9, 2.0**-8))
    stopped = run_transfer(third, out, time_budget=1e-9)
    assert (stopped.executed, stopped.missing, len(stopped.runs)) == (0, 1, 9)
    seeds = stopped.seed_optima.set_index(["config", "width"])
    assert seeds.loc[("control-sp", 32), "note"] == "1 of 4 runs not finished yet"
    mup_rows = result.optima[result.optima.config == "control-mup"].reset_index(drop=True)
    pd.testing.assert_frame_equal(stopped.optima[stopped.optima.config == "control-mup"].reset_index(drop=True),
                                  mup_rows)  # fmt: skip


# ── a uniform grid: what it always was ─────────────────────────────────────────────────────────────
def test_a_uniform_grid_is_analysed_as_before():
    """A full cross product, swept by one command or twice: every width over the grid's values, the same tables
    with or without the grids, no ragged description; a seed short of a grid value is not finished."""
    cfg = config_of((64, 128, 256), COARSE)
    records = records_over(dict.fromkeys(cfg.grid.widths, COARSE), lambda w, s, x: bowl(x, -6.55 + 0.01 * s))
    plain = analyse(cfg, records)
    twice = analyse(cfg, records, (cfg.grid, cfg.grid))
    for name in ("runs", "seed_optima", "optima", "drift", "noise", "edges", "edge_drift"):
        pd.testing.assert_frame_equal(getattr(plain, name), getattr(twice, name))
    assert set(plain.values.values()) == {COARSE} and not plain.ragged
    assert cfg.describe(plain.ragged).endswith("η = 2^-12.00 … 2^-2.00 (11 points)")
    report = build_transfer_report(plain, b"")
    assert "different values" not in str(report) and "see transfer.csv" not in str(report)
    short = analyse(cfg, [r for r in records if not (r["width"] == 128 and r["seed"] == 1 and r["lr"] == 2**-12)])
    note = short.seed_optima.set_index(["width", "seed"]).loc[(128, 1), "note"]
    assert note == "1 of 11 runs not finished yet"


def test_width_curves_default_to_the_values_run_there():
    """Without planned values a width's curves are over what its seeds ran; a seed short of one is not finished."""
    cfg = config_of((64,), COARSE)
    runs = analyse(cfg, records_over({64: COARSE[2:7]}, lambda w, s, x: bowl(x, -6.55))).runs
    curves = width_curves(cfg, runs)
    assert curves is not None and curves.x.tolist() == [-10.0, -9.0, -8.0, -7.0, -6.0] and curves.loss.shape == (2, 5)
    assert width_curves(cfg, runs.iloc[1:]) is None


# ── a folder analysed again from its sweep.json alone ──────────────────────────────────────────────
def test_a_folder_is_analysed_again_from_its_sweep_file_alone(small_corpus_file, tmp_path):
    """``stored_config`` rebuilds the sweep from ``sweep.json`` (the union grid, the settings, the base width; the
    CPU as device) and ``analyse_folder`` gives the tables the last command wrote, training nothing; analysis
    leaves change only the analysis; ``missing`` counts what the folder's grids planned and did not store."""
    out = tmp_path / "out"
    first = tiny_cfg(small_corpus_file, base_d=16)
    run_transfer(first, out)
    second = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["control-sp"],), widths=(32,),
                      lrs=(2.0**-10, 2.0**-9, 2.0**-8), base_d=16)  # fmt: skip
    swept = run_transfer(second, out)
    cfg, grids = stored_config(out, {"n_boot": 50})
    resolved = second.run_settings().numerics  # the folder stores cuda_graphs as it ran: "off" on the CPU
    assert (cfg.recipe, cfg.model, cfg.numerics, cfg.sweep) == (second.recipe, second.model, resolved, second.sweep)
    assert cfg.base_width == 16 and cfg.grid == folder_config(second, out).grid and cfg.device == "cpu"
    assert grids == folder_grids(second, out)
    (out / "optima.csv").unlink()
    again = analyse_folder(out, {"n_boot": 50})
    assert (again.executed, again.missing) == (0, 0) and (out / "optima.csv").exists()
    for name in ("runs", "seed_optima", "optima", "drift", "noise", "edges"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(swept, name))
    assert stored_config(out, {"tolerance": 0.3})[0].analysis.tolerance == 0.3
    next(out.glob("runs/control-sp/d32/seed0/*.json.gz")).unlink()
    assert analyse_folder(out, {"n_boot": 50}).missing == 1


def test_stored_config_refuses_a_folder_without_a_sweep_in_one_line(tmp_path):
    with pytest.raises(TransferError, match="holds no transfer sweep"):
        stored_config(tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"format": "other/1", "settings": {}, "grid": {
        "configs": [], "widths": [], "seeds": 1, "lrs": []}}))  # fmt: skip
    with pytest.raises(TransferError, match="is not a transfer sweep's"):
        stored_config(tmp_path)
    grid = SweepGrid(configs=(MUP,), widths=(64,), lrs=COARSE, seeds=1).to_dict()
    (tmp_path / "sweep.json").write_text(json.dumps({"format": SWEEP_FORMAT, "settings": {"steps": -3},
                                                     "grid": grid}))  # fmt: skip
    with pytest.raises(TransferError, match=r"sweep\.json'.*steps"):
        stored_config(tmp_path)


def test_stored_config_rebuilds_a_multiplier_sweep(small_corpus_file, tmp_path):
    """The swept hyperparameter and its fixed base learning rate come back together (they validate as a pair)."""
    cfg = tiny_cfg(small_corpus_file, configs=(MUP,), hyper="lr_fn", base_lr=2.0**-6, lrs=(0.25, 1.0, 4.0),
                   base_d=16)  # fmt: skip
    write_sweep_file(cfg, tmp_path)
    stored, grids = stored_config(tmp_path)
    assert stored.sweep == cfg.sweep and stored.grid.lrs == cfg.grid.lrs and grids == (cfg.grid,)
