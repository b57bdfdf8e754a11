"""Wall time of one training step, eager against one CUDA graph replay, for the mHC model and its control.

The transfer sweep's step: an MHCLM of ``--depth`` blocks (heads = d/64), ``--batch`` × ``--seq`` bytes a step,
bf16 autocast, bf16 residual streams (the fused kernels' path on CUDA), Adam with the warmup-cosine schedule.
*eager* is ``train_step`` + ``LambdaLR`` as ``mhc-mup transfer --cuda-graphs off`` runs it; *graph* is
:class:`mhc_mup.training.graphed.GraphedSteps` as ``--cuda-graphs auto`` runs it on CUDA. Each (width, model,
mode) trains ``--warmup`` steps, then ``--steps`` timed steps (wall clock around them, synchronised); the
table gives ms/step, tokens/s and the ratios the GPU-speed issue asks for. Optionally also ``torch.compile``
(``--compile``): the compiled model stepped eagerly, and inside the captured step (*compiled graph*).

    python benchmarks/bench_train_step.py --widths 256,1024,4096 --json benchmarks/results/bench_train_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.optim.lr_scheduler import LambdaLR

from mhc_mup.training.graphed import GraphedSteps, graph_ready_optimizer, lr_table
from mhc_mup.training.model import MHCLM, ModelConfig
from mhc_mup.training.step import train_step
from mhc_mup.training.transfer.run import lr_factor
from mhc_mup.training.width_rules import WidthParameterization, make_optimizer


def build(d: int, hc: bool, depth: int, device: torch.device) -> MHCLM:
    cfg = ModelConfig(d=d, depth=depth, heads=max(1, d // 64), hc=hc, stream_dtype="bfloat16")
    return MHCLM(cfg, WidthParameterization("mup", base_d=256), seed=0).to(device)


def windows(n: int, batch: int, seq: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, batch, seq + 1), generator=gen, dtype=torch.uint8).to(device)


def time_eager(model: MHCLM, data: torch.Tensor, warmup: int, compiled: bool) -> float:
    """Seconds per step of the eager loop over ``data`` (the first ``warmup`` steps untimed)."""
    steps, dev = data.shape[0], data.device
    opt = make_optimizer(model, "adam", 2**-8)
    sched = LambdaLR(opt, lambda k: lr_factor(k, steps, 0.1))
    net = torch.compile(model) if compiled else model
    t0 = 0.0
    for k, w in enumerate(data.long()):
        if k == warmup:
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        train_step(net, opt, w[:, :-1], w[:, 1:], dev)
        sched.step()
    torch.cuda.synchronize(dev)
    return (time.perf_counter() - t0) / (steps - warmup)


def time_graph(model: MHCLM, data: torch.Tensor, warmup: int, compiled: bool = False) -> tuple[float, bool]:
    """Seconds per step replaying one CUDA graph (of ``torch.compile(model)``'s step with ``compiled``), and
    whether the step was captured."""
    steps, dev = data.shape[0], data.device
    opt = graph_ready_optimizer(model, "adam", 2**-8)
    net = torch.compile(model) if compiled else model
    run = GraphedSteps(net, opt, data, lr_table(opt, lambda k: lr_factor(k, steps, 0.1), steps))
    t0 = 0.0
    for k in range(steps):
        if k == warmup:
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        run.advance()
    torch.cuda.synchronize(dev)
    return (time.perf_counter() - t0) / (steps - warmup), run.captured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="256,1024,4096", help="comma-separated widths d (default 256,1024,4096)")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=60, help="timed steps per measurement (default 60)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    p.add_argument(
        "--compile", action="store_true", help="also time torch.compile(model), stepped eagerly and captured"
    )
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU")
    dev = torch.device("cuda")
    widths = [int(w) for w in args.widths.split(",")]
    tokens = args.batch * args.seq
    rows = []
    for d in widths:
        row: dict = {"d": d}
        for hc, name in ((False, "control"), (True, "mhc")):
            data = windows(args.warmup + args.steps, args.batch, args.seq, dev)
            row[f"{name}_eager_ms"] = 1e3 * time_eager(build(d, hc, args.depth, dev), data, args.warmup, False)
            seconds, captured = time_graph(build(d, hc, args.depth, dev), data, args.warmup)
            row[f"{name}_graph_ms"], row[f"{name}_captured"] = 1e3 * seconds, captured
            if args.compile:
                model = build(d, hc, args.depth, dev)
                row[f"{name}_compiled_ms"] = 1e3 * time_eager(model, data, args.warmup, True)
                seconds, captured = time_graph(build(d, hc, args.depth, dev), data, args.warmup, compiled=True)
                row[f"{name}_compiled_graph_ms"], row[f"{name}_compiled_captured"] = 1e3 * seconds, captured
            torch.cuda.empty_cache()
        row["graph_speedup_mhc"] = row["mhc_eager_ms"] / row["mhc_graph_ms"]
        row["mhc_over_control_eager"] = row["mhc_eager_ms"] / row["control_eager_ms"]
        row["mhc_over_control_graph"] = row["mhc_graph_ms"] / row["control_graph_ms"]
        row["mhc_graph_tokens_per_s"] = tokens / (row["mhc_graph_ms"] / 1e3)
        rows.append(row)
        print(
            f"d={d:5d}  control eager {row['control_eager_ms']:7.2f} ms  graph {row['control_graph_ms']:7.2f} ms | "
            f"mHC eager {row['mhc_eager_ms']:7.2f} ms  graph {row['mhc_graph_ms']:7.2f} ms "
            f"(captured: {row['mhc_captured']}) | mHC graph speed-up {row['graph_speedup_mhc']:.2f}× | "
            f"mHC/control eager {row['mhc_over_control_eager']:.2f}×, graph {row['mhc_over_control_graph']:.2f}×"
            + (
                f" | compiled: control {row['control_compiled_ms']:.2f} ms, mHC {row['mhc_compiled_ms']:.2f} ms"
                f" | compiled graph: control {row['control_compiled_graph_ms']:.2f} ms, mHC "
                f"{row['mhc_compiled_graph_ms']:.2f} ms (captured: {row['mhc_compiled_captured']})"
                if args.compile
                else ""
            ),
            flush=True,
        )
    write_results(args.json, dev, rows, depth=args.depth, tokens_per_step=tokens, steps=args.steps,
                  warmup=args.warmup)  # fmt: skip
    return 0


def write_results(path: Path | None, dev: torch.device, rows: list[dict], **settings: object) -> None:
    """``{"machine": the GPU, torch, Python and settings, "rows": rows}`` as JSON at ``path`` (none: nothing)."""
    if path is None:
        return
    facts = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__,
             "python": platform.python_version(), **settings}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # then renamed: a run killed mid-write leaves the last whole file
    tmp.write_text(json.dumps({"machine": facts, "rows": rows}, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
