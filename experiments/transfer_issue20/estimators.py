"""Does the headline's drift depend on how each width's optimum is read? The transfer analysis reads it two ways:
each seed's parabola through three points (``log2_lr_opt``) and the joint fit of every width and seed (a window of
±2 points, one skew κ shared by all widths; ``joint_log2_opt``). On ``transfer_onepass2000`` the joint line of the
seed's ``baseline`` generator sits 0.2–0.7 octave under its per-seed optima at every width, so the optimum's
reading is itself in question. This adds two readings of the seed-mean curve that assume no shared shape:

* **spline**: the minimum of a cubic spline (not-a-knot) through the seed-mean loss over the width's whole grid;
* **skewed**: the minimum of ``c + a·t²·(1 + κ·t)``, ``t = x − x₀``, least squares through the seed-mean loss at the
  argmin and up to 2 points on each side: its own skew κ at each width (its residual RMS is printed beside the
  seeds' σ: where it is larger the curve has no such shape there, e.g. a cliff, and this reading is not one).

For each reading, ``β`` is the least-squares slope of the optimum against log2 d, over all widths and over all but
the smallest, and its 95% percentile interval from a bootstrap over seeds (each width's seeds drawn with
replacement, the seed-mean curve, the reading and the slope redone; 400 draws). Exploratory, beside the report's
verdicts, as the eighth session's one-off comparison of the 1000-step control was.

    PYTHONPATH=src python experiments/transfer_issue20/estimators.py FOLDER [CONFIG ...]

e.g. ``experiments/transfer_onepass2000`` (its output: ``estimators_onepass2000.txt``); about half a minute. A
multiplier sweep's folder is read the same way, over the multiplier (e.g. ``experiments/lrfn_onepass2000_mup mup``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.optimize import least_squares

DRAWS = 400


def spline_minimum(x: np.ndarray, y: np.ndarray) -> float:
    """log2 of the minimum of a cubic spline through ``(x, y)``; NaN where it lies at the grid's edge."""
    fine = np.linspace(x[0], x[-1], 2001)
    best = fine[np.argmin(CubicSpline(x, y)(fine))]
    return float(best) if x[0] < best < x[-1] else math.nan


def skewed_fit(x: np.ndarray, y: np.ndarray, halfwidth: int = 2) -> tuple[float, float]:
    """``(x₀, residual RMS)`` of ``c + a·t²·(1 + κ·t)`` (|κ| ≤ 0.45) through the argmin of ``y`` and up to
    ``halfwidth`` points each side; x₀ NaN at the grid's edge or for a minimum at the window's end."""
    i = int(np.argmin(y))
    if i in (0, len(y) - 1):
        return math.nan, math.nan
    w = slice(max(0, i - halfwidth), min(len(y), i + halfwidth + 1))
    xs, ys = x[w], y[w]

    def residuals(p: np.ndarray) -> np.ndarray:
        c, log_a, kappa, x0 = p
        t = xs - x0
        return c + math.exp(log_a) * t**2 * (1 + kappa * t) - ys

    start = np.array([ys.min(), math.log(max(1e-4, np.ptp(ys))), 0.0, x[i]])
    fit = least_squares(residuals, start, bounds=([-np.inf, -20, -0.45, xs[0]], [np.inf, 5, 0.45, xs[-1]]))
    x0, rms = float(fit.x[3]), float(np.sqrt(np.mean(fit.fun**2)))
    return (x0 if xs[0] < x0 < xs[-1] else math.nan), rms


def skewed_minimum(x: np.ndarray, y: np.ndarray) -> float:
    """x₀ of :func:`skewed_fit`."""
    return skewed_fit(x, y)[0]


READINGS = {"spline": spline_minimum, "skewed": skewed_minimum}


def slope(widths: np.ndarray, optima: np.ndarray) -> float:
    """Least-squares slope of ``optima`` against log2 ``widths`` (NaN where an optimum is missing)."""
    if not np.isfinite(optima).all():
        return math.nan
    return float(np.polyfit(np.log2(widths), optima, 1)[0])


def curves(runs: pd.DataFrame, config: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``width → (log2 of the swept value (J,), loss (S, J))`` of ``config``'s finished runs, seeds with every value
    only (the swept value: the learning rate, or a multiplier sweep's multiplier)."""
    out = {}
    for w, at in runs[runs.config == config].groupby("width"):
        # transfer.csv keeps log2 η exact (log2_lr) and the value to 6 digits: a multiplier's log2 from the value
        x = at.log2_lr if (at.hyper == "lr").all() else np.log2(at.value).round(3)
        table = at.assign(x=x).pivot_table(index="seed", columns="x", values="final_val_loss").dropna()
        out[int(w)] = (table.columns.to_numpy(dtype=float), table.to_numpy())
    return out


def readings(by_width: dict[int, tuple[np.ndarray, np.ndarray]], draw: dict[int, np.ndarray] | None = None) -> dict:
    """``reading → optimum per width (W,)`` from the seed-mean curves (of the seeds ``draw`` picks, if given)."""
    out = {}
    for name, read in READINGS.items():
        out[name] = np.array([read(x, (loss if draw is None else loss[draw[w]]).mean(axis=0))
                              for w, (x, loss) in by_width.items()])  # fmt: skip
    return out


def report(folder: Path, config: str, rng: np.random.Generator) -> list[str]:
    runs = pd.read_csv(folder / "transfer.csv")
    by_width = curves(runs, config)
    widths = np.array(list(by_width))
    optima = pd.read_csv(folder / "optima.csv").set_index(["config", "width"]).loc[config].loc[widths]
    point = {"per-seed (±1)": optima.log2_lr_opt.to_numpy(), "joint (±2)": optima.joint_log2_opt.to_numpy(),
             **readings(by_width)}  # fmt: skip
    boots: dict[str, list[tuple[float, float]]] = {name: [] for name in READINGS}
    for _ in range(DRAWS):
        draw = {w: rng.integers(0, len(loss), len(loss)) for w, (_, loss) in by_width.items()}
        for name, opt in readings(by_width, draw).items():
            boots[name].append((slope(widths, opt), slope(widths[1:], opt[1:])))
    lines = [f"{config}: log2 of the optimum per width ({', '.join(map(str, widths))}); β over all widths / without "
             f"{widths[0]}; 95% seed-bootstrap intervals ({DRAWS} draws) for the two new readings"]
    for name, opt in point.items():
        cells = " ".join(f"{v:+7.2f}" for v in opt)
        b_all, b_wide = slope(widths, opt), slope(widths[1:], opt[1:])
        text = f"  {name:<14} {cells}   β {b_all:+.3f}"
        if name in boots:
            arr = np.array(boots[name])
            ok = np.isfinite(arr).all(axis=1)
            lo, hi = np.quantile(arr[ok], [0.025, 0.975], axis=0)
            text += f" [{lo[0]:+.3f}, {hi[0]:+.3f}]   without: {b_wide:+.3f} [{lo[1]:+.3f}, {hi[1]:+.3f}]"
            text += f"   ({ok.sum()} of {DRAWS} draws had every optimum)" if ok.sum() < DRAWS else ""
        else:
            text += f"   without: {b_wide:+.3f}"
        lines.append(text)
    rms = " ".join(f"{skewed_fit(x, loss.mean(axis=0))[1]:7.4f}" for x, loss in by_width.values())
    sigma = pd.read_csv(folder / "noise.csv").set_index(["config", "width"]).loc[config].loc[widths].seed_sigma
    lines.append(f"  skewed fit's residual RMS {rms}   (the seeds' σ: {' '.join(f'{v:.4f}' for v in sigma)})")
    return lines


def main(folder: str, configs: list[str]) -> None:
    rng = np.random.default_rng(0)
    names = configs or ["control-mup", "mup", "baseline"]
    for config in names:
        print("\n".join(report(Path(folder), config, rng)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
