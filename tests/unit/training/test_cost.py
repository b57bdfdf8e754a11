"""The sweep cost estimate gives back the recorded sweep's cost on the recorded grid, and counts runs, steps and
tokens exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from mhc_mup.errors import TransferError
from mhc_mup.training.transfer import BUILTIN_CONFIGS, TransferConfig, run_transfer
from mhc_mup.training.transfer.cost import (
    COMPILE_SECONDS,
    COMPILE_START_SECONDS,
    COMPILED_STEP_RATIO,
    IN_TURNS_SPEEDUP,
    STEP_SECONDS,
    _interpolate,
    estimate_cost,
)
from mhc_mup.training.transfer.executors import runs_in_turns, worker_devices
from mhc_mup.training.transfer.sweep import transfer_cost
from tests.helpers import without_cuda

RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
RECORD = RESULTS / "bench_transfer_sweep_h100.json"  # eager and captured means per (config, width)
STAGES = RESULTS / "transfer_run_stages_h100.txt"  # a later captured sweep, one line per run


def recorded_seconds(mode: str) -> float:
    """The recorded sweep's total run seconds: the captured one from its runs' lines, the eager one from its means
    (3 learning rates per (config, width))."""
    if mode == "graph":
        return sum(float(m) for m in re.findall(r" ([\d.]+) s: ", STAGES.read_text()))
    return 3 * sum(v["seconds"] for v in json.loads(RECORD.read_text())[mode]["per_config_width"].values())


def recorded_grid(cuda_graphs: str) -> TransferConfig:
    """benchmarks/bench_transfer_sweep.sh's grid."""
    configs = (BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"])
    return TransferConfig(device="cpu").with_leaves(
        configs=configs, widths=(128, 256, 512, 1024), lrs=(2**-9, 2**-7, 2**-5), seeds=1, steps=300,
        cuda_graphs=cuda_graphs,
    )  # fmt: skip


@pytest.mark.parametrize(("mode", "graphs"), [("graph", "on"), ("eager", "off")])
def test_the_recorded_sweep_is_estimated_at_its_recorded_cost(mode, graphs):
    measured = recorded_seconds(mode)
    cfg = recorded_grid(graphs)
    cost = estimate_cost(cfg, cfg.runs(), cuda=True)
    assert cost.gpu_seconds == pytest.approx(measured, rel=0.02)
    assert (cost.runs, cost.pending, cost.steps, cost.tokens) == (24, 24, 24 * 300, 24 * 300 * 16 * 128)
    assert "of one H100" in cost.describe()


def test_off_cuda_there_is_no_time_estimate_and_pending_runs_count():
    cfg = recorded_grid("off")
    cost = estimate_cost(cfg, cfg.runs()[:5], cuda=False)
    assert cost.gpu_seconds is None and cost.pending == 5 and cost.runs == 24
    assert cost.describe().startswith("5 of 24 runs to train: 1,500 steps, 3.1 M tokens; no GPU time estimate")


def test_runs_in_turns_divide_the_estimate_by_their_measured_speed_up():
    """2 and 4 runs in turns: the one-at-a-time estimate over 1.39 and 1.56 (the recorded sweeps' wall times);
    3 between them (log2 interpolation), 8 held at 4's."""
    cfg = recorded_grid("on")
    alone = estimate_cost(cfg, cfg.runs(), cuda=True).gpu_seconds
    for n, speedup in ((2, 1.39), (3, 1.39 + (1.56 - 1.39) * math.log2(1.5)), (4, 1.56), (8, 1.56)):
        cost = estimate_cost(cfg, cfg.runs(), cuda=True, in_turns=n)
        assert cost.gpu_seconds == pytest.approx(alone / speedup) and f"{n} runs in turns" in cost.describe()
    record = (RESULTS / "bench_transfer_sweep_turns_h100.txt").read_text()
    walls = dict(re.findall(r"^(graph\S*)\s+wall\s+([\d.]+) s", record, re.M))
    assert float(walls["graph"]) / float(walls["graph_rpg4"]) == pytest.approx(1.56, abs=0.01)
    assert float(walls["graph"]) / float(walls["graph_rpg2"]) == pytest.approx(1.39, abs=0.01)


def test_compiling_scales_the_captured_steps_and_adds_each_compilation_once():
    """One mHC configuration at d = 256 and 2048 (where the compiled step was measured): each run's steps times the
    measured ratio, then one compilation per width and the process's first one, not divided by runs in turns."""
    cfg = recorded_grid("on").with_leaves(configs=(BUILTIN_CONFIGS["mup"],), widths=(256, 2048), steps=1000)
    for n in (1, 4):
        plain = estimate_cost(cfg, cfg.runs(), cuda=True, in_turns=n).gpu_seconds
        compiled = estimate_cost(cfg.with_leaves(torch_compile=True), cfg.runs(), cuda=True, in_turns=n).gpu_seconds
        saved = sum(
            3 * 1000 * _interpolate(STEP_SECONDS[(True, True)], w) * (1 - ratio)
            for w, ratio in zip((256, 2048), COMPILED_STEP_RATIO[True], strict=True)
        )  # 3 learning rates per width
        once = COMPILE_START_SECONDS + 2 * COMPILE_SECONDS[True]
        assert compiled == pytest.approx(plain - saved / IN_TURNS_SPEEDUP[n] + once)


def test_the_recorded_compiled_sweep_is_estimated_low_within_20_percent():
    """The short recorded sweep (300 steps of 16 × 128 bytes) saves less per step than the 32 × 256 steps the ratio
    was measured on, so the estimate is low there: documented, and held to 20%."""
    record = (RESULTS / "bench_transfer_sweep_compiled_h100.txt").read_text()
    measured = float(re.search(r"^compiled_rpg4\s+wall\s+([\d.]+) s", record, re.M).group(1))
    cfg = recorded_grid("on").with_leaves(lrs=tuple(2.0**k for k in range(-11, -4)), torch_compile=True)
    estimate = estimate_cost(cfg, cfg.runs(), cuda=True, in_turns=4).gpu_seconds
    assert 0.8 * measured < estimate < measured


@without_cuda
def test_a_plan_only_config_prices_a_gpu_this_machine_lacks_and_cannot_train(tmp_path):
    """``plan_only`` (a dry run): a CUDA sweep is checked and priced on a machine without CUDA, as the recorded
    captured sweep, nothing written; the same config cannot train, and without ``plan_only`` it is refused."""
    cfg = dataclasses.replace(recorded_grid("on"), device="cuda", plan_only=True)
    out = tmp_path / "out"
    cost = transfer_cost(cfg.validate(), out)
    assert cost.gpu_seconds == pytest.approx(recorded_seconds("graph"), rel=0.02) and not out.exists()
    with pytest.raises(TransferError, match="only prices a sweep"):
        run_transfer(cfg, out)
    with pytest.raises(TransferError, match="CUDA is not available"):
        dataclasses.replace(cfg, plan_only=False).validate()
    assert not out.exists()


@without_cuda
def test_a_plan_only_config_prices_as_many_absent_gpus_as_workers_asks():
    """Without CUDA, a plan_only sweep's workers are ``--workers`` GPUs (default one), each ``runs_per_gpu`` times;
    several GPUs are separate processes, so no runs take turns in the estimate."""
    cfg = dataclasses.replace(recorded_grid("on"), device="cuda", plan_only=True)
    assert worker_devices(cfg, None, 4) == ["cuda:0"] * 4 and runs_in_turns(worker_devices(cfg, None, 4)) == 4
    assert worker_devices(cfg, 2, 1) == ["cuda:0", "cuda:1"] and runs_in_turns(worker_devices(cfg, 2, 1)) == 0
