"""Plain helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch


def random_params(n_s: int, d: int, gen: torch.Generator, dtype=torch.float64, batch=(), sigma=0.5, scale_mag=1.0):
    """Generator parameters with non-trivial scales and bases, so no term of the math hides behind 0."""
    rows = (2 + n_s) * n_s
    fn = torch.randn(*batch, rows, n_s * d, generator=gen, dtype=dtype) * sigma / (n_s * d) ** 0.5
    scale = (torch.rand(*batch, 3, generator=gen, dtype=dtype) + 0.5) * scale_mag
    base = torch.randn(*batch, rows, generator=gen, dtype=dtype) * 0.3
    return fn, scale, base


def per_entry_autograd_jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """The seed's way: one .backward() per output entry. Rows: outputs; columns: vec(x)."""
    x = x.detach().clone().requires_grad_(True)
    out = f(x).reshape(-1)
    rows = []
    for k in range(out.numel()):
        (g,) = torch.autograd.grad(out[k], x, retain_graph=True)
        rows.append(g.reshape(-1))
    return torch.stack(rows)


def tiny_transfer_config(corpus: Path, **changes):
    """A transfer sweep small enough for a unit test: control models, 2 widths × 3 LRs × 1 seed × 3 steps of
    2 × 16 bytes on ``corpus``; ``changes`` name leaves of the configuration (``steps=4``, ``widths=(16,)``)."""
    from mhc_mup.stats.fitting import FitSettings
    from mhc_mup.training.config import ModelShape, TrainingRecipe
    from mhc_mup.training.transfer import (
        BUILTIN_CONFIGS,
        RunRecipe,
        SweepGrid,
        TransferAnalysis,
        TransferConfig,
        lr_grid,
    )

    base = TransferConfig(
        grid=SweepGrid(configs=(BUILTIN_CONFIGS["control-mup"],), widths=(16, 32), lrs=lr_grid(2**-8, 2**-4, 3),
                       seeds=1),
        model=ModelShape(depth=1),
        recipe=RunRecipe(TrainingRecipe(steps=3, batch_size=2, seq_len=16), eval_every=2, eval_batches=1,
                         corpus=str(corpus)),
        analysis=TransferAnalysis(fit=FitSettings(n_boot=50)),
        device="cpu",
    )  # fmt: skip
    return base.with_leaves(**changes)
