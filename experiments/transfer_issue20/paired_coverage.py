"""Can the drift against the control be read with a paired interval? A simulation of an mHC configuration and its
control that share their seeds' noise (the same seed draws the same body weights and batches in both), comparing
intervals for δ = β_config − β_control: the quadrature (each joint fit's t-interval, combined in quadrature; the
verdict's interval), and paired, cluster-robust ones over the (width, seed) curves: CR1, each fit's score g·r
(its β influence times its residuals) with δ's variance G/(G − 1)·Σ_curves (s_config − s_control)²; CR2 (the
scores of :func:`mhc_mup.stats.optimum.fit_joint_optimum`), the residuals scaled by (I − P_gg)^{-1/2} first,
without the G/(G − 1); and "paired", the report's paired interval (:func:`mhc_mup.stats.optimum.paired_difference`):
CR2 widened by the pair's lack of fit √max(1, F_δ), none where the windows hold fewer than 4 points a curve (the
quadrature stands in there). All t-intervals on G − 1 degrees of freedom.

Each sweep: widths 128–2048 (or 128–1024), 3 seeds, grid 2^−10 … 2^−4, window ±2 (or ±1) around each width's
argmin; a skewed bowl (A = 0.027, κ = 0.4) whose optimum x0 + β·log2(d/256) moves per (width, seed) by a shift
shared by the two configurations (sd ``shift``) plus one of its own (sd 0.05), and, in the last cases, per seed
by a shift of the configuration's own that is the same at every width (sd ``seed_shift``: a seed that favours a
larger η at every width) or per width by one the same for every seed (sd ``width_shift``: an optimum that does not
move as a power law); run noise σ = 0.012 of which a fraction ``rho`` of the variance is shared. Coverage of
the true δ and the median half-width over N sweeps per case.

    PYTHONPATH=src python experiments/transfer_issue20/paired_coverage.py 1000 \
        > experiments/transfer_issue20/paired_coverage.txt

With ``power`` after N, how often each interval reads a true drift against the control as it is, with 3 or 6
seeds over 128–1024 or 128–2048 (about 20 s at N = 150):

    PYTHONPATH=src python experiments/transfer_issue20/paired_coverage.py 150 power \
        > experiments/transfer_issue20/paired_power.txt
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

from mhc_mup.stats import optimum
from mhc_mup.stats.readings import classify_interval, drift_verdict

GRID = np.arange(-10.0, -3.0)
A, KAPPA, SIGMA, OWN_SD = 0.027, 0.4, 0.012, 0.05


@dataclass(frozen=True)
class Case:
    beta_c: float = 0.0
    beta_a: float = 0.0
    rho: float = 0.6  # the share of the run noise's variance the two configurations have in common
    shift: float = 0.15  # sd of the optimum's shift per (width, seed) that both share
    seed_shift: float = 0.0  # sd of the optimum's shift per seed, the same at every width, each its own
    width_shift: float = 0.0  # sd of the optimum's shift per width, the same for every seed, each its own
    widths: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    halfwidth: int = 2

    def __str__(self) -> str:
        return (f"β {self.beta_c:+.1f} vs {self.beta_a:+.1f}, shared noise {self.rho:.1f}, shared shift sd "
                f"{self.shift:.2f}, own seed shift sd {self.seed_shift:.2f}, own width shift sd "
                f"{self.width_shift:.2f}, "
                f"{self.widths[0]}–{self.widths[-1]}, "
                f"window ±{self.halfwidth}")  # fmt: skip


def paired_sweep(rng, case: Case, seeds: int = 3) -> dict[str, list]:
    """``{"c": [(width, seed, losses over GRID)], "a": [...]}`` of one synthetic pair of sweeps."""
    x0 = -7.0 + rng.uniform(-0.5, 0.5)
    seed_shift = {name: case.seed_shift * rng.standard_normal(seeds) for name in ("c", "a")}
    width_shift = {name: case.width_shift * rng.standard_normal(len(case.widths)) for name in ("c", "a")}
    data: dict[str, list] = {"c": [], "a": []}
    for i, w in enumerate(case.widths):
        u = math.log2(w / 256)
        for s in range(seeds):
            shared_shift, shared_noise = case.shift * rng.standard_normal(), rng.standard_normal(len(GRID))
            for name, beta in (("c", case.beta_c), ("a", case.beta_a)):
                own = OWN_SD * rng.standard_normal() + seed_shift[name][s] + width_shift[name][i]
                t = GRID - (x0 + beta * u + shared_shift + own)
                bowl = A * (np.exp(KAPPA * t) - KAPPA * t - 1) / KAPPA**2
                noise = SIGMA * (math.sqrt(case.rho) * shared_noise
                                 + math.sqrt(1 - case.rho) * rng.standard_normal(len(GRID)))  # fmt: skip
                height = 2.3 - 0.02 * math.log2(w / 128) + 0.01 * rng.standard_normal()
                data[name].append((w, s, height + bowl + noise))
    return data


def windowed(curves: list, widths: tuple[int, ...], halfwidth: int) -> tuple:
    """``(log2 d, x, curve label, loss)``: each width's window around the argmin of its seed-mean curve, as the
    transfer analysis picks it; a curve's label is ``width·100 + seed`` in both configurations."""
    rows = []
    for w in widths:
        mine = [(s, loss) for width, s, loss in curves if width == w]
        j = int(np.argmin(np.mean([loss for _, loss in mine], axis=0)))
        for s, loss in mine:
            rows += [(math.log2(w), GRID[i], w * 100 + s, loss[i])
                     for i in range(max(0, j - halfwidth), min(len(GRID), j + halfwidth + 1))]  # fmt: skip
    return tuple(np.array([r[k] for r in rows]) for k in range(4))


def cr1_scores(lw, x, label, loss) -> dict:
    """Each curve's CR1 score ``Σ_i h_i·r_i`` of the joint fit's β (``h`` the β row of (JᵀJ)⁻¹Jᵀ, ``r`` the
    centred residuals), unadjusted."""
    u = lw - lw.mean()
    labels, group = np.unique(label, return_inverse=True)
    start = optimum._start(u, x, loss, group, len(labels))
    start = start if optimum._skew_fits(x, group, len(labels)) else start[:-1]  # the analysis's model
    _, r, jac, _ = optimum._least_squares(np.column_stack([np.ones_like(u), u]), u, x, loss, group, start)
    h = jac @ np.linalg.inv(jac.T @ jac)[:, 1]
    return {k: float(h[group == i] @ r[group == i]) for i, k in enumerate(labels)}


def run_case(n: int, case: Case) -> str:
    rng = np.random.default_rng(0)
    hits = {"quadrature": 0, "CR1": 0, "CR2": 0, "paired": 0}
    halves: dict[str, list] = {k: [] for k in hits}
    unpaired = 0
    for _ in range(n):
        pair = paired_sweep(rng, case)
        data = {k: windowed(pair[k], case.widths, case.halfwidth) for k in ("c", "a")}
        fits = {k: optimum.fit_joint_optimum(*data[k]) for k in data}
        truth = case.beta_a - case.beta_c
        delta = fits["a"].beta - fits["c"].beta
        dof = min(f.dof for f in fits.values())
        half = {"quadrature": float(stdtrit(dof, 0.975)) * math.hypot(fits["a"].se_beta, fits["c"].se_beta)}
        s_a, s_c = cr1_scores(*data["a"]), cr1_scores(*data["c"])
        g = len(s_a)
        cr1 = math.sqrt(g / (g - 1) * sum((s_a[k] - s_c[k]) ** 2 for k in s_a))
        half["CR1"] = float(stdtrit(g - 1, 0.975)) * cr1
        cr2 = float(np.sqrt(np.sum(np.square(np.subtract(fits["a"].scores, fits["c"].scores)))))
        half["CR2"] = float(stdtrit(g - 1, 0.975)) * cr2
        paired = optimum.paired_difference(fits["a"], fits["c"])  # NaN where the report has no paired interval
        unpaired += not math.isfinite(paired.ci_high)
        half["paired"] = paired.ci_high - paired.delta if math.isfinite(paired.ci_high) else half["quadrature"]
        for k, hw in half.items():
            hits[k] += abs(delta - truth) <= hw
            halves[k].append(hw)
    cells = "; ".join(f"{k} {hits[k] / n:.3f} ({np.median(halves[k]):.3f})" for k in hits)
    return f"{case}\n    covers (median half-width): {cells}; no paired interval in {unpaired / n:.0%}"


def power(n: int) -> None:
    """How often each interval reads the drift against the control as it is (the verdict at ±0.1: transfers when
    the interval lies inside, drifts when δ lies outside and the interval excludes 0), for true δ from 0 to −0.2,
    over 128–1024 and 128–2048 with 3 and 6 seeds."""
    print(f"{n} sweeps per design; verdicts of the quadrature (the report's) and of the paired interval at ±0.1")
    for widths in ((128, 256, 512, 1024), (128, 256, 512, 1024, 2048)):
        for seeds in (3, 6):
            for delta in (0.0, -0.075, -0.13, -0.2):
                case, rng = Case(beta_a=delta, widths=widths), np.random.default_rng(1)
                said: dict[str, Counter] = {"quadrature": Counter(), "paired": Counter()}
                halves: dict[str, list] = {k: [] for k in said}
                for _ in range(n):
                    pair = paired_sweep(rng, case, seeds)
                    fits = {k: optimum.fit_joint_optimum(*windowed(pair[k], widths, 2)) for k in ("c", "a")}
                    p = optimum.paired_difference(fits["a"], fits["c"])
                    q = float(stdtrit(min(f.dof for f in fits.values()), 0.975)) * math.hypot(
                        fits["a"].se_beta, fits["c"].se_beta)  # fmt: skip
                    for k, (lo, hi) in (("quadrature", (p.delta - q, p.delta + q)), ("paired", (p.ci_low, p.ci_high))):
                        said[k][drift_verdict(classify_interval(p.delta, lo, hi, 0.1), "η*")[0]] += 1
                        halves[k].append((hi - lo) / 2)
                cells = "; ".join(f"{k} ±{np.median(halves[k]):.3f} {dict(sorted(said[k].items()))}" for k in said)
                print(f"{widths[0]}–{widths[-1]}, {seeds} seeds, true δ {delta:+.3f}: {cells}", flush=True)


def main(n: int) -> None:
    print(f"{n} sweeps per case; nominal coverage 0.95 (its binomial 95% band at n = {n}: "
          f"±{1.96 * math.sqrt(0.95 * 0.05 / n):.3f})")  # fmt: skip
    four = (128, 256, 512, 1024)
    for case in (Case(), Case(rho=0.8, shift=0.30), Case(rho=0.0), Case(rho=0.0, shift=0.0),
                 Case(beta_c=-1.0), Case(halfwidth=1), Case(widths=four), Case(widths=four, halfwidth=1),
                 Case(seed_shift=0.15), Case(seed_shift=0.15, widths=four, halfwidth=1), Case(width_shift=0.1),
                 Case(width_shift=0.1, widths=four)):  # fmt: skip
        print(run_case(n, case), flush=True)


if __name__ == "__main__":
    (power if sys.argv[2:3] == ["power"] else main)(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
