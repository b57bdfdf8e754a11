"""Do an mHC configuration and its control share their seeds' noise? The relative drift δ = β_config − β_control
of the transfer analysis combines the two joint fits' intervals in quadrature, as if independent. This resamples
each width's seeds once and refits both configurations on the same draw (a paired seed bootstrap): the
correlation of the two β's over the draws, and the percentile interval of δ, beside the quadrature interval the
report gives. Exploratory: it shows how much pairing could narrow δ's interval; the analysis does not use it.

    PYTHONPATH=src python experiments/transfer_issue20/paired_relative.py FOLDER CONFIG CONTROL [DRAWS]

e.g. ``experiments/transfer_issue20 mup control-mup``. Both are refitted over the widths where both have a fit
window (the report's relative table does the same), with the analysis's default window; about a minute.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from mhc_mup.stats.optimum import fit_joint_optimum
from mhc_mup.training.transfer import joint
from mhc_mup.training.transfer.analysis import analyse
from mhc_mup.training.transfer.store import load_records, stored_config


def fit_windows(cfg, result, name: str, widths: list[int]) -> dict[int, tuple]:
    """``{width: (curves, window columns)}`` of configuration ``name`` where it has a fit window."""
    curves = []
    for w in widths:
        sel = result.runs[(result.runs.config == name) & (result.runs.width == w)]
        c = joint.width_curves(cfg, sel, (result.values or {}).get((name, w)))
        if c is not None:
            curves.append(c)
    fitted, _, _ = joint._sort_widths(cfg, curves)
    return {c.width: (c, cols) for c, cols in fitted}


def beta_on(fitted: list[tuple], draw: dict[int, list[int]]) -> float:
    """The joint fit's β on the curves of ``draw`` (``{width: seeds drawn}``; a seed drawn twice enters twice)."""
    lw, x, seed, loss = joint._stack(fitted)
    rows, groups = [], []
    for w, seeds in draw.items():
        for s in seeds:
            r = np.flatnonzero((lw == math.log2(w)) & (seed == s))
            rows.append(r)
            groups.append(np.full(len(r), len(groups)))
    idx = np.concatenate(rows)
    return fit_joint_optimum(lw[idx], x[idx], np.concatenate(groups), loss[idx], lack_of_fit=False).beta


def main(folder: str, name: str, control: str, draws: int = 400) -> None:
    out = Path(folder)
    cfg, grids = stored_config(out)
    result = analyse(cfg, load_records(cfg, out), grids)
    widths = sorted(set(result.runs.width))
    a, b = fit_windows(cfg, result, name, widths), fit_windows(cfg, result, control, widths)
    common = sorted(set(a) & set(b))
    fa, fb = [a[w] for w in common], [b[w] for w in common]
    seeds = {w: list(a[w][0].seeds) for w in common}
    delta = beta_on(fa, seeds) - beta_on(fb, seeds)
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(draws):
        draw = {w: list(rng.choice(s, size=len(s))) for w, s in seeds.items()}
        pairs.append((beta_on(fa, draw), beta_on(fb, draw)))
    ba, bb = np.array(pairs).T
    low, high = np.quantile(ba - bb, [0.025, 0.975])
    row = result.relative[result.relative.config == name]
    print(f"{folder}: {name} against {control}, widths {common}, {draws} paired draws of the seeds")
    print(f"  δ = {delta:+.3f}; paired bootstrap 95% [{low:+.3f}, {high:+.3f}]")
    print(f"  correlation of the two β over the draws {np.corrcoef(ba, bb)[0, 1]:.2f}; "
          f"sd {ba.std():.3f} ({name}), {bb.std():.3f} ({control}), {(ba - bb).std():.3f} (δ)")  # fmt: skip
    if len(row):
        r = row.iloc[0]
        print(f"  the report's δ (quadrature of the two union intervals): {r.exponent:+.3f} "
              f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]")  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:4], *(int(v) for v in sys.argv[4:5]))
