"""Do an mHC configuration and its control share their seeds' noise? The relative drift δ = β_config − β_control
of the transfer analysis combines the two joint fits' intervals in quadrature, as if independent. This resamples
each width's seeds once and refits both configurations on the same draw (a paired seed bootstrap): the
correlation of the two β's over the draws, and the percentile interval of δ, beside the quadrature interval the
report gives, and the report's paired interval (:func:`mhc_mup.stats.optimum.paired_difference`). Then a check of
that interval's clusters: the curves of one seed share its batches at every width, so a seed whose optimum tilts
with width in one configuration only would give its curves' paired scores one sign at every width; a two-way
ANOVA of the paired scores (widths × seeds) tests for that seed effect. Exploratory: the verdict reads the
quadrature.

    PYTHONPATH=src python experiments/transfer_issue20/paired_relative.py FOLDER CONFIG CONTROL [DRAWS]

e.g. ``experiments/transfer_issue20 mup control-mup`` (its output: ``paired_relative.txt``, mup then baseline;
``paired_relative_onepass2000.txt`` the same for ``experiments/transfer_onepass2000``, then ``mup baseline``: two
mHC rules against each other, which the report does not pair, with the analysis's two intervals for them). Both
are refitted over the widths where both have a fit window (the report's relative table does the same), with the
analysis's default window; about a minute.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import fdtrc

from mhc_mup.stats.optimum import fit_joint_optimum, paired_difference
from mhc_mup.training.transfer import joint
from mhc_mup.training.transfer.analysis import analyse
from mhc_mup.training.transfer.anchors import difference_interval
from mhc_mup.training.transfer.store import load_records, stored_config


def fit_windows(cfg, result, name: str, widths: list[int]) -> dict[int, tuple]:
    """``{width: (curves, window columns)}`` of configuration ``name`` where it has a fit window."""
    curves = []
    for w in widths:
        sel = result.runs[(result.runs.config == name) & (result.runs.width == w)]
        c = joint.width_curves(cfg, sel, (result.values or {}).get((name, w)))
        if c is not None:
            curves.append(c)
    fitted, _, _ = joint.joint_windows(cfg, curves)
    return {c.width: (c, cols) for c, cols in fitted}


def beta_on(fitted: list[tuple], draw: dict[int, list[int]]) -> float:
    """The joint fit's β on the curves of ``draw`` (``{width: seeds drawn}``; a seed drawn twice enters twice)."""
    lw, x, seed, loss = joint.window_runs(fitted)
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
    row = result.relative[(result.relative.config == name) & (result.relative.anchor == control)]
    print(f"{folder}: {name} against {control}, widths {common}, {draws} paired draws of the seeds")
    print(f"  δ = {delta:+.3f}; paired bootstrap 95% [{low:+.3f}, {high:+.3f}]")
    print(f"  correlation of the two β over the draws {np.corrcoef(ba, bb)[0, 1]:.2f}; "
          f"sd {ba.std():.3f} ({name}), {bb.std():.3f} ({control}), {(ba - bb).std():.3f} (δ)")  # fmt: skip
    if len(row):
        r = row.iloc[0]
        print(f"  the report's δ (quadrature of the two union intervals): {r.exponent:+.3f} "
              f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]; its paired interval [{r.paired_low:+.3f}, {r.paired_high:+.3f}] "
              f"(F_δ {r.paired_lack_of_fit:.2f})")  # fmt: skip
    else:  # not a control pair: the analysis's two intervals for this pair, from the same joint fits
        print("  " + analysis_intervals(cfg, [c for c, _ in fa], [c for c, _ in fb]))
    print("  " + seed_effect(fa, fb, common))


def analysis_intervals(cfg, curves_a: list, curves_b: list) -> str:
    """δ of two configurations' joint fits over the same curves, with the report's quadrature interval (its
    verdict's) and its paired interval: what the report would print were ``b`` the control of ``a``."""
    (row_a, _, fit_a), (row_b, _, fit_b) = (joint.joint_drift(cfg, c) for c in (curves_a, curves_b))
    cols = ("joint_exponent", "joint_low", "joint_high")
    delta, low, high = difference_interval(*(tuple(r[k] for k in cols) for r in (row_a, row_b)))
    paired = paired_difference(fit_a, fit_b)
    return (f"the analysis's δ (quadrature of the two union intervals): {delta:+.3f} [{low:+.3f}, {high:+.3f}]; "
            f"its paired interval [{paired.ci_low:+.3f}, {paired.ci_high:+.3f}] (F_δ {paired.lack_of_fit:.2f})")


def seed_effect(fa: list[tuple], fb: list[tuple], widths: list[int]) -> str:
    """A two-way ANOVA of the paired CR2 scores ``s_config − s_control`` (widths × seeds): the seeds' effect."""
    scores = []
    for fitted in (fa, fb):
        lw, x, seed, loss = joint.window_runs(fitted)
        fit = fit_joint_optimum(lw, x, lw * 1e6 + seed, loss)  # the analysis's curve labels
        scores.append(dict(zip(fit.curves, fit.scores, strict=True)))
    d = {k: scores[0][k] - scores[1][k] for k in scores[0]}
    seeds = sorted({round(k % 1e6) for k in d})
    m = np.array([[d[math.log2(w) * 1e6 + s] for s in seeds] for w in widths])
    r = m - m.mean(axis=1, keepdims=True)
    n_w, n_s = m.shape
    f = n_w * float((r.mean(axis=0) ** 2).sum()) / (n_s - 1)
    f /= float(((r - r.mean(axis=0, keepdims=True)) ** 2).sum()) / ((n_w - 1) * (n_s - 1))
    dof = (n_s - 1, (n_w - 1) * (n_s - 1))
    return f"seed effect on the paired scores (widths × seeds ANOVA): F = {f:.2f} on {dof}, p = {fdtrc(*dof, f):.2f}"


if __name__ == "__main__":
    main(*sys.argv[1:4], *(int(v) for v in sys.argv[4:5]))
