"""Several training runs in one process, each its own CUDA graph replayed on its own CUDA stream: does the GPU
run them side by side? (Processes sharing a GPU without MPS time-slice it; streams of one process can overlap.)

For each width, ``n`` models (mHC or control, the transfer sweep's step: depth ``--depth``, heads d/64,
``--batch`` × ``--seq`` bytes, bf16 autocast and streams, Adam) are captured with
:class:`mhc_mup.training.graphed.GraphedSteps`; then ``--steps`` steps of each are replayed round-robin, run ``i``
on stream ``i``. Printed: wall ms per step of one run, and aggregate steps/s over ``n = 1``'s.

    python benchmarks/bench_concurrent_runs.py --widths 128,256,512,1024 --runs 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_train_step import build, windows  # this folder's script: the same model and batches

from mhc_mup.training.graphed import GraphedSteps, graph_ready_optimizer, lr_table
from mhc_mup.training.transfer.run import lr_factor


def graphed_run(d: int, hc: bool, depth: int, batch: int, seq: int, steps: int) -> GraphedSteps:
    """bench_train_step's model and batches, its step captured as the sweep captures it."""
    dev = torch.device("cuda")
    model, data = build(d, hc, depth, dev), windows(steps, batch, seq, dev)
    opt = graph_ready_optimizer(model, "adam", 2**-8)
    return GraphedSteps(model, opt, data, lr_table(opt, lambda k: lr_factor(k, steps, 0.1), steps))


def time_round_robin(runs: list[GraphedSteps], warmup: int, steps: int) -> float:
    """Seconds per round (one step of every run) after ``warmup`` rounds."""
    streams = [torch.cuda.Stream() for _ in runs]
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream())  # the runs' data and models are ready
    t0 = 0.0
    for k in range(warmup + steps):
        if k == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        for run, stream in zip(runs, streams, strict=True):
            with torch.cuda.stream(stream):
                run.advance()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="128,256,512,1024")
    p.add_argument("--runs", default="1,2,4,8", help="runs side by side (default 1,2,4,8)")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=100, help="timed rounds (default 100)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        p.error("needs a CUDA GPU")
    rows = []
    for d in (int(w) for w in args.widths.split(",")):
        for hc, name in ((True, "mhc"), (False, "control")):
            base = None
            for n in (int(r) for r in args.runs.split(",")):
                total = args.warmup + args.steps
                runs = [graphed_run(d, hc, args.depth, args.batch, args.seq, total) for _ in range(n)]
                per_round = time_round_robin(runs, args.warmup, args.steps)
                rate = n / per_round
                base = base or rate
                rows.append({"d": d, "model": name, "runs": n, "ms_per_round": 1e3 * per_round,
                             "steps_per_s": rate, "over_one": rate / base,
                             "captured": all(r.captured for r in runs)})  # fmt: skip
                print(f"d={d:5d} {name:7s} runs {n}: {1e3 * per_round:7.2f} ms per round, {rate:7.0f} steps/s, "
                      f"{rate / base:.2f}× one run's", flush=True)
                del runs
                torch.cuda.empty_cache()
    if args.json:
        machine = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
        args.json.write_text(json.dumps({"machine": machine, "args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
