"""Power-law fits ``metric ≈ prefactor · d^exponent`` with bootstrap confidence intervals.

The point estimate is ordinary least squares of ``log(statistic)`` on ``log(d)``. Two intervals
are computed and the reported one, ``[ci_low, ci_high]``, covers both:

* a percentile **bootstrap** over samples: the samples within each width are resampled with
  replacement, the statistic (mean, median, std, max ...) recomputed per width, the line refitted.
  It measures the Monte-Carlo noise of the measurement.
* the **regression** t-interval ``slope ± t(W−2)·se`` from the residuals about the line (needs
  ≥ 3 widths). It also measures how far the points are from a power law at all: a log-log curve
  that bends over the width range (finite-width corrections) widens it.

A concentrated metric can have a bootstrap interval of ±0.003 while its local slope still drifts
from 0.95 to 1.02 across the widths; quoting the bootstrap alone would claim a precision about
"the exponent" that the data do not support.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mhc_mup.errors import ConfigError

Statistic = Callable[[np.ndarray], np.ndarray]  # reduces the last axis


@dataclass(frozen=True)
class FitSettings:
    """How every scaling fit is made: ``n_boot`` bootstrap resamples and the ``confidence`` level of the
    reported interval. Shared by the width sweep, the coordinate check and transfer."""

    n_boot: int = 1000
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < 1:
            raise ConfigError(f"n_boot must be an integer >= 1, got {self.n_boot!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must lie strictly between 0 and 1, got {self.confidence!r}")


def mean(a: np.ndarray) -> np.ndarray:
    """The mean over the last axis (the default statistic)."""
    return a.mean(axis=-1)


@dataclass(frozen=True)
class PowerLawFit:
    """``metric ≈ prefactor · d^exponent``; ``[ci_low, ci_high]`` covers the bootstrap interval
    ``[boot_low, boot_high]`` and the regression interval ``[ols_low, ols_high]``."""

    exponent: float
    ci_low: float
    ci_high: float
    prefactor: float
    r2: float
    boot_low: float
    boot_high: float
    ols_low: float
    ols_high: float
    n_widths: int
    n_boot: int
    confidence: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def contains(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high


TWO_WIDTHS_NOTE = "2 widths: no regression interval, bootstrap only"
""":func:`fit_power_law`'s note for a fit of two widths, whose interval is then the bootstrap's alone."""

ONE_SEED_NOTE = "2 widths and 1 seed at some width: no interval, no verdict"
"""A two-width fit with one sample at a width: no regression interval, and a bootstrap over one sample (or a
Welch interval) says nothing, so the fit reads unclear (:func:`two_width_interval` needs two at each)."""


def t_quantile(dof: float, confidence: float) -> float:
    """The two-sided Student-t factor ``t_{(1 + c)/2, dof}``: ``estimate ± t·se`` covers with probability ``c``."""
    # scipy.special's stdtrit is scipy.stats.t.ppf bit for bit and imports in a third of the time (the command
    # line pays every import).
    from scipy.special import stdtrit

    return float(stdtrit(dof, 0.5 + confidence / 2))


def mean_t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The t-interval of the mean of ``values`` ``(n,)``, ``x̄ ± t_{n−1} · s/√n``; needs n ≥ 2."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {len(values)}")
    mean, half = float(values.mean()), t_quantile(len(values) - 1, confidence) * float(values.std(ddof=1))
    return mean - half / math.sqrt(len(values)), mean + half / math.sqrt(len(values))


def welch_slope_interval(
    a: np.ndarray, b: np.ndarray, dx: float, confidence: float = 0.95
) -> tuple[float, float]:
    """The t-interval of the slope ``(b̄ − ā) / dx`` between two samples ``a`` ``(n_a,)`` and ``b`` ``(n_b,)``
    measured ``dx`` apart, unequal variances (Welch): ``± t_ν · √(s_a²/n_a + s_b²/n_b) / dx`` on Welch–Satterthwaite's
    ν. A two-point fit's interval where a regression has no residual to give one. Each sample needs ≥ 2 values;
    with no spread at all the interval is the point."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if min(len(a), len(b)) < 2:
        raise ValueError(f"each sample needs at least 2 values, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    slope = (b.mean() - a.mean()) / dx
    if va + vb == 0:
        return float(slope), float(slope)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(dof, confidence) * math.sqrt(va + vb) / abs(dx)
    return float(slope - half), float(slope + half)


def two_width_interval(
    fit: PowerLawFit, a: np.ndarray, b: np.ndarray, dx: float, confidence: float = 0.95, *, centred: bool = False
) -> tuple[float, float, str]:
    """A two-width :func:`fit_power_law` fit's interval and note: across two widths a regression leaves no residual
    for a t-interval and a bootstrap over a few seeds alone under-covers, so the seeds' own
    :func:`welch_slope_interval` of ``a`` ``(n_a,)`` and ``b`` ``(n_b,)`` (log2 values at the two widths, ``dx``
    octaves apart) joins it: the union, as the regression's t-interval does across more widths. ``centred``: the
    Welch half-width around ``fit.exponent`` instead of the seeds' own slope, where the fitted statistic is not the
    seeds' mean (e.g. read off a seed-mean curve); with a geometric-mean statistic the two coincide."""
    w_low, w_high = welch_slope_interval(a, b, dx, confidence)
    if centred:
        shift = fit.exponent - (w_low + w_high) / 2
        w_low, w_high = w_low + shift, w_high + shift
    note = fit.note.replace(TWO_WIDTHS_NOTE, "2 widths: the interval is the bootstrap's united with the seeds' "
                                              "Welch t-interval")  # fmt: skip
    return float(np.fmin(fit.ci_low, w_low)), float(np.fmax(fit.ci_high, w_high)), note


def _slope_t_interval(
    log_d: np.ndarray, resid: np.ndarray, slope: float, confidence: float
) -> tuple[float, float]:
    """The least-squares slope's t-interval, ``slope ± t_{W−2} · √(Σr² / (W−2) / Σ(x − x̄)²)``, from the
    residuals ``resid`` ``(W,)``; NaN at 2 widths (no degrees of freedom)."""
    dof = len(log_d) - 2
    if dof <= 0:
        return float("nan"), float("nan")
    xc = log_d - log_d.mean()
    se = np.sqrt(float((resid**2).sum()) / dof / float((xc * xc).sum()))
    half = t_quantile(dof, confidence) * se
    return slope - half, slope + half


def _line_fits(log_d: np.ndarray, log_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of each row of ``log_y`` ``(..., W)`` on ``log_d`` ``(W,)``."""
    xc = log_d - log_d.mean()
    slope = (log_y * xc).sum(axis=-1) / (xc * xc).sum()
    intercept = log_y.mean(axis=-1) - slope * log_d.mean()
    return slope, intercept


def fit_power_law(
    widths: Sequence[float],
    samples: Sequence[np.ndarray],
    statistic: Statistic = mean,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit ``statistic(samples[i]) ≈ prefactor · widths[i]^exponent``.

    ``samples[i]`` holds the per-sample values measured at ``widths[i]`` (any length ≥ 1; a single
    value gives a zero-width contribution to the bootstrap). Needs ≥ 2 distinct widths. If any
    width's statistic is not positive and finite the fit is undefined: the result is NaN with a
    ``note`` saying why, never an exception.
    """
    fits = fit_power_laws(widths, samples, {"_": statistic}, n_boot=n_boot, confidence=confidence, seed=seed)
    return fits["_"]


def fit_power_laws(
    widths: Sequence[float],
    samples: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]],
    statistics: Mapping[str, Statistic] | Mapping[str, tuple[str, Statistic]],
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, PowerLawFit]:
    """:func:`fit_power_law` for several statistics sharing one set of bootstrap resamples: ``{name: fit}``.

    ``samples`` is one array per width, with ``statistics = {name: statistic}``; or several paired
    series ``{series: [one array per width]}`` (equal sample counts per width, e.g. several values
    measured on the same draws) with ``statistics = {name: (series, statistic)}`` — each width's draws
    are resampled once and the same indices serve every series.
    """
    series = dict(samples) if isinstance(samples, Mapping) else {"_": samples}
    stats_of = {k: (v if isinstance(v, tuple) else ("_", v)) for k, v in statistics.items()}
    widths_arr = np.asarray(widths, dtype=np.float64)
    for name, per_width in series.items():
        if widths_arr.ndim != 1 or len(widths_arr) != len(per_width):
            raise ValueError(f"need one sample array per width (series {name!r})")
    if len(np.unique(widths_arr)) < 2:
        raise ValueError(f"a scaling fit needs at least 2 distinct widths, got {list(widths)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    arrays = {k: [np.asarray(a, dtype=np.float64).reshape(-1) for a in v] for k, v in series.items()}
    sizes = {k: [len(a) for a in v] for k, v in arrays.items()}
    if len({tuple(n) for n in sizes.values()}) > 1:
        raise ValueError(f"paired series need the same number of samples per width, got {sizes}")
    rng = np.random.default_rng(seed)
    n_per_width = next(iter(sizes.values()))
    indices = [rng.integers(0, n, size=(n_boot, n)) for n in n_per_width]
    log_d = np.log(widths_arr)
    out = {}
    for series_name in dict.fromkeys(s for s, _ in stats_of.values()):
        # one series' resamples at a time: (n_boot, n) per width is the memory peak of a large sweep
        gathered = [a[i] for a, i in zip(arrays[series_name], indices, strict=True)]
        for name, (s, stat) in stats_of.items():
            if s == series_name:
                point = np.array([float(stat(a)) for a in arrays[s]])
                boot = np.stack([stat(r) for r in gathered], axis=1)
                out[name] = _fit_one(log_d, point, boot, n_boot, confidence)
        del gathered
    return {name: out[name] for name in stats_of}


def _fit_one(
    log_d: np.ndarray,
    point: np.ndarray,
    boot: np.ndarray,
    n_boot: int,
    confidence: float,
) -> PowerLawFit:
    """The fit of ``point`` ``(W,)`` on ``log_d``; ``boot`` ``(n_boot, W)`` holds the resampled statistics."""
    nan = float("nan")
    if not np.all(np.isfinite(point)) or np.any(point <= 0):
        return PowerLawFit(nan, nan, nan, nan, nan, nan, nan, nan, nan, len(point), n_boot, confidence,
                           note="statistic not positive and finite at every width")  # fmt: skip
    log_y = np.log(point)
    slope, intercept = _line_fits(log_d, log_y)
    resid = log_y - (slope * log_d + intercept)
    ss_tot = float(((log_y - log_y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0

    note = ""
    ok = np.all(np.isfinite(boot) & (boot > 0), axis=1)
    if not ok.all():
        note = (f"{int((~ok).sum())} of {n_boot} bootstrap draws had a statistic not positive and finite at some "
                "width and were dropped")  # fmt: skip
    boot_slopes, _ = _line_fits(log_d, np.log(boot[ok]))
    alpha = (1.0 - confidence) / 2.0
    b_lo, b_hi = np.quantile(boot_slopes, [alpha, 1.0 - alpha]) if len(boot_slopes) else (nan, nan)
    o_lo, o_hi = _slope_t_interval(log_d, resid, float(slope), confidence)
    if len(point) < 3:
        note = "; ".join(filter(None, [note, TWO_WIDTHS_NOTE]))
    lo = float(np.nanmin([b_lo, o_lo]))
    hi = float(np.nanmax([b_hi, o_hi]))
    return PowerLawFit(
        exponent=float(slope),
        ci_low=lo,
        ci_high=hi,
        prefactor=float(np.exp(intercept)),
        r2=r2,
        boot_low=float(b_lo),
        boot_high=float(b_hi),
        ols_low=float(o_lo),
        ols_high=float(o_hi),
        n_widths=len(point),
        n_boot=n_boot,
        confidence=confidence,
        note=note,
    )


@dataclass(frozen=True)
class Estimate:
    """A statistic of one set of samples with its percentile-bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float
    n_samples: int
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_estimate(
    values: np.ndarray,
    statistic: Statistic = mean,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """``statistic(values)`` and its percentile-bootstrap interval over the samples in ``values``."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    boot = statistic(a[rng.integers(0, a.size, size=(n_boot, a.size))])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return Estimate(float(statistic(a)), float(lo), float(hi), int(a.size), confidence)
