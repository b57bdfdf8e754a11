"""How many seeds, and which grid, can read "transfers" at ±0.1 over widths 128–2048? A simulation with the noise
and curvature measured in this folder (widths 128 and 256): the joint drift fit of mhc_mup on synthetic sweeps
whose answer is known.

Each width's final loss is a skewed bowl in x = log2 η around x0(d) = −7.5 + β·log2(d/128), with curvature
a = 0.02 nats/byte per octave² (0.013–0.026 measured; steeper above the optimum: a·t²·(1 + 0.3·tanh t)), a
per-seed offset (SD 0.01) and independent run noise σ (0.018 measured near the optimum; 0.025 as a worse case).
For each design, N replicate sweeps: the spread of the fitted β, the median half-width of its 95% interval, and
the verdicts. Run from the repository root (about a minute on a CPU):

    PYTHONPATH=src python experiments/transfer_issue20/power.py 16 > experiments/transfer_issue20/power.txt

The second set sizes the 4000-step headline (``experiments/transfer_steps4000``) from what its first 30 runs
measured: steeper bowls (a ≈ 0.03 at d = 1024, 0.05 at 128) centred near 2^−6.5, on the grid 2^−9 … 2^−4:

    PYTHONPATH=src python experiments/transfer_issue20/power.py 16 steps4000 > experiments/transfer_steps4000/power.txt

The third sizes the control's next sweep on the corpus read once, at 2000 steps (bowls centred at 2^−7 as the
2000-step runs found; widths 128–1024 or 128–2048, half-octave or one-octave grids):

    PYTHONPATH=src python experiments/transfer_issue20/power.py 16 onepass2000 \
        > experiments/transfer_issue20/power_onepass2000.txt
"""

from __future__ import annotations

import math
import sys
from collections import Counter

import numpy as np

from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.transfer import BUILTIN_CONFIGS, SweepGrid, TransferAnalysis, TransferConfig, analyse

WIDTHS = (128, 256, 512, 1024, 2048)
OCTAVE = tuple(float(x) for x in range(-11, -3))  # 2^-11 … 2^-4, one octave apart
HALF = tuple(x / 2 for x in range(-22, -7))  # 2^-11 … 2^-4, half an octave apart


def record(width: int, seed: int, x: float, loss: float) -> dict:
    """What the analysis reads of one stored run."""
    return {"config": "mup", "width": width, "seed": seed, "lr": 2.0**x, "log2_lr": x, "final_train_loss": loss,
            "final_val_loss": loss, "initial_loss": 5.5, "diverged": False, "diverged_reason": "", "steps_done": 1,
            "tokens_per_s": 1.0, "seconds": 1.0, "device": "cpu", "train_loss": [loss], "val_curve": [[1, loss]]}


def sweep(seeds: int, xs: tuple[float, ...], sigma: float, beta: float, halfwidth: int, rng: np.random.Generator,
          curvature: float = 0.02, centre: float = -7.5,
          widths: tuple[int, ...] = WIDTHS) -> tuple[float, float, float, str]:
    """One synthetic sweep's joint fit: ``(β, low, high, verdict)``; the bowls' ``curvature`` (nats/byte per
    octave²) and their optimum at d = 128 (``centre``, log2 η), over ``widths``."""
    cfg = TransferConfig(grid=SweepGrid(configs=(BUILTIN_CONFIGS["mup"],), widths=widths,
                                        lrs=tuple(2.0**x for x in xs), seeds=seeds),
                         analysis=TransferAnalysis(fit=FitSettings(n_boot=200), joint_halfwidth=halfwidth),
                         device="cpu")
    records = []
    for w in widths:
        x0 = centre + beta * math.log2(w / 128)
        for s in range(seeds):
            offset = rng.normal(0, 0.01)
            for x in xs:
                t = x - x0
                loss = 2.0 - 0.05 * math.log2(w / 128) + curvature * t * t * (1 + 0.3 * math.tanh(t))
                records.append(record(w, s, x, loss + offset + rng.normal(0, sigma)))
    d = analyse(cfg, records).drift.iloc[0]
    return d.joint_exponent, d.joint_low, d.joint_high, d.joint_verdict


STEPS4000 = tuple(float(x) for x in range(-9, -3))  # 2^-9 … 2^-4, one octave apart
DESIGNS_4000 = (  # (name, grid, --joint-halfwidth, seeds, true β, run noise σ, curvature)
    ("4000 steps, one octave, window ±2", STEPS4000, 2, 3, 0.0, 0.018, 0.03),
    ("4000 steps, one octave, window ±3", STEPS4000, 3, 3, 0.0, 0.018, 0.03),
    ("4000 steps, one octave, window ±2", STEPS4000, 2, 3, -0.15, 0.018, 0.03),
    ("4000 steps, one octave, window ±3", STEPS4000, 3, 3, -0.15, 0.018, 0.03),
    ("4000 steps, one octave, window ±2", STEPS4000, 2, 3, 0.0, 0.025, 0.03),
    ("4000 steps, one octave, window ±2", STEPS4000, 2, 3, 0.0, 0.018, 0.05),
)
ONEPASS = (-9.0, -8.0, -7.5, -7.0, -6.5, -6.0, -5.5, -5.0)  # half octaves near the control's optimum
TO_1024, TO_2048 = (128, 256, 512, 1024), WIDTHS
DESIGNS_ONEPASS = (  # (name, grid, --joint-halfwidth, seeds, true β, run noise σ, curvature, widths)
    ("2000 steps, half octaves near η*, window ±2, 128–1024", ONEPASS, 2, 3, 0.0, 0.018, 0.03, TO_1024),
    ("2000 steps, half octaves near η*, window ±4, 128–1024", ONEPASS, 4, 3, 0.0, 0.018, 0.03, TO_1024),
    ("2000 steps, one octave, window ±2, 128–1024", STEPS4000, 2, 3, 0.0, 0.018, 0.03, TO_1024),
    ("2000 steps, one octave, window ±2, 128–1024", STEPS4000, 2, 3, -0.15, 0.018, 0.03, TO_1024),
    ("2000 steps, one octave, window ±2, 128–1024", STEPS4000, 2, 3, 0.0, 0.025, 0.03, TO_1024),
    ("2000 steps, one octave, window ±2, 128–1024", STEPS4000, 2, 6, 0.0, 0.018, 0.03, TO_1024),
    ("2000 steps, one octave, window ±2, 128–2048", STEPS4000, 2, 3, 0.0, 0.018, 0.03, TO_2048),
    ("2000 steps, one octave, window ±2, 128–2048", STEPS4000, 2, 3, -0.15, 0.018, 0.03, TO_2048),
    ("2000 steps, one octave, window ±2, 128–2048", STEPS4000, 2, 3, 0.0, 0.025, 0.03, TO_2048),
    ("2000 steps, one octave, window ±2, 128–2048", STEPS4000, 2, 3, 0.0, 0.018, 0.02, TO_2048),
)
DESIGNS = (  # (name, grid, --joint-halfwidth, seeds, true β, run noise σ)
    ("one octave, window ±2", OCTAVE, 2, 3, 0.0, 0.018),
    ("one octave, window ±2", OCTAVE, 2, 6, 0.0, 0.018),
    ("one octave, window ±3", OCTAVE, 3, 3, 0.0, 0.018),
    ("half octave, window ±4", HALF, 4, 3, 0.0, 0.018),
    ("half octave, window ±2", HALF, 2, 6, 0.0, 0.018),
    ("one octave, window ±2", OCTAVE, 2, 3, -0.15, 0.018),
    ("one octave, window ±2", OCTAVE, 2, 6, -0.15, 0.018),
    ("one octave, window ±2", OCTAVE, 2, 3, 0.0, 0.025),
    ("one octave, window ±2", OCTAVE, 2, 6, 0.0, 0.025),
)


def main(n: int, which: str = "steps1000") -> None:
    rng = np.random.default_rng(0)
    if which == "steps4000":
        designs, centre = tuple((*d, WIDTHS) for d in DESIGNS_4000), -6.5
    elif which == "onepass2000":
        designs, centre = DESIGNS_ONEPASS, -7.0
    else:
        designs, centre = tuple((*d, 0.02, WIDTHS) for d in DESIGNS), -7.5
    bowls = which != "steps1000"
    print("design | seeds | runs per width | true β | σ | curvature | β mean | β SD | median half-width | verdicts"
          if bowls else
          "design | seeds | runs per width | true β | σ | β mean | β SD | median half-width | verdicts")
    for name, xs, halfwidth, seeds, beta, sigma, curvature, widths in designs:
        fits = [sweep(seeds, xs, sigma, beta, halfwidth, rng, curvature, centre, widths) for _ in range(n)]
        b = np.array([f[0] for f in fits])
        half = np.array([(f[2] - f[1]) / 2 for f in fits])
        verdicts = dict(Counter(f[3] for f in fits))
        bowl = f" | {curvature}" if bowls else ""
        print(f"{name} | {seeds} | {seeds * len(xs)} | {beta:+.2f} | {sigma}{bowl} | {np.nanmean(b):+.3f} | "
              f"{np.nanstd(b):.3f} | {np.nanmedian(half):.3f} | {verdicts}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16, sys.argv[2] if len(sys.argv) > 2 else "steps1000")
