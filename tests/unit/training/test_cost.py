"""The sweep cost estimate gives back the recorded sweep's cost on the recorded grid, and counts runs, steps and
tokens exactly."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from mhc_mup.training.transfer import BUILTIN_CONFIGS, TransferConfig
from mhc_mup.training.transfer.cost import estimate_cost

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
