"""Plain helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

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
