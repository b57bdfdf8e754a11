"""Plain helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from mhc_mup.nn import HeadCollapse, MHCSublayer, expand_streams
from mhc_mup.training.model import MLP, Attention

without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="prices a GPU absent from this machine")
"""For tests of planning a GPU sweep (``--dry-run --device cuda``) on a machine without one."""

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


def transfer_record(config: str, width: int, seed: int, lr: float, val: float, diverged: bool = False) -> dict:
    """A synthetic stored run of an lr sweep with final validation loss ``val`` (NaN and ``diverged`` when it
    diverged): what the transfer analysis reads from a run file."""
    return {
        "config": config, "width": width, "seed": seed, "lr": lr, "log2_lr": math.log2(lr),
        "final_train_loss": val, "final_val_loss": math.nan if diverged else val, "initial_loss": 5.5,
        "diverged": diverged, "diverged_reason": "training loss nan" if diverged else "", "steps_done": 1,
        "tokens_per_s": 1.0, "seconds": 1.0, "device": "cpu", "train_loss": [val], "val_curve": [[1, val]],
    }  # fmt: skip


class UserLM(nn.Module):
    """A user's model with its own names, built from the drop-in modules, shaped as MHCLM (same parameter order):
    the width plan's init with MHCLM's seed gives MHCLM's tensors, and the same outputs."""

    def __init__(self, d: int, depth: int = 2, heads: int = 4, n_s: int = 4, base_d: int = 16) -> None:
        super().__init__()
        scale = math.sqrt(max(1, base_d // heads)) / (d // heads)  # µP attention: 1/d_head, SP's at base_d
        self.n_s = n_s
        self.wte = nn.Embedding(256, d)
        self.layers = nn.ModuleList(
            nn.Sequential(MHCSublayer(Attention(d, heads, scale), d, n_s), MHCSublayer(MLP(d, 4), d, n_s))
            for _ in range(depth)
        )
        self.collapse = HeadCollapse(n_s, d)
        self.ln_f = nn.RMSNorm(d, eps=1e-6)
        self.lm_head = nn.Linear(d, 256, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = expand_streams(self.wte(tokens), self.n_s)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.ln_f(self.collapse(x)))


def run_files(out: Path) -> list[Path]:
    """The run records a transfer sweep stored under ``out/runs`` (gzip-compressed JSON), sorted."""
    return sorted((Path(out) / "runs").rglob("*.json.gz"))


def read_run(path: Path) -> dict:
    """A stored run record (or a plain JSON file such as ``sweep.json``), as the analysis reads it."""
    from mhc_mup.training.transfer.store import read_json

    return read_json(path)


def write_run(path: Path, record: dict) -> None:
    """Store ``record`` at ``path`` as a sweep does: gzip-compressed where the name ends in ``.gz``, else JSON."""
    import json

    from mhc_mup.training.transfer.store import record_bytes

    path.write_bytes(record_bytes(record)) if path.suffix == ".gz" else path.write_text(json.dumps(record))
