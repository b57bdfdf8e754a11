"""Whole-process wall time of the commands a user types, side by side in one run.

Each command runs in a fresh interpreter, so the time includes start-up, imports, the work and the exit:

- ``mhc-mup --help``
- ``mhc-mup run`` with defaults (the seed's workload; it writes its results, report and five figures into a
  fresh temporary folder each time), and for this checkout the same with ``MHC_MUP_FIGURE_WORKERS=0`` (the
  figures drawn in the command's own process rather than in the two workers it starts by default)
- ``mhc-mup run --no-report``, only if ``run --help`` lists such a flag
- ``python -c "import torch"``: the floor under any command that computes with torch
- the seed's script, ``python mhc_diagnostics_reference.py`` (no arguments: its ``__main__`` runs the
  default workload and prints a summary), the reference the README's speed-up compares against

``mhc-mup`` is run as ``python -m mhc_mup`` (the console script calls the same ``main``), which lets
``--before SRC`` time another checkout's package in the same run, e.g. the version before a change::

    python benchmarks/bench_startup.py --out /tmp/bench_startup
    python benchmarks/bench_startup.py --repeats 9 --before /path/to/old/checkout/src --out benchmarks/results

The commands are interleaved (one of each, N times over; the slow seed's script only its own
``--reference-repeats`` times), after one untimed run of each, so that a change in the machine's load hits
every command alike. Reported per command: median wall time, its spread
(fastest and slowest run) and the median CPU time of the process (user + system, all its threads). The
table is printed and written as JSON to ``OUT/bench_startup.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()
REPO_ROOT = HERE.parents[1]
DEFAULT_REFERENCE = HERE.parents[2] / "shared" / "seeds" / "mhc_diagnostics_reference.py"
VERSIONS_SCRIPT = (
    "import platform, torch, matplotlib; print(platform.python_version(), torch.__version__, matplotlib.__version__)"
)


@dataclass(frozen=True)
class Command:
    """One command line to time, ``repeats`` times: ``argv`` with ``env`` added to the environment; ``{out}`` in
    argv becomes a fresh folder for each run."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    repeats: int = 5


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def run_once(command: Command, scratch: Path, index: int) -> Timing:
    """Run ``command`` once to completion; its wall time and its CPU time (user + system, from rusage)."""
    out = scratch / f"{command.name.replace(' ', '_').replace('/', '_')}-{index}"
    argv = [a.replace("{out}", str(out)) for a in command.argv]
    env = {**os.environ, **dict(command.env)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        sys.exit(f"{command.name}: exit code {done.returncode}: {tail[0]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def has_flag(python: str, env: dict[str, str], subcommand: str, flag: str) -> bool:
    """Whether ``mhc-mup SUBCOMMAND --help`` (of the package on ``env``'s path) lists ``flag``."""
    done = subprocess.run(
        [python, "-m", "mhc_mup", subcommand, "--help"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and flag in done.stdout.split()


def mhc_mup_commands(python: str, label: str, src: Path | None, repeats: int) -> list[Command]:
    """``--help``, ``run`` and (if the flag exists) ``run --no-report`` of the package at ``src`` (None: the
    installed one), each name prefixed with ``label``."""
    env = (("PYTHONPATH", str(src)),) if src is not None else ()
    prefix = f"{label}: " if label else ""
    mhc = (python, "-m", "mhc_mup")
    commands = [
        Command(f"{prefix}mhc-mup --help", (*mhc, "--help"), env, repeats),
        Command(f"{prefix}mhc-mup run", (*mhc, "run", "--out", "{out}"), env, repeats),
    ]
    if src is None:  # this checkout: also with the report's figures drawn in the command's own process
        in_process = (*env, ("MHC_MUP_FIGURE_WORKERS", "0"))
        commands.append(Command(f"{prefix}mhc-mup run, figures in-process", commands[1].argv, in_process, repeats))
    if has_flag(python, dict(env), "run", "--no-report"):
        no_report = (*mhc, "run", "--no-report", "--out", "{out}")
        commands.append(Command(f"{prefix}mhc-mup run --no-report", no_report, env, repeats))
    else:
        print(f"{prefix}mhc-mup run has no --no-report flag: that row is skipped")
    return commands


def machine_facts(python: str) -> dict[str, object]:
    """nproc, CPU model, Python and torch versions of the interpreter that runs the commands."""
    model = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    versions = subprocess.run([python, "-c", VERSIONS_SCRIPT], capture_output=True, text=True).stdout.split()
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": versions[0] if versions else platform.python_version(),
        "torch": versions[1] if len(versions) > 1 else "?",
        "matplotlib": versions[2] if len(versions) > 2 else "?",
    }


def summarise(timings: list[Timing]) -> dict[str, float]:
    walls, cpus = [t.wall_s for t in timings], [t.cpu_s for t in timings]
    return {
        "wall_median_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_median_s": statistics.median(cpus),
        "wall_s": walls,
        "cpu_s": cpus,
    }


def print_table(rows: dict[str, dict[str, float]]) -> None:
    width = max(len(name) for name in rows)
    print(f"{'command':<{width}}  {'runs':>4}  {'wall median':>11}  {'[fastest – slowest]':>19}  {'CPU median':>10}")
    for name, row in rows.items():
        spread = f"[{row['wall_min_s']:.2f} – {row['wall_max_s']:.2f}]"
        runs = len(row["wall_s"])
        print(f"{name:<{width}}  {runs:>4}  {row['wall_median_s']:>10.2f}s  {spread:>19}  {row['cpu_median_s']:>9.2f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench_startup.json (created)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument(
        "--reference-repeats", type=int, default=3, help="timed runs of the seed's script, which is slow (default 3)"
    )
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="the seed's script")
    parser.add_argument("--skip-reference", action="store_true", help="do not time the seed's script")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="SRC",
        help="also time the mhc_mup package found in SRC (a checkout's src/ folder), e.g. the version before a "
        "change, side by side with the installed one",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs every command")
    args = parser.parse_args(argv)
    for flag, value in (("--repeats", args.repeats), ("--reference-repeats", args.reference_repeats)):
        if value < 1:
            parser.error(f"{flag} {value}: must be at least 1")
    if args.before is not None and not (args.before / "mhc_mup").is_dir():
        parser.error(f"--before {args.before}: no mhc_mup package there")

    commands = []
    if args.before is not None:
        commands += mhc_mup_commands(args.python, "before", args.before.resolve(), args.repeats)
    commands += mhc_mup_commands(args.python, "now" if args.before is not None else "", None, args.repeats)
    # the floor under any command that computes with torch: start an interpreter, import torch, exit
    commands.append(Command("floor: python -c 'import torch'", (args.python, "-c", "import torch"), (), args.repeats))
    if args.skip_reference:
        print("the seed's script: skipped (--skip-reference)")
    elif not args.reference.is_file():
        print(f"the seed's script: skipped, {args.reference} not found (pass --reference PATH)")
    else:
        reference = (args.python, str(args.reference.resolve()))
        commands.append(Command("seed script (reference)", reference, repeats=args.reference_repeats))

    facts = machine_facts(args.python)
    load_start = os.getloadavg()
    print(
        f"nproc {facts['nproc']}, {facts['cpu_model']}; Python {facts['python']}, torch {facts['torch']}, "
        f"matplotlib {facts['matplotlib']}; load average {load_start[0]:.2f}"
    )
    timings: dict[str, list[Timing]] = {c.name: [] for c in commands}
    with tempfile.TemporaryDirectory(prefix="bench_startup-") as tmp:
        scratch = Path(tmp)
        for command in commands:  # untimed: warms the page cache and the bytecode caches alike
            run_once(command, scratch, -1)
        for i in range(max(c.repeats for c in commands)):
            for command in commands:
                if i < command.repeats:
                    timings[command.name].append(run_once(command, scratch, i))
    load_end = os.getloadavg()

    rows = {name: summarise(t) for name, t in timings.items()}
    print_table(rows)
    print(f"load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "command_line": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": facts,
        "load_average_start": load_start,
        "load_average_end": load_end,
        "commands": {c.name: {"argv": list(c.argv), "env": dict(c.env), "repeats": c.repeats} for c in commands},
        "results": rows,
    }
    path = args.out / "bench_startup.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
