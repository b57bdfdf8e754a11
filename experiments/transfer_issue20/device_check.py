"""How far does one run land on two GPUs? Each run record of folder A (e.g. ``device_check_onepass2000``, runs
repeated on the GPU a later call got) against the record at the same path in folder B (the originals, e.g.
``transfer_onepass2000``): their devices, final validation and training losses and the differences, beside the
seed-to-seed σ of B's ``noise.csv`` at that configuration and width (the scale the analysis reads differences by).
Also at how many training steps the two loss curves agree exactly, and where they first part.

    PYTHONPATH=src python experiments/transfer_issue20/device_check.py FOLDER_A FOLDER_B

A second or so; records only, nothing trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mhc_mup.training.transfer.store import read_json


def compare(a: Path, b: Path) -> pd.DataFrame:
    """One row per run of ``a`` that ``b`` holds at the same relative path."""
    sigma = pd.read_csv(b / "noise.csv").set_index(["config", "width"]).seed_sigma
    rows = []
    for path in sorted((a / "runs").rglob("*.json*")):
        name = path.relative_to(a).as_posix().removesuffix(".gz")
        other = next((b / n for n in (f"{name}.gz", name) if (b / n).exists()), None)  # .json.gz, or .json before
        if other is None:
            continue
        ra, rb = read_json(path), read_json(other)
        ca, cb = np.asarray(ra.get("train_loss", []), float), np.asarray(rb.get("train_loss", []), float)
        n = min(len(ca), len(cb))
        rows.append({
            "run": path.relative_to(a / "runs").as_posix(), "device_a": ra["device"], "device_b": rb["device"],
            "val_a": ra["final_val_loss"], "val_b": rb["final_val_loss"],
            "val_diff": ra["final_val_loss"] - rb["final_val_loss"],
            "train_diff": ra["final_train_loss"] - rb["final_train_loss"],
            "equal_steps": f"{int(np.sum(ca[:n] == cb[:n]))}/{n}",
            "first_apart": int(np.argmax(ca[:n] != cb[:n])) if np.any(ca[:n] != cb[:n]) else -1,
            "seed_sigma": sigma.get((ra["config"], ra["width"]), np.nan),
        })  # fmt: skip
    return pd.DataFrame(rows)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    table = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    if table.empty:
        sys.exit("no run of the first folder is stored at the same path in the second")
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:+.5f}"))
    print(f"|val diff|: median {table.val_diff.abs().median():.5f}, max {table.val_diff.abs().max():.5f} nats/byte")
