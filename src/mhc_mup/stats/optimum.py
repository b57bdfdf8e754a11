"""The drift of a loss surface's optimum across width, from one joint fit of every width and seed.

With ``x`` the log2 of the swept value, ``u = log2 d − ū`` (``ū`` the mean log2 width of the fit) and
``g = (width, seed)`` one curve, every run near the optimum is fitted at once by

    L(x, d, s) = c_g + a(u)·t²·(1 + κ·t),    t = x − x₀ − β·u,    a(u) = exp(λ₀ + λ₁·u):

a curve whose minimum ``x*(d) = x₀ + β·u`` moves linearly in log2 d (``β`` is the exponent of
``value* ∝ d^β``), whose curvature varies smoothly (log-linearly) with width, and whose height ``c_g`` is free
per curve (wider models and luckier seeds reach lower losses; that says nothing about where the minimum is).

Why this curve: a loss is smooth at its minimum, so near it a parabola in log2 of the value is its Taylor
expansion; the cubic term ``κ·t³`` is the next one. Losses against log2 η are skewed (they climb slowly
towards small values and steeply towards divergence): a symmetric parabola through a window that the grid
places differently at each width would move its vertex with the window, which is a drift that is not there.
``κ`` absorbs the skew without moving the minimum (``∂L/∂t = a·t·(2 + 3κt)`` vanishes at ``t = 0``). ``x₀``, ``β``,
``λ₀``, ``λ₁`` and ``κ`` are shared by every curve, so each width's optimum is informed by both seeds and by
the curve's shape at the other widths, instead of by three points of one seed. The heights are profiled out
(variable projection: the residuals are centred within each curve), which leaves five nonlinear parameters
whatever the number of curves. Where no curve has four distinct ``x`` (a window of one point on each side) the
skew is not fitted (``κ = 0``): through three points of each curve a skewed parabola fits as well with its
minimum anywhere along a ridge of ``(x₀, κ, a)``, and the fit slides along it.

The interval of ``β`` is the fit's own: ``β̂ ± t(n − 5 − G)·se``, ``se² = σ̂²·[(JᵀJ)⁻¹]_ββ·max(1, F)`` with
``J`` the Jacobian of the centred residuals, ``σ̂²`` their mean square over the residual degrees of freedom
(``G`` curves), and ``F`` the lack-of-fit ratio of the line against a free optimum per width: when the widths'
optima scatter about the line more than the runs' noise explains (seeds that shift the whole curve, a drift
that is not a power law), the interval widens by ``√F`` (Birge's ratio). :func:`seed_bootstrap` resamples
whole curves within each width and refits: with two seeds it has three distinct draws per width and is too
narrow to stand alone, so callers report the union of the two.

Two fits of the same curves (two configurations run with the same seeds, widths and batches: a seed draws the same
body weights in both) share part of their noise. :func:`paired_difference` reads ``δ = β_a − β_b`` from each fit's
per-curve scores, ``β̂ − β ≈ Σ_g s_g`` (the linearised estimator): a cluster-robust variance
``Σ_g (s_a,g − s_b,g)²`` over the curves, so what the two share cancels, with the CR2 small-sample correction of
Bell & McCaffrey (each curve's residuals scaled by ``(I − P_gg)^{-1/2}``, ``P`` the fit's projection: the
residuals of a least-squares fit are smaller than its errors, most of all at points of high leverage) and a
t-interval on ``G − 1`` degrees of freedom (``G`` curves). The scores do not see a width whose optimum leaves the
line for all its seeds at once: :func:`paired_lack_of_fit` asks whether the two fits' free optima differ by a line
within what their scores explain, and widens the interval by its ratio's root where they do not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from mhc_mup.stats.fitting import t_quantile

__all__ = [
    "JointOptimumFit", "PairedDifference", "fit_joint_optimum", "paired_difference", "paired_lack_of_fit",
    "seed_bootstrap",
]  # fmt: skip


@dataclass(frozen=True)
class JointOptimumFit:
    """``x*(d) = x₀ + β·(log2 d − ū)``, curvature ``a(d) = exp(λ₀ + λ₁·(log2 d − ū))`` and skew ``κ`` of a fit;
    ``[ci_low, ci_high]`` is ``β``'s t-interval (NaN without residual degrees of freedom), ``sigma`` the
    residual standard deviation of one run's loss, ``lack_of_fit`` the ``F`` ratio (and its ``p``) of the
    widths' optima about the line (NaN with < 3 widths); ``note`` says why a value is NaN. ``curves`` are the
    curve labels (``group``'s distinct values, sorted) and ``scores`` each one's CR2 score of ``β``
    (:func:`paired_difference`), both empty when there is no fit (``scores`` also with ``lack_of_fit=False``);
    ``width_optima`` the lack-of-fit test's free
    optimum at each of ``log2_widths`` (increasing) and ``width_scores`` each curve's scores of them ``(G, W)``,
    empty without that test."""

    beta: float
    se_beta: float
    ci_low: float
    ci_high: float
    x0: float
    log_curvature: float
    curvature_slope: float
    skew: float
    mean_log2_width: float
    sigma: float
    dof: int
    n_points: int
    n_curves: int
    confidence: float
    lack_of_fit: float = math.nan
    lack_of_fit_p: float = math.nan
    note: str = ""
    curves: tuple[float, ...] = ()
    scores: tuple[float, ...] = ()
    log2_widths: tuple[float, ...] = ()
    width_optima: tuple[float, ...] = ()
    width_scores: tuple[tuple[float, ...], ...] = ()

    def optimum(self, width: float) -> float:
        """``x*(d)``: the fitted optimum (log2 of the swept value) at width ``width``."""
        return self.x0 + self.beta * (math.log2(width) - self.mean_log2_width)

    def curvature(self, width: float) -> float:
        """``a(d)``: the loss rise per squared log2 unit away from the optimum at width ``width``."""
        return math.exp(self.log_curvature + self.curvature_slope * (math.log2(width) - self.mean_log2_width))

    def to_dict(self) -> dict:
        return asdict(self)


def _centred(v: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """``v`` ``(n,)`` or ``(n, k)`` less its mean within each group (the profiled-out heights ``c_g``)."""
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    if v.ndim == 1:
        return v - (np.bincount(group, v, minlength=n_groups) / counts)[group]
    means = np.stack([np.bincount(group, v[:, k], minlength=n_groups) for k in range(v.shape[1])], axis=1)
    return v - (means / counts[:, None])[group]


def _model(
    theta: np.ndarray, vertex: np.ndarray, u: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``f = a(u)·t²·(1 + κ·t)`` ``(n,)``, ``a`` and ``t = x − x*``, with ``x* = vertex @ theta[:p]`` (``vertex``
    ``(n, p)``) and ``theta[p:] = (λ₀, λ₁, κ)``, or ``(λ₀, λ₁)`` for a fit without skew (``κ = 0``)."""
    p = vertex.shape[1]
    l0, l1, k = (*theta[p:], 0.0) if len(theta) == p + 2 else theta[p:]
    a = np.exp(l0 + l1 * u)
    dx = x - vertex @ theta[:p]
    return a * dx * dx * (1 + k * dx), a, dx


def _least_squares(
    vertex: np.ndarray, u: np.ndarray, x: np.ndarray, y: np.ndarray, g: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(theta, centred residuals (n,), their Jacobian (n, len(start)), converged)`` of the fit of
    :func:`_model` with the heights profiled out; ``start`` without its last entry (``p + 2`` long) fits no
    skew."""
    from scipy.optimize import least_squares

    n_groups = int(g.max()) + 1

    def residuals(theta: np.ndarray) -> np.ndarray:
        return _centred(y - _model(theta, vertex, u, x)[0], g, n_groups)

    def jacobian(theta: np.ndarray) -> np.ndarray:
        f, a, dx = _model(theta, vertex, u, x)
        skew = len(theta) == vertex.shape[1] + 3
        slope = -a * dx * (2 + 3 * theta[-1] * dx) if skew else -2 * a * dx
        d_f = np.column_stack([slope[:, None] * vertex, f, f * u, *([a * dx**3] if skew else [])])
        return -_centred(d_f, g, n_groups)

    with np.errstate(over="ignore", invalid="ignore"):
        sol = least_squares(residuals, start, jac=jacobian, method="lm", x_scale="jac")
    return sol.x, sol.fun, jacobian(sol.x), bool(sol.success)


def _start(u: np.ndarray, x: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """A starting point ``(x₀, β, λ₀, λ₁, κ)``: one parabola ``y ≈ p·x² + q·x + r·u·x + heights`` fitted
    linearly (its vertex, drift and curvature), else the lowest point with no drift."""
    design = _centred(np.stack([x * x, x, u * x], axis=1), group, n_groups)
    coef, *_ = np.linalg.lstsq(design, _centred(y, group, n_groups), rcond=None)
    p, q, r = coef
    if p > 0:
        return np.array([-q / (2 * p), -r / (2 * p), math.log(p), 0.0, 0.0])
    scale = max(float(np.ptp(y)), 1e-12) / max(float(np.ptp(x)) ** 2, 1e-12)
    return np.array([float(x[np.argmin(y)]), 0.0, math.log(scale), 0.0, 0.0])


def fit_joint_optimum(
    log2_widths: np.ndarray,
    x: np.ndarray,
    group: np.ndarray,
    loss: np.ndarray,
    *,
    confidence: float = 0.95,
    lack_of_fit: bool = True,
) -> JointOptimumFit:
    """Fit ``L = c_g + a(u)·t²·(1 + κ·t)``, ``t = x − x₀ − β·u``, to the runs ``(log2_widths[i], x[i],
    loss[i])`` of curves ``group[i]`` (all ``(n,)``; one curve = one width and seed; every value finite). Needs
    ≥ 2 widths; a NaN fit with a ``note`` when the data cannot determine it, never an exception.
    ``lack_of_fit=False`` skips the second fit of the lack-of-fit test (and its widening) and the curves' scores:
    the bootstrap's refits need only ``β``."""
    lw, x, y = (np.asarray(v, dtype=np.float64) for v in (log2_widths, x, loss))
    labels, g = np.unique(np.asarray(group), return_inverse=True)
    n_groups, n = int(g.max()) + 1 if len(g) else 0, len(y)
    ubar = float(lw.mean()) if n else math.nan
    u = lw - ubar
    skew = _skew_fits(x, g, n_groups)
    dof = n - (5 if skew else 4) - n_groups
    nan = math.nan
    empty = JointOptimumFit(nan, nan, nan, nan, nan, nan, nan, nan, ubar, nan, dof, n, n_groups, confidence)
    if len(np.unique(lw)) < 2:
        return replace(empty, note="fewer than 2 widths: no drift fit")
    if dof < 1:
        return replace(empty, note=f"{n} points for {5 if skew else 4} + {n_groups} parameters: too few to fit")
    line = np.column_stack([np.ones_like(u), u])
    start = _start(u, x, y, g, n_groups)
    theta, r, jac, ok = _least_squares(line, u, x, y, g, start if skew else start[:-1])
    sigma2 = float(r @ r) / dof
    inv = _inverse_normal(jac)
    var = sigma2 * float(inv[1, 1])
    lof = _lack_of_fit(lw, u, x, y, g, theta, float(r @ r)) if lack_of_fit else (nan, nan, (), ())
    se = math.sqrt(var * max(1.0, lof[0] if math.isfinite(lof[0]) else 1.0)) if var >= 0 else nan
    half = t_quantile(dof, confidence) * se
    beta = float(theta[1])
    return JointOptimumFit(
        beta=beta, se_beta=se, ci_low=beta - half, ci_high=beta + half, x0=float(theta[0]),
        log_curvature=float(theta[2]), curvature_slope=float(theta[3]), skew=float(theta[4]) if skew else 0.0,
        mean_log2_width=ubar,
        sigma=math.sqrt(sigma2), dof=dof, n_points=n, n_curves=n_groups, confidence=confidence,
        lack_of_fit=lof[0], lack_of_fit_p=lof[1], note="" if ok else "least squares did not converge",
        curves=tuple(float(v) for v in labels),
        scores=tuple(_curve_scores(jac, inv, r, g, [1])[:, 0]) if lack_of_fit else (),
        log2_widths=tuple(float(v) for v in np.unique(lw)) if lof[2] else (), width_optima=lof[2],
        width_scores=lof[3],
    )  # fmt: skip


def _inverse_normal(jac: np.ndarray) -> np.ndarray:
    """``(JᵀJ)⁻¹``, all NaN where ``JᵀJ`` is singular."""
    try:
        return np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        return np.full((jac.shape[1],) * 2, math.nan)


def _curve_scores(jac: np.ndarray, inv: np.ndarray, r: np.ndarray, g: np.ndarray, params: list[int]) -> np.ndarray:
    """``(G, len(params))`` each curve's CR2 score of each parameter ``θ_k``: ``−h_gᵀ·(I − P_gg)^{-1/2}·r_g``,
    with ``h = J·(JᵀJ)⁻¹·e_k`` (``−h_i = ∂θ̂_k/∂loss_i``) and ``P_gg = 1/n_g + J_g·(JᵀJ)⁻¹·J_gᵀ`` the curve's
    block of the projection onto its height and the fit's tangent plane. ``P_gg`` fixes the constant, whose
    eigenvalue of ``I − P_gg`` is 0; ``h_g`` and ``r_g`` are centred, so the pseudo-inverse root loses nothing."""
    n_groups = int(g.max()) + 1
    if not np.isfinite(inv).all():
        return np.full((n_groups, len(params)), math.nan)
    h = jac @ inv[:, params]
    scores = np.empty((n_groups, len(params)))
    for k in range(n_groups):
        rows = np.flatnonzero(g == k)
        j_g = jac[rows]
        keep_out = np.eye(len(rows)) - 1.0 / len(rows) - j_g @ inv @ j_g.T
        lam, vec = np.linalg.eigh(keep_out)
        pos = lam > 1e-9
        root = (vec[:, pos] / np.sqrt(lam[pos])) @ vec[:, pos].T
        scores[k] = -(h[rows].T @ root @ r[rows])
    return scores


def _skew_fits(x: np.ndarray, group: np.ndarray, n_groups: int) -> bool:
    """Whether some curve has 4 or more distinct ``x``: through 3 points of each curve a skewed parabola can put
    its minimum anywhere along a ridge of (x₀, κ, a) that fits them as well, so such a fit has no skew."""
    return any(len(np.unique(x[group == k])) >= 4 for k in range(n_groups))


def _lack_of_fit(
    lw: np.ndarray, u: np.ndarray, x: np.ndarray, y: np.ndarray, g: np.ndarray, theta: np.ndarray, rss: float
) -> tuple[float, float, tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """``(F, p, optima, scores)``: do the widths' optima lie on the line ``x₀ + β·u`` within the runs' noise? The
    same model with a free optimum per width (``W`` of them) against the line: ``F = (ΔRSS/(W − 2)) /
    (RSS_free/dof_free)`` and its upper tail probability; the free optima ``(W,)`` and each curve's CR2 scores of
    them ``(G, W)``. NaN and empty with < 3 widths or no residual degrees of freedom."""
    from scipy.special import fdtrc

    widths, w_idx = np.unique(lw, return_inverse=True)
    n_w = len(widths)
    dof_free = len(y) - n_w - (len(theta) - 2) - (int(g.max()) + 1)  # λ₀, λ₁ and κ when it is fitted
    if n_w < 3 or dof_free < 1:
        return math.nan, math.nan, (), ()
    free = np.eye(n_w)[w_idx]
    start = np.concatenate([theta[0] + theta[1] * (widths - lw.mean()), theta[2:]])
    theta_free, r, jac, _ = _least_squares(free, u, x, y, g, start)
    rss_free = float(r @ r)
    f = max(rss - rss_free, 0.0) / (n_w - 2) / (rss_free / dof_free) if rss_free > 0 else math.nan
    scores = _curve_scores(jac, _inverse_normal(jac), r, g, list(range(n_w)))  # NaN for a singular fit
    p = float(fdtrc(n_w - 2, dof_free, f)) if math.isfinite(f) else math.nan
    return f, p, tuple(float(v) for v in theta_free[:n_w]), tuple(tuple(float(v) for v in row) for row in scores)


def seed_bootstrap(
    log2_widths: np.ndarray,
    x: np.ndarray,
    seed: np.ndarray,
    loss: np.ndarray,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    rng_seed: int = 0,
) -> tuple[float, float]:
    """The percentile interval of ``β`` over ``n_boot`` refits of :func:`fit_joint_optimum`, each on curves
    (one per width and seed, all ``(n,)`` inputs) drawn with replacement among each width's seeds; a curve drawn
    twice enters twice. Draws that pick the same seeds share one refit (two seeds at four widths have 81
    distinct draws). ``(nan, nan)`` when fewer than half of the refits have a finite ``β``."""
    lw, x, sd, y = (np.asarray(v) for v in (log2_widths, x, seed, loss))
    rng = np.random.default_rng(rng_seed)
    curves = {w: np.unique(sd[lw == w]) for w in np.unique(lw)}
    cache: dict[tuple, float] = {}
    betas = []
    for _ in range(n_boot):
        key = tuple(tuple(sorted(rng.choice(seeds, size=len(seeds)))) for seeds in curves.values())
        if key not in cache:
            cache[key] = _refit(lw, x, sd, y, dict(zip(curves, key, strict=True)))
        betas.append(cache[key])
    drawn = np.array(betas)
    if np.isfinite(drawn).sum() < n_boot / 2:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(drawn[np.isfinite(drawn)], [alpha, 1 - alpha])
    return float(lo), float(hi)


def _refit(lw: np.ndarray, x: np.ndarray, sd: np.ndarray, y: np.ndarray, draw: dict) -> float:
    """``β`` of the joint fit on the curves ``draw = {log2 width: seeds drawn}`` (each drawn curve its own)."""
    idx: list[np.ndarray] = []
    curve: list[np.ndarray] = []
    for w, seeds in draw.items():
        for s in seeds:
            rows = np.flatnonzero((lw == w) & (sd == s))
            idx.append(rows)
            curve.append(np.full(len(rows), len(curve)))
    rows = np.concatenate(idx)
    return fit_joint_optimum(lw[rows], x[rows], np.concatenate(curve), y[rows], lack_of_fit=False).beta


MIN_POINTS_PER_CURVE = 4
"""Fits with fewer runs a curve on average have no paired interval (:func:`paired_difference`): through 3 points
a curve (the symmetric parabola of a window ±1) it covers 0.90–0.93 at 95%
(experiments/transfer_issue20/paired_coverage.py)."""


@dataclass(frozen=True)
class PairedDifference:
    """``δ = β_a − β_b`` of two joint fits and its t-interval: ``se`` from the curves' paired scores, widened by
    ``√max(1, lack_of_fit)``; ``dof = G − 1`` with ``G`` the curves of either fit, ``shared`` how many are in
    both; ``lack_of_fit`` the paired lack-of-fit ratio (NaN with < 3 widths); ``note`` says why a value is
    NaN."""

    delta: float
    se: float
    ci_low: float
    ci_high: float
    dof: int
    shared: int
    confidence: float
    lack_of_fit: float = math.nan
    note: str = ""


def paired_difference(a: JointOptimumFit, b: JointOptimumFit, confidence: float | None = None) -> PairedDifference:
    """``δ = β_a − β_b`` with a cluster-robust interval that keeps what the two fits share: ``se² = Σ_g (s_a,g −
    s_b,g)²·max(1, F_δ)`` over the curves (labels) of either fit, a curve missing from one fit scoring 0 there,
    and ``δ ± t(G − 1)·se``. ``F_δ`` (:func:`paired_lack_of_fit`) widens it where the two fits' free optima
    differ by more than a line across the widths, beyond what the curves' scores explain. NaN, with a ``note``,
    with fewer than 3 curves, without both fits' scores, or with windows of fewer than
    :data:`MIN_POINTS_PER_CURVE` points a curve; ``confidence`` defaults to ``a``'s."""
    confidence = a.confidence if confidence is None else confidence
    sa, sb = dict(zip(a.curves, a.scores, strict=True)), dict(zip(b.curves, b.scores, strict=True))
    curves = sorted(set(sa) | set(sb))
    shared = len(set(sa) & set(sb))
    delta = a.beta - b.beta
    diff = np.array([sa.get(k, 0.0) - sb.get(k, 0.0) for k in curves])
    nan_row = PairedDifference(delta, math.nan, math.nan, math.nan, len(curves) - 1, shared, confidence)
    if len(curves) < 3 or not (math.isfinite(delta) and np.isfinite(diff).all()):
        return replace(nan_row, note=f"{len(curves)} curves" if len(curves) < 3 else "a fit without its scores")
    if min(f.n_points / f.n_curves for f in (a, b)) < MIN_POINTS_PER_CURVE:
        return replace(nan_row, note=f"windows of fewer than {MIN_POINTS_PER_CURVE} points a curve")
    f_delta = paired_lack_of_fit(a, b)
    se = float(np.sqrt(diff @ diff * max(1.0, f_delta if math.isfinite(f_delta) else 1.0)))
    half = t_quantile(len(curves) - 1, confidence) * se
    return PairedDifference(delta, se, delta - half, delta + half, len(curves) - 1, shared, confidence, f_delta)


def paired_lack_of_fit(a: JointOptimumFit, b: JointOptimumFit) -> float:
    """``F_δ``: do the differences of the two fits' free optima, ``D_w = x̂_a,w − x̂_b,w`` at the ``W`` widths both
    freed, lie on a line in log2 d within what the curves' paired scores explain? ``V_w = Σ_g (S_a,gw −
    S_b,gw)²``, the weighted line ``D_w ≈ c + δ·log2 d`` (weights ``1/V_w``) and ``F_δ = χ²/(W − 2)``. About 1
    when only the curves' noise moves the optima (what each curve shares with its twin cancels); larger when a
    width moves all its seeds' optima apart from the line in one fit and not the other. NaN with < 3 such
    widths."""
    common = sorted(set(a.log2_widths) & set(b.log2_widths))
    if len(common) < 3:
        return math.nan
    diffs: list[float] = []
    variances: list[float] = []
    for lw in common:
        ia, ib = a.log2_widths.index(lw), b.log2_widths.index(lw)
        sa = {k: row[ia] for k, row in zip(a.curves, a.width_scores, strict=True)}
        sb = {k: row[ib] for k, row in zip(b.curves, b.width_scores, strict=True)}
        diffs.append(a.width_optima[ia] - b.width_optima[ib])
        variances.append(sum((sa.get(k, 0.0) - sb.get(k, 0.0)) ** 2 for k in set(sa) | set(sb)))
    d, v, u = np.array(diffs), np.array(variances), np.array(common)
    if not (np.isfinite(d).all() and np.isfinite(v).all() and (v > 0).all()):
        return math.nan
    w = 1.0 / v
    design = np.column_stack([np.ones_like(u), u]) * np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design, d * np.sqrt(w), rcond=None)
    chi2 = float(np.sum(w * (d - coef[0] - coef[1] * u) ** 2))
    return chi2 / (len(common) - 2)
