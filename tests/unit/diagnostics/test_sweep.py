"""The width sweep: determinism, independence of widths, and the seed's findings reproduced."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from mhc_mup.diagnostics.sweep import ConfigError, SweepConfig, run_sweep

SMALL = SweepConfig(
    widths=(16, 32, 64),
    sensitivity_samples=8,
    update_samples=8,
    quotient_samples=10,
    quotient_K=(1, 20),
    state_tokens=8,
    n_boot=50,
)


def test_same_seed_same_numbers_other_seed_other_numbers():
    a, b = run_sweep(SMALL), run_sweep(SMALL)
    for w in SMALL.widths:
        assert a.summary(w) == b.summary(w)
    c = run_sweep(SweepConfig(**{**SMALL.__dict__, "seed": 1}))
    assert c.summary(16)["dynamic_sensitivity"] != a.summary(16)["dynamic_sensitivity"]


def test_a_widths_numbers_do_not_depend_on_the_other_widths():
    a = run_sweep(SMALL)
    b = run_sweep(SweepConfig(**{**SMALL.__dict__, "widths": (64, 32)}))
    assert a.summary(32) == b.summary(32) and a.summary(64) == b.summary(64)


def test_chunking_bounds_memory_without_changing_the_distribution():
    per_sample = 24 * 4 * 64  # generator entries of one sample at width 64
    cfg = SweepConfig(**{**SMALL.__dict__, "chunk_elements": 7 * per_sample, "sensitivity_samples": 200})
    chunked = run_sweep(cfg).samples[64]["dynamic_sensitivity"]["dc_x"]
    whole = run_sweep(SweepConfig(**{**cfg.__dict__, "chunk_elements": 1 << 30})).samples[64]
    whole = whole["dynamic_sensitivity"]["dc_x"]
    assert len(chunked) == len(whole) == 200
    # different draws, same law: the means agree within a few standard errors
    se = np.hypot(chunked.std(), whole.std()) / np.sqrt(200)
    assert abs(chunked.mean() - whole.mean()) < 4 * se


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"widths": (64,)}, "at least 2 widths"),
        ({"widths": (64, 0)}, "positive integers, got 0"),
        ({"widths": (64, 64)}, "width 64 is given more than once"),
        ({"n_s": 1}, "n_s must be an integer >= 2, got 1"),
        ({"K": 0}, "K must be an integer >= 1, got 0"),
        ({"sensitivity_samples": 1}, "sensitivity samples must be an integer >= 2, got 1"),
        ({"device": "tpu"}, "device 'tpu'"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"confidence": 1.0}, "confidence"),
    ],
)
def test_config_validation_names_the_bad_value(change, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**{**SMALL.__dict__, **change}).validate()


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine (CPU CI)")
def test_cuda_sweep_agrees_with_cpu_in_law():
    """CUDA draws differ from CPU draws; the measured laws must not."""
    cfg = SweepConfig(sensitivity_samples=200, update_samples=200)
    cpu, gpu = run_sweep(cfg), run_sweep(SweepConfig(**{**cfg.__dict__, "device": "cuda"}))
    for key in ("dc_x_mean", "dp_x_mean", "dq_x_mean"):
        assert gpu.fit("dynamic_sensitivity", key).exponent == pytest.approx(
            cpu.fit("dynamic_sensitivity", key).exponent, abs=0.02
        )
    for w in cfg.widths:
        assert gpu.summary(w)["sinkhorn_error"]["eps_K_mean"] == pytest.approx(1e-6, rel=0.2)
        g, c = gpu.summary(w)["dynamic_sensitivity"], cpu.summary(w)["dynamic_sensitivity"]
        assert g["dc_x_mean"] == pytest.approx(c["dc_x_mean"], rel=0.05)
