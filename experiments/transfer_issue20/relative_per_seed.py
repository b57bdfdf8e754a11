"""The drift of one configuration's optimum against another's by the per-seed estimator, paired by seed: per width
and seed the difference of the two per-seed optima (``optima_seeds.csv``: same seed, same body weights and data
order), their mean per width regressed on log2 d. The interval is the regression's t-interval across widths (W − 2
degrees of freedom), so a width whose seeds all move together counts as one deviation, not as three agreeing
seeds; beside it, the t-interval of the seeds' own slopes (each seed's differences regressed on log2 d), which
treats the widths as fixed (on 3 seeds, 2 degrees of freedom: not always the narrower). Exploratory: the
report's relative drift reads the joint fits. Pairs with `control-sp` are left out (its optimum moves by design).

    PYTHONPATH=src python experiments/transfer_issue20/relative_per_seed.py FOLDER [FROM_WIDTH]

``FROM_WIDTH``: fit from that width up (default: every width where both have an optimum for every seed).
Reads ``optima_seeds.csv`` (``--report-only`` writes it); a second.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mhc_mup.stats.fitting import mean_t_interval


def paired_differences(seeds: pd.DataFrame, config: str, anchor: str | None) -> pd.DataFrame:
    """``width × seed`` log2 η* of ``config`` less ``anchor``'s (none: ``config``'s own), where both have one."""
    table = seeds.pivot_table(index="width", columns=["config", "seed"], values="log2_lr_opt")
    own = table[config]
    return (own - table[anchor] if anchor else own).dropna()


def line(delta: pd.DataFrame) -> str:
    """The slope of the seed-mean over log2 d with its across-width t-interval, and the seeds' slopes' t-interval."""
    x = np.log2(delta.index.to_numpy(dtype=float))
    fit = stats.linregress(x, delta.mean(axis=1).to_numpy())
    half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
    per_seed = np.array([stats.linregress(x, delta[s].to_numpy()).slope for s in delta.columns])
    low, high = mean_t_interval(per_seed)
    return (f"{fit.slope:+.3f} [{fit.slope - half:+.3f}, {fit.slope + half:+.3f}] across widths;  "
            f"seeds' slopes {per_seed.mean():+.3f} [{low:+.3f}, {high:+.3f}]")  # fmt: skip


def main(folder: Path, from_width: int = 0) -> int:
    seeds = pd.read_csv(folder / "optima_seeds.csv")
    seeds = seeds[seeds.width >= from_width]
    configs = list(dict.fromkeys(seeds.config))
    print(f"{folder.name}: per-seed optima, log2 η* against log2 d (95%), widths ≥ {from_width or min(seeds.width)}")
    pairs = [(c, None) for c in configs]
    pairs += [(c, a) for c, a in itertools.combinations(configs, 2) if "control-sp" not in (c, a)]
    for config, anchor in pairs:
        delta = paired_differences(seeds, config, anchor)
        name = f"{config} − {anchor}" if anchor else config
        if len(delta) < 3:  # a line through 2 points has no residual to give an interval
            print(f"  {name:<24} fewer than 3 widths with an optimum for every seed: no fit")
            continue
        print(f"  {name:<24} {line(delta)}  ({len(delta)} widths)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 0))
