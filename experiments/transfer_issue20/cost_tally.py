"""What issue 20's runs cost in GPU time, from the run records alone: per folder and device, the runs, their
steps, and the GPU-hours they occupied — each run's wall time (``seconds``: model build, compile, training,
validation) divided by how many runs could share its GPU (``runs_per_device``, 4 in turns for most: a lower
bound, since the last runs of a queue had fewer beside them). Machine start,
idle time and lost calls are not in any record: each section of experiments/README.md gives its calls' held
device time.

    PYTHONPATH=src python experiments/transfer_issue20/cost_tally.py [FOLDER ...]

Default: every folder under experiments/ holding run records. A few seconds; records only, nothing trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mhc_mup.training.transfer.store import read_json


def records(folder: Path) -> pd.DataFrame:
    """One row per run record under ``folder/runs``: its device, steps, seconds and GPU share."""
    rows = []
    for path in sorted((folder / "runs").rglob("*.json*")):
        if not path.name.endswith((".json", ".json.gz")):
            continue  # claim locks and the like
        r = read_json(path)
        share = max(int(r.get("runs_per_device") or 1), 1)
        rows.append({
            "folder": folder.name, "device": str(r.get("device", "?")).split("(")[-1].rstrip(")"),
            "steps": int(r.get("steps_done", 0)), "seconds": float(r.get("seconds", 0.0)), "share": share,
            "gpu_seconds": float(r.get("seconds", 0.0)) / share,
        })  # fmt: skip
    return pd.DataFrame(rows)


def tally(folders: list[Path]) -> pd.DataFrame:
    """Per folder and device: runs, median run seconds, runs sharing a GPU (the most common), GPU-hours."""
    runs = pd.concat([records(f) for f in folders], ignore_index=True)
    if runs.empty:
        return pd.DataFrame(columns=["folder", "device", "runs", "steps", "median_run_s", "in_turns", "gpu_hours"])
    table = runs.groupby(["folder", "device"], sort=True).agg(
        runs=("seconds", "size"), steps=("steps", "median"), median_run_s=("seconds", "median"),
        in_turns=("share", lambda s: int(s.mode().iloc[0])), gpu_hours=("gpu_seconds", lambda s: s.sum() / 3600),
    )  # fmt: skip
    return table.reset_index()


def main(argv: list[str]) -> int:
    root = Path("experiments")
    folders = [Path(a) for a in argv] or sorted(p.parent for p in root.glob("*/runs") if p.is_dir())
    missing = [str(f) for f in folders if not (f / "runs").is_dir()]
    if missing:
        print(f"error: no runs/ folder in {', '.join(missing)}", file=sys.stderr)
        return 2
    table = tally(folders)
    if table.empty:
        print("no run records in " + ", ".join(map(str, folders)))
        return 0
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    by_device = table.groupby("device").agg(runs=("runs", "sum"), gpu_hours=("gpu_hours", "sum"))
    print(f"\nin all: {int(table.runs.sum())} runs, {table.gpu_hours.sum():.2f} GPU-hours of run time")
    for device, row in by_device.iterrows():
        print(f"  {device}: {int(row.runs)} runs, {row.gpu_hours:.2f} GPU-hours")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
