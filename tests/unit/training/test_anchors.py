"""The sanity anchors and the drift against them: statuses by hand, the difference interval against a closed form,
and the whole analysis on synthetic curves whose optima drift by known amounts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.transfer import (
    ANCHOR_COLUMNS,
    BUILTIN_CONFIGS,
    RELATIVE_COLUMNS,
    SweepGrid,
    TransferAnalysis,
    TransferConfig,
    analyse,
    anchor_sentence,
    anchor_table,
    lr_grid,
    relative_drift,
    rule_pairs,
)
from mhc_mup.training.transfer.anchors import anchor_status, difference_interval
from tests.helpers import transfer_record

NAMES = ("control-mup", "control-sp", "mup", "baseline", "sp-baseline")


def config(names=NAMES, hyper: str = "lr", widths=(64, 128, 256, 512)) -> TransferConfig:
    grid = SweepGrid(configs=tuple(BUILTIN_CONFIGS[n] for n in names), widths=widths, lrs=lr_grid(2**-12, 2**-1, 23),
                     seeds=3)  # fmt: skip
    cfg = TransferConfig(grid=grid, analysis=TransferAnalysis(fit=FitSettings(n_boot=200)), device="cpu")
    return cfg if hyper == "lr" else cfg.with_leaves(hyper=hyper, base_lr=2**-7)


def drift_frame(fits: dict[str, tuple[float, float, float, str, str]], widths: int = 4) -> pd.DataFrame:
    """A drift table's joint columns: name → (β, low, high, verdict, direction)."""
    return pd.DataFrame([
        {"config": n, "joint_exponent": b, "joint_low": lo, "joint_high": hi, "joint_verdict": v,
         "joint_direction": d, "joint_widths": widths}
        for n, (b, lo, hi, v, d) in fits.items()
    ])  # fmt: skip


SHRINKS = "η* shrinks with width"


@pytest.mark.parametrize(("body", "verdict", "direction", "status"), [
    ("mup", "transfers", "", "holds"), ("mup", "drifts", SHRINKS, "fails"), ("mup", "unclear", "", "unclear"),
    ("sp", "drifts", SHRINKS, "holds"), ("sp", "drifts", "η* grows with width", "fails"),
    ("sp", "transfers", "", "fails"), ("sp", "unclear", "", "unclear"),
])  # fmt: skip
def test_anchor_status_by_hand(body, verdict, direction, status):
    assert anchor_status(body, verdict, direction) == status


def test_difference_interval_is_the_quadrature_of_the_sides():
    delta, low, high = difference_interval((-0.1, -0.2, 0.0), (-0.3, -0.4, -0.25))
    assert delta == pytest.approx(0.2)
    assert low == pytest.approx(0.2 - math.hypot(0.1, 0.05)) and high == pytest.approx(0.2 + math.hypot(0.1, 0.1))
    # two independent normal estimates with symmetric z-intervals: the difference's own z-interval
    z, sa, sb = 1.96, 0.03, 0.04
    _, low, high = difference_interval((0.5, 0.5 - z * sa, 0.5 + z * sa), (0.2, 0.2 - z * sb, 0.2 + z * sb))
    assert (high - low) / 2 == pytest.approx(z * math.hypot(sa, sb))


def test_tables_from_a_drift_frame():
    drift = drift_frame({
        "control-mup": (-0.114, -0.192, -0.037, "drifts", SHRINKS),
        "control-sp": (-1.5, -1.9, -1.1, "drifts", SHRINKS),
        "mup": (-0.077, -0.120, -0.033, "unclear", ""),
        "baseline": (-0.323, -0.406, -0.240, "drifts", SHRINKS),
        "sp-baseline": (math.nan, math.nan, math.nan, "unclear", ""),
    })  # fmt: skip
    cfg = config()
    anchors = anchor_table(cfg, drift)
    assert list(anchors.columns) == list(ANCHOR_COLUMNS)
    assert anchors.set_index("config").status.to_dict() == {"control-mup": "fails", "control-sp": "holds"}
    rel = relative_drift(cfg, drift).set_index("config")
    assert list(rel.reset_index().columns) == list(RELATIVE_COLUMNS)
    assert rel.anchor.to_dict() == {"mup": "control-mup", "baseline": "control-mup", "sp-baseline": "control-sp"}
    assert rel.loc["mup", "exponent"] == pytest.approx(0.037) and rel.loc["mup", "verdict"] == "unclear"
    assert rel.loc["baseline", "exponent"] == pytest.approx(-0.209) and rel.loc["baseline", "verdict"] == "drifts"
    assert rel.loc["baseline", "direction"] == "η* shrinks with width relative to control-mup's"
    assert rel.loc["baseline", ["paired_low", "paired_high", "curves"]].isna().all()  # no fits to pair
    assert math.isnan(rel.loc["sp-baseline", "exponent"]) and rel.loc["sp-baseline", "verdict"] == "unclear"
    assert rel.loc["sp-baseline", "note"] == "no joint fit with an interval for sp-baseline"
    fails, holds = (anchor_sentence(r, 0.1, relative=True) for r in anchors.to_dict("records"))
    assert fails.startswith("control-mup (plain residual, µP body) should transfer; it drifts") and "fails" in fails
    assert "the drift against the control (below)" in fails  # points to the table that follows...
    assert "(below)" not in anchor_sentence(anchors.iloc[0].to_dict(), 0.1)  # ...only where there is one
    none = anchors.iloc[0].to_dict() | {"exponent": math.nan, "ci_low": math.nan, "verdict": "unclear",
                                        "direction": "", "status": "unclear"}  # fmt: skip
    told = "it reads unclear, no joint fit with an interval: the anchor is not told yet."
    assert anchor_sentence(none, 0.1).endswith(told)
    unclear = anchors.iloc[0].to_dict() | {"ci_low": -0.2, "ci_high": 0.05, "verdict": "unclear", "direction": "",
                                           "status": "unclear"}  # fmt: skip
    assert anchor_sentence(unclear, 0.1).endswith("(its interval is neither inside ±0.1 nor clear of 0).")
    assert holds.startswith("control-sp (plain residual, SP body) should drift (η* shrinks with width); it drifts")


def test_no_anchor_without_a_control_or_in_a_multiplier_sweep():
    drift = drift_frame({"mup": (0.0, -0.05, 0.05, "transfers", ""), "control-mup": (0.0, -0.05, 0.05,
                                                                                     "transfers", "")})  # fmt: skip
    assert anchor_table(config(("mup",)), drift).empty and relative_drift(config(("mup",)), drift).empty
    hidden = config(("mup", "control-mup"), hyper="lr_hidden")
    assert anchor_table(hidden, drift).empty and relative_drift(hidden, drift).empty


def synthetic(betas: dict[str, float], widths=(64, 128, 256, 512)) -> tuple[TransferConfig, list[dict]]:
    """Curves with optimum log2 η*(d) = −6 + β·log2(d/64) + small seed noise, per configuration."""
    cfg = config(tuple(betas), widths=widths)
    rng = np.random.default_rng(3)
    records = []
    for name, beta in betas.items():
        for w in widths:
            for s in range(3):
                x0 = -6 + beta * math.log2(w / 64) + 0.02 * rng.standard_normal()
                records += [transfer_record(name, w, s, lr, 3 + 0.2 * (math.log2(lr) - x0) ** 2)
                            for lr in cfg.grid.lrs]  # fmt: skip
    return cfg, records


def test_analysis_reads_a_shared_drift_as_no_relative_drift():
    """The control drifts by −0.3 and mup by −0.3: the anchor fails and the relative drift is 0 (transfers);
    baseline's extra −0.5 is read as drift beyond the control."""
    result = analyse(*synthetic({"control-mup": -0.3, "mup": -0.3, "baseline": -0.8}))
    assert result.anchors.status.tolist() == ["fails"]
    rel = result.relative.set_index("config")
    assert rel.loc["mup", "exponent"] == pytest.approx(0.0, abs=0.02) and rel.loc["mup", "verdict"] == "transfers"
    assert rel.loc["baseline", "exponent"] == pytest.approx(-0.5, abs=0.03)
    assert rel.loc["baseline", "verdict"] == "drifts" and rel.loc["baseline", "ci_high"] < -0.1
    assert result.anchors.iloc[0].exponent == pytest.approx(-0.3, abs=0.02)
    assert rel.curves.tolist() == [12, 12]  # 4 widths × 3 seeds, paired
    assert (rel.paired_low <= rel.exponent).all() and (rel.exponent <= rel.paired_high).all()


def test_two_mhc_rules_of_one_body_are_fitted_against_each_other():
    """mup drifts by −0.3 and baseline by −0.8, beside their control's −0.3: baseline against mup reads −0.5,
    "drifts", with its paired interval; the SP-body rule pairs with no µP rule; a multiplier sweep pairs none."""
    cfg = config()
    assert [(a.name, b.name) for a, b in rule_pairs(cfg)] == [("mup", "baseline")]
    assert rule_pairs(config(("mup", "baseline"), hyper="lr_fn")) == []
    result = analyse(*synthetic({"control-mup": -0.3, "mup": -0.3, "baseline": -0.8}, widths=(64, 128, 256)))
    row = analyse(*synthetic({"baseline": -0.8, "mup": -0.3})).rules.iloc[0]
    assert (row.config, row.anchor) == ("baseline", "mup") and row.exponent == pytest.approx(-0.5, abs=0.03)
    assert row.verdict == "drifts" and row.direction == "η* shrinks with width relative to mup's"
    assert row.curves == 12 and row.paired_low <= row.exponent <= row.paired_high
    assert list(result.rules.columns) == list(RELATIVE_COLUMNS) and result.rules.anchor.tolist() == ["baseline"]
    assert result.relative.anchor.tolist() == ["control-mup", "control-mup"]  # the control table as before
    from mhc_mup.reporting.blocks import render_markdown
    from mhc_mup.training.transfer.report import build_transfer_report

    assert "## Which mHC rule's optimum moves more with width?" in render_markdown(build_transfer_report(result, b""))


def test_the_relative_interval_pairs_the_seeds_the_two_share():
    """Each (width, seed) moves both configurations' optimum by the same N(0, 0.1) shift, and each its own by
    N(0, 0.02): the paired interval sees only the small part (under a fifth of the quadrature's width) and still
    covers δ = 0; the verdict reads the quadrature."""
    rng = np.random.default_rng(4)
    cfg = config(("control-mup", "mup"))
    records = []
    for w in cfg.grid.widths:
        for s in range(3):
            shared = 0.1 * rng.standard_normal()
            for name in ("control-mup", "mup"):
                x0 = -6 + shared + 0.02 * rng.standard_normal()
                records += [transfer_record(name, w, s, lr, 3 + 0.2 * (math.log2(lr) - x0) ** 2
                                            + 0.002 * rng.standard_normal()) for lr in cfg.grid.lrs]  # fmt: skip
    row = analyse(cfg, records).relative.iloc[0]
    assert row.curves == 12 and row.paired_low <= 0.0 <= row.paired_high, row
    assert row.paired_high - row.paired_low < 0.2 * (row.ci_high - row.ci_low), row
    assert row.verdict == "unclear"  # the quadrature's reading (about ±0.21), though the paired one is in ±0.03


def test_fits_over_different_widths_are_compared_over_the_widths_both_fitted():
    """mup drifts by −0.3 up to 256 and then stays put; the control has no runs at 512: compared over 64–256 the
    two shifts cancel (a comparison over 64–512 for mup would read about +0.1 against the control)."""
    cfg, records = synthetic({"control-mup": -0.3, "mup": -0.3})
    for r in records:
        if r["config"] == "mup" and r["width"] == 512:  # hold the optimum at 256's: log2 η* = −6 − 0.6
            r["final_val_loss"] = 3 + 0.2 * (r["log2_lr"] + 6.6) ** 2
    records = [r for r in records if not (r["config"] == "control-mup" and r["width"] == 512)]
    result = analyse(cfg, records)
    drift = result.drift.set_index("config")
    assert drift.loc["mup", "joint_widths"] == 4 and drift.loc["control-mup", "joint_widths"] == 3
    row = result.relative.iloc[0]
    assert row.exponent == pytest.approx(0.0, abs=0.03), row
    assert row.note == "both refitted over the 3 widths they share (64–256)"
    as_is = relative_drift(cfg, result.drift).iloc[0]  # the drift table's own fits: different spans
    assert as_is.exponent > 0.05


def test_analysis_anchor_holds_when_the_control_transfers():
    result = analyse(*synthetic({"control-mup": 0.0, "mup": 0.0}))
    assert result.anchors.status.tolist() == ["holds"]
    assert result.relative.verdict.tolist() == ["transfers"] and result.relative.note.tolist() == [""]
