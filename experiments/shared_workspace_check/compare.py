"""Did runs taking turns under a shared cuBLAS workspace train as runs alone do? The same 14 runs (d = 128,
`control-sp` and `control-mup`, seed 0, η = 2^-12 … 2^-6) three ways: stored in `transfer_issue20` (4 runs in
turns, one shared workspace, before 8b7d9b3), run again one at a time, and again 4 in turns with each run on its own
stream. Prints each run's final validation loss, the pairwise differences, and the mean training loss over steps
100–1000 at the three smallest learning rates, where training is not chaotic. Run from the repository root:

    python experiments/shared_workspace_check/compare.py > experiments/shared_workspace_check/compare.txt
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from mhc_mup.training.transfer.store import read_json

HERE = Path(__file__).parent
SOURCES = {"stored": HERE / "stored_in_turns", "alone": HERE / "one_at_a_time", "turns_fixed": HERE / "in_turns_fixed"}


def runs(folder: Path) -> pd.DataFrame:
    """One row per d = 128 seed-0 run of the two controls: final validation loss and mean train loss 100–1000."""
    rows = []
    for config in ("control-sp", "control-mup"):
        for path in sorted((folder / "runs" / config / "d128" / "seed0").glob("*.json*")):  # .json.gz, .json
            r = read_json(path)
            rows.append({"config": config, "log2_lr": r["log2_lr"], "final_val": r["final_val_loss"],
                         "train_100_1000": float(np.mean(r["train_loss"][100:]))})  # fmt: skip
    return pd.DataFrame(rows).set_index(["config", "log2_lr"]).sort_index()


def main() -> None:
    tables = {name: runs(folder) for name, folder in SOURCES.items()}
    final = pd.concat({n: t.final_val for n, t in tables.items()}, axis=1)
    print("final validation loss (nats/byte)")
    print(final.to_string(float_format=lambda x: f"{x:.4f}"))
    print()
    for a, b in itertools.combinations(final.columns, 2):
        d = final[a] - final[b]
        print(f"{a} - {b}: n = {len(d)}, mean {d.mean():+.4f}, SD {d.std():.4f}, max |.| {d.abs().max():.4f}")
    print()
    calm = pd.concat({n: t.train_100_1000 for n, t in tables.items()}, axis=1)
    calm = calm[calm.index.get_level_values("log2_lr") <= -10]
    print("mean training loss over steps 100-1000, η ≤ 2^-10 (nats/byte)")
    print(calm.to_string(float_format=lambda x: f"{x:.4f}"))
    for a, b in itertools.combinations(calm.columns, 2):
        d = calm[a] - calm[b]
        print(f"{a} - {b}: mean {d.mean():+.4f}, min {d.min():+.4f}, max {d.max():+.4f}")


if __name__ == "__main__":
    main()
