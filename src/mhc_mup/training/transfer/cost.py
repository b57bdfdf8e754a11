"""What a transfer sweep will cost, said before it starts: its runs, steps and tokens, and the GPU time the same
runs took on a recorded machine.

The record is one H100's (torch 2.11; 16 × 128 bytes a step, depth 2, 4 heads, fused kernels, 300 steps,
``benchmarks/bench_transfer_sweep.sh``, ``benchmarks/results/bench_transfer_sweep_h100.json``): the training
seconds per step and the rest of a run (model build, capture, validations), for the mHC model and the control,
captured and eager, at widths 128 … 1024. Other widths are interpolated (extrapolated) in log-log; other
settings scale the step time by tokens per step × depth, which overstates small widths, whose steps are bound
by launches rather than arithmetic. An estimate to plan by, not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mhc_mup.training.transfer.config import RunKey, TransferConfig

__all__ = ["RECORDED_WIDTHS", "RUN_SECONDS", "STEP_SECONDS", "SweepCost", "estimate_cost"]

RECORDED_WIDTHS = (128, 256, 512, 1024)
STEP_SECONDS = {  # (mHC, captured) → training seconds per step at RECORDED_WIDTHS (train_seconds / 300)
    (True, True): (0.00167, 0.00200, 0.00277, 0.00583),
    (True, False): (0.01010, 0.01000, 0.01120, 0.01453),
    (False, True): (0.00093, 0.00107, 0.00140, 0.00253),
    (False, False): (0.00387, 0.00393, 0.00387, 0.00397),
}
RUN_SECONDS = {  # (mHC, captured) → the rest of a run, seconds (seconds − train_seconds)
    (True, True): (0.18, 0.19, 0.22, 1.56),
    (True, False): (0.16, 0.30, 0.41, 1.76),
    (False, True): (0.06, 0.07, 0.10, 0.29),
    (False, False): (0.05, 0.06, 0.10, 0.29),
}
_RECORDED_TOKENS_X_DEPTH = 16 * 128 * 2


@dataclass(frozen=True)
class SweepCost:
    """The runs still to train and what they amount to; ``gpu_seconds`` on the recorded H100 (None off CUDA)."""

    runs: int
    pending: int
    steps: int
    tokens: int
    gpu_seconds: float | None

    def describe(self) -> str:
        head = (f"{self.pending} of {self.runs} runs to train: {self.steps:,} steps, {self.tokens / 1e6:,.1f} M "
                "tokens")  # fmt: skip
        if self.gpu_seconds is None:
            return f"{head}; no GPU time estimate on the CPU (a short --steps run measures one)"
        return f"{head}; about {_duration(self.gpu_seconds)} of one H100 (from recorded runs; rough, see docs)"


def estimate_cost(cfg: TransferConfig, pending: Sequence[RunKey], cuda: bool) -> SweepCost:
    """The cost of training ``pending`` (runs of ``cfg``'s grid) on one GPU, one run at a time."""
    train = cfg.recipe.train
    tokens_per_step = train.batch_size * train.seq_len
    steps, tokens = len(pending) * train.steps, len(pending) * train.steps * tokens_per_step
    if not cuda:
        return SweepCost(len(cfg.runs()), len(pending), steps, tokens, None)
    captured = cfg.run_settings().numerics.cuda_graphs == "on"
    scale = max(1.0, tokens_per_step * cfg.model.depth / _RECORDED_TOKENS_X_DEPTH)
    hc = {c.name: c.hc for c in cfg.grid.configs}
    seconds = 0.0
    for key in pending:
        kind = (hc[key.config], captured)
        per_step = _interpolate(STEP_SECONDS[kind], key.width)
        seconds += per_step * scale * train.steps + _interpolate(RUN_SECONDS[kind], key.width)
    return SweepCost(len(cfg.runs()), len(pending), steps, tokens, seconds)


def _interpolate(values: Sequence[float], width: int) -> float:
    """``values`` at :data:`RECORDED_WIDTHS`, piecewise linear in log-log, extended linearly beyond the ends."""
    x, y = np.log2(RECORDED_WIDTHS), np.log2(values)
    t = math.log2(width)
    i = int(np.clip(np.searchsorted(x, t) - 1, 0, len(x) - 2))
    slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    return float(2 ** (y[i] + slope * (t - x[i])))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
