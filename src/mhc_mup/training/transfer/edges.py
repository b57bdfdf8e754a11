"""Where the loss is flat, the edges of the flat region and how they move with width.

A multiplier sweep (the mHC generator's LR or init) can leave the loss flat over octaves, so that its optimum is
noise; the informative quantities are then the edges of the region where the swept value does not matter. Per
configuration and width, from the seed-mean final loss ``m_j`` over that width's own values ``x_j = log2`` of the
swept value (:func:`~mhc_mup.training.transfer.joint.width_values`; they may differ between widths and be unevenly
spaced: contiguity, the ends and the edges' neighbours are all within the width's own values):

* the **best** point ``j* = argmin m``;
* the **band**: the contiguous points around ``j*`` whose ``m_j − m_{j*}`` stays within the seeds' noise of a
  difference of two seed means, ``τ = t_{dof}·σ·√(2/S)`` (``σ`` on ``dof`` degrees of freedom: one run's noise,
  :func:`~mhc_mup.training.transfer.joint.seed_noise` pooled over the configuration's widths; ``S`` seeds; ``t``
  at the analysis's confidence);
* its **high edge** and **low edge**: the largest and the smallest ``x`` in the band. An edge *open* at the
  grid's end says only that the band reaches beyond the grid;
* the **degraded** value: where the seed-mean loss, going up from the best, first reaches ``m_{j*} + δ``
  (``δ``: the analysis's ``degrade_nats``, 0.1 nats/byte by default, far above the seeds' noise), interpolated
  linearly in ``x`` between the two values around the crossing; none where the curve never rises that far on the
  grid (*open*) or a seed diverges first;
* the **first diverged** value: the smallest ``x`` above the best where a seed diverged.

Each edge's drift with width is fitted as the optimum's is, ``2^edge ≈ c·d^β``
(:func:`~mhc_mup.stats.fitting.fit_power_law`: a bootstrap over each width's seeds, whole curves resampled, joined
with the regression t-interval) over the widths where it is closed; widths where it is open or absent are left
out and named. Edges lie on grid points, so the interval is widened by :func:`quantization`: the largest, over the
fitted widths, of the spacing between each width's edge and its neighbour beyond it (:func:`edge_spacing`), over
the widths' span in octaves (a half-octave grid over 16× in width: ±0.125, wider than a ±0.1 tolerance: an edge's
drift can read "drifts", not "transfers"). On an evenly spaced grid that is the grid's spacing; where values were
added next to the edges, their finer spacing. The degraded edge is interpolated, not a grid point, and is not
widened: its interval is the seeds' alone (a curve bending between grid values biases each width's crossing alike
where the curves' shapes agree, which leaves the slope; where they differ, the finer grid is the check). Over two
widths, where a regression has no residual, its bootstrap is united with the Welch t-interval of the seeds' own
crossings, as the optimum's drift is (its half-width around the exponent read off the seed means); the band edges,
defined by the seed means alone, keep the bootstrap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from mhc_mup.reporting.numbers import fmt_widths
from mhc_mup.stats.fitting import ONE_SEED_NOTE, PowerLawFit, fit_power_law, t_quantile, two_width_interval
from mhc_mup.stats.readings import classify_interval, drift_verdict
from mhc_mup.training.transfer.config import TransferConfig
from mhc_mup.training.transfer.joint import WidthCurves, seed_noise

__all__ = [
    "EDGES", "EDGE_COLUMNS", "EDGE_DRIFT_COLUMNS", "band_edges", "degraded_edge", "edge_drift", "edge_spacing",
    "edges_table", "quantization",
]  # fmt: skip

EDGES = ("high_edge", "low_edge", "degraded", "first_diverged")
EDGE_COLUMNS = (
    "config", "width", "n_seeds", "best_log2", "band_nats", "low_edge_log2", "low_open", "high_edge_log2",
    "high_open", "degraded_log2", "first_diverged_log2",
)  # fmt: skip
EDGE_DRIFT_COLUMNS = ("config", "edge", "exponent", "ci_low", "ci_high", "n_widths", "verdict", "direction", "note")


def band_edges(means: np.ndarray, band: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid indices ``(best, low, high, first_diverged)`` of seed-mean curves ``means`` ``(..., J)`` (NaN: a seed
    diverged there): the argmin, the ends of the contiguous run around it within ``band`` of its loss (the best
    alone for a NaN band), and the first NaN above it. ``-1`` marks none (a curve with no finite point; no
    divergence above the best). A ``low`` of 0 or a ``high`` of ``J − 1`` is open."""
    m = np.asarray(means, dtype=np.float64)
    n = m.shape[-1]
    finite = np.isfinite(m)
    best = np.argmin(np.where(finite, m, np.inf), axis=-1)
    low_point = np.take_along_axis(m, best[..., None], axis=-1)
    j = np.arange(n)
    inside = finite & ((m - low_point <= band) | (j == best[..., None]))
    above, below = j > best[..., None], j < best[..., None]
    # the band ends before the first point outside it on each side of the best
    first_out_above = np.where(above & ~inside, j, n).min(axis=-1)
    last_out_below = np.where(below & ~inside, j, -1).max(axis=-1)
    diverged = np.where(above & ~finite, j, n).min(axis=-1)
    none = ~finite.any(axis=-1)
    high = np.where(none, -1, first_out_above - 1)
    low = np.where(none, -1, last_out_below + 1)
    return np.where(none, -1, best), low, high, np.where(none | (diverged == n), -1, diverged)


def degraded_edge(x: np.ndarray, means: np.ndarray, delta: float) -> np.ndarray:
    """Where seed-mean curves ``means`` ``(..., J)`` over values ``x`` ``(J,)`` first reach ``δ`` above their best,
    going up from it: ``x_{k−1} + (m_min + δ − m_{k−1}) / (m_k − m_{k−1}) · (x_k − x_{k−1})`` at the first ``k``
    above the argmin with ``m_k ≥ m_min + δ`` ``(...,)``; NaN where none does before the grid ends or a NaN (a
    diverged seed) comes first."""
    m = np.asarray(means, dtype=np.float64)
    n = m.shape[-1]
    finite = np.isfinite(m)
    best = np.argmin(np.where(finite, m, np.inf), axis=-1)[..., None]
    level = np.take_along_axis(m, best, axis=-1) + delta
    j = np.arange(n)
    # the first point above the best that reaches the level or has no loss: the crossing lies just before it
    stop = np.where((j > best) & (~finite | (m >= level)), j, n).min(axis=-1, keepdims=True)
    k = np.clip(stop, 1, n - 1)
    m1, m0 = np.take_along_axis(m, k, axis=-1), np.take_along_axis(m, k - 1, axis=-1)
    ok = (stop < n) & np.isfinite(m1) & finite.any(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        at = x[k - 1] + (level - m0) / (m1 - m0) * (x[k] - x[k - 1])
    return np.where(ok, at, math.nan)[..., 0]


def edges_table(cfg: TransferConfig, name: str, curves: list[WidthCurves]) -> pd.DataFrame:
    """:data:`EDGE_COLUMNS` for one configuration's complete width curves."""
    band_of = _band(cfg, curves)
    rows = []
    for c in curves:
        band = band_of(len(c.seeds))
        best, low, high, div = (int(v) for v in band_edges(c.mean(), band))
        if not math.isfinite(band):  # one seed: no noise to measure a band by
            low = high = -1
        x = c.x
        rows.append({
            "config": name, "width": c.width, "n_seeds": len(c.seeds), "band_nats": band,
            "best_log2": x[best] if best >= 0 else math.nan,
            "low_edge_log2": x[low] if low >= 0 else math.nan, "low_open": low == 0,
            "high_edge_log2": x[high] if high >= 0 else math.nan, "high_open": high == len(x) - 1,
            "degraded_log2": float(degraded_edge(x, c.mean(), cfg.analysis.degrade_nats)),
            "first_diverged_log2": x[div] if div >= 0 else math.nan,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(EDGE_COLUMNS))


def edge_drift(cfg: TransferConfig, name: str, curves: list[WidthCurves], table: pd.DataFrame) -> pd.DataFrame:
    """:data:`EDGE_DRIFT_COLUMNS`: each edge's drift with width over the widths where it is closed (``table``:
    :func:`edges_table` of the same curves)."""
    band_of = _band(cfg, curves)
    rows = []
    for which in EDGES:
        closed = _closed(table, which)
        row = {"config": name, "edge": which, "n_widths": len(closed), "verdict": "unclear", "direction": ""}
        left_out = sorted(set(table.width) - closed)
        note = f"open or absent at {fmt_widths(left_out)}" if left_out else ""
        if len(closed) < 2:
            rows.append(row | dict.fromkeys(("exponent", "ci_low", "ci_high"), math.nan)
                        | {"note": "; ".join(filter(None, [note, "closed at < 2 widths: no drift fit"]))})  # fmt: skip
            continue
        fitted = [c for c in curves if c.width in closed]
        fit = _fit_edge(cfg, fitted, which, band_of)
        low, high, fit_note = fit.ci_low, fit.ci_high, fit.note
        if which == "degraded":  # interpolated between grid values: no grid rounding to widen for
            grid, how = 0.0, f"interpolated where the loss reaches +{cfg.analysis.degrade_nats:g} over the best"
            if len(fitted) == 2:
                low, high, fit_note = _two_width_degraded(cfg, fitted, fit)
        else:
            at = dict(zip(table.width, table[f"{which}_log2"], strict=True))
            grid = quantization([edge_spacing(c, at[c.width], which) for c in fitted], [c.width for c in fitted])
            how = f"interval widened by ±{grid:.3f} for the grid's spacing"
        low, high = low - grid, high + grid
        verdict, direction = drift_verdict(classify_interval(fit.exponent, low, high, cfg.analysis.tolerance))
        rows.append(row | {
            "exponent": _clean(fit.exponent), "ci_low": _clean(low), "ci_high": _clean(high),
            "verdict": verdict, "direction": direction, "note": "; ".join(filter(None, [note, fit_note, how])),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(EDGE_DRIFT_COLUMNS))


def _two_width_degraded(cfg: TransferConfig, curves: list[WidthCurves], fit: PowerLawFit) -> tuple[float, float, str]:
    """The degraded edge's interval over two widths: the bootstrap's united with the Welch t-interval of the
    seeds' own crossings (:func:`~mhc_mup.stats.fitting.two_width_interval`), its half-width placed around the
    fitted exponent (which is read off the seed-mean curves, not the seeds' mean crossing). One seed at a width:
    no interval (as the optimum's drift); a seed whose own curve never reaches the level: the bootstrap's alone,
    since leaving out the seeds that cross highest would narrow it (both said in the note)."""
    if min(len(c.seeds) for c in curves) < 2:
        return math.nan, math.nan, ONE_SEED_NOTE
    per_seed = [degraded_edge(c.x, c.loss, cfg.analysis.degrade_nats) for c in curves]
    never = sum(int((~np.isfinite(v)).sum()) for v in per_seed)
    if never:
        return fit.ci_low, fit.ci_high, f"{fit.note} ({never} seed curve(s) never reach the level alone)"
    dx = math.log2(curves[1].width / curves[0].width)
    first, second = per_seed
    return two_width_interval(fit, first, second, dx, cfg.analysis.fit.confidence, centred=True)


def _clean(v: float) -> float:
    """``v`` without the regression's round-off: equal edges at every width give exactly 0, not ±1e-15."""
    return round(v, 12) + 0.0


def edge_spacing(c: WidthCurves, edge: float, which: str) -> float:
    """How well width ``c``'s values place its closed edge ``which`` at ``x = edge`` (one of ``c.x``): the spacing
    to the neighbouring value beyond it, where the true crossing lies — the next value up from a high edge, the
    next down from a low edge or the first diverged value (the last one that did not diverge)."""
    j = int(np.argmin(np.abs(c.x - edge)))
    return float(c.x[j + 1] - c.x[j]) if which == "high_edge" else float(c.x[j] - c.x[j - 1])


def quantization(spacings: Iterable[float], widths: Sequence[int]) -> float:
    """How far grid rounding alone can tilt an edge's drift exponent: at each width the edge is known to the
    spacing ``Δ_d`` of that width's values next to it (:func:`edge_spacing`: the true crossing lies between it and
    its neighbour), so over widths spanning ``log2(d_max/d_min)`` octaves the exponent is uncertain by
    ``max_d Δ_d / log2(d_max/d_min)`` whatever the seeds say (``spacings``: ``Δ_d`` per fitted width; the
    largest, so that the coarsest-placed edge bounds it)."""
    return max(spacings) / math.log2(max(widths) / min(widths))


def _band(cfg: TransferConfig, curves: list[WidthCurves]) -> Callable[[int], float]:
    """``S ↦ τ``: the band for ``S`` seeds from the configuration's pooled seed noise (NaN without one)."""
    sigma, dof = seed_noise(curves, cfg.analysis.joint_halfwidth)
    if not (dof > 0 and math.isfinite(sigma)):
        return lambda seeds: math.nan
    t = t_quantile(dof, cfg.analysis.fit.confidence)
    return lambda seeds: t * sigma * math.sqrt(2 / seeds)


def _closed(table: pd.DataFrame, which: str) -> set[int]:
    """The widths where edge ``which`` exists and is not open at the grid's end."""
    value = table[f"{which}_log2"].notna()
    if which == "high_edge":
        value &= ~table.high_open.astype(bool)
    elif which == "low_edge":
        value &= ~table.low_open.astype(bool)
    return set(table.width[value])


def _fit_edge(
    cfg: TransferConfig, curves: list[WidthCurves], which: str, band_of: Callable[[int], float]
) -> PowerLawFit:
    """``2^edge ≈ c·d^β`` with :func:`fit_power_law`. Its samples are row numbers into the widths' stacked seed
    curves, so that its bootstrap over each width's samples resamples whole seed curves; a resample whose edge is
    open or absent gives NaN, which the fit drops and counts in its note. Each width's rows index its own curves
    and values (``fit_power_law`` passes one width's samples at a time)."""
    starts = np.cumsum([0] + [len(c.seeds) for c in curves])
    pick = {"low_edge": 1, "high_edge": 2, "first_diverged": 3}.get(which)  # band_edges' output; none: degraded

    def value(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows).astype(int)
        k = int(np.searchsorted(starts, rows.flat[0], side="right")) - 1  # the width these rows are of
        x, loss = curves[k].x, curves[k].loss
        means = loss[rows - starts[k]].mean(axis=-2)
        if which == "degraded":
            return 2.0 ** degraded_edge(x, means, cfg.analysis.degrade_nats)
        assert pick is not None, f"unknown edge {which!r}"
        index = band_edges(means, band_of(rows.shape[-1]))[pick]
        open_end = {"low_edge": 0, "high_edge": len(x) - 1}.get(which, -2)
        ok = (index >= 0) & (index != open_end)
        return np.where(ok, 2.0 ** x[np.clip(index, 0, None)], math.nan)

    samples = [np.arange(a, b, dtype=np.float64) for a, b in itertools.pairwise(starts)]
    return fit_power_law([c.width for c in curves], samples, value, n_boot=cfg.analysis.fit.n_boot,
                         confidence=cfg.analysis.fit.confidence, seed=0)  # fmt: skip
