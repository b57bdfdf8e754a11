"""Can the drift against the control be read with a paired interval? A simulation of an mHC configuration and its
control that share their seeds' noise (the same seed draws the same body weights and batches in both), comparing
the report's interval for δ = β_config − β_control (each joint fit's t-interval, combined in quadrature) with a
paired, cluster-robust one: per (width, seed) curve each fit's score g·r (its β influence times its residuals),
δ's variance G/(G − 1)·Σ_curves (s_config − s_control)², a t-interval on G − 1 degrees of freedom.

Each sweep: widths 128–2048, 3 seeds, grid 2^−10 … 2^−4, window ±2 around each width's argmin; a skewed bowl
(A = 0.027, κ = 0.4) whose optimum x0 + β·log2(d/256) moves per (width, seed) by a shift shared by the two
configurations (sd ``shift``) plus one of its own (sd 0.05); run noise σ = 0.012 of which a fraction ``rho`` of
the variance is shared. Coverage of the true δ and the median half-width over N sweeps per case. Exploratory: the
analysis does not use the paired interval (see experiments/README, `transfer_onepass2000/`).

    PYTHONPATH=src python experiments/transfer_issue20/paired_coverage.py 1000 \
        > experiments/transfer_issue20/paired_coverage.txt
"""

from __future__ import annotations

import math
import sys

import numpy as np
from scipy.special import stdtrit

from mhc_mup.stats import optimum

WIDTHS = (128, 256, 512, 1024, 2048)
GRID = np.arange(-10.0, -3.0)
A, KAPPA, SIGMA, OWN_SD = 0.027, 0.4, 0.012, 0.05


def paired_sweep(rng, beta_c: float, beta_a: float, rho: float, shift: float, seeds: int = 3) -> dict[str, list]:
    """``{"c": [(width, seed, losses over GRID)], "a": [...]}`` of one synthetic pair of sweeps."""
    x0 = -7.0 + rng.uniform(-0.5, 0.5)
    data: dict[str, list] = {"c": [], "a": []}
    for w in WIDTHS:
        u = math.log2(w / 256)
        for s in range(seeds):
            shared_shift, shared_noise = shift * rng.standard_normal(), rng.standard_normal(len(GRID))
            for name, beta in (("c", beta_c), ("a", beta_a)):
                t = GRID - (x0 + beta * u + shared_shift + OWN_SD * rng.standard_normal())
                bowl = A * (np.exp(KAPPA * t) - KAPPA * t - 1) / KAPPA**2
                noise = SIGMA * (math.sqrt(rho) * shared_noise + math.sqrt(1 - rho) * rng.standard_normal(len(GRID)))
                height = 2.3 - 0.02 * math.log2(w / 128) + 0.01 * rng.standard_normal()
                data[name].append((w, s, height + bowl + noise))
    return data


def windowed(curves: list, halfwidth: int = 2) -> tuple:
    """``(log2 d, x, curve index, loss, (width, seed) per point)``: each width's window around the argmin of its
    seed-mean curve, as the transfer analysis picks it."""
    rows = []
    for w in WIDTHS:
        mine = [(s, loss) for width, s, loss in curves if width == w]
        j = int(np.argmin(np.mean([loss for _, loss in mine], axis=0)))
        for s, loss in mine:
            rows += [(math.log2(w), GRID[i], (w, s), loss[i]) for i in range(max(0, j - halfwidth),
                                                                             min(len(GRID), j + halfwidth + 1))]
    keys = [r[2] for r in rows]
    _, group = np.unique([k[0] * 100 + k[1] for k in keys], return_inverse=True)
    return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), group, np.array([r[3] for r in rows]),
            keys)  # fmt: skip


def fit_with_scores(lw, x, group, loss, keys) -> tuple[float, float, int, dict]:
    """The joint fit's β, its se and degrees of freedom, and each curve's score ``Σ_i h_i·r_i`` (``h`` the
    β row of (JᵀJ)⁻¹Jᵀ, ``r`` the centred residuals)."""
    u = lw - lw.mean()
    n_groups = int(group.max()) + 1
    start = optimum._start(u, x, loss, group, n_groups)
    theta, r, jac, _ = optimum._least_squares(np.column_stack([np.ones_like(u), u]), u, x, loss, group, start)
    inv = np.linalg.inv(jac.T @ jac)
    dof = len(loss) - 5 - n_groups
    se = math.sqrt(float(r @ r) / dof * inv[1, 1])
    h = jac @ inv[:, 1]
    scores: dict = {}
    for k, hi, ri in zip(keys, h, r, strict=True):
        scores[k] = scores.get(k, 0.0) + hi * ri
    return float(theta[1]), se, dof, scores


def case(n: int, beta_c: float, beta_a: float, rho: float, shift: float) -> str:
    rng = np.random.default_rng(0)
    hits_q = hits_p = 0
    half_q, half_p = [], []
    for _ in range(n):
        pair = paired_sweep(rng, beta_c, beta_a, rho, shift)
        bc, se_c, dof_c, s_c = fit_with_scores(*windowed(pair["c"]))
        ba, se_a, dof_a, s_a = fit_with_scores(*windowed(pair["a"]))
        error = abs((bc - ba) - (beta_c - beta_a))
        hq = float(stdtrit(min(dof_c, dof_a), 0.975)) * math.hypot(se_c, se_a)
        curves = sorted(set(s_c) & set(s_a))
        g = len(curves)
        hp = float(stdtrit(g - 1, 0.975)) * math.sqrt(g / (g - 1) * sum((s_c[k] - s_a[k]) ** 2 for k in curves))
        hits_q, hits_p = hits_q + (error <= hq), hits_p + (error <= hp)
        half_q.append(hq)
        half_p.append(hp)
    return (f"β {beta_c:+.1f} vs {beta_a:+.1f}, shared noise {rho:.1f}, shared shift sd {shift:.2f}: quadrature "
            f"covers {hits_q / n:.2f} (median half-width {np.median(half_q):.3f}); paired covers {hits_p / n:.2f} "
            f"({np.median(half_p):.3f})")  # fmt: skip


def main(n: int) -> None:
    print(f"{n} sweeps per case; nominal coverage 0.95")
    for rho, shift in ((0.6, 0.15), (0.8, 0.30), (0.0, 0.15), (0.0, 0.0)):
        print(case(n, 0.0, 0.0, rho, shift))
    print(case(n, -1.0, 0.0, 0.6, 0.15))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
