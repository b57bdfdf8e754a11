"""What a transfer sweep will cost, said before it starts: its runs, steps and tokens, and the GPU time the same
runs took on a recorded machine.

The record is one H100's (torch 2.11; 16 × 128 bytes a step, depth 2, 4 heads, fused kernels, 300 steps,
``benchmarks/bench_transfer_sweep.sh``): the training seconds per step and the rest of a run (model build,
routing probes, validations), for the mHC model and the control, at widths 128 … 1024. Captured runs are from the
runs' ``stage_seconds`` (``benchmarks/results/transfer_run_stages_h100.txt``): steady-state runs, plus what a
command's first run pays once (:data:`START_SECONDS`: set-up, Triton compiling the fused kernels on a cold cache)
and the first mHC run at each new width (:data:`NEW_WIDTH_SECONDS`: the kernels compiled for that width). Eager
runs are the means of ``benchmarks/results/bench_transfer_sweep_h100.json``, warm-up included. Other widths are
interpolated (extrapolated) in log-log; other settings scale the step time by tokens per step × depth, which
overstates small widths, whose steps are bound by launches rather than arithmetic. Runs taking turns on one GPU
(``--runs-per-gpu``) divide the total by :data:`IN_TURNS_SPEEDUP`, measured on the same grid. With ``--compile``
the captured step time is multiplied by :data:`COMPILED_STEP_RATIO` and the compilations are added
(:data:`COMPILE_START_SECONDS` once, :data:`COMPILE_SECONDS` per configuration and width; host work, not divided
by the runs in turns), from ``benchmarks/results/bench_compile_cost_h100.log`` (32 × 256 bytes a step: smaller
steps save less, so the estimate is low for them). A folder that already holds finished GPU runs rescales the step
times to them, per model kind and width (:func:`calibration`): a resumed sweep is priced from its own
measurements, on the GPU they ran on. An estimate to plan by, not a measurement.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mhc_mup.training.transfer.config import RunKey, TransferConfig

__all__ = [
    "COMPILED_STEP_RATIO", "COMPILED_WIDTHS", "COMPILE_SECONDS", "COMPILE_START_SECONDS", "IN_TURNS_SPEEDUP",
    "NEW_WIDTH_SECONDS", "RECORDED_WIDTHS", "RUN_SECONDS", "START_SECONDS", "STEP_SECONDS", "Calibration",
    "SweepCost", "calibration", "estimate_cost", "step_seconds",
]  # fmt: skip

RECORDED_WIDTHS = (128, 256, 512, 1024)
STEP_SECONDS = {  # (mHC, captured) → training seconds per step at RECORDED_WIDTHS (train_seconds / 300)
    (True, True): (0.00164, 0.00198, 0.00270, 0.00484),
    (True, False): (0.01010, 0.01000, 0.01120, 0.01453),
    (False, True): (0.00095, 0.00111, 0.00141, 0.00256),
    (False, False): (0.00387, 0.00393, 0.00387, 0.00397),
}
RUN_SECONDS = {  # (mHC, captured) → the rest of a run, seconds (seconds − train_seconds)
    (True, True): (0.22, 0.28, 0.29, 0.67),
    (True, False): (0.16, 0.30, 0.41, 1.76),
    (False, True): (0.08, 0.12, 0.14, 0.51),
    (False, False): (0.05, 0.06, 0.10, 0.29),
}
START_SECONDS = 16.8
"""A captured command's first run (mHC at d = 1024) less a later one (19.1 s), less that width's compilation
(:data:`NEW_WIDTH_SECONDS`): process set-up and the fused kernels' first compilation on a cold Triton cache (an
upper bound: the cache on disk makes later commands cheaper)."""
NEW_WIDTH_SECONDS = (0.29, 1.33, 2.25, 2.25)
"""The first captured mHC run at each width less a later one, at RECORDED_WIDTHS (the kernels compiled for it; at
1024, where it was the command's first run, taken as 512's)."""
IN_TURNS_SPEEDUP = {1: 1.0, 2: 1.39, 4: 1.56}
"""Runs per GPU-hour of N captured runs taking turns on one GPU over one at a time
(``benchmarks/results/bench_transfer_sweep_turns_h100.txt``); between them interpolated in log2 N, beyond 4 held
at 4's (not measured). Measured before each run had its own stream (``GraphedSteps``), while the runs shared a
cuBLAS workspace."""
COMPILED_WIDTHS = (256, 2048)
COMPILED_STEP_RATIO = {True: (1.90 / 2.78, 16.22 / 22.08), False: (1.10 / 1.54, 12.06 / 14.51)}
"""mHC → a ``torch.compile``'d captured step's time over the plain captured one at :data:`COMPILED_WIDTHS`;
between them interpolated in log2 d, beyond them held."""
COMPILE_SECONDS = {True: 6.1, False: 3.1}
"""mHC → seconds to compile one configuration at one width (the model's forward and backward)."""
COMPILE_START_SECONDS = 5.9
"""What a process's first compilation costs on top (12.0 s for the mHC model at d = 256, against 6.1 s later)."""
_RECORDED_TOKENS_X_DEPTH = 16 * 128 * 2


@dataclass(frozen=True)
class Calibration:
    """A folder's own runs against the recorded step times: per model kind (``True``: mHC, ``False``: the
    control) and width it ran at, the median over its runs on ``device`` of measured / estimated seconds per
    training step (``ratio[(mhc, width)]``), how many runs of each kind those medians are over, and how many of
    them took turns with others (``in_turns``)."""

    ratio: Mapping[tuple[bool, int], float]
    runs: Mapping[bool, int]
    device: str
    in_turns: int = 0

    def factor(self, mhc: bool, width: int) -> float | None:
        """The step-time factor of kind ``mhc`` at ``width``: the measured one there; between measured widths
        interpolated in log2 d, beyond them the nearest one's (the recorded figures' error grows with the distance
        from the widths they were recorded at, so a width's own runs are the best guide). None for a kind the
        folder has not run alone."""
        points = sorted((w, r) for (kind, w), r in self.ratio.items() if kind == mhc)
        if not points:
            return None
        return float(np.interp(math.log2(width), [math.log2(w) for w, _ in points], [r for _, r in points]))

    def describe(self) -> str:
        """``recorded step times × 0.77–1.04 for mHC, 0.52–0.90 for the control (by width), measured on 84 runs …``"""
        kinds = []
        for hc in (True, False):
            values = [r for (kind, _), r in self.ratio.items() if kind == hc]
            if values:
                low, high = min(values), max(values)
                span = f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}"
                kinds.append(f"{span} for {'mHC' if hc else 'the control'}")
        shared = f", {self.in_turns} of them in turns" if self.in_turns else ""
        return (f"recorded step times × {', '.join(kinds)} (by width), measured on {sum(self.runs.values())} runs "
                f"stored here{shared}")  # fmt: skip


@dataclass(frozen=True)
class SweepCost:
    """The runs still to train and what they amount to; ``gpu_seconds`` on the recorded H100, or on the GPU of the
    folder's runs when ``calibration`` rescaled it (None off CUDA)."""

    runs: int
    pending: int
    steps: int
    tokens: int
    gpu_seconds: float | None
    in_turns: int = 1
    calibration: Calibration | None = None
    note: str = ""
    """What else the reader must know (a dry run against a folder whose data this machine lacks)."""

    def describe(self) -> str:
        text = self._estimate()
        return f"{text}. {self.note}" if self.note else text

    def _estimate(self) -> str:
        head = (f"{self.pending} of {self.runs} runs to train: {self.steps:,} steps, {self.tokens / 1e6:,.1f} M "
                "tokens")  # fmt: skip
        if self.gpu_seconds is None:
            return f"{head}; no GPU time estimate on the CPU (a short --steps run measures one)"
        turns = f", {self.in_turns} runs in turns" if self.in_turns > 1 else ""
        if self.calibration is None:
            return (f"{head}; about {_duration(self.gpu_seconds)} of one H100{turns} (from recorded runs; rough, "
                    "see docs)")  # fmt: skip
        return (f"{head}; about {_duration(self.gpu_seconds)} of one {self.calibration.device}{turns} "
                f"({self.calibration.describe()}; rough, see docs)")  # fmt: skip


def estimate_cost(cfg: TransferConfig, pending: Sequence[RunKey], cuda: bool, in_turns: int = 1,
                  calibration: Calibration | None = None) -> SweepCost:  # fmt: skip
    """The cost of training ``pending`` (runs of ``cfg``'s grid) on one GPU, one run at a time or ``in_turns`` runs
    taking turns; each kind's step time rescaled by ``calibration`` where it has that kind
    (:meth:`Calibration.factor`)."""
    train = cfg.recipe.train
    steps, tokens = len(pending) * train.steps, len(pending) * train.tokens
    if not cuda:
        return SweepCost(len(cfg.runs()), len(pending), steps, tokens, None)
    numerics = cfg.run_settings().numerics
    captured = numerics.cuda_graphs == "on"
    hc = {c.name: c.hc for c in cfg.grid.configs}
    kinds = {(hc[key.config], key.width) for key in pending}  # one estimate per model kind and width, not per run
    run_seconds = {(mhc, w): step_seconds(cfg, mhc, w) * _factor(calibration, mhc, w) * train.steps
                   + _interpolate(RUN_SECONDS[(mhc, captured)], w) for mhc, w in kinds}  # fmt: skip
    seconds = sum(run_seconds[(hc[key.config], key.width)] for key in pending)
    if captured and pending:
        mhc_widths = {key.width for key in pending if hc[key.config]}
        seconds += START_SECONDS + sum(_interpolate(NEW_WIDTH_SECONDS, w) for w in mhc_widths)
    seconds /= _in_turns_speedup(in_turns)
    if numerics.torch_compile and pending:
        compiled = {(key.config, key.width) for key in pending}
        seconds += COMPILE_START_SECONDS + sum(COMPILE_SECONDS[hc[name]] for name, _ in compiled)
    return SweepCost(len(cfg.runs()), len(pending), steps, tokens, seconds, in_turns, calibration)


def step_seconds(cfg: TransferConfig, mhc: bool, width: int) -> float:
    """The recorded seconds per training step of the mHC model (``mhc``) or the control at ``width``, under
    ``cfg``'s step (captured or eager, compiled or not), scaled to its tokens per step × depth."""
    numerics = cfg.run_settings().numerics
    train = cfg.recipe.train
    scale = max(1.0, train.batch_size * train.seq_len * cfg.model.depth / _RECORDED_TOKENS_X_DEPTH)
    per_step = _interpolate(STEP_SECONDS[(mhc, numerics.cuda_graphs == "on")], width) * scale
    return per_step * _compiled_ratio(mhc, width) if numerics.torch_compile else per_step


def calibration(cfg: TransferConfig, records: Sequence[Mapping], gpu: str | None = None) -> Calibration | None:
    """How the stored ``records`` (runs of ``cfg``'s settings) compare with :func:`step_seconds`: per model kind
    and width, the median of measured / estimated seconds per step over the finished runs on ``gpu`` (a device
    label, ``cuda:0 (NVIDIA H200)``: the one the command will run on) where some ran there, else on the GPU most
    of them ran on. A run that took turns with ``n - 1`` others (``runs_per_device`` n) counts as
    ``n / IN_TURNS_SPEEDUP[n]`` runs alone would have, the same share :func:`estimate_cost` prices runs in turns
    at; where a kind and width has runs alone, only those are used (they are measured without the speedup's
    error). Runs stored before ``runs_per_device`` was recorded are not used. None when there are none."""
    hc = {c.name: c.hc for c in cfg.grid.configs}
    finished = [(_gpu_name(r["device"]), r) for r in records
                if isinstance(r.get("runs_per_device"), int) and r["runs_per_device"] >= 1
                and str(r.get("device", "")).startswith("cuda") and r.get("config") in hc
                and r.get("steps_done") == cfg.recipe.train.steps and r.get("train_seconds", 0) > 0]  # fmt: skip
    if not finished:
        return None
    names = Counter(name for name, _ in finished)
    here = _gpu_name(gpu) if gpu else None
    device = here if here is not None and here in names else names.most_common(1)[0][0]
    by_kind: dict[tuple[bool, int], list[Mapping]] = {}
    for name, r in finished:
        if name == device:
            by_kind.setdefault((hc[r["config"]], int(r["width"])), []).append(r)
    ratios: dict[tuple[bool, int], float] = {}
    runs: Counter[bool] = Counter()
    in_turns = 0
    for (mhc, width), group in by_kind.items():
        alone = [r for r in group if r["runs_per_device"] == 1]
        used = alone or group
        ratios[(mhc, width)] = float(np.median([_alone_step_seconds(r) / step_seconds(cfg, mhc, width) for r in used]))
        runs[mhc] += len(used)
        in_turns += 0 if alone else len(used)
    return Calibration(ratios, dict(runs), device, in_turns)


def _alone_step_seconds(run: Mapping) -> float:
    """A stored run's seconds a steady training step, as if it had had the GPU alone (``runs_per_device`` n runs
    in turns each take ``n / IN_TURNS_SPEEDUP[n]`` times as long). Steady: its ``steps`` stage over the steps
    after the first, where it has one; the first step may hold a compilation, which the estimate adds apart."""
    n, steps = run["runs_per_device"], run["steps_done"]
    other_steps = (run.get("stage_seconds") or {}).get("steps", 0.0)
    per_step = other_steps / (steps - 1) if other_steps > 0 and steps > 1 else run["train_seconds"] / steps
    return per_step * _in_turns_speedup(n) / n


def _factor(calibration: Calibration | None, mhc: bool, width: int) -> float:
    """``calibration``'s step-time factor for kind ``mhc`` at ``width``; 1 (the recorded time) without one."""
    factor = calibration.factor(mhc, width) if calibration is not None else None
    return 1.0 if factor is None else factor


def _gpu_name(device: str) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` → ``NVIDIA H100 80GB HBM3`` (a run record's ``device``, as
    :func:`~mhc_mup.training.transfer.run.run_stages` writes it); the device string itself without a name."""
    return device.split("(", 1)[1].rstrip(")") if "(" in device else device


def _compiled_ratio(mhc: bool, width: int) -> float:
    """:data:`COMPILED_STEP_RATIO` at ``width``."""
    x = np.clip(math.log2(width), *np.log2(COMPILED_WIDTHS))
    return float(np.interp(x, np.log2(COMPILED_WIDTHS), COMPILED_STEP_RATIO[mhc]))


def _in_turns_speedup(n: int) -> float:
    """:data:`IN_TURNS_SPEEDUP` at ``n`` runs in turns."""
    known = sorted(IN_TURNS_SPEEDUP)
    n = min(max(n, known[0]), known[-1])
    return float(np.interp(math.log2(n), np.log2(known), [IN_TURNS_SPEEDUP[k] for k in known]))


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
