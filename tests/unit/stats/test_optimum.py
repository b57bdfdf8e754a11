"""The joint drift fit of a loss surface's optimum: exact recovery, recovery of β = −1, 0, +0.5 from noisy
non-parabolic surfaces, its interval's coverage over many synthetic sweeps, and a width well below the per-seed
estimator's on the same data.

The synthetic surfaces copy the H100 headline (experiments/transfer_h100, 150 steps, widths 128–1024):
``L = h + A·(e^{κt} − κt − 1)/κ²`` with ``t = log2 η − x*(d)``, a convex curve that is not a parabola (it rises
exponentially on one side, like the losses towards divergence), ``A = 0.027`` and ``κ = ±0.4`` fitted to the
seed-mean curves of mup, control-mup (κ ≈ +0.3, +0.5) and baseline (κ ≈ −0.4); per-run noise
``σ = 0.0096``, the seeds' disagreement about each curve's mean over log2 η ∈ [−9, −5] at every width of
baseline, mup and control-mup; per-curve heights ``h`` with sd 0.0073 (the same data's seed offsets).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mhc_mup.stats.fitting import fit_power_law
from mhc_mup.stats.optimum import fit_joint_optimum, paired_difference, paired_lack_of_fit, seed_bootstrap
from mhc_mup.training.transfer.analysis import fit_parabola
from mhc_mup.training.transfer.joint import WidthCurves, fit_window, joint_windows, window_runs

SIGMA, HEIGHT_SD, A = 0.0096, 0.0073, 0.027
WIDTHS = (128, 256, 512, 1024)
GRIDS = {0.0: np.arange(-10.0, -3.0), -1.0: np.arange(-13.0, -1.0), 0.5: np.arange(-11.0, -2.0)}


def surface(
    rng, beta: float, kappa: float = 0.4, seeds: int = 2, sigma: float = SIGMA, shift: float = 0.0
) -> list[WidthCurves]:
    """One synthetic sweep: 4 widths × ``seeds`` × the grid of ``beta``; optimum ``x*(d) = x₀ + β·log2(d/256)``
    with ``x₀`` uniform in [−8, −7] (the grid cuts the curve at a different place in every sweep), each seed's
    optimum moved by ``shift``·N(0, 1) at each width."""
    grid, x0 = GRIDS[beta], -7.5 + rng.uniform(-0.5, 0.5)
    out = []
    for w in WIDTHS:
        t = grid - (x0 + beta * math.log2(w / 256) + shift * rng.standard_normal((seeds, 1)))
        shape = A * (np.exp(kappa * t) - kappa * t - 1) / kappa**2
        heights = 2.3 - 0.02 * math.log2(w / 128) + HEIGHT_SD * rng.standard_normal((seeds, 1))
        out.append(
            WidthCurves(w, grid, heights + shape + sigma * rng.standard_normal((seeds, len(grid))), tuple(range(seeds)))
        )
    return out


def stacked(curves: list[WidthCurves], halfwidth: int = 2) -> tuple[np.ndarray, ...]:
    """``(log2 d, x, curve, seed, loss)`` of the runs in every width's window (as the transfer analysis picks)."""
    parts = []
    for c in curves:
        cols, _ = fit_window(c, halfwidth)
        for s in c.seeds:
            n = len(cols)
            parts.append((np.full(n, math.log2(c.width)), c.x[cols], np.full(n, c.width * 100 + s), np.full(n, s),
                          c.loss[s, cols]))  # fmt: skip
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))


def test_the_analysis_windows_and_runs_are_the_ones_each_width_picks():
    """``joint_windows`` keeps every width of a sweep with a clear minimum, each with ``fit_window``'s columns, and
    ``window_runs`` stacks their runs as this file's ``stacked`` does."""
    from mhc_mup.training.transfer import TransferConfig

    curves = surface(np.random.default_rng(5), -1.0)
    fitted, flat, notes = joint_windows(TransferConfig(), curves)
    assert [c.width for c, _ in fitted] == [c.width for c in curves] and flat == [] and notes == []
    for c, cols in fitted:
        np.testing.assert_array_equal(cols, fit_window(c, 2)[0])
    lw, x, _, seed, loss = stacked(curves)
    for got, want in zip(window_runs(fitted), (lw, x, seed, loss), strict=True):
        np.testing.assert_array_equal(got, want)


def joint(curves: list[WidthCurves]):
    lw, x, curve, _, loss = stacked(curves)
    return fit_joint_optimum(lw, x, curve, loss)


def per_seed(curves: list[WidthCurves]):
    """Today's estimator: per seed a 3-point parabola at the argmin, then ``η* ∝ d^β`` on the geometric means."""
    per_width = {}
    for c in curves:
        optima = [fit_parabola(c.x, c.loss[s]).log2_opt for s in c.seeds]
        per_width[c.width] = np.array([2.0**o for o in optima if math.isfinite(o)])
    return fit_power_law(WIDTHS, [per_width[w] for w in WIDTHS], lambda a: np.exp(np.log(a).mean(axis=-1)),
                         n_boot=200, seed=0)  # fmt: skip


def test_an_exact_skewed_parabola_gives_its_parameters_back():
    u = np.repeat(np.log2(WIDTHS), 7)
    x = np.tile(np.arange(-10.0, -3.0), 4)
    xs = -7.2 - 0.3 * (u - u.mean())
    a = np.exp(-4.0 + 0.2 * (u - u.mean()))
    curve = np.repeat(np.arange(4), 7)
    loss = 2.0 + 0.01 * curve + a * (x - xs) ** 2 * (1 + 0.1 * (x - xs))
    fit = fit_joint_optimum(u, x, curve, loss)
    assert fit.beta == pytest.approx(-0.3, abs=1e-8) and fit.x0 == pytest.approx(-7.2, abs=1e-8)
    assert fit.log_curvature == pytest.approx(-4.0, abs=1e-7) and fit.curvature_slope == pytest.approx(0.2, abs=1e-7)
    assert fit.optimum(128) == pytest.approx(-7.2 + 0.3 * 1.5, abs=1e-8) and fit.sigma < 1e-9
    assert fit.skew == pytest.approx(0.1, abs=1e-7) and fit.dof == 28 - 5 - 4 and fit.note == ""


def test_three_points_a_curve_fit_a_symmetric_parabola_whose_vertex_is_exact():
    """Through 3 points of each curve a skewed parabola can put its minimum anywhere on a ridge of (x₀, κ, a), so
    such a fit has no skew: on exact parabolas (3 widths drifting as d^−0.3) it returns the vertex, κ = 0 and
    4 + G parameters' worth of degrees of freedom."""
    u = np.repeat(np.log2(WIDTHS), 3)
    xs = -7.2 - 0.3 * (u - u.mean())
    x = np.round(xs) + np.tile([-1.0, 0.0, 1.0], 4)  # each width's window around its own grid argmin
    curve = np.repeat(np.arange(4), 3)
    loss = 2.0 + 0.01 * curve + np.exp(-4.0 + 0.2 * (u - u.mean())) * (x - xs) ** 2
    fit = fit_joint_optimum(u, x, curve, loss)
    assert fit.beta == pytest.approx(-0.3, abs=1e-8) and fit.x0 == pytest.approx(-7.2, abs=1e-8)
    assert fit.skew == 0.0 and fit.dof == 12 - 4 - 4 and fit.sigma < 1e-9 and fit.note == ""


def test_three_points_of_skewed_curves_that_look_alike_put_the_optimum_at_their_minimum():
    """Five widths × 3 seeds of one skewed bowl (κ = 0.5), minimum at −7, seen at −8, −7, −6 (what a window of one
    point on each side keeps), with the runs' noise: the fit's optimum stays within 0.15 of −7 (the 3-point
    parabola's own skew bias) in every sweep, where a skewed fit slid along its ridge to −6.6 … −7.6 (and to −6.42
    on experiments/transfer_onepass2000's µP control)."""
    widths = np.repeat(np.log2([128, 256, 512, 1024, 2048]), 9)
    x = np.tile([-8.0, -7.0, -6.0], 15)
    curve = np.repeat(np.arange(15), 3)
    bowl = 3 * A * (np.exp(0.5 * (x + 7.0)) - 0.5 * (x + 7.0) - 1) / 0.25
    for k in range(4):
        rng = np.random.default_rng(k)
        loss = 2.0 + 0.01 * rng.standard_normal(15)[curve] + bowl + 0.01 * rng.standard_normal(45)
        fit = fit_joint_optimum(widths, x, curve, loss)
        assert abs(fit.optimum(256) + 7.0) < 0.15 and fit.skew == 0.0 and fit.ci_low < 0 < fit.ci_high


@pytest.mark.parametrize("beta", [-1.0, 0.0, 0.5])
@pytest.mark.parametrize("kappa", [0.4, -0.4])
def test_the_joint_fit_recovers_the_drift_of_a_noisy_non_parabolic_surface(beta, kappa):
    rng = np.random.default_rng(7)
    fits = [joint(surface(rng, beta, kappa)) for _ in range(20)]
    betas = np.array([f.beta for f in fits])
    assert abs(betas.mean() - beta) < 0.03  # bias: the mean of 20 fits, each with se ≈ 0.04
    assert np.all(np.abs(betas - beta) < 0.2)
    assert all(f.ci_low < f.beta < f.ci_high and 0 < f.dof <= 40 - 5 - 8 for f in fits)


def test_the_interval_covers_the_true_drift_at_its_nominal_rate_and_is_narrower_than_today():
    """300 synthetic sweeps per β: the 95% interval covers the truth in 91–99% of them (binomial sd 1.3%); the
    per-seed estimator's interval on the same sweeps is several times wider."""
    rng = np.random.default_rng(2026)
    for beta in GRIDS:
        hits, widths, old_widths = 0, [], []
        for k in range(300):
            curves = surface(rng, beta, kappa=0.4 if k % 2 else -0.4)
            fit = joint(curves)
            hits += fit.ci_low <= beta <= fit.ci_high
            widths.append(fit.ci_high - fit.ci_low)
            if k < 60:
                old = per_seed(curves)
                old_widths.append(old.ci_high - old.ci_low)
        assert 0.91 <= hits / 300 <= 0.99, (beta, hits)
        assert np.median(widths) < 0.4 * np.median(old_widths), (beta, np.median(widths), np.median(old_widths))


def test_seeds_that_move_the_whole_curve_widen_the_interval_through_the_lack_of_fit():
    """Each seed's optimum moved by 0.15 (in log2) at random, beyond the per-run noise: the widths' optima leave
    the line, ``F`` grows and the interval widens with it; without the widening it covers 83% (measured)."""
    rng = np.random.default_rng(11)
    fits = [joint(surface(rng, 0.0, kappa=0.4 if k % 2 else -0.4, shift=0.15)) for k in range(300)]
    hits = sum(f.ci_low <= 0.0 <= f.ci_high for f in fits)
    assert 0.89 <= hits / 300 <= 0.99, hits
    assert np.mean([f.lack_of_fit for f in fits]) > 1.5


def test_the_seed_bootstrap_agrees_with_the_fit_when_the_noise_is_per_run():
    rng = np.random.default_rng(3)
    for _ in range(2):
        lw, x, curve, seed, loss = stacked(surface(rng, 0.0, seeds=4))
        fit = fit_joint_optimum(lw, x, curve, loss)
        lo, hi = seed_bootstrap(lw, x, seed, loss, n_boot=150)
        assert lo <= fit.beta <= hi
        assert 0.4 < (hi - lo) / (fit.ci_high - fit.ci_low) < 1.6


def test_too_little_data_is_a_note_not_an_exception():
    one_width = fit_joint_optimum(np.full(6, 7.0), np.arange(6.0), np.zeros(6), np.arange(6.0) ** 2)
    assert math.isnan(one_width.beta) and "fewer than 2 widths" in one_width.note
    few = fit_joint_optimum(np.repeat([7.0, 8.0], 3), np.tile([0.0, 1, 2], 2), np.repeat([0, 1], 3), np.ones(6))
    assert math.isnan(few.beta) and "too few to fit" in few.note


def exact_model_sweep(rng, sigma: float, shared: np.ndarray | None = None, rho: float = 0.0) -> tuple[np.ndarray, ...]:
    """``(log2 d, x, curve, loss)`` of the fit's own model ``h_g + a·t²·(1 + κt)`` (β = −0.2, κ = 0.3) at 4 widths ×
    2 seeds × 5 points, with independent noise ``σ``, of which a share ``rho`` of the variance is ``shared``."""
    lw = np.repeat(np.log2(WIDTHS), 10)
    x = np.tile(np.arange(-9.0, -4.0), 8)
    curve = np.repeat(np.arange(8), 5)
    t = x - (-7.0 - 0.2 * (lw - lw.mean()))
    noise = rng.standard_normal(len(x)) if shared is None else math.sqrt(rho) * shared + math.sqrt(
        1 - rho) * rng.standard_normal(len(x))  # fmt: skip
    return lw, x, curve, 2.0 + 0.01 * curve + 0.03 * t * t * (1 + 0.3 * t) + sigma * noise


def test_the_curves_scores_estimate_the_variance_of_beta():
    """CR2's defining property: under independent noise on the fit's own model, ``E Σ_g s_g² = Var β̂``. 400 sweeps:
    the mean of ``Σ s²`` over the spread of β̂ lies within 20%, and each free optimum's within 30%. Unscaled
    residuals (CR0) would read about 0.7 of it here (27 residual degrees of freedom of 40 points), residuals scaled
    by ``(I − P)^-1`` (CR3) about 1.5."""
    rng = np.random.default_rng(5)
    betas, sums, optima, width_sums = [], [], [], []
    for _ in range(400):
        fit = fit_joint_optimum(*exact_model_sweep(rng, 0.01))
        betas.append(fit.beta)
        sums.append(float(np.sum(np.square(fit.scores))))
        optima.append(fit.width_optima)
        width_sums.append(np.sum(np.square(fit.width_scores), axis=0))
    assert fit.curves == tuple(float(k) for k in range(8)) and len(fit.scores) == 8
    assert 0.8 < np.mean(sums) / np.var(betas) < 1.2, (np.mean(sums), np.var(betas))
    assert np.mean(betas) == pytest.approx(-0.2, abs=0.01)
    # the same for the lack-of-fit test's free optimum at each width, from its own scores
    assert fit.log2_widths == tuple(np.log2(WIDTHS)) and np.shape(fit.width_scores) == (8, 4)
    ratio = np.mean(width_sums, axis=0) / np.var(optima, axis=0)
    assert ((ratio > 0.75) & (ratio < 1.3)).all(), ratio


def test_the_paired_interval_keeps_what_two_fits_share_and_covers():
    """Two configurations with the same β whose noise shares 80% of its variance: δ = 0 is covered in 91–99% of
    300 sweeps (t on 7 degrees of freedom), at under half the quadrature's width."""
    rng = np.random.default_rng(8)
    hits, paired_widths, quadrature_widths = 0, [], []
    for _ in range(300):
        shared = rng.standard_normal(40)
        a, b = (fit_joint_optimum(*exact_model_sweep(rng, 0.01, shared, rho=0.8)) for _ in range(2))
        p = paired_difference(a, b)
        assert p.delta == pytest.approx(a.beta - b.beta) and p.dof == 7 and p.shared == 8
        hits += p.ci_low <= 0.0 <= p.ci_high
        paired_widths.append(p.ci_high - p.ci_low)
        quadrature_widths.append(2 * math.hypot(a.ci_high - a.beta, b.ci_high - b.beta))
    assert 0.91 <= hits / 300 <= 0.99, hits
    assert np.median(paired_widths) < 0.5 * np.median(quadrature_widths)


def test_paired_difference_by_hand():
    """The same fit twice differs by exactly 0; fits of different curves add their scores in quadrature; free
    optima that differ by more than a line widen the interval by the root of their χ²/(W − 2); fewer than 3
    curves give no interval."""
    rng = np.random.default_rng(1)
    no_free = {"log2_widths": (), "width_optima": (), "width_scores": ()}  # nothing to test the widths by
    a = dataclasses.replace(fit_joint_optimum(*exact_model_sweep(rng, 0.01)), **no_free)
    same = paired_difference(a, a)
    assert (same.delta, same.se, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0, 0.0)
    lw, x, curve, loss = exact_model_sweep(rng, 0.01)
    b = dataclasses.replace(fit_joint_optimum(lw, x, curve + 100, loss), **no_free)  # other labels: nothing shared
    apart = paired_difference(a, b)
    assert apart.shared == 0 and apart.dof == 15
    assert apart.se == pytest.approx(math.hypot(np.linalg.norm(a.scores), np.linalg.norm(b.scores)))
    assert math.isnan(apart.lack_of_fit)
    assert fit_joint_optimum(lw, x, curve, loss, lack_of_fit=False).scores == ()  # the bootstrap's refits
    # free optima 0, 3, 0 apart at log2 d = 7, 8, 9, each with variance 1: the weighted line is flat at 1, χ² = 6
    unit = tuple((1.0, 1.0, 1.0) if k == 0 else (0.0, 0.0, 0.0) for k in range(8))
    free_a = dataclasses.replace(a, log2_widths=(7.0, 8.0, 9.0), width_optima=(0.0, 3.0, 0.0), width_scores=unit)
    free_b = dataclasses.replace(b, log2_widths=(7.0, 8.0, 9.0), width_optima=(0.0, 0.0, 0.0),
                                 width_scores=tuple((0.0,) * 3 for _ in range(8)))  # fmt: skip
    assert paired_lack_of_fit(free_a, free_b) == pytest.approx(6.0)
    wide = paired_difference(free_a, free_b)
    assert wide.lack_of_fit == pytest.approx(6.0) and wide.se == pytest.approx(math.sqrt(6) * apart.se)
    assert math.isnan(paired_lack_of_fit(free_a, dataclasses.replace(free_b, log2_widths=(7.0, 10.0, 11.0))))
    few = paired_difference(dataclasses.replace(a, curves=(0.0, 1.0), scores=(0.1, 0.2)),
                            dataclasses.replace(a, curves=(0.0, 1.0), scores=(0.0, 0.1)))  # fmt: skip
    assert math.isnan(few.ci_low) and few.note == "2 curves"
