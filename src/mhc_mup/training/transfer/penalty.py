"""What transferring costs: the loss a width gives up when it runs at the base width's optimum instead of its own.

µP's promise is practical: tune at the base width, train wide at the same value. The drift exponent says whether
the optimum moves; this says what the move costs, in the loss's own units. Per configuration and width ``d``
other than the base width, with ``x_b`` the base width's optimum and ``x_d`` the width's own (log2; each the mean
over seeds of the per-seed optima, the optima table's ``log2_lr_opt``), for each seed ``s``:

    penalty_s = L_s(x_b) − L_s(x_d),

both losses read off the seed's final losses over ``d``'s own values by one parabola through three of them where
both points lie within their span, else by one each (:func:`quadratic_reading`), so that ``x_b = x_d`` costs
exactly 0. The table gives the mean over seeds and a t-interval over them (``S − 1`` degrees of freedom), given
the two optima: their own error (the optima table's intervals) is not carried into it. A point
outside ``d``'s values (the base optimum beyond that width's grid, as for SP at large width: the note then gives
the cost at the grid's nearer end, a lower bound where the loss keeps rising) or next to a diverged run has no
penalty, and the note says why.

A sweep of a multiplier asks a second question of the same curves: what does the width rule's own value (the
multiplier 1, ``x = 0``) give up against the width's own optimum, ``L_s(0) − L_s(x_d)``, read the same way at every
width (:func:`rule_penalty_table`)? Near 0 the rule's constant is right where it is measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from mhc_mup.stats.fitting import mean_t_interval
from mhc_mup.training.transfer.joint import WidthCurves

__all__ = ["PENALTY_COLUMNS", "RULE_PENALTY_COLUMNS", "penalty_table", "quadratic_reading", "rule_penalty_table"]

PENALTY_COLUMNS = (
    "config", "width", "base_width", "base_log2", "own_log2", "penalty", "ci_low", "ci_high", "n_seeds",
    "at_grid_end", "note",
)  # fmt: skip
"""``at_grid_end``: where the base optimum lies beyond the width's values, the mean penalty at their nearer end (a
lower bound where the loss keeps rising beyond it); NaN elsewhere."""
RULE_PENALTY_COLUMNS = ("config", "width", "own_log2", "penalty", "ci_low", "ci_high", "n_seeds", "note")
"""A multiplier sweep's rule as it stands: per width, the loss at the multiplier 1 less that at ``own_log2``."""


def quadratic_reading(x: np.ndarray, y: np.ndarray, points: tuple[float, ...]) -> tuple[float, ...]:
    """``y`` ``(J,)`` over increasing ``x`` ``(J,)`` read at each of ``points``: from one parabola, through the
    three consecutive values centred on the points' midpoint, where they all lie within its span (so that two
    close points are compared on one curve: equal points read equal); else each through the three centred on
    itself. Exact on a parabola; NaN for a point outside ``x``, with fewer than 3 values, or where a value read
    through is NaN."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return tuple(math.nan for _ in points)
    shared = _centred(x, (min(points) + max(points)) / 2)
    if x[shared[0]] <= min(points) and max(points) <= x[shared[-1]]:
        return tuple(_through(x[shared], y[shared], p) for p in points)
    return tuple(_through(x[w], y[w], p) if x[0] <= p <= x[-1] else math.nan for p in points
                 for w in [_centred(x, p)])  # fmt: skip


def _centred(x: np.ndarray, at: float) -> np.ndarray:
    """The indices of the three consecutive values of ``x`` centred on the one nearest ``at`` (at an end: the
    first or last three)."""
    c = int(np.clip(np.argmin(np.abs(x - at)), 1, len(x) - 2))
    return np.arange(c - 1, c + 2)


def _through(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """The parabola through the three points ``(xs, ys)`` at ``at`` (Lagrange); NaN where a ``ys`` is."""
    if not np.isfinite(ys).all():
        return math.nan
    return float(sum(ys[i] * np.prod([(at - xs[j]) / (xs[i] - xs[j]) for j in range(3) if j != i]) for i in range(3)))


def penalty_table(
    name: str, curves: list[WidthCurves], optima: Mapping[int, float], base_width: int, confidence: float
) -> pd.DataFrame:
    """:data:`PENALTY_COLUMNS` rows of configuration ``name``: one per width of ``curves`` but ``base_width``,
    with ``optima`` each width's optimum (log2; NaN: none) and a t-interval at ``confidence``."""
    base = optima.get(base_width, math.nan)
    rows = []
    for c in curves:
        if c.width == base_width:
            continue
        own = optima.get(c.width, math.nan)
        note = _no_penalty(c, base, own, base_width)
        row = dict.fromkeys(PENALTY_COLUMNS, math.nan) | {"config": name, "width": c.width, "base_width": base_width,
                                                          "base_log2": base, "own_log2": own, "n_seeds": 0,
                                                          "note": note}  # fmt: skip
        if note:
            bound = _bound(c, base, own)
            if math.isfinite(bound):
                row |= {"at_grid_end": bound, "note": note + f"; at that end {bound:+.4f}, a lower bound "
                                                             "where the loss keeps rising beyond it"}  # fmt: skip
            rows.append(row)
            continue
        rows.append(row | _seed_mean(c, base, own, confidence))
    return pd.DataFrame(rows, columns=list(PENALTY_COLUMNS))


def rule_penalty_table(
    name: str, curves: list[WidthCurves], optima: Mapping[int, float], confidence: float
) -> pd.DataFrame:
    """:data:`RULE_PENALTY_COLUMNS` rows of configuration ``name`` in a multiplier sweep: one per width of
    ``curves``, the loss at the multiplier 1 (log2 0) less that at the width's own optimum (``optima``, log2;
    NaN: none), read as :func:`penalty_table` reads it, with a t-interval at ``confidence``."""
    rows = []
    for c in curves:
        own = optima.get(c.width, math.nan)
        note = "no optimum at this width" if not math.isfinite(own) else _outside(c, (("the rule's value", 0.0),
                                                                                     ("this width's optimum", own)))
        row = dict.fromkeys(RULE_PENALTY_COLUMNS, math.nan) | {"config": name, "width": c.width, "own_log2": own,
                                                               "n_seeds": 0, "note": note}  # fmt: skip
        rows.append(row if note else row | _seed_mean(c, 0.0, own, confidence))
    return pd.DataFrame(rows, columns=list(RULE_PENALTY_COLUMNS))


def _seed_mean(c: WidthCurves, at: float, own: float, confidence: float) -> dict:
    """``L_s(at) − L_s(own)`` over the seeds of ``c`` (:func:`quadratic_reading`): its mean (``penalty``), the
    seeds it has (``n_seeds``) and, with two or more, a t-interval at ``confidence``; a note where no seed has it."""
    per_seed = np.array([_reading_apart(c.x, loss, at, own) for loss in c.loss])
    per_seed = per_seed[np.isfinite(per_seed)]
    if not len(per_seed):
        return {"note": "every seed has a diverged run next to a point read"}
    mean = float(per_seed.mean())
    if len(per_seed) < 2:
        return {"n_seeds": 1, "penalty": mean}
    low, high = mean_t_interval(per_seed, confidence)
    return {"n_seeds": len(per_seed), "penalty": mean, "ci_low": low, "ci_high": high}


def _reading_apart(x: np.ndarray, loss: np.ndarray, at: float, own: float) -> float:
    """``L(at) − L(own)`` of one seed's curve ``loss`` over ``x``, both read by :func:`quadratic_reading`."""
    at_loss, own_loss = quadratic_reading(x, loss, (at, own))
    return at_loss - own_loss


def _bound(c: WidthCurves, base: float, own: float) -> float:
    """For a base optimum beyond the width's values: the mean penalty at their nearer end, a lower bound where the
    loss keeps rising beyond it (NaN otherwise)."""
    if not (math.isfinite(base) and math.isfinite(own) and c.x[0] <= own <= c.x[-1]) or c.x[0] <= base <= c.x[-1]:
        return math.nan
    end = float(c.x[-1] if base > c.x[-1] else c.x[0])
    at_end = np.array([_reading_apart(c.x, loss, end, own) for loss in c.loss])
    return float(np.nanmean(at_end)) if np.isfinite(at_end).any() else math.nan


def _no_penalty(c: WidthCurves, base: float, own: float, base_width: int) -> str:
    """Why width ``c`` has no penalty, or ``""``."""
    if not math.isfinite(base):
        return f"no optimum at the base width {base_width}"
    if not math.isfinite(own):
        return "no optimum at this width"
    return _outside(c, (("the base optimum", base), ("this width's optimum", own)))


def _outside(c: WidthCurves, points: tuple[tuple[str, float], ...]) -> str:
    """The first of ``points`` (``(what, log2 value)``) outside width ``c``'s values, said, or ``""``."""
    for what, x in points:
        if not c.x[0] <= x <= c.x[-1]:
            return f"{what} 2^{x:.2f} lies outside this width's values (2^{c.x[0]:g} … 2^{c.x[-1]:g})"
    return ""
