"""The seed's findings reproduced by a whole width sweep at its defaults (widths 64..1024, n_s 4, K 20).

Statistical: each check reads a mean, a fit or a bootstrap interval of the sweep's samples (seed 0, the seed's
sample counts) against the seed's published numbers. Marked ``slow``: ``pytest -m "not slow"`` leaves them
out of a quick local loop; CI runs them.
"""

from __future__ import annotations

import itertools

import pytest

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.diagnostics.sweep import run_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seed_run():
    """The seed's default run: widths 64..1024, n_s 4, K 20, 30/30/100 samples, σ_W 0.02, s 0.1."""
    return run_sweep(SweepConfig())


def test_seed_findings_sinkhorn_and_spectral(seed_run):
    for w in seed_run.config.widths:
        s = seed_run.summary(w)
        assert s["sinkhorn_error"]["eps_K_mean"] == pytest.approx(1e-6, rel=0.2)  # ε_K ≈ hc_eps
        assert 1 - s["spectral_norm"]["spectral_norm_mean"] == pytest.approx(1e-6, rel=0.2)  # ‖C‖₂ ≈ 1 − 1e-6
        assert s["spectral_norm"]["spectral_norm_max"] <= 1.0


def test_seed_findings_quotient_jacobian(seed_run):
    q = seed_run.summary(64)["quotient_jacobian"]
    for k in ("K=1", "K=2", "K=5", "K=10", "K=20", "K=50"):
        assert q[k]["sigma_max_mean"] == pytest.approx(0.355, abs=0.02)
        assert 6.0 <= q[k]["kappa_mean"] <= 11.0  # the seed: 7–10, heavy-tailed
    assert q["K=1"]["gauge_leakage_mean"] == pytest.approx(0.28, abs=0.03)
    assert q["K=2"]["gauge_leakage_mean"] == pytest.approx(0.09, abs=0.02)
    assert q["K=20"]["gauge_leakage_mean"] < 1e-5
    assert q["K=20"]["gauge_leakage_median"] < 1e-9  # typical Z: converged far below the heavy-tailed mean
    leak = [q[f"K={k}"]["gauge_leakage_mean"] for k in (1, 2, 5, 10, 20, 50)]
    assert all(a > b for a, b in itertools.pairwise(leak))  # decays with K


def test_seed_findings_gates_and_update(seed_run):
    for w in seed_run.config.widths:
        g = seed_run.summary(w)["gate_stats"]
        assert g["pre_mean"] == pytest.approx(0.5, abs=0.01)
        assert g["pre_l1_mean"] == pytest.approx(2.0, abs=0.04)
        assert g["post_mean"] == pytest.approx(1.0, abs=0.02)
        assert seed_run.summary(w)["logit_update"]["perp_ratio_mean"] > 0.99
    # the seed's table: ‖Π⊥ΔZ‖ 0.00317 at d = 64 → 0.0383 at d = 1024, i.e. ≈ d^0.9, not √d
    pp = seed_run.fit("logit_update", "proj_perp_norm_mean")
    assert 0.8 < pp.exponent < 1.0 and not pp.contains(0.5)


def test_seed_headline_dc_scales_like_d(seed_run):
    fit = seed_run.fit("dynamic_sensitivity", "dc_x_mean")
    assert fit.exponent == pytest.approx(0.98, abs=0.02)
    assert fit.contains(1.0)
    assert fit.ci_high - fit.ci_low < 0.1
    dc64 = seed_run.summary(64)["dynamic_sensitivity"]["dc_x_mean"]
    dc1024 = seed_run.summary(1024)["dynamic_sensitivity"]["dc_x_mean"]
    assert dc64 == pytest.approx(0.147, rel=0.05) and dc1024 == pytest.approx(2.235, rel=0.05)
    for key in ("dp_x_mean", "dq_x_mean"):
        assert seed_run.fit("dynamic_sensitivity", key).exponent == pytest.approx(0.98, abs=0.02)
