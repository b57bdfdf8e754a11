"""Gauge geometry of Sinkhorn's logits.

Adding ``r·1ᵀ + 1·cᵀ`` to the logits ``Z`` (n×n) leaves the Sinkhorn limit unchanged: that
subspace ``G`` (dimension 2n−1) is the gauge. Its orthogonal complement ``G⊥ = {Δ : Δ1 = 0,
1ᵀΔ = 0}`` (dimension (n−1)²) is the tangent space of the Birkhoff polytope. With
``H = I − 11ᵀ/n`` the centring matrix, ``Π_⊥ = H ⊗ H`` acting on row-major ``vec(Z)`` (i.e.
``Z ↦ H Z H``), and ``B = U ⊗ U`` for any orthonormal basis ``U`` (n × (n−1)) of ``1⊥``.
"""

from __future__ import annotations

import torch
from torch.types import Device


def centering_basis(n: int, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """Orthonormal basis ``U`` ``(n, n−1)`` of the vectors that sum to zero (Helmert contrasts)."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    U = torch.zeros(n, n - 1, dtype=torch.float64)
    for k in range(1, n):
        U[:k, k - 1] = 1.0
        U[k, k - 1] = -float(k)
        U[:, k - 1] /= (k * (k + 1)) ** 0.5
    return U.to(dtype=dtype, device=device)


def tangent_basis(n: int, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """Orthonormal basis ``B`` ``(n², (n−1)²)`` of ``G⊥`` in row-major ``vec`` coordinates."""
    U = centering_basis(n)
    return torch.kron(U, U).to(dtype=dtype, device=device)


def perp_projector(n: int, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """``Π_⊥ = H ⊗ H`` ``(n², n²)``: orthogonal projector onto ``G⊥`` (row- and column-centring)."""
    H = torch.eye(n, dtype=torch.float64) - 1.0 / n
    return torch.kron(H, H).to(dtype=dtype, device=device)


def gauge_projector(n: int, dtype: torch.dtype = torch.float64, device: Device = None) -> torch.Tensor:
    """``Π_G = I − Π_⊥`` ``(n², n²)``: orthogonal projector onto the gauge ``{r1ᵀ + 1cᵀ}``."""
    return (torch.eye(n * n, dtype=torch.float64) - perp_projector(n)).to(dtype=dtype, device=device)


def project_perp(Z: torch.Tensor) -> torch.Tensor:
    """``Π_⊥ Z = H Z H`` for ``(..., n, n)`` matrices: subtract row and column means, add back the
    grand mean. The part of a logit change that Sinkhorn can see."""
    return Z - Z.mean(dim=-1, keepdim=True) - Z.mean(dim=-2, keepdim=True) + Z.mean(dim=(-2, -1), keepdim=True)
