"""Does ``torch.compile`` inside the captured step pay for a sweep? What compiling costs per configuration and
width, whether a new model of the same width recompiles, and how much each captured step saves.

For the mHC model and its control at each width (``bench_train_step``'s model: heads = d/64, bf16 streams, Adam,
the transfer schedule), one CUDA graph per step (:class:`mhc_mup.training.graphed.GraphedSteps`):

- *graph*: the model as it is; *compiled graph*: ``torch.compile(model, dynamic=False)``, as a sweep would run it;
- ``first_s``: wall seconds of the first ``WARMUP_STEPS + 1`` steps (eager warm-up and the capture), where
  compiling shows (after a short plain run has compiled the fused kernels for the width); ``compile_s`` is the
  compiled model's less the plain one's;
- ``again_s``: the same for a second compiled model of the same width (a recompile would show here), and the
  Dynamo graphs compiled so far (``unique_graphs``);
- ``graph_ms`` / ``compiled_graph_ms``: steady ms per step; ``break_even_steps``: the steps of one width that
  repay its compilation (``compile_s`` / the saving per step; none when compiling saves nothing);
- ``max_loss_gap``: the largest difference between the plain and the compiled run's step losses (same model,
  same batches): bf16 round-off, since the compiled step fuses differently.

    python benchmarks/bench_compile_cost.py --widths 128,256,512,1024,2048 --batch 32 --seq 256 \\
        --json benchmarks/results/bench_compile_cost.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch._dynamo
from bench_train_step import build, windows, write_results
from torch._dynamo.utils import counters

from mhc_mup.training.graphed import WARMUP_STEPS, GraphedSteps, graph_ready_optimizer, lr_table
from mhc_mup.training.model import MHCLM
from mhc_mup.training.transfer.run import lr_factor


def graph_run(model: MHCLM, data: torch.Tensor, compiled: bool) -> tuple[float, float, bool, torch.Tensor]:
    """``(seconds of the first WARMUP_STEPS + 1 steps, steady seconds per step, captured, the step losses)``."""
    steps, dev = data.shape[0], data.device
    opt = graph_ready_optimizer(model, "adam", 2**-8)
    net = torch.compile(model, dynamic=False) if compiled else model
    run = GraphedSteps(net, opt, data, lr_table(opt, lambda k: lr_factor(k, steps, 0.1), steps))
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    first = 0.0
    for k in range(steps):
        run.advance()
        if k == WARMUP_STEPS:
            torch.cuda.synchronize(dev)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
    torch.cuda.synchronize(dev)
    seconds = (time.perf_counter() - t0) / (steps - WARMUP_STEPS - 1)
    return first, seconds, run.captured, torch.tensor(run.take_losses())


def measure(d: int, hc: bool, args: argparse.Namespace, dev: torch.device) -> dict:
    data = windows(WARMUP_STEPS + 1 + args.steps, args.batch, args.seq, dev)
    graph_run(build(d, hc, args.depth, dev), data[: WARMUP_STEPS + 2], compiled=False)  # the fused kernels' JIT
    first, graph, captured, losses = graph_run(build(d, hc, args.depth, dev), data, compiled=False)
    first_c, compiled_graph, captured_c, losses_c = graph_run(build(d, hc, args.depth, dev), data, compiled=True)
    again = graph_run(build(d, hc, args.depth, dev), data, compiled=True)[0]
    saving = graph - compiled_graph
    compile_s = first_c - first
    return {
        "d": d, "model": "mhc" if hc else "control", "first_s": first, "compile_s": compile_s, "again_s": again,
        "unique_graphs": counters["stats"]["unique_graphs"], "graph_ms": 1e3 * graph,
        "compiled_graph_ms": 1e3 * compiled_graph, "speedup": graph / compiled_graph,
        "break_even_steps": compile_s / saving if saving > 0 else None, "captured": captured and captured_c,
        "max_loss_gap": float((losses_c - losses).abs().max()), "loss_first_last": [float(losses[0]),
                                                                                  float(losses[-1])],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="128,256,512,1024", help="comma-separated widths d (default 128,256,512,1024)")
    p.add_argument("--depth", type=int, default=2, help="blocks (default 2, the transfer sweep's)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="timed steady steps per measurement (default 100)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU")
    dev = torch.device("cuda")
    # one graph per (model, width): Dynamo's default limit of 8 per frame would send later widths back to eager
    torch._dynamo.config.recompile_limit = 64
    rows = []
    for hc in (True, False):
        for d in (int(w) for w in args.widths.split(",")):
            row = measure(d, hc, args, dev)
            rows.append(row)
            even = f"{row['break_even_steps']:.0f}" if row["break_even_steps"] is not None else "never"
            print(
                f"{row['model']:7s} d={d:5d}  compile {row['compile_s']:6.1f} s  again {row['again_s']:5.2f} s "
                f"(graphs {row['unique_graphs']})  graph {row['graph_ms']:6.2f} ms  compiled graph "
                f"{row['compiled_graph_ms']:6.2f} ms  ({row['speedup']:.2f}×)  break-even {even} steps  "
                f"captured {row['captured']}  max |Δloss| {row['max_loss_gap']:.1e} (loss "
                f"{row['loss_first_last'][0]:.3f} → {row['loss_first_last'][1]:.3f})",
                flush=True,
            )
            torch.cuda.empty_cache()
    write_results(args.json, dev, rows, depth=args.depth, batch=args.batch, seq=args.seq, steps=args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
