"""The sanity anchors of a learning-rate sweep, and each mHC configuration's drift against its body's control.

A plain-residual control has a known answer: under the µP body its optimal learning rate transfers across width,
under SP it shrinks with width. When a control of the sweep does not come out so, the method (steps, schedule,
data, estimator) moves the optimum at these settings by itself, and no configuration's verdict is a property of
mHC alone. Each anchor's status is read from its joint drift fit:

* ``holds``: the verdict theory expects (``control-mup`` transfers; ``control-sp`` drifts, η* shrinking);
* ``fails``: the opposite verdict (or a drift the wrong way);
* ``unclear``: the fit cannot tell yet.

The **relative drift** of an mHC configuration is ``δ = β_config − β_control`` against the control of the same
body (the model rule): it cancels a shift the two models share, if that shift adds to both alike. Its interval
combines the two fits' intervals in quadrature, each side on its own, as if independent; it is read against the
same ±tolerance: inside it the configuration drifts no more than its control. Both fits are over the same widths:
the analysis fits the two again over the widths both fitted when they differ.

The same seed draws the same body weights and batches in both, so the two fits share part of their noise, and
the quadrature is wider than it need be. Beside it the analysis gives the **paired** interval
(:func:`~mhc_mup.stats.optimum.paired_difference`: cluster-robust over the (width, seed) curves, widened by the
pair's lack of fit), 42–67% narrower where the noise is shared. It covers 0.94–0.99 at 95% on simulated sweeps,
but 0.87–0.88 where one configuration's optimum leaves the power law at some width for all its seeds at once
(experiments/transfer_issue20/paired_coverage.py), so the verdict reads the quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import pandas as pd

from mhc_mup.stats.optimum import PairedDifference
from mhc_mup.stats.readings import classify_interval, drift_verdict
from mhc_mup.training.transfer.config import TransferConfig
from mhc_mup.training.transfer.configurations import Configuration

__all__ = [
    "ANCHOR_COLUMNS", "ANCHOR_EXPECTED", "RELATIVE_COLUMNS", "Refit", "anchor_sentence", "anchor_status",
    "anchor_table", "control_pairs", "difference_interval", "relative_drift", "relative_row", "rule_pairs",
]  # fmt: skip

ANCHOR_EXPECTED = {"mup": ("transfers", ""), "sp": ("drifts", "η* shrinks with width")}
"""The control's body (model rule) → the joint verdict and direction theory expects of its learning rate."""
ANCHOR_COLUMNS = ("config", "body", "expected", "exponent", "ci_low", "ci_high", "verdict", "direction", "status")
RELATIVE_COLUMNS = (
    "config", "anchor", "exponent", "ci_low", "ci_high", "verdict", "direction", "paired_low", "paired_high",
    "paired_lack_of_fit", "curves", "note",
)  # fmt: skip
"""``ci_*``: the quadrature interval the verdict reads; ``paired_*`` the paired one over ``curves`` curves."""


def anchor_status(body: str, verdict: str, direction: str) -> str:
    """``holds`` / ``fails`` / ``unclear``: a control of body ``body`` whose joint fit reads ``verdict``
    (``direction``) against :data:`ANCHOR_EXPECTED`."""
    if verdict not in ("transfers", "drifts"):
        return "unclear"
    return "holds" if (verdict, direction) == ANCHOR_EXPECTED[body] else "fails"


def anchor_table(cfg: TransferConfig, drift: pd.DataFrame) -> pd.DataFrame:
    """One row per plain-residual control of a learning-rate sweep (:data:`ANCHOR_COLUMNS`): what theory expects,
    its joint fit from ``drift`` (the analysis's drift table) and :func:`anchor_status`. Empty for a sweep of
    another hyperparameter, whose controls have no known answer."""
    rows, by_config = [], _by_config(drift)
    for c in cfg.grid.configs:
        if c.hc or cfg.sweep.hyper != "lr" or c.name not in by_config:
            continue
        r = by_config[c.name]
        expected, towards = ANCHOR_EXPECTED[c.model]
        rows.append({
            "config": c.name, "body": c.model, "expected": f"{expected} ({towards})" if towards else expected,
            "exponent": r["joint_exponent"], "ci_low": r["joint_low"], "ci_high": r["joint_high"],
            "verdict": r["joint_verdict"], "direction": r["joint_direction"],
            "status": anchor_status(c.model, r["joint_verdict"], r["joint_direction"]),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(ANCHOR_COLUMNS))


def difference_interval(
    a: tuple[float, float, float], b: tuple[float, float, float]
) -> tuple[float, float, float]:
    """``(δ, low, high)`` of ``δ = β_a − β_b`` from two estimates ``(β, low, high)``: each side's half-width the
    quadrature sum of the sides it comes from (a's low with b's high, and the reverse)."""
    (ba, la, ha), (bb, lb, hb) = a, b
    delta = ba - bb
    return delta, delta - math.hypot(ba - la, hb - bb), delta + math.hypot(ha - ba, bb - lb)


def control_pairs(cfg: TransferConfig) -> list[tuple[Configuration, Configuration]]:
    """``(mHC configuration, the control of its body)`` for each mHC configuration of a learning-rate sweep whose
    body has a control in the grid; none for a sweep of another hyperparameter."""
    if cfg.sweep.hyper != "lr":
        return []
    controls = {c.model: c for c in cfg.grid.configs if not c.hc}
    return [(c, controls[c.model]) for c in cfg.grid.configs if c.hc and c.model in controls]


def rule_pairs(cfg: TransferConfig) -> list[tuple[Configuration, Configuration]]:
    """``(mHC configuration, a later mHC configuration of the same body)`` for each such pair of a learning-rate
    sweep, in grid order: two width rules for the same generator compared head to head, as each is against the
    control; none for a sweep of another hyperparameter."""
    if cfg.sweep.hyper != "lr":
        return []
    mhc = [c for c in cfg.grid.configs if c.hc]
    return [(a, b) for i, a in enumerate(mhc) for b in mhc[i + 1 :] if a.model == b.model]


def relative_row(
    name: str,
    anchor: str,
    fit: Mapping,
    control: Mapping,
    tolerance: float,
    note: str = "",
    paired: PairedDifference | None = None,
) -> dict:
    """One row of :data:`RELATIVE_COLUMNS`: ``δ = β_config − β_control`` of two joint fits' columns (``fit`` and
    ``control``: ``joint_exponent``, ``joint_low``, ``joint_high``) with :func:`difference_interval`, read against
    ``tolerance``, and ``paired``'s interval beside it; ``note`` says over which widths, when the analysis chose
    them, and why there is no paired interval, when there is none."""
    row = dict.fromkeys(RELATIVE_COLUMNS, math.nan) | {"config": name, "anchor": anchor, "verdict": "unclear",
                                                       "direction": "", "note": note}  # fmt: skip
    fits = [(x["joint_exponent"], x["joint_low"], x["joint_high"]) for x in (fit, control)]
    missing = [n for n, f in zip((name, anchor), fits, strict=True) if not all(map(math.isfinite, f))]
    if missing:
        why = f"no joint fit with an interval for {' and '.join(missing)}"
        return row | {"note": "; ".join(filter(None, [note, why]))}
    delta, low, high = difference_interval(*fits)
    verdict, direction = drift_verdict(classify_interval(delta, low, high, tolerance), "η*")
    row |= {"exponent": delta, "ci_low": low, "ci_high": high, "verdict": verdict,
            "direction": f"{direction} relative to {anchor}'s" if direction else ""}  # fmt: skip
    if paired is not None and math.isfinite(paired.ci_low):
        return row | {"paired_low": paired.ci_low, "paired_high": paired.ci_high,
                      "paired_lack_of_fit": paired.lack_of_fit, "curves": paired.dof + 1}  # fmt: skip
    if paired is not None:
        return row | {"note": "; ".join(filter(None, [note, f"no paired interval: {paired.note}"]))}
    return row


Refit = Callable[
    [Configuration, Configuration, Mapping, Mapping], tuple[Mapping, Mapping, str, PairedDifference | None]
]
"""``(configuration, control, its drift row, the control's drift row) → (its fit, the control's fit, note, paired
difference or None)``: the two joint fits to difference, when the caller has better ones than the drift table's
(over the widths both placed), and their paired interval (:func:`~mhc_mup.stats.optimum.paired_difference`)."""


def relative_drift(
    cfg: TransferConfig,
    drift: pd.DataFrame,
    refit: Refit | None = None,
    pairs: list[tuple[Configuration, Configuration]] | None = None,
) -> pd.DataFrame:
    """:func:`relative_row` of each pair (default :func:`control_pairs`; :func:`rule_pairs` compares two mHC
    rules): from the drift table's joint fits (in quadrature), or from ``refit``'s
    (:func:`~mhc_mup.training.transfer.analysis.analyse` refits the two over the widths both placed when those
    differ, and pairs them)."""
    rows, table = _by_config(drift), []
    for c, a in control_pairs(cfg) if pairs is None else pairs:
        if c.name in rows and a.name in rows:
            pair = refit(c, a, rows[c.name], rows[a.name]) if refit else (rows[c.name], rows[a.name], "", None)
            fit, control, note, paired = pair
            table.append(relative_row(c.name, a.name, fit, control, cfg.analysis.tolerance, note, paired))
    return pd.DataFrame(table, columns=list(RELATIVE_COLUMNS))


def anchor_sentence(row: Mapping, tolerance: float, relative: bool = False) -> str:
    """One sentence per anchor row: what theory expects, what the fit says, and what that means for the rest
    (``relative``: a table of the drift against the control follows, which a failed anchor points to)."""
    name, body = row["config"], "µP" if row["body"] == "mup" else "SP"
    fitted = math.isfinite(row["exponent"]) and math.isfinite(row["ci_low"])
    if fitted:
        fit = f"joint β {row['exponent']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
    else:
        fit = "no joint fit with an interval"
    said = ("reads " if row["verdict"] == "unclear" else "") + row["verdict"]
    said += f" ({row['direction']})" if row["direction"] else ""
    head = f"{name} (plain residual, {body} body) should {_infinitive(row['expected'])}; it {said}, {fit}"
    if row["status"] == "holds":
        return f"{head}: the anchor holds."
    if row["status"] == "fails":
        text = (f"{head}: the anchor fails. At these settings the method moves the optimum by itself (the steps, "
                "the schedule, the data or the estimator), so no verdict below is a property of mHC alone")
        if relative:
            text += "; the drift against the control (below) cancels what the two share, if it adds to both alike"
        return text + "."
    if not fitted:
        return f"{head}: the anchor is not told yet."
    return f"{head}: the anchor is not told yet (its interval is neither inside ±{tolerance:g} nor clear of 0)."


def _infinitive(expected: str) -> str:
    """``transfers`` → ``transfer``; ``drifts (η* shrinks with width)`` → ``drift (η* shrinks with width)``."""
    verb, _, rest = expected.partition(" ")
    return verb.removesuffix("s") + (f" {rest}" if rest else "")


def _by_config(drift: pd.DataFrame) -> dict[str, dict]:
    """The drift table's rows by configuration name."""
    return {r["config"]: r for r in drift.to_dict("records")}
