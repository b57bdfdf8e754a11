"""The joint drift fit of a transfer sweep: every width and seed of a configuration in one fit
(:func:`~mhc_mup.stats.optimum.fit_joint_optimum`), ``L = c_g + a(d)·(x − x₀ − β·log2 d)²·(1 + κ·(x − x*))``.

Per width, from the final validation losses ``(S seeds, J values)`` over that width's own values (those planned
there and any run there, :func:`width_values`; widths and configurations of one folder may have different ones,
unevenly spaced: every step below works on the width's own ``x``):

* **flat**: the seed-mean loss varies over the finished grid points no more than the seeds' noise explains (an
  F-test at the analysis' confidence; ``σ``: one run's noise from the seeds' disagreement in the fit windows,
  pooled over the configuration's widths): the swept value does not matter at that width; no optimum there.
* **window**: the argmin of the seed-mean loss and up to ``joint_halfwidth`` grid points on each side, up to the
  first diverged point; an argmin at the grid's edge or next to a diverged run gives no window (the optimum
  may lie beyond it).

The widths with a window enter the fit; a note says when its residuals exceed the seeds' noise (the curve
misfits the window: narrow it); ``β``'s interval is the union of the fit's t-interval and a bootstrap
over seeds (:func:`~mhc_mup.stats.optimum.seed_bootstrap`), read like today's: transfers when it lies in
``±tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mhc_mup.reporting.numbers import fmt_widths
from mhc_mup.stats.optimum import JointOptimumFit, fit_joint_optimum, seed_bootstrap
from mhc_mup.stats.readings import classify_interval, drift_verdict
from mhc_mup.training.transfer.config import TransferConfig, distinct_values, log2_key

__all__ = [
    "WidthCurves", "fit_window", "flatness", "joint_drift", "joint_windows", "seed_noise", "values_every_seed_ran",
    "width_curves", "width_values", "window_runs",
]  # fmt: skip


@dataclass(frozen=True)
class WidthCurves:
    """One configuration's final losses at one width: ``loss`` ``(S, J)`` (NaN: diverged) of ``seeds`` at that
    width's own values ``x`` ``(J,)`` (log2 of the swept value, increasing; not necessarily evenly spaced, nor
    the same at every width)."""

    width: int
    x: np.ndarray
    loss: np.ndarray
    seeds: tuple[int, ...]

    def mean(self) -> np.ndarray:
        """``(J,)`` the mean over seeds; NaN where a seed diverged."""
        return self.loss.mean(axis=0)


def width_values(runs: pd.DataFrame, planned: Iterable[float] = ()) -> tuple[float, ...]:
    """One configuration × width's own values ``(J,)``, increasing: those ``planned`` there (by the grids swept
    into its folder, :func:`~mhc_mup.training.transfer.config.grid_values`) and every value any of its seeds ran
    (``runs``: its rows of ``transfer.csv``), one per :func:`~.config.log2_key` (a planned value's float first)."""
    return distinct_values(planned, runs.value)


def values_every_seed_ran(runs: pd.DataFrame, values: tuple[float, ...]) -> tuple[float, ...]:
    """Those of a configuration × width's ``values`` (increasing) that every seed with a run there (``runs``: its
    rows of ``transfer.csv``) has run: the values a partly run width can be read over (all of them where it has no
    runs yet)."""
    ran = [set(map(log2_key, runs.value[runs.seed == s])) for s in runs.seed.unique()]
    return tuple(v for v in values if all(log2_key(v) in r for r in ran))


def width_curves(
    cfg: TransferConfig, runs: pd.DataFrame, values: tuple[float, ...] | None = None
) -> WidthCurves | None:
    """The curves of one configuration at one width (``runs``, rows of ``transfer.csv``) over ``values``
    (increasing; default: the values run there by any seed, :func:`width_values`), or ``None`` until every seed
    present there has run every one of them: a partly run width is not fitted."""
    values = values or width_values(runs)
    keys = [log2_key(v) for v in values]
    seeds = tuple(s for s in range(cfg.grid.seeds) if (runs.seed == s).any())
    if not seeds or len(runs) == 0:
        return None
    loss = np.full((len(seeds), len(keys)), math.nan)
    for i, s in enumerate(seeds):
        sel = runs[runs.seed == s]
        rows = zip(sel.value, sel[cfg.analysis.loss_column], sel.diverged, strict=True)
        by_key = {log2_key(v): (float(y), bool(dv)) for v, y, dv in rows}
        if any(k not in by_key for k in keys):
            return None
        loss[i] = [math.nan if by_key[k][1] else by_key[k][0] for k in keys]
    return WidthCurves(int(runs.width.iloc[0]), np.log2(np.asarray(values, dtype=np.float64)), loss, seeds)


def seed_noise(curves: list[WidthCurves], halfwidth: int | None = None) -> tuple[float, int]:
    """``(σ, dof)``: one run's loss noise from the seeds' disagreement. Per width, the residual of the two-way
    fit ``loss[s, j] ≈ μ + seed_s + point_j`` over the seed-mean argmin and up to ``halfwidth`` points on each
    side (:func:`fit_window`'s columns, also where the joint fit has no window there: an argmin at the grid's
    edge or next to a diverged run; every point with ``halfwidth=None``; points where a seed diverged left
    out); ``σ² = Σ r² / Σ (S−1)(J−1)`` pooled over widths. ``(nan, 0)`` with one seed. The window keeps the
    seeds' large disagreements on the way to divergence out of the noise near the optimum."""
    ss, dof = 0.0, 0
    for c in curves:
        cols = _around_argmin(c, halfwidth) if halfwidth is not None else None
        y = c.loss[:, cols] if cols is not None else c.loss
        y = y[:, np.isfinite(y).all(axis=0)]
        n_s, n_j = y.shape
        if n_s < 2 or n_j < 2:
            continue
        r = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
        ss, dof = ss + float((r * r).sum()), dof + (n_s - 1) * (n_j - 1)
    return (math.sqrt(ss / dof), dof) if dof else (math.nan, 0)


def flatness(c: WidthCurves, sigma: float, dof: int, confidence: float) -> tuple[bool, float, float]:
    """``(flat, F, p)``: does the loss depend on the swept value at this width? The spread of the seed-mean
    loss over the finished points against the seeds' noise, ``F = S·Σ_j (m_j − m̄)²/(J − 1) / σ²`` on
    ``(J − 1, dof)`` degrees of freedom; flat when its ``p`` exceeds ``1 − confidence`` (never with an unknown
    ``σ``)."""
    from scipy.special import fdtrc

    m = c.mean()
    m = m[np.isfinite(m)]
    if not (math.isfinite(sigma) and sigma > 0 and dof > 0 and len(m) >= 2):
        return False, math.nan, math.nan
    f = len(c.seeds) * float(((m - m.mean()) ** 2).sum()) / (len(m) - 1) / sigma**2
    p = float(fdtrc(len(m) - 1, dof, f))
    return p > 1 - confidence, f, p


def fit_window(c: WidthCurves, halfwidth: int) -> tuple[np.ndarray | None, str]:
    """The grid columns the joint fit uses at this width: the seed-mean argmin and up to ``halfwidth`` points
    on each side, stopping before a diverged one; ``(None, why)`` when the argmin is at the grid's edge or
    next to a diverged run."""
    m = c.mean()
    ok = np.isfinite(m)
    if not ok.any():
        return None, "every point has a diverged run"
    i = int(np.nanargmin(np.where(ok, m, np.inf)))
    where = f"minimum at 2^{c.x[i]:.2f}"
    if i == 0 or i == len(m) - 1:
        return None, f"{where}, the grid's edge"
    if not (ok[i - 1] and ok[i + 1]):
        return None, f"{where}, next to a diverged run"
    return _around_argmin(c, halfwidth), ""


def _around_argmin(c: WidthCurves, halfwidth: int) -> np.ndarray | None:
    """The columns of the seed-mean argmin and up to ``halfwidth`` points on each side, stopping before a diverged
    one or the grid's end (one-sided at an edge); ``None`` where every point has a diverged run."""
    m = c.mean()
    ok = np.isfinite(m)
    if not ok.any():
        return None
    i = int(np.argmin(np.where(ok, m, np.inf)))
    lo, hi = i, i
    while lo > max(0, i - halfwidth) and ok[lo - 1]:
        lo -= 1
    while hi < min(len(m) - 1, i + halfwidth) and ok[hi + 1]:
        hi += 1
    return np.arange(lo, hi + 1)


def joint_drift(
    cfg: TransferConfig, curves: list[WidthCurves], symbol: str = "η*"
) -> tuple[dict, dict[int, tuple[bool, float]], JointOptimumFit | None]:
    """The joint columns of one configuration's drift row (:data:`~.analysis.JOINT_COLUMNS`), per width ``(flat,
    x*)`` (``x*`` NaN where the width is not fitted), and the fit itself (``None`` with fewer than 2 widths), whose
    per-curve scores a paired comparison reads: its curves are labelled by width and seed, so two
    configurations' fits name the same curve alike."""
    fitted, flat, notes = joint_windows(cfg, curves)
    sigma, dof = seed_noise(curves, cfg.analysis.joint_halfwidth)
    per_width = {c.width: (c.width in flat, math.nan) for c in curves}
    row = dict.fromkeys(_JOINT, math.nan) | {"joint_widths": len(fitted), "joint_verdict": "unclear",
                                             "joint_direction": "", "flat_widths": len(flat)}  # fmt: skip
    if len(fitted) < 2:
        return row | {"joint_note": "; ".join([*notes, "optimum at < 2 widths: no joint fit"])}, per_width, None
    lw, x, seed, loss = window_runs(fitted)
    fit = fit_joint_optimum(lw, x, lw * 1e6 + seed, loss, confidence=cfg.analysis.fit.confidence)
    notes += [fit.note] if fit.note else []
    if not math.isfinite(fit.beta):
        return row | {"joint_note": "; ".join(notes)}, per_width, fit
    per_width |= {c.width: (False, fit.optimum(c.width)) for c, _ in fitted}
    notes += _misfit(fit, sigma, dof)
    boot = seed_bootstrap(lw, x, seed, loss, n_boot=cfg.analysis.fit.n_boot, confidence=fit.confidence)
    columns = _fit_columns(fit, boot, cfg.analysis.tolerance, symbol, notes + _outside(fitted, fit))
    return row | columns, per_width, fit


def joint_windows(
    cfg: TransferConfig, curves: list[WidthCurves]
) -> tuple[list[tuple[WidthCurves, np.ndarray]], list[int], list[str]]:
    """``(fitted, flat, notes)``: what :func:`joint_drift` fits, the widths of ``curves`` with a fit window (each
    ``(curves, its columns)``), the flat widths, and notes naming the flat and the left-out widths."""
    sigma, dof = seed_noise(curves, cfg.analysis.joint_halfwidth)
    fitted, flat, flat_notes, skipped = [], [], [], []
    for c in curves:
        is_flat, f, p = flatness(c, sigma, dof, cfg.analysis.fit.confidence)
        cols, why = fit_window(c, cfg.analysis.joint_halfwidth)
        if is_flat:
            flat.append(c.width)
            flat_notes.append(f"d = {c.width} (F = {f:.2f}, p = {p:.2f})")
        elif cols is None:
            skipped.append(f"d = {c.width} ({why})")
        else:
            fitted.append((c, cols))
    notes = [f"loss flat within the seeds' noise at {', '.join(flat_notes)}: no optimum there"] if flat else []
    return fitted, flat, notes + ([f"left out: {', '.join(skipped)}"] if skipped else [])


def _fit_columns(
    fit: JointOptimumFit, boot: tuple[float, float], tolerance: float, symbol: str, notes: list[str]
) -> dict:
    """The joint columns of a fit: the interval is the union of the fit's t-interval and the seed bootstrap's."""
    low, high = float(np.nanmin([fit.ci_low, boot[0]])), float(np.nanmax([fit.ci_high, boot[1]]))
    reading = classify_interval(fit.beta, low, high, tolerance)
    verdict, direction = drift_verdict(reading, symbol)
    return {
        "joint_exponent": fit.beta, "joint_low": low, "joint_high": high, "joint_se": fit.se_beta,
        "joint_fit_low": fit.ci_low, "joint_fit_high": fit.ci_high, "joint_boot_low": boot[0],
        "joint_boot_high": boot[1], "joint_sigma": fit.sigma,
        "joint_verdict": verdict,
        "joint_direction": direction, "joint_note": "; ".join(notes),
    }  # fmt: skip


_JOINT = (
    "joint_exponent", "joint_low", "joint_high", "joint_se", "joint_fit_low", "joint_fit_high", "joint_boot_low",
    "joint_boot_high", "joint_sigma", "joint_note",
)  # fmt: skip


def _misfit(fit: JointOptimumFit, sigma: float, dof: int) -> list[str]:
    """A note when the fit's residuals exceed the seeds' noise (``F = σ_fit²/σ_seeds²`` beyond its 99th
    percentile): the curve does not follow the losses over its window."""
    from scipy.special import fdtrc

    if not (math.isfinite(sigma) and sigma > 0 and dof > 0 and fit.dof > 0):
        return []
    p = float(fdtrc(fit.dof, dof, (fit.sigma / sigma) ** 2))
    if p >= 0.01:
        return []
    return [f"the curve misfits its window (residual σ {fit.sigma:.4f} against the seeds' {sigma:.4f}, "
            f"p = {p:.1g}): narrow it (--joint-halfwidth)"]  # fmt: skip


def window_runs(fitted: list[tuple[WidthCurves, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """``(log2 d, x, seed, loss)``, each ``(n,)``: every run in the windows of :func:`joint_windows`' ``fitted``."""
    parts = []
    for c, cols in fitted:
        for i, s in enumerate(c.seeds):
            n = len(cols)
            parts.append((np.full(n, math.log2(c.width)), c.x[cols], np.full(n, float(s)), c.loss[i, cols]))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


def _outside(fitted: list[tuple[WidthCurves, np.ndarray]], fit: JointOptimumFit) -> list[str]:
    """A note for each width whose fitted optimum lies outside the points fitted there (an extrapolation)."""
    out = [c.width for c, cols in fitted if not c.x[cols[0]] <= fit.optimum(c.width) <= c.x[cols[-1]]]
    return [f"fitted optimum outside the fitted points at {fmt_widths(out)}"] if out else []
