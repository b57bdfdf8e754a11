"""The width sweep: determinism, independence of widths, chunking, validation (the seed's findings reproduced
at its defaults: tests/integration/test_seed_findings.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.diagnostics.sweep import run_sweep
from mhc_mup.errors import ConfigError

SMALL = SweepConfig(
    widths=(16, 32, 64),
    sensitivity_samples=8,
    update_samples=8,
    quotient_samples=10,
    quotient_K=(1, 20),
    state_tokens=8,
    n_boot=50,
)


@pytest.fixture(scope="module")
def small_run():
    """``run_sweep(SMALL)``, once for the module: the tests below compare other runs with it."""
    return run_sweep(SMALL)


def test_same_seed_same_numbers_other_seed_other_numbers(small_run):
    a, b = small_run, run_sweep(SMALL)
    for w in SMALL.widths:
        assert a.summary(w) == b.summary(w)
    c = run_sweep(SweepConfig(**{**SMALL.__dict__, "seed": 1}))
    assert c.summary(16)["dynamic_sensitivity"] != a.summary(16)["dynamic_sensitivity"]


def test_a_widths_numbers_do_not_depend_on_the_other_widths(small_run):
    a = small_run
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


@pytest.mark.slow
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
