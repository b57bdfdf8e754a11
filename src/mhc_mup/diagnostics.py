"""The six width-sweep diagnostics, as plain functions on tensors.

Each function returns per-sample values (one entry per comb, per Jacobian, per token ...), so a
caller can reduce them however it likes; :data:`SUMMARY_KEYS` maps them to the seed's output
keys (``dc_x_mean`` ...) and the width sweep bootstraps the same reductions for its fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .gauge import project_perp, tangent_basis
from .jacobians import gate_jacobian_norms, sinkhorn_jacobian
from .ops import HC_EPS, NORM_EPS, compute_dtype, rms_rsqrt, sinkhorn_knopp

KAPPA_GUARD = 1e-10  # the seed's guard in σ_max / (σ_min + 1e-10)


# ── 1. Finite-K Sinkhorn error ────────────────────────────────────────────────────────────────
def sinkhorn_error(comb: torch.Tensor) -> torch.Tensor:
    """ε_K = max over rows and columns of ``|sum − 1|``: ``(..., n, n)`` → ``(...,)``."""
    rows = (comb.sum(dim=-1) - 1.0).abs().amax(dim=-1)
    cols = (comb.sum(dim=-2) - 1.0).abs().amax(dim=-1)
    return torch.maximum(rows, cols)


# ── 2. Spectral norm of the realised comb ─────────────────────────────────────────────────────
class SpectralStats(NamedTuple):
    sigma_max: torch.Tensor
    sigma_min: torch.Tensor
    kappa: torch.Tensor


def spectral_stats(comb: torch.Tensor) -> SpectralStats:
    """σ_max(C), σ_min(C) and κ = σ_max/(σ_min + 1e-10) per comb: ``(..., n, n)`` → ``(...,)`` each."""
    sv = torch.linalg.svdvals(comb)
    s_max, s_min = sv[..., 0], sv[..., -1]
    return SpectralStats(s_max, s_min, s_max / (s_min + KAPPA_GUARD))


# ── 3. Quotient Jacobian of the Sinkhorn map ──────────────────────────────────────────────────
class QuotientSpectrum(NamedTuple):
    sigma_max: torch.Tensor
    sigma_min: torch.Tensor
    kappa: torch.Tensor
    gauge_leakage: torch.Tensor


def quotient_spectrum(J: torch.Tensor) -> QuotientSpectrum:
    """Spectrum of ``Bᵀ J B`` and the gauge leakage ``‖Π_G J B‖₂ / ‖J B‖₂`` of Sinkhorn Jacobians
    ``J`` ``(..., n², n²)`` (``B`` an orthonormal basis of ``G⊥``) → ``(...,)`` each."""
    n = round(J.shape[-1] ** 0.5)
    B = tangent_basis(n, dtype=J.dtype, device=J.device)
    JB = J @ B
    sv = torch.linalg.svdvals(B.T @ JB)
    leak = JB - B @ (B.T @ JB)  # Π_G J B, with Π_G = I − B Bᵀ
    leakage = torch.linalg.matrix_norm(leak, ord=2) / torch.linalg.matrix_norm(JB, ord=2)
    s_max, s_min = sv[..., 0], sv[..., -1]
    return QuotientSpectrum(s_max, s_min, s_max / (s_min + KAPPA_GUARD), leakage)


def quotient_jacobian(Z: torch.Tensor, K: int = 20, eps: float = HC_EPS) -> QuotientSpectrum:
    """Quotient-Jacobian spectrum and gauge leakage of ``sinkhorn_knopp(·, K, eps)`` at each logit
    matrix ``Z`` ``(..., n, n)`` → ``(...,)`` each.

    ``J = ∂ vec C / ∂ vec Z``. Leakage measures how much a tangent perturbation of the logits comes
    out in gauge directions, which a doubly stochastic output cannot have: it vanishes as K → ∞.
    """
    return quotient_spectrum(sinkhorn_jacobian(Z, K, eps))


# ── 4. Dynamic sensitivity ────────────────────────────────────────────────────────────────────
class Sensitivity(NamedTuple):
    dc_x: torch.Tensor
    dp_x: torch.Tensor
    dq_x: torch.Tensor


def dynamic_sensitivity(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> Sensitivity:
    """``‖∂C/∂x‖₂·‖x‖``, ``‖∂pre/∂x‖₂·‖x‖``, ``‖∂post/∂x‖₂·‖x‖`` per sample.

    ``x`` ``(..., n_s, d)``; ``fn`` ``(R, n_s·d)`` or one per sample ``(..., R, n_s·d)``; ``scale``
    and ``base`` likewise. Returns ``(...,)`` each. O(1) in d is condition 4 of Theorem D.
    """
    norms = gate_jacobian_norms(x, fn, scale, base, K, hc_eps, norm_eps)
    x_norm = x.flatten(-2).to(norms.comb.dtype).norm(dim=-1)
    return Sensitivity(norms.comb * x_norm, norms.pre * x_norm, norms.post * x_norm)


# ── 5. Generated-logit update scale ───────────────────────────────────────────────────────────
class LogitUpdate(NamedTuple):
    proj_perp_norm: torch.Tensor
    total_norm: torch.Tensor
    perp_ratio: torch.Tensor


def logit_update(
    x: torch.Tensor,
    W: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    lr: float = 1e-3,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> LogitUpdate:
    """The comb-logit change ``ΔZ`` after one SGD step on ``‖C − I‖²_F`` w.r.t. ``(W, s, b)``.

    ``Z = s·(W x̂) + b`` with ``x̂`` the RMS-normalised flat state; ``x`` ``(..., n_s, d)``,
    ``W`` ``(..., n_s², n_s·d)``, ``s`` ``(..., 1)``, ``b`` ``(..., n_s²)``. The step is exact in
    closed form — with ``g = ∂L/∂Z``, ``u = W x̂``: ``∇W = s·g x̂ᵀ``, ``∇s = g·u``, ``∇b = g`` and
    ``ΔZ = −lr·(∇s·u + s·|x̂|²·(s − lr·∇s)·g + g)`` — so ΔZ carries no cancellation error.
    Returns ``‖Π_⊥ΔZ‖``, ``‖ΔZ‖`` and their ratio (guarded by 1e-10 as in the seed), ``(...,)`` each.
    """
    n = x.shape[-2]
    x_flat = x.flatten(-2).to(compute_dtype(x.dtype))
    x_hat = x_flat * rms_rsqrt(x_flat, norm_eps)
    W = W.to(x_hat.dtype)
    s = s.to(x_hat.dtype)
    b = b.to(x_hat.dtype)
    u = (W @ x_hat.unsqueeze(-1)).squeeze(-1)  # (..., n²)
    Z = (s * u + b).detach().requires_grad_(True)
    eye = torch.eye(n, dtype=Z.dtype, device=Z.device)
    with torch.enable_grad():
        C = sinkhorn_knopp(Z.unflatten(-1, (n, n)), K, hc_eps)
        loss = (C - eye).square().sum()  # samples are independent: one backward gives every g
        (g,) = torch.autograd.grad(loss, Z)
    grad_s = (g * u).sum(dim=-1, keepdim=True)
    xx = x_hat.square().sum(dim=-1, keepdim=True)
    dZ = -lr * (grad_s * u + s * xx * (s - lr * grad_s) * g + g)
    perp = project_perp(dZ.unflatten(-1, (n, n))).flatten(-2)
    p, t = perp.norm(dim=-1), dZ.norm(dim=-1)
    return LogitUpdate(p, t, p / (t + KAPPA_GUARD))


# ── 6. Gate statistics ────────────────────────────────────────────────────────────────────────
class GateStats(NamedTuple):
    pre_mean: torch.Tensor
    pre_l1: torch.Tensor
    post_mean: torch.Tensor
    post_linf: torch.Tensor


def gate_stats(pre: torch.Tensor, post: torch.Tensor) -> GateStats:
    """Per token: mean pre, ``‖pre‖₁``, mean post, ``‖post‖_∞``; ``(..., n_s)`` → ``(...,)`` each."""
    return GateStats(pre.mean(dim=-1), pre.abs().sum(dim=-1), post.mean(dim=-1), post.abs().amax(dim=-1))


# ── Reductions to the seed's output keys ──────────────────────────────────────────────────────
Reducer = Callable[[np.ndarray], np.ndarray]


def _mean(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=-1)


def _std(a: np.ndarray) -> np.ndarray:
    return a.std(axis=-1)  # population std (ddof 0), as the seed's np.std


def _max(a: np.ndarray) -> np.ndarray:
    return a.max(axis=-1)


def _median(a: np.ndarray) -> np.ndarray:
    return np.median(a, axis=-1)


REDUCERS: dict[str, Reducer] = {"mean": _mean, "std": _std, "max": _max, "median": _median}


@dataclass(frozen=True)
class SummaryKey:
    """Output key ``key`` of a diagnostic = ``reducer`` applied over samples of ``sample``."""

    key: str
    sample: str
    reducer: str


SUMMARY_KEYS: dict[str, tuple[SummaryKey, ...]] = {
    "sinkhorn_error": (SummaryKey("eps_K_mean", "eps_K", "mean"), SummaryKey("eps_K_max", "eps_K", "max")),
    "spectral_norm": (
        SummaryKey("spectral_norm_mean", "sigma_max", "mean"),
        SummaryKey("spectral_norm_max", "sigma_max", "max"),
        SummaryKey("condition_number_mean", "kappa", "mean"),
        SummaryKey("condition_number_median", "kappa", "median"),
    ),
    "quotient_jacobian": (
        SummaryKey("sigma_max_mean", "sigma_max", "mean"),
        SummaryKey("sigma_min_mean", "sigma_min", "mean"),
        SummaryKey("kappa_mean", "kappa", "mean"),
        SummaryKey("kappa_median", "kappa", "median"),
        SummaryKey("gauge_leakage_mean", "gauge_leakage", "mean"),
        SummaryKey("gauge_leakage_median", "gauge_leakage", "median"),  # the mean is ruled by a few slow Z
    ),
    "dynamic_sensitivity": (
        SummaryKey("dc_x_mean", "dc_x", "mean"),
        SummaryKey("dc_x_std", "dc_x", "std"),
        SummaryKey("dp_x_mean", "dp_x", "mean"),
        SummaryKey("dp_x_std", "dp_x", "std"),
        SummaryKey("dq_x_mean", "dq_x", "mean"),
        SummaryKey("dq_x_std", "dq_x", "std"),
    ),
    "logit_update": (
        SummaryKey("proj_perp_norm_mean", "proj_perp_norm", "mean"),
        SummaryKey("total_norm_mean", "total_norm", "mean"),
        SummaryKey("perp_ratio_mean", "perp_ratio", "mean"),
    ),
    "gate_stats": (
        SummaryKey("pre_mean", "pre_mean", "mean"),
        SummaryKey("pre_l1_mean", "pre_l1", "mean"),
        SummaryKey("post_mean", "post_mean", "mean"),
        SummaryKey("post_linf_mean", "post_linf", "mean"),
    ),
}


def summarize(diagnostic: str, samples: NamedTuple | dict[str, np.ndarray]) -> dict[str, float]:
    """Reduce one diagnostic's per-sample values to the seed's keys, e.g. ``{"dc_x_mean": …}``.

    Values of any shape are pooled: a ``(4, 16)`` batch of combs counts as 64 samples, as in the seed."""
    values = samples._asdict() if hasattr(samples, "_asdict") else dict(samples)
    arrays = {k: np.asarray(torch.as_tensor(v).detach().cpu().double()).reshape(-1) for k, v in values.items()}
    return {s.key: float(REDUCERS[s.reducer](arrays[s.sample])) for s in SUMMARY_KEYS[diagnostic]}


DIAGNOSTICS: Sequence[str] = tuple(SUMMARY_KEYS)
