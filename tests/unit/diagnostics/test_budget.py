"""The sweep's memory estimate is the arithmetic the module states, and a sweep that cannot fit is refused before
anything is allocated, with one line naming the value."""

from __future__ import annotations

import pytest

from mhc_mup.diagnostics.budget import SAMPLE_SERIES, WORKING_COPIES, available_memory, check_memory, estimate_memory
from mhc_mup.diagnostics.config import SamplingSettings, SweepConfig
from mhc_mup.errors import ResourceError


def test_the_estimate_is_the_widest_chunk_and_the_kept_samples():
    cfg = SweepConfig(widths=(64, 4096), sampling=SamplingSettings(sensitivity_samples=30, update_samples=20))
    per_sample = (2 + 4) * 4 * 4 * 4096  # generator entries of one sample at the widest width
    est = estimate_memory(cfg)
    assert est.widest == 4096
    assert est.working == WORKING_COPIES * per_sample * 30 * 4  # 30 samples fit in one chunk of 2^24 entries
    kept_per_width = 30 * SAMPLE_SERIES["sensitivity"] + 20 * SAMPLE_SERIES["update"] + 64 * SAMPLE_SERIES["state"]
    assert est.kept == 8 * (2 * kept_per_width + 100 * SAMPLE_SERIES["quotient"] * 6)
    wide = SweepConfig(widths=(64, 2**22))  # one sample is over 2^24 entries: a chunk is one sample
    assert estimate_memory(wide).working == WORKING_COPIES * 96 * 2**22 * 4


def test_default_sweep_fits_and_a_huge_one_is_refused_naming_the_value():
    assert check_memory(SweepConfig(), available=10**9).total < 10**9
    with pytest.raises(ResourceError, match=r"^width 1000000000 needs about 1\.4 TB .* cpu has 1 GB available"):
        check_memory(SweepConfig(widths=(64, 10**9)), available=2**30)
    with pytest.raises(ResourceError, match=r"^100000000000000000000 samples need about .* use fewer samples"):
        many = SamplingSettings(sensitivity_samples=10**20, update_samples=10**20)
        check_memory(SweepConfig(widths=(32, 64), sampling=many), available=2**30)


def test_available_memory_is_a_positive_number_of_bytes():
    assert available_memory("cpu") > 2**20


def test_the_cpu_time_estimate_reproduces_the_recorded_large_sweep():
    """benchmarks/results/bench_core_cpu_1thread.json: diagnostics 4 and 5 of the large sweep took 23.0 s."""
    import json
    from pathlib import Path

    from mhc_mup.diagnostics.budget import estimate_cpu_seconds

    record = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "bench_core_cpu_1thread.json"
    large = json.loads(record.read_text())["large"]
    spent = large["seconds"]["dynamic_sensitivity"] + large["seconds"]["logit_update"]
    n = large["samples_diag_4_5"]
    cfg = SweepConfig(widths=tuple(large["widths"]), sampling=SamplingSettings(sensitivity_samples=n, update_samples=n))
    assert estimate_cpu_seconds(cfg) == pytest.approx(spent, rel=0.05)
    wider = SweepConfig(widths=tuple(large["widths"]), n_s=8, sensitivity_samples=n, update_samples=n)
    assert estimate_cpu_seconds(wider) == pytest.approx(8 * estimate_cpu_seconds(cfg))  # n_s³
