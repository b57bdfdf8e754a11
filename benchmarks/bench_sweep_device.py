"""Time the width sweep on one device (default: CUDA): the seed's default workload and the large sweep.

    python benchmarks/bench_sweep_device.py --device cuda [--repeats 3] [--json OUT]

Prints wall time per workload (median of repeats after one warm-up), per-stage seconds, peak device
memory, and the headline exponent, so the GPU figures in benchmarks/README.md can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.diagnostics.sweep import run_sweep

WORKLOADS = {
    "seed-default": SweepConfig(),
    "large": SweepConfig(widths=tuple(2**k for k in range(6, 14)), sensitivity_samples=1000, update_samples=1000),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    report: dict = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name()
    for name, base in WORKLOADS.items():
        cfg = SweepConfig(**{**base.__dict__, "device": args.device})
        run_sweep(cfg)  # warm-up: CUDA context, kernels, allocator
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times, result = [], None
        for _ in range(args.repeats):
            _sync(args.device)
            t0 = time.perf_counter()
            result = run_sweep(cfg)
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        assert result is not None
        fit = result.fit("dynamic_sensitivity", "dc_x_mean")
        entry = {
            "wall_s_median": statistics.median(times),
            "wall_s_all": times,
            "stage_seconds_last": result.seconds,
            "dc_x_exponent": [fit.exponent, fit.ci_low, fit.ci_high],
        }
        if args.device.startswith("cuda"):
            entry["peak_device_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        report[name] = entry
        print(
            f"{name:>13}: {entry['wall_s_median']:.3f} s median of {args.repeats}  "
            f"dc_x ~ d^{fit.exponent:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}]  "
            f"stages { ({k: round(v, 3) for k, v in result.seconds.items()}) }  "
            + (f"peak {entry['peak_device_memory_mib']:.0f} MiB" if "peak_device_memory_mib" in entry else "")
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
