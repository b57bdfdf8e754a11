"""DeepSeek V4's mHC operations, exactly as the released inference code computes them.

Shapes: the residual state ``x`` is ``(..., n_s, d)``; a sublayer's generator ``fn`` is
``((2+n_s)·n_s, n_s·d)``, ``base`` is ``((2+n_s)·n_s,)`` and ``scale`` is ``(3,)``. Parameters may
also carry leading batch dimensions that broadcast against ``x``'s (one draw per sample), which is
how the width sweep evaluates many independent initialisations at once.

The mHC math runs in at least fp32 (V4 upcasts bf16 streams); fp64 inputs stay fp64.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

HC_EPS = 1e-6
NORM_EPS = 1e-6


class HCWeights(NamedTuple):
    """The three generated quantities of one hyper-connection.

    pre ``(..., n_s)``, post ``(..., n_s)`` and comb ``(..., n_s, n_s)``, comb indexed
    ``comb[input, output]``.
    """

    pre: torch.Tensor
    post: torch.Tensor
    comb: torch.Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the mHC math runs in for inputs of ``dtype``: fp32, or fp64 when asked for."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def sinkhorn_knopp(logits: torch.Tensor, K: int = 20, eps: float = HC_EPS) -> torch.Tensor:
    """V4's Sinkhorn–Knopp projection of ``(..., n, n)`` logits towards a doubly stochastic matrix.

    ``softmax`` over rows plus ``eps``, one column normalisation, then ``K-1`` rounds of
    (row, column) normalisation, each dividing by ``sum + eps``. The result's columns sum to
    1 up to ``eps``; rows to within ε_K (diagnostic 1).
    """
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    comb = torch.softmax(logits, dim=-1) + eps
    comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
    for _ in range(K - 1):
        comb = comb / (comb.sum(dim=-1, keepdim=True) + eps)
        comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
    return comb


def rms_rsqrt(x_flat: torch.Tensor, norm_eps: float = NORM_EPS) -> torch.Tensor:
    """``r = rsqrt(mean(x_flat²) + norm_eps)`` over the last axis, kept as ``(..., 1)``."""
    return torch.rsqrt(x_flat.square().mean(dim=-1, keepdim=True) + norm_eps)


def hc_mixes(x: torch.Tensor, fn: torch.Tensor, norm_eps: float = NORM_EPS) -> torch.Tensor:
    """Generated logits ``mixes = (x_flat @ fnᵀ) · rsqrt(mean(x_flat²) + norm_eps)``.

    ``x`` ``(..., n_s, d)``, ``fn`` ``(R, n_s·d)`` or batched ``(..., R, n_s·d)`` → ``(..., R)``.
    Equal to applying ``fn`` to the RMS-normalised state (V4 has no learnable gamma here).
    """
    x_flat = x.flatten(-2).to(compute_dtype(x.dtype))
    fn = fn.to(x_flat.dtype)
    proj = F.linear(x_flat, fn) if fn.dim() == 2 else (fn @ x_flat.unsqueeze(-1)).squeeze(-1)
    return proj * rms_rsqrt(x_flat, norm_eps)


def gate_logits(
    mixes: torch.Tensor, scale: torch.Tensor, base: torch.Tensor, n_s: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pre-activation of each gate: ``pre_raw·s₀ + b``, ``post_raw·s₁ + b`` ``(..., n_s)`` and the
    Sinkhorn input ``Z = comb_raw·s₂ + b`` ``(..., n_s, n_s)``, ``comb_raw`` read row-major."""
    expected = (2 + n_s) * n_s
    if mixes.shape[-1] != expected:
        raise ValueError(f"mixes has last dim {mixes.shape[-1]}, expected (2+n_s)·n_s = {expected}")
    scale = scale.to(mixes.dtype)
    base = base.to(mixes.dtype)
    a_pre = mixes[..., :n_s] * scale[..., 0:1] + base[..., :n_s]
    a_post = mixes[..., n_s : 2 * n_s] * scale[..., 1:2] + base[..., n_s : 2 * n_s]
    Z = mixes[..., 2 * n_s :].unflatten(-1, (n_s, n_s)) * scale[..., 2:3].unsqueeze(-1)
    return a_pre, a_post, Z + base[..., 2 * n_s :].unflatten(-1, (n_s, n_s))


def split_mixes(
    mixes: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    n_s: int,
    K: int = 20,
    hc_eps: float = HC_EPS,
) -> HCWeights:
    """V4's ``hc_split_sinkhorn``: ``(..., (2+n_s)·n_s)`` mixes → (pre, post, comb).

    ``pre = σ(pre_raw·s₀ + b) + hc_eps``; ``post = 2σ(post_raw·s₁ + b)`` (no eps);
    ``comb = sinkhorn_knopp(comb_raw·s₂ + b, K, hc_eps)`` with ``comb_raw`` read row-major.
    """
    a_pre, a_post, Z = gate_logits(mixes, scale, base, n_s)
    pre = torch.sigmoid(a_pre) + hc_eps
    post = 2.0 * torch.sigmoid(a_post)
    comb = sinkhorn_knopp(Z, K, hc_eps)
    return HCWeights(pre, post, comb)


def hc_weights(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> HCWeights:
    """(pre, post, comb) generated from the residual state ``x`` ``(..., n_s, d)``."""
    return split_mixes(hc_mixes(x, fn, norm_eps), scale, base, x.shape[-2], K, hc_eps)


def collapse(x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    """Branch input ``y = Σ_i pre[i]·x[i]`` over the raw streams: ``(..., n_s, d)`` → ``(..., d)``."""
    return (pre.unsqueeze(-1) * x.to(pre.dtype)).sum(dim=-2).to(x.dtype)


def hc_pre(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """V4's ``Block.hc_pre``: returns the branch input ``y`` ``(..., d)`` (in ``x``'s dtype),
    ``post`` ``(..., n_s)`` and ``comb`` ``(..., n_s, n_s)``."""
    pre, post, comb = hc_weights(x, fn, scale, base, K, hc_eps, norm_eps)
    return collapse(x, pre), post, comb


def hc_post(branch_out: torch.Tensor, residual: torch.Tensor, post: torch.Tensor, comb: torch.Tensor) -> torch.Tensor:
    """V4's ``Block.hc_post``: ``out[o] = post[o]·f(y) + Σ_i comb[i, o]·residual[i]``.

    ``branch_out`` ``(..., d)``, ``residual`` ``(..., n_s, d)`` → ``(..., n_s, d)`` in the residual's
    dtype. comb is indexed input-first, so the residual is mixed by ``combᵀ``; there is no
    separate identity add.
    """
    dtype = post.dtype
    mixed = comb.transpose(-1, -2) @ residual.to(dtype)
    out = post.unsqueeze(-1) * branch_out.to(dtype).unsqueeze(-2) + mixed
    return out.to(residual.dtype)


def hc_head(
    x: torch.Tensor,
    head_fn: torch.Tensor,
    head_scale: torch.Tensor,
    head_base: torch.Tensor,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> torch.Tensor:
    """The model head's pre-only collapse: ``Σ_i (σ(mixes_i·s + b_i) + hc_eps)·x[i]``.

    ``head_fn`` ``(n_s, n_s·d)``, scalar ``head_scale`` ``(1,)``, ``head_base`` ``(n_s,)``;
    ``(..., n_s, d)`` → ``(..., d)``. The final RMSNorm is applied by the model after this.
    """
    mixes = hc_mixes(x, head_fn, norm_eps)
    pre = torch.sigmoid(mixes * head_scale.to(mixes.dtype) + head_base.to(mixes.dtype)) + hc_eps
    return collapse(x, pre)
