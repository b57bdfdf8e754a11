"""Is Adam's eps (1e-8) near the gradients' RMS at issue 20's widths? A known cause of µP's optimum drifting with
width (Everett et al., 2024: eps comparable to sqrt(v̂) damps the updates of wide layers) ruled in or out.

Trains the µP control (depth 2, 4 heads, base width 128) at widths 128…1024 for STEPS Adam steps at η = 2^-7 on
this machine's default corpus, 16 × 256 bytes a step, fp32 on the CPU, and prints, per parameter group, the median
and 1st percentile of sqrt(v̂) (Adam's bias-corrected second moment) and the share of entries below 1e-7 (where eps
would be ≥ 10% of the denominator). Run from the repository root: PYTHONPATH=src python
experiments/anchor_adam_eps/probe.py [STEPS]
"""

from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

from mhc_mup.training.config import ModelShape
from mhc_mup.training.data import sample_batch
from mhc_mup.training.model import MHCLM
from mhc_mup.training.transfer import BUILTIN_CONFIGS, RunRecipe
from mhc_mup.training.width_rules import param_groups

LR, BETA2 = 2**-7, 0.999


def sqrt_vhat(opt: torch.optim.Adam, group: dict) -> torch.Tensor:
    """sqrt of the bias-corrected second moment of every entry of ``group``, flattened."""
    parts = []
    for p in group["params"]:
        state = opt.state[p]
        parts.append((state["exp_avg_sq"] / (1 - BETA2 ** state["step"].item())).sqrt().flatten())
    return torch.cat(parts)


def main(steps: int) -> None:
    torch.set_num_threads(2)
    corpus = RunRecipe().read_corpus()
    control = BUILTIN_CONFIGS["control-mup"]
    print(f"{corpus.source}: {steps} steps at η = 2^-7")
    for d in (128, 256, 512, 1024):
        t0 = time.time()
        model = MHCLM(ModelShape(depth=2, heads=4).model_config(d, hc=None), control.width_param(128), seed=0)
        opt = torch.optim.Adam(param_groups(model, "adam", LR), lr=LR, betas=(0.9, BETA2), eps=1e-8)
        gen = torch.Generator().manual_seed(1)
        for _ in range(steps):
            x, y = sample_batch(corpus.train, 16, 256, gen)
            loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        cells = []
        for g in opt.param_groups:
            v = sqrt_vhat(opt, g)
            seen = v[v > 0]  # embedding rows of bytes never sampled have no gradient at all
            p1 = seen.kthvalue(max(1, seen.numel() // 100)).values
            small = (seen < 1e-7).float().mean()
            cells.append(f"{g['kind']}: median {seen.median():.2e}, p1 {p1:.2e}, <1e-7 {small:.4f}")
        print(f"d={d} loss {loss.item():.3f} ({time.time() - t0:.0f} s) | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
