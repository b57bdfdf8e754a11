"""Core benchmarks for ``mhc_mup``: the seed's default workload side by side, and the large sweep.

Benchmark 1 (speed-up): the seed reference's ``run_full_diagnostics()`` (per-element ``.backward()``
loops) and ``run_sweep(SweepConfig())`` run in this one process on the same default workload
(widths 64..1024, n_s=4, K=20, 30 samples for diagnostics 4 and 5, 100 for diagnostic 3).
Median wall time and CPU time (``time.process_time``) of each, and their ratios. Target: >= 30x.

Benchmark 2 (large sweep): widths 64..8192 (powers of 2) with 1000 samples for diagnostics 4 and 5,
run in a fresh subprocess so its peak RSS is the large sweep's alone. Target: < 60 s on a 2-core CPU.

Usage::

    python benchmarks/bench_core.py --json benchmarks/results_core.json
    python benchmarks/bench_core.py --skip-reference        # only the large sweep
    python benchmarks/bench_core.py --reference /path/to/mhc_diagnostics_reference.py --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.diagnostics.sweep import SweepResult, run_sweep

HERE = Path(__file__).resolve()
REPO_ROOT = HERE.parents[1]
DEFAULT_REFERENCE = HERE.parents[2] / "shared" / "seeds" / "mhc_diagnostics_reference.py"
SPEEDUP_TARGET = 30.0
LARGE_TARGET_S = 60.0
LARGE_WIDTHS = tuple(2**k for k in range(6, 14))  # 64 .. 8192
LARGE_SAMPLES = 1000
FIT_KEY = ("dynamic_sensitivity", "dc_x_mean")


def large_config() -> SweepConfig:
    return SweepConfig(widths=LARGE_WIDTHS, sensitivity_samples=LARGE_SAMPLES, update_samples=LARGE_SAMPLES)


# ----------------------------------------------------------------------------- machine facts


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "nproc": affinity,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: a busy machine makes every number here slower and noisier."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(who).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# ----------------------------------------------------------------------------- timing helpers


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(result, wall seconds, CPU seconds of this process)`` of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    w1, c1 = time.perf_counter(), time.process_time()
    return out, w1 - w0, c1 - c0


def load_reference(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("mhc_diagnostics_reference", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_exponent(results: dict[int, dict]) -> float:
    """The reference's d^alpha for dc_x_mean, computed as in its ``__main__`` (lstsq in log-log)."""
    widths = sorted(results)
    dc = [results[d]["dynamic_sensitivity"]["dc_x_mean"] for d in widths]
    log_d = np.log(widths)
    A = np.vstack([log_d, np.ones_like(log_d)]).T
    return float(np.linalg.lstsq(A, np.log(dc), rcond=None)[0][0])


def summarize_runs(walls: list[float], cpus: list[float]) -> dict[str, Any]:
    return {
        "runs": len(walls),
        "wall_s": walls,
        "cpu_s": cpus,
        "wall_median_s": statistics.median(walls),
        "cpu_median_s": statistics.median(cpus),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_min_s": min(cpus),
        "cpu_max_s": max(cpus),
    }


# ----------------------------------------------------------------------------- benchmark 1


def bench_speedup(reference: Path, ref_repeats: int, our_repeats: int) -> dict[str, Any] | None:
    """Seed reference vs ``run_sweep(SweepConfig())`` in this process; None if the reference is absent."""
    if not reference.is_file():
        print(f"reference not found at {reference}: skipping the speed-up benchmark")
        return None
    ref = load_reference(reference)  # import time excluded from every measurement below

    ref_walls, ref_cpus, ref_alphas = [], [], []
    for i in range(ref_repeats):
        torch.manual_seed(i)
        with contextlib.redirect_stdout(io.StringIO()):
            results, wall, cpu = timed(lambda: ref.run_full_diagnostics())
        ref_walls.append(wall)
        ref_cpus.append(cpu)
        ref_alphas.append(reference_exponent(results))
        print(f"  reference run {i + 1}/{ref_repeats}: wall {wall:.3f} s, cpu {cpu:.3f} s, d^{ref_alphas[-1]:.3f}")

    cfg = SweepConfig()
    run_sweep(cfg)  # warm-up (first-call allocator and dispatcher costs), not timed
    our_walls, our_cpus, our_stages = [], [], []
    res: SweepResult | None = None
    for i in range(our_repeats):
        res, wall, cpu = timed(lambda: run_sweep(cfg))
        our_walls.append(wall)
        our_stages.append(dict(res.seconds))
        our_cpus.append(cpu)
        print(f"  run_sweep run {i + 1}/{our_repeats}: wall {wall:.3f} s, cpu {cpu:.3f} s")
    assert res is not None
    fit = res.fit(*FIT_KEY)

    ref_sum, our_sum = summarize_runs(ref_walls, ref_cpus), summarize_runs(our_walls, our_cpus)
    ref_sum["dc_x_exponent"] = ref_alphas
    our_sum["dc_x_exponent"] = fit.exponent
    our_sum["dc_x_ci"] = [fit.ci_low, fit.ci_high]
    our_sum["seconds_per_run"] = our_stages
    our_sum["seconds_median"] = {k: statistics.median(st[k] for st in our_stages) for k in our_stages[0]}
    # The reference fits nothing beyond one lstsq; our "fits" stage is bootstrap intervals for every metric.
    excl_fits = [w - st.get("fits", 0.0) for w, st in zip(our_walls, our_stages, strict=True)]
    our_sum["wall_excl_fits_median_s"] = statistics.median(excl_fits)
    wall_ratio = ref_sum["wall_median_s"] / our_sum["wall_median_s"]
    cpu_ratio = ref_sum["cpu_median_s"] / our_sum["cpu_median_s"]
    # Conservative: the reference's fastest run against our slowest.
    wall_ratio_worst = ref_sum["wall_min_s"] / our_sum["wall_max_s"]
    cpu_ratio_worst = ref_sum["cpu_min_s"] / our_sum["cpu_max_s"]
    return {
        "reference_path": str(reference),
        "workload": "widths (64,128,256,512,1024), n_s=4, K=20, 30 samples diag 4-5, 100 diag 3",
        "reference": ref_sum,
        "ours": our_sum,
        "wall_ratio": wall_ratio,
        "cpu_ratio": cpu_ratio,
        "wall_ratio_worst": wall_ratio_worst,
        "wall_ratio_excl_fits": ref_sum["wall_median_s"] / our_sum["wall_excl_fits_median_s"],
        "cpu_ratio_worst": cpu_ratio_worst,
        "target": SPEEDUP_TARGET,
        "pass_cpu": cpu_ratio >= SPEEDUP_TARGET,
        "pass_wall": wall_ratio >= SPEEDUP_TARGET,
        "pass_worst_case": min(wall_ratio_worst, cpu_ratio_worst) >= SPEEDUP_TARGET,
    }


# ----------------------------------------------------------------------------- benchmark 2


def large_child() -> None:
    """Body of the ``--large-only`` subprocess: one large sweep, numbers as one JSON line on stdout."""
    rss_before = maxrss_mib()
    res, wall, cpu = timed(lambda: run_sweep(large_config()))
    fit = res.fit(*FIT_KEY)
    out = {
        "widths": list(LARGE_WIDTHS),
        "samples_diag_4_5": LARGE_SAMPLES,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": maxrss_mib(),
        "rss_after_imports_mib": rss_before,
        "torch_num_threads": torch.get_num_threads(),
        "seconds": dict(res.seconds),
        "dc_x_exponent": fit.exponent,
        "dc_x_ci": [fit.ci_low, fit.ci_high],
    }
    print(json.dumps(out))


def bench_large(threads: int | None) -> dict[str, Any]:
    """Run :func:`large_child` in a fresh interpreter and collect its numbers."""
    cmd = [sys.executable, str(HERE), "--large-only"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"large sweep subprocess failed with exit code {proc.returncode}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = process_wall  # including interpreter start-up and imports
    out["children_maxrss_mib"] = maxrss_mib(resource.RUSAGE_CHILDREN)
    out["target_s"] = LARGE_TARGET_S
    out["pass"] = out["wall_s"] < LARGE_TARGET_S
    return out


# ----------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print()
    print("=" * 100)
    print(
        f"machine: {m['cpu_model']}, nproc={m['nproc']}, torch {m['torch']} "
        f"({m['torch_num_threads']} threads), python {m['python']}"
    )
    print(f"load average (1, 5, 15 min) at start {report['loadavg_start']}, at end {report['loadavg_end']}")
    print("=" * 100)
    sp = report.get("speedup")
    if sp is not None:
        r, o = sp["reference"], sp["ours"]
        print("Benchmark 1: seed default workload, same process (times in seconds)")
        print(f"  {'':<28}{'runs':>5}{'wall median':>13}{'wall min..max':>17}{'CPU median':>13}{'CPU min..max':>17}")
        for name, row in (("reference (per-elem loops)", r), ("run_sweep(SweepConfig())", o)):
            wall_rng = f"{row['wall_min_s']:.3f}..{row['wall_max_s']:.3f}"
            cpu_rng = f"{row['cpu_min_s']:.3f}..{row['cpu_max_s']:.3f}"
            print(
                f"  {name:<28}{row['runs']:>5}{row['wall_median_s']:>13.3f}{wall_rng:>17}"
                f"{row['cpu_median_s']:>13.3f}{cpu_rng:>17}"
            )
        ref_alpha = ", ".join(f"{a:.3f}" for a in r["dc_x_exponent"])
        print(f"  dc_x_mean exponent: reference (lstsq, per run) {ref_alpha}")
        print(f"                      ours {o['dc_x_exponent']:.3f} [{o['dc_x_ci'][0]:.3f}, {o['dc_x_ci'][1]:.3f}]")
        print(
            f"  speed-up (median/median): wall {sp['wall_ratio']:.1f}x, CPU {sp['cpu_ratio']:.1f}x "
            f"(target >= {sp['target']:.0f}x): CPU {verdict(sp['pass_cpu'])}, wall {verdict(sp['pass_wall'])}"
        )
        stages = ", ".join(f"{k} {v:.3f}" for k, v in o["seconds_median"].items())
        print(f"  ours, median stage seconds: {stages}")
        print(
            f"  for information, ours without the bootstrap fits stage: median wall "
            f"{o['wall_excl_fits_median_s']:.3f} s, wall speed-up {sp['wall_ratio_excl_fits']:.1f}x"
        )
        print(
            f"  speed-up (reference fastest / ours slowest): wall {sp['wall_ratio_worst']:.1f}x, "
            f"CPU {sp['cpu_ratio_worst']:.1f}x: {verdict(sp['pass_worst_case'])}"
        )
    else:
        print("Benchmark 1: skipped")
    print("-" * 100)
    lg = report.get("large")
    if lg is not None:
        print(
            f"Benchmark 2: large sweep, widths {lg['widths'][0]}..{lg['widths'][-1]} "
            f"({len(lg['widths'])}), {lg['samples_diag_4_5']} samples diag 4-5, fresh subprocess"
        )
        print(
            f"  sweep wall {lg['wall_s']:.2f} s, CPU {lg['cpu_s']:.2f} s, "
            f"process wall incl. start-up {lg['process_wall_s']:.2f} s"
        )
        rss, base = lg["peak_rss_mib"], lg["rss_after_imports_mib"]
        print(f"  peak RSS {rss:.0f} MiB (after imports, before the sweep: {base:.0f} MiB)")
        stages = ", ".join(f"{k} {v:.2f}" for k, v in lg["seconds"].items())
        print(f"  stages (s): {stages}")
        print(f"  dc_x exponent {lg['dc_x_exponent']:.4f} [{lg['dc_x_ci'][0]:.4f}, {lg['dc_x_ci'][1]:.4f}]")
        print(f"  target < {lg['target_s']:.0f} s: {verdict(lg['pass'])}")
    else:
        print("Benchmark 2: skipped")
    print("=" * 100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="seed reference script")
    parser.add_argument("--repeats", type=int, default=5, help="timed run_sweep runs (after 1 warm-up)")
    parser.add_argument("--reference-repeats", type=int, default=3, help="timed reference runs")
    parser.add_argument("--skip-reference", action="store_true", help="skip benchmark 1 (speed-up)")
    parser.add_argument("--skip-large", action="store_true", help="skip benchmark 2 (large sweep)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the numbers as JSON")
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)  # subprocess body
    args = parser.parse_args(argv)

    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.large_only:
        large_child()
        return 0
    if args.repeats < 1 or args.reference_repeats < 1:
        parser.error("--repeats and --reference-repeats must be >= 1")

    report: dict[str, Any] = {"machine": machine_facts(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    report["loadavg_start"] = loadavg()
    m = report["machine"]
    print(f"machine: nproc={m['nproc']}, {m['cpu_model']}, torch {m['torch']}, {m['torch_num_threads']} threads")
    if not args.skip_reference:
        print("Benchmark 1: seed reference vs run_sweep(SweepConfig())")
        report["speedup"] = bench_speedup(args.reference.resolve(), args.reference_repeats, args.repeats)
    if not args.skip_large:
        print("Benchmark 2: large sweep in a fresh subprocess ...")
        report["large"] = bench_large(args.threads)
    report["loadavg_end"] = loadavg()
    print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
