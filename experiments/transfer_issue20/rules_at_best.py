"""Does tuning a rule's own multiplier close its gap to another rule? Two multiplier-sweep folders of one body
(e.g. item 2's ``lrfn_onepass2000_baseline`` and ``lrfn_onepass2000_mup``, each at its rule's own η* per width):
per width, the seed-paired difference of final validation loss, A − B, (1) each at its best multiplier (the
argmin of the seed-mean loss over the values every seed has) and (2) both at the rule's own multiplier (×1), with
the t-interval of the mean over seeds (95%). Picking each folder's best value from the same runs favours both a
little (the minimum of noisy means); (3) held out removes that bias: each seed's difference at the values the
*other* seeds' mean picks for each folder (leave one seed out), so no seed's loss chooses its own multiplier (a pick
from two seeds is the noisier, so this leans the other way; the held-out values share seeds, so their t-interval
is approximate). The pairing by seed shares the data order and the body's initial weights.

    PYTHONPATH=src python experiments/transfer_issue20/rules_at_best.py FOLDER_A FOLDER_B

Reads each folder's transfer.csv (``--report-only`` writes it); a second or so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mhc_mup.stats.fitting import mean_t_interval


def seed_table(folder: Path, width: int) -> pd.DataFrame:
    """Final validation loss, seeds × log2 of the multiplier, of the values every seed of ``width`` has."""
    runs = pd.read_csv(folder / "transfer.csv")
    runs = runs[(runs.width == width) & ~runs.diverged.astype(bool)]
    return runs.assign(x=np.log2(runs.value).round(3)).pivot_table(
        index="seed", columns="x", values="final_val_loss").dropna(axis=1)  # fmt: skip


def mean_interval(x: np.ndarray) -> str:
    """``mean [low, high]``: the t-interval of the mean of ``x`` (95%; the project's ``mean_t_interval``)."""
    low, high = mean_t_interval(x)
    return f"{x.mean():+.3f} [{low:+.3f}, {high:+.3f}]"


def held_out(ta: pd.DataFrame, tb: pd.DataFrame) -> np.ndarray:
    """Per seed, A − B at the multipliers the other seeds' mean loss picks for each (leave one seed out)."""
    out = []
    for s in ta.index:
        xa, xb = ta.drop(index=s).mean().idxmin(), tb.drop(index=s).mean().idxmin()
        out.append(ta.loc[s, xa] - tb.loc[s, xb])
    return np.asarray(out)


def main(a: Path, b: Path) -> None:
    widths = sorted(set(pd.read_csv(a / "transfer.csv").width) & set(pd.read_csv(b / "transfer.csv").width))
    print(f"A = {a.name}, B = {b.name}: loss A − B per width, paired by seed (nats/byte, 95% t-interval)")
    print(f"{'width':>6}  {'A best':>9} {'B best':>9}  {'A − B, each at its best':<28} {'held out':<28} "
          f"{'A − B, both at ×1':<28} seeds")
    for w in widths:
        ta, tb = seed_table(a, w), seed_table(b, w)
        seeds = ta.index.intersection(tb.index)
        ta, tb = ta.loc[seeds], tb.loc[seeds]
        xa, xb = ta.mean().idxmin(), tb.mean().idxmin()
        at_best = (ta[xa] - tb[xb]).to_numpy()
        at_rule = (ta[0.0] - tb[0.0]).to_numpy() if 0.0 in ta and 0.0 in tb else np.full(len(seeds), np.nan)
        print(f"{w:>6}  {f'2^{xa:g}':>9} {f'2^{xb:g}':>9}  {mean_interval(at_best):<28} "
              f"{mean_interval(held_out(ta, tb)):<28} {mean_interval(at_rule):<28} {len(seeds)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
