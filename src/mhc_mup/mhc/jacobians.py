"""Jacobians of the mHC generator, batched over samples.

Two facts keep this cheap. The RMS-normalised linear map ``m(x) = r(x)·fn x`` with
``r = (|x|²/N + ε)^(-1/2)`` has the closed-form Jacobian ``M = r·(fn − c·(fn x) xᵀ)``,
``c = r²/N`` (``N = n_s·d``). And every gate Jacobian is a small matrix times ``M``, so its
operator norm needs only the small Gram matrix ``M Mᵀ = r²·(fn fnᵀ − γ·v vᵀ)`` with ``v = fn x``
and ``γ = 2c − c²|x|²``: no ``(R, N)`` Jacobian is ever formed, and no per-entry backward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from mhc_mup.mhc.ops import (
    HC_EPS,
    NORM_EPS,
    HCWeights,
    compute_dtype,
    gate_logits,
    hc_mixes,
)


def _flat_state(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(-2).to(compute_dtype(x.dtype))


def _apply(fn: torch.Tensor, x_flat: torch.Tensor) -> torch.Tensor:
    """``fn @ x_flat`` for an unbatched ``(R, N)`` or batched ``(..., R, N)`` generator."""
    return (fn.to(x_flat.dtype) @ x_flat.unsqueeze(-1)).squeeze(-1)


def mixes_jacobian(x: torch.Tensor, fn: torch.Tensor, norm_eps: float = NORM_EPS) -> torch.Tensor:
    """``∂ mixes / ∂ vec(x)`` in closed form: ``(..., R, n_s·d)``.

    ``M = r·(fn − (r²/N)·(fn x) xᵀ)``. ``M x = r·(fn x)·ε·r²`` is O(ε): the map is scale
    invariant up to ``norm_eps``.
    """
    x_flat = _flat_state(x)
    N = x_flat.shape[-1]
    r = torch.rsqrt(x_flat.square().mean(dim=-1) + norm_eps)  # (...,)
    v = _apply(fn, x_flat)  # (..., R)
    c = (r * r / N)[..., None, None]
    return r[..., None, None] * (fn.to(x_flat.dtype) - c * v.unsqueeze(-1) * x_flat.unsqueeze(-2))


class MixesGram(NamedTuple):
    """Pieces of ``M Mᵀ = r²·(fn fnᵀ − γ·v vᵀ)``: ``gram`` ``(..., R, R)``, ``fn_gram = fn fnᵀ``,
    and ``r = rsqrt(mean(x²) + ε)`` ``(...,)``, the operator norm of the RMS normalisation's Jacobian."""

    gram: torch.Tensor
    fn_gram: torch.Tensor
    r: torch.Tensor


def _mixes_gram(x: torch.Tensor, fn: torch.Tensor, norm_eps: float) -> MixesGram:
    x_flat = _flat_state(x)
    N = x_flat.shape[-1]
    sq = x_flat.square().sum(dim=-1)  # |x|²
    r2 = 1.0 / (sq / N + norm_eps)
    c = r2 / N
    gamma = 2.0 * c - c * c * sq
    fn = fn.to(x_flat.dtype)
    v = _apply(fn, x_flat)
    fn_gram = fn @ fn.transpose(-1, -2)
    gram = r2[..., None, None] * (fn_gram - gamma[..., None, None] * v.unsqueeze(-1) * v.unsqueeze(-2))
    return MixesGram(gram, fn_gram, r2.sqrt())


def mixes_jacobian_gram(x: torch.Tensor, fn: torch.Tensor, norm_eps: float = NORM_EPS) -> torch.Tensor:
    """``M Mᵀ`` ``(..., R, R)`` for ``M = mixes_jacobian(x, fn)``, from ``fn fnᵀ`` and ``v = fn x``."""
    return _mixes_gram(x, fn, norm_eps).gram


def _sinkhorn_jvp_rounds(
    Z: torch.Tensor, dZ: torch.Tensor, eps: float
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(k, C_k, dC_k)`` after each of V4's rounds k = 1, 2, …; round 1 is softmax + eps and one
    column normalisation, each later round a (row, column) normalisation. ``C_k`` is
    ``sinkhorn_knopp(Z, k, eps)``: every K shares the prefix of a longer run."""
    p = torch.softmax(Z, dim=-1).unsqueeze(-3)  # (..., 1, n, n)
    dc = p * (dZ - (p * dZ).sum(dim=-1, keepdim=True))
    c = p + eps

    def normalise(c: torch.Tensor, dc: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = c.sum(dim=dim, keepdim=True) + eps
        c = c / s
        return c, (dc - c * dc.sum(dim=dim, keepdim=True)) / s

    c, dc = normalise(c, dc, -2)
    k = 1
    while True:
        yield k, c.squeeze(-3), dc
        c, dc = normalise(c, dc, -1)
        c, dc = normalise(c, dc, -2)
        k += 1


def sinkhorn_jvp(
    Z: torch.Tensor, dZ: torch.Tensor, K: int = 20, eps: float = HC_EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-mode derivative of :func:`~mhc_mup.mhc.ops.sinkhorn_knopp`, step by step.

    ``Z`` ``(..., n, n)``, tangents ``dZ`` ``(..., m, n, n)`` → ``(C, dC)`` with ``dC`` ``(..., m, n, n)``.
    Softmax: ``dp = p ⊙ (dz − Σ p dz)`` per row; each normalisation ``c' = c/(s + ε)``:
    ``dc' = (dc − c'·ds)/(s + ε)`` with ``ds`` the tangent of the sum. Exact for the iterates V4
    computes (same K, same eps placement), with every tangent carried as a plain batch axis.
    """
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    for k, c, dc in _sinkhorn_jvp_rounds(Z, dZ, eps):
        if k == K:
            return c, dc
    raise AssertionError("unreachable")


def _tangent_identity(Z: torch.Tensor) -> torch.Tensor:
    n = Z.shape[-1]
    return torch.eye(n * n, dtype=Z.dtype, device=Z.device).reshape(n * n, n, n)


def _as_jacobian(dC: torch.Tensor) -> torch.Tensor:
    return dC.flatten(-2).transpose(-1, -2)  # dC[..., k, i, j] = ∂C_ij/∂Z_k → J[..., ij, k]


def sinkhorn_jacobian(Z: torch.Tensor, K: int = 20, eps: float = HC_EPS) -> torch.Tensor:
    """``J = ∂ vec C / ∂ vec Z`` of ``C = sinkhorn_knopp(Z, K, eps)``, row-major ``vec``.

    ``Z`` ``(..., n, n)`` → ``(..., n², n²)``: all n² forward-mode tangents at once.
    """
    return _as_jacobian(sinkhorn_jvp(Z, _tangent_identity(Z), K, eps)[1])


def sinkhorn_jacobians(Z: torch.Tensor, Ks: Sequence[int], eps: float = HC_EPS) -> dict[int, torch.Tensor]:
    """:func:`sinkhorn_jacobian` at several K from one run of ``max(Ks)`` rounds: ``{K: (..., n², n²)}``."""
    wanted = set(Ks)
    if not wanted or min(wanted) < 1:
        raise ValueError(f"K values must be >= 1, got {sorted(wanted)}")
    out: dict[int, torch.Tensor] = {}
    for k, _, dC in _sinkhorn_jvp_rounds(Z, _tangent_identity(Z), eps):
        if k in wanted:
            out[k] = _as_jacobian(dC)
        if k == max(wanted):
            return {k: out[k] for k in Ks}
    raise AssertionError("unreachable")


def _gate_factors(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int,
    hc_eps: float,
    norm_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left factors ``D_pre (..., n)``, ``D_post (..., n)``, ``A_comb (..., n², n²)`` with
    ``J_gate = D·M_gate`` (diagonal ``D``) and ``J_comb = A_comb·M_comb``; ``A_comb = s_C·DS_K(Z)``,
    returned as ``DS_K(Z)`` and ``s_C (..., 1, 1)``."""
    mixes = hc_mixes(x, fn, norm_eps)
    a_pre, a_post, Z = gate_logits(mixes, scale, base, x.shape[-2])
    scale = scale.to(mixes.dtype)
    sig_pre, sig_post = torch.sigmoid(a_pre), torch.sigmoid(a_post)
    d_pre = scale[..., 0:1] * sig_pre * (1.0 - sig_pre)
    d_post = 2.0 * scale[..., 1:2] * sig_post * (1.0 - sig_post)
    return d_pre, d_post, sinkhorn_jacobian(Z, K, hc_eps), scale[..., 2:3].unsqueeze(-1)


def gate_jacobians(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> HCWeights:
    """Full Jacobians of (pre, post, comb) w.r.t. ``vec(x)``: ``(..., n, N)``, ``(..., n, N)``,
    ``(..., n², N)``. Materialises ``(R, N)`` per sample; for norms use :func:`gate_jacobian_norms`."""
    n = x.shape[-2]
    d_pre, d_post, ds, s_comb = _gate_factors(x, fn, scale, base, K, hc_eps, norm_eps)
    M = mixes_jacobian(x, fn, norm_eps)
    return HCWeights(
        pre=d_pre.unsqueeze(-1) * M[..., :n, :],
        post=d_post.unsqueeze(-1) * M[..., n : 2 * n, :],
        comb=(s_comb * ds) @ M[..., 2 * n :, :],
    )


def top_singular_value(gram: torch.Tensor) -> torch.Tensor:
    """``σ_max(J) = sqrt(λ_max(J Jᵀ))`` from the Gram matrix ``(..., m, m)`` → ``(...,)``."""
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0.0).sqrt()


class GeneratorJacobian(NamedTuple):
    """Everything the sensitivity diagnostics need about ``x ↦ (pre, post, comb)`` at one state.

    ``grams``: ``J Jᵀ`` per gate, ``(..., n, n)``, ``(..., n, n)``, ``(..., n², n²)``.
    ``J_comb = s_C · DS_K(Z) · W_comb · D RMSNorm(x)`` factor by factor: ``rms_gain`` ``(...,)`` is
    ``‖D RMSNorm(x)‖₂ = r``, ``fn_gram`` ``(..., R, R)`` is ``fn fnᵀ`` (its comb block gives
    ``‖W_comb‖₂``), ``sinkhorn`` ``(..., n², n²)`` is ``DS_K(Z)``, ``scale`` ``(..., 3)``.
    """

    grams: HCWeights
    rms_gain: torch.Tensor
    fn_gram: torch.Tensor
    sinkhorn: torch.Tensor
    scale: torch.Tensor


def generator_jacobian(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> GeneratorJacobian:
    """The gate Jacobians' Gram matrices ``J Jᵀ = D·(M Mᵀ)·Dᵀ`` and the chain factors of ``J_comb``,
    batched over ``x`` ``(..., n_s, d)`` (``fn``, ``scale``, ``base`` shared or batched alike)."""
    n = x.shape[-2]
    d_pre, d_post, ds, s_comb = _gate_factors(x, fn, scale, base, K, hc_eps, norm_eps)
    a_comb = s_comb * ds
    mg = _mixes_gram(x, fn, norm_eps)
    pre_blk = mg.gram[..., :n, :n]
    post_blk = mg.gram[..., n : 2 * n, n : 2 * n]
    comb_blk = mg.gram[..., 2 * n :, 2 * n :]
    grams = HCWeights(
        pre=d_pre.unsqueeze(-1) * pre_blk * d_pre.unsqueeze(-2),
        post=d_post.unsqueeze(-1) * post_blk * d_post.unsqueeze(-2),
        comb=a_comb @ comb_blk @ a_comb.transpose(-1, -2),
    )
    return GeneratorJacobian(grams, mg.r, mg.fn_gram, ds, scale.to(ds.dtype))


def gate_jacobian_norms(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> HCWeights:
    """Operator 2-norms ``‖∂pre/∂x‖₂, ‖∂post/∂x‖₂, ‖∂C/∂x‖₂``, each ``(...,)``.

    Computed as ``sqrt(λ_max(J Jᵀ))`` with ``J Jᵀ = D·(M Mᵀ)·Dᵀ`` from the ``R×R`` Gram matrix.
    """
    grams = generator_jacobian(x, fn, scale, base, K, hc_eps, norm_eps).grams
    return HCWeights(*(top_singular_value(g) for g in grams))
