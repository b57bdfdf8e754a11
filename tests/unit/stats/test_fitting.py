"""Power-law fits: exact recovery, honest coverage, and clear failure modes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mhc_mup.errors import ConfigError
from mhc_mup.stats.fitting import (
    FitSettings,
    fit_power_law,
    fit_power_laws,
    mean,
    mean_t_interval,
    t_quantile,
    two_width_interval,
    welch_slope_interval,
)

WIDTHS = [64, 128, 256, 512, 1024]


def test_t_quantile_matches_closed_forms():
    """One degree of freedom is the Cauchy law, t = tan(π·c/2); two have t = √(2 / (1 − c²) − 2); many, the normal."""
    for c in (0.5, 0.9, 0.95, 0.99):
        assert t_quantile(1, c) == pytest.approx(math.tan(math.pi * c / 2), rel=1e-12)
        assert t_quantile(2, c) == pytest.approx(math.sqrt(2 / (1 - c * c) - 2), rel=1e-12)
    assert t_quantile(1e9, 0.95) == pytest.approx(1.959963984540054, rel=1e-8)


def test_exact_power_law_is_recovered():
    samples = [np.full(10, 3.0 * w**0.75) for w in WIDTHS]
    fit = fit_power_law(WIDTHS, samples)
    assert fit.exponent == pytest.approx(0.75, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.ci_low == pytest.approx(0.75, abs=1e-10) and fit.ci_high == pytest.approx(0.75, abs=1e-10)


def test_bootstrap_interval_covers_the_truth_at_about_the_nominal_rate():
    """Noisy samples around 2·d^0.5: the 95% interval should contain 0.5 in most of 200 experiments."""
    rng = np.random.default_rng(0)
    hits = 0
    for trial in range(200):
        samples = [2.0 * w**0.5 * rng.lognormal(0.0, 0.3, size=30) / math.exp(0.045) for w in WIDTHS]
        fit = fit_power_law(WIDTHS, samples, n_boot=400, seed=trial)
        hits += fit.contains(0.5)
        assert fit.ci_low <= fit.exponent <= fit.ci_high
    assert hits >= 180  # ≥ 90% observed for a nominal 95% interval (binomial sd ≈ 3%)


def test_curvature_widens_the_interval_beyond_the_bootstrap():
    """A bent log-log curve with no noise: the bootstrap is a point, the regression interval is not."""
    samples = [np.full(5, w * (1 - 4 / math.sqrt(w))) for w in WIDTHS]
    fit = fit_power_law(WIDTHS, samples)
    assert fit.boot_high - fit.boot_low < 1e-12
    assert fit.ols_high - fit.ols_low > 0.01
    assert fit.ci_low == fit.ols_low and fit.ci_high == fit.ols_high



@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_regression_interval_is_the_textbook_t_interval(confidence):
    """``[ols_low, ols_high]`` = slope ± t_{W−2}((1+c)/2)·se, as scipy.stats computes it from ``linregress``."""
    from scipy import stats

    samples = [np.full(3, w * (1 - 4 / math.sqrt(w))) for w in WIDTHS]
    fit = fit_power_law(WIDTHS, samples, confidence=confidence)
    line = stats.linregress(np.log(WIDTHS), np.log([s[0] for s in samples]))
    half = stats.t.ppf((1 + confidence) / 2, len(WIDTHS) - 2) * line.stderr
    assert fit.ols_low == pytest.approx(line.slope - half, rel=1e-12)
    assert fit.ols_high == pytest.approx(line.slope + half, rel=1e-12)

def test_statistics_other_than_the_mean():
    rng = np.random.default_rng(1)
    samples = [w**-0.3 * rng.exponential(size=200) for w in WIDTHS]
    fit = fit_power_law(WIDTHS, samples, lambda a: np.median(a, axis=-1))
    assert fit.contains(-0.3)


def test_two_widths_use_the_bootstrap_only():
    fit = fit_power_law([64, 128], [np.array([1.0, 1.1, 0.9]), np.array([2.0, 2.2, 1.8])])
    assert fit.exponent == pytest.approx(1.0)
    assert math.isnan(fit.ols_low) and "bootstrap only" in fit.note
    assert fit.ci_low == fit.boot_low


def test_non_positive_statistic_gives_nan_with_a_note():
    fit = fit_power_law(WIDTHS, [np.array([0.0, 0.0])] + [np.ones(2)] * 4)
    assert math.isnan(fit.exponent) and "not positive" in fit.note


def test_draws_without_a_finite_statistic_are_dropped_and_counted():
    """A statistic that is NaN for some resamples (an edge left open, a median above a cap): those draws leave
    the interval and the note counts them. Here NaN when 2 or 3 of 3 draws pick the outlier: 7/27 of draws."""

    def capped_median(a: np.ndarray) -> np.ndarray:
        m = np.median(a, axis=-1)
        return np.where(m > 100, math.nan, m)

    n_boot = 2000
    fit = fit_power_law([64, 128, 256], [np.array([1.0, 1.0, 1000.0]), np.full(3, 2.0), np.full(3, 4.0)],
                        capped_median, n_boot=n_boot)  # fmt: skip
    dropped = int(fit.note.split(" of ")[0])
    assert abs(dropped - n_boot * 7 / 27) < 5 * math.sqrt(n_boot * 7 / 27 * 20 / 27)
    assert "not positive and finite" in fit.note and fit.exponent == pytest.approx(1.0)
    assert fit.boot_low == pytest.approx(1.0) and fit.boot_high == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("widths", "message"),
    [([64], "at least 2 distinct widths"), ([64, 64], "at least 2 distinct widths")],
)
def test_bad_widths(widths, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(widths, [np.ones(3)] * len(widths))


def test_paired_series_share_resamples():
    """Several series measured on the same draws: one set of indices per width serves them all, so each
    fit equals the single-series fit with the same seed, and mismatched sample counts are refused."""
    rng = np.random.default_rng(3)
    widths = [64, 128, 256, 512]
    a = [rng.lognormal(np.log(w) * 0.5, 0.2, size=20) for w in widths]
    b = [rng.lognormal(-np.log(w) * 0.3, 0.4, size=20) for w in widths]
    fits = fit_power_laws(
        widths, {"a": a, "b": b}, {"a_mean": ("a", mean), "b_std": ("b", lambda v: v.std(axis=-1))}, seed=9
    )
    assert fits["a_mean"] == fit_power_law(widths, a, mean, seed=9)
    assert fits["b_std"] == fit_power_law(widths, b, lambda v: v.std(axis=-1), seed=9)
    with pytest.raises(ValueError, match="same number of samples"):
        fit_power_laws(widths, {"a": a, "c": [x[:10] for x in b]}, {"m": ("a", mean)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_boot": 0}, "n_boot must be an integer >= 1, got 0"),
        ({"n_boot": 10.0}, "n_boot must be an integer >= 1, got 10.0"),
        ({"confidence": 1.0}, "confidence must lie strictly between 0 and 1, got 1.0"),
        ({"confidence": 0}, "confidence must lie strictly between 0 and 1, got 0"),
    ],
)
def test_fit_settings_name_the_bad_value(change, message):
    with pytest.raises(ConfigError, match=message):
        FitSettings(**change)


def test_scipy_is_imported_only_when_a_regression_interval_is_needed():
    """``import mhc_mup.stats.fitting`` must not pay for scipy.stats (CLI start-up)."""
    import subprocess
    import sys

    code = "import sys, mhc_mup.stats.fitting; print('scipy.stats' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_welch_slope_interval_is_scipys_welch_interval_over_the_spacing():
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(3)
    for n_a, n_b, dx in ((3, 3, 3.0), (2, 5, 1.0), (4, 2, -2.0)):
        a, b = rng.normal(0.0, 0.3, n_a), rng.normal(-0.5, 0.1, n_b)
        ci = ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
        expected = sorted((ci.low / dx, ci.high / dx))
        assert welch_slope_interval(a, b, dx, 0.9) == pytest.approx(expected, rel=1e-10)
    assert welch_slope_interval(np.ones(3), np.full(2, 3.0), 2.0) == (1.0, 1.0)  # no spread: the point
    with pytest.raises(ValueError, match="at least 2 values, got 1 and 3"):
        welch_slope_interval(np.ones(1), np.ones(3), 1.0)


def test_two_width_interval_is_the_union_of_the_bootstrap_and_welch():
    """With a geometric-mean statistic the fit's exponent is the seeds' mean slope, Welch's centre; ``centred``
    moves Welch's half-width onto the exponent of any other statistic; a NaN bound leaves the other's."""
    a, b = np.log2([1.0, 1.5, 3.0]), np.log2([0.4, 0.5, 0.9])  # log2 values at d = 128 and 256

    def geomean(v: np.ndarray) -> np.ndarray:
        return np.exp(np.log(v).mean(axis=-1))

    fit = fit_power_law([128, 256], [2.0**a, 2.0**b], geomean, n_boot=500)
    assert "bootstrap only" in fit.note
    w_low, w_high = welch_slope_interval(a, b, 1.0)
    assert fit.exponent == pytest.approx((w_low + w_high) / 2)
    low, high, note = two_width_interval(fit, a, b, 1.0)
    assert w_low < fit.ci_low and w_high > fit.ci_high  # three seeds: the bootstrap alone is the narrower
    assert (low, high) == (w_low, w_high)
    assert "united with the seeds' Welch t-interval" in note and "bootstrap only" not in note
    arithmetic = fit_power_law([128, 256], [2.0**a, 2.0**b], n_boot=500)  # the mean of 2^x: another exponent
    low, high, _ = two_width_interval(arithmetic, a, b, 1.0, centred=True)
    assert (low + high) / 2 == pytest.approx(arithmetic.exponent) and high - low == pytest.approx(w_high - w_low)
    nan_fit = dataclasses.replace(fit, ci_low=math.nan, ci_high=math.nan)
    assert two_width_interval(nan_fit, a, b, 1.0)[:2] == (w_low, w_high)


def test_mean_t_interval_is_scipys_t_interval_of_the_mean():
    from scipy.stats import t

    values = np.array([-6.78, -6.74, -6.75, -6.70])
    want = t.interval(0.9, len(values) - 1, loc=values.mean(), scale=values.std(ddof=1) / 2)
    assert mean_t_interval(values, 0.9) == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        mean_t_interval(np.ones(1))
