"""Can the joint fit's skew vary with width? The analysis fits one skew κ shared by all widths
(``L = c[d, s] + a(d)·t²·(1 + κ·t)``, docs/transfer.md). ``baseline``'s joint line on ``transfer_onepass2000`` sits
0.2–0.7 octave under its per-seed optima at every width, as if its curves' skew changed with width. This refits each
configuration's joint fit, over the same windows, with ``κ(d) = κ₀ + κ₁·(log2 d − mean)`` and prints β beside the
shared-κ fit's (its ± is 1.96 standard errors from the residuals, no widening, no bootstrap). Exploratory.

    PYTHONPATH=src python experiments/transfer_issue20/skew_by_width.py FOLDER CONFIG ...

e.g. ``experiments/transfer_onepass2000 control-mup mup baseline control-sp`` (its output:
``skew_by_width_onepass2000.txt``); a few seconds.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from mhc_mup.stats.optimum import fit_joint_optimum
from mhc_mup.training.transfer import joint
from mhc_mup.training.transfer.analysis import analyse
from mhc_mup.training.transfer.store import load_records, stored_config


def windows(cfg, result, name: str) -> tuple[np.ndarray, ...]:
    """``(log2 d, log2 η, seed, loss)`` of ``name``'s runs in the joint fit's windows, as the analysis picks them."""
    curves = []
    for w in sorted(set(result.runs.width)):
        sel = result.runs[(result.runs.config == name) & (result.runs.width == w)]
        c = joint.width_curves(cfg, sel, (result.values or {}).get((name, w)))
        if c is not None:
            curves.append(c)
    fitted, _, _ = joint.joint_windows(cfg, curves)
    return joint.window_runs(fitted)


def centred(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``v`` less its mean within each curve ``g``: the heights ``c[d, s]`` profiled out, as the analysis does."""
    return v - (np.bincount(g, v) / np.bincount(g))[g]


def varying_skew(lw: np.ndarray, x: np.ndarray, seed: np.ndarray, y: np.ndarray) -> str:
    """Both fits of one configuration, in a line."""
    curve = lw * 1e6 + seed
    shared = fit_joint_optimum(lw, x, curve, y)
    _, g = np.unique(curve, return_inverse=True)
    n_curves, u = int(g.max()) + 1, lw - lw.mean()

    def residuals(p: np.ndarray) -> np.ndarray:
        x0, beta, l0, l1, k0, k1 = p
        t = x - x0 - beta * u
        return centred(y - np.exp(l0 + l1 * u) * t * t * (1 + (k0 + k1 * u) * t), g)

    start = [shared.x0, shared.beta, shared.log_curvature, shared.curvature_slope, shared.skew, 0.0]
    sol = least_squares(residuals, np.array(start), method="lm", x_scale="jac")
    s2 = float(sol.fun @ sol.fun) / (len(y) - 6 - n_curves)
    se = math.sqrt(s2 * np.linalg.inv(sol.jac.T @ sol.jac)[1, 1])
    optima = " ".join(f"{sol.x[0] + sol.x[1] * v:+.2f}" for v in np.unique(u))
    return (f"shared κ {shared.skew:+.3f}: β {shared.beta:+.3f} [{shared.ci_low:+.3f}, {shared.ci_high:+.3f}], "
            f"σ {shared.sigma:.4f} | κ(d) {sol.x[4]:+.3f} {sol.x[5]:+.3f}·u: β {sol.x[1]:+.3f} ± {1.96 * se:.3f}, "
            f"σ {math.sqrt(s2):.4f}, its line {optima}")  # fmt: skip


def main(folder: str, names: list[str]) -> None:
    cfg, grids = stored_config(Path(folder))
    result = analyse(cfg, load_records(cfg, Path(folder)), grids)
    for name in names:
        print(f"{name}: {varying_skew(*windows(cfg, result, name))}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
