"""What a width sweep needs in memory, estimated before anything is allocated, and the refusal of a sweep that
cannot fit on its device.

Diagnostics 4 and 5 draw generator weights ``((2+n_s)·n_s, n_s·d)`` per sample, in chunks of at most
``chunk_elements`` entries but never less than one sample; the step that works on a chunk holds a few copies of
it (the weights, their gradient or Adam direction, products). Measured on the CPU at d = 2^18 and 2^20 with one
sample per chunk, the peak above the interpreter's was 1.5 and 1.9 times the chunk's bytes; the estimate takes
:data:`WORKING_COPIES` times. Every sample's values are kept until the fits: :data:`SAMPLE_SERIES` float64
numbers per sample and width.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.errors import ResourceError

__all__ = [
    "CPU_SECONDS_PER_SAMPLE_WIDTH", "SAMPLE_SERIES", "WORKING_COPIES", "MemoryEstimate", "available_memory",
    "check_memory", "estimate_cpu_seconds", "estimate_memory",
]

WORKING_COPIES = 4
# Diagnostics 4 and 5 on the CPU cost about this many seconds per sample and unit of width at n_s = 4, growing as
# n_s³ (the generator's entries per sample): the large sweep of benchmarks/README.md (widths 64…8192, 1000
# samples each) spent 23 s in them on the 2-core AMD EPYC box, 7e-7 s per sample·width·diagnostic.
CPU_SECONDS_PER_SAMPLE_WIDTH = 7e-7
SAMPLE_SERIES = {"sensitivity": 17, "update": 6, "state": 12, "quotient": 8}  # values kept per sample
_ITEMSIZE = {"float32": 4, "float64": 8}


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a sweep: the widest chunk's working set and every sample's kept values."""

    working: int
    kept: int
    widest: int  # the width whose chunk is largest

    @property
    def total(self) -> int:
        return self.working + self.kept


def estimate_memory(cfg: SweepConfig) -> MemoryEstimate:
    """Bytes ``cfg`` needs at its peak (see the module docstring); pure arithmetic, nothing allocated."""
    n_s, s = cfg.shape.n_s, cfg.sampling
    samples = max(s.sensitivity_samples, s.update_samples)

    def chunk_entries(width: int) -> int:
        per_sample = (2 + n_s) * n_s * n_s * width
        return per_sample * max(1, min(samples, cfg.chunk_elements // per_sample))

    widest = max(cfg.widths, key=chunk_entries)
    working = WORKING_COPIES * chunk_entries(widest) * _ITEMSIZE[cfg.dtype]
    per_width = (
        s.sensitivity_samples * SAMPLE_SERIES["sensitivity"]
        + s.update_samples * SAMPLE_SERIES["update"]
        + s.state_tokens * SAMPLE_SERIES["state"]
    )
    kept = 8 * (per_width * len(cfg.widths) + s.quotient_samples * SAMPLE_SERIES["quotient"] * len(s.quotient_K))
    return MemoryEstimate(working, kept, widest)


def estimate_cpu_seconds(cfg: SweepConfig) -> float:
    """Seconds diagnostics 4 and 5 take on the CPU (the rest of a sweep is small beside them): rough, from one
    machine (:data:`CPU_SECONDS_PER_SAMPLE_WIDTH`)."""
    samples = cfg.sampling.sensitivity_samples + cfg.sampling.update_samples
    return CPU_SECONDS_PER_SAMPLE_WIDTH * samples * sum(cfg.widths) * (cfg.shape.n_s / 4) ** 3


def available_memory(device: str) -> int:
    """Bytes free for the sweep on ``device``: CUDA's free memory, or the system's available memory."""
    if device != "cpu":
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(cfg: SweepConfig, available: int | None = None) -> MemoryEstimate:
    """The estimate, or :class:`ResourceError` naming the value that does not fit and what it would need."""
    need = estimate_memory(cfg)
    have = available_memory(cfg.device) if available is None else available
    if need.total <= have:
        return need
    if need.working >= need.kept:
        what = (
            f"width {need.widest} needs about {_size(need.working)} for one chunk of diagnostics 4 and 5 "
            f"(generator weights {(2 + cfg.shape.n_s) * cfg.shape.n_s} × {cfg.shape.n_s * need.widest}, {cfg.dtype})"
        )
        hint = "use smaller widths, fewer streams (--n-s) or a device with more memory"
    else:
        samples = max(cfg.sampling.sensitivity_samples, cfg.sampling.update_samples)
        what = f"{samples} samples need about {_size(need.kept)} to keep every sample's values"
        hint = "use fewer samples (--samples)"
    raise ResourceError(f"{what}; {cfg.device} has {_size(have)} available: {hint}")


def _size(n: float) -> str:
    if n < 1024**3:
        return f"{n / 1024**2:.0f} MB"
    exponent = min(int(math.log(n, 1024)), 8)
    unit = ["B", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"][exponent]
    return f"{n / 1024**exponent:.3g} {unit}"
