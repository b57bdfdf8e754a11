"""The six width-sweep diagnostics, as plain functions on tensors.

Each function returns per-sample values (one entry per comb, per Jacobian, per token ...), so a
caller can reduce them however it likes; :data:`mhc_mup.diagnostics.summaries.SUMMARY_KEYS` maps them to the
seed's output keys (``dc_x_mean`` ...) and the width sweep bootstraps the same reductions for its fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from mhc_mup.mhc.gauge import project_perp, tangent_basis
from mhc_mup.mhc.jacobians import generator_jacobian, sinkhorn_jacobian, top_singular_value
from mhc_mup.mhc.ops import HC_EPS, NORM_EPS, compute_dtype, rms_rsqrt, sinkhorn_knopp

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
    """``‖J_gate v‖·‖x‖`` for C, pre and post along three kinds of input direction ``v``.

    ``d*_x``: the worst case, ``‖J‖₂`` (the seed's diagnostic). ``d*_x_random``: the RMS over random
    unit directions, ``‖J‖_F/√N`` exactly. ``d*_x_grad``: along a gradient step of the state,
    ``v ∝ Jᵀw`` for a random output-space gradient ``w`` — the direction in which a loss that sees
    ``x`` through this gate moves ``x``.
    """

    dc_x: torch.Tensor
    dp_x: torch.Tensor
    dq_x: torch.Tensor
    dc_x_random: torch.Tensor
    dp_x_random: torch.Tensor
    dq_x_random: torch.Tensor
    dc_x_grad: torch.Tensor
    dp_x_grad: torch.Tensor
    dq_x_grad: torch.Tensor


class ChainFactors(NamedTuple):
    """The bound ``‖DC(x)‖₂·‖x‖ ≤ ‖D RMSNorm(x)‖₂ · |s_C| · ‖W_comb‖₂ · ‖DS_K(Z)‖₂ · ‖x‖`` factor by
    factor, its product ``bound``, the ``measured`` left side and ``tightness = measured / bound ≤ 1``."""

    rms_jacobian: torch.Tensor
    scale_comb: torch.Tensor
    w_comb: torch.Tensor
    sinkhorn_jacobian: torch.Tensor
    x_norm: torch.Tensor
    bound: torch.Tensor
    measured: torch.Tensor
    tightness: torch.Tensor


def _along_gradient(gram: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``‖J v‖`` for ``v = Jᵀw/‖Jᵀw‖``, i.e. ``‖G w‖ / sqrt(wᵀ G w)`` with ``G = J Jᵀ``."""
    gw = (gram @ w.unsqueeze(-1)).squeeze(-1)
    wgw = (w * gw).sum(dim=-1).clamp_min(torch.finfo(gram.dtype).tiny)
    return gw.norm(dim=-1) / wgw.sqrt()


def sensitivity_and_chain(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Sensitivity, ChainFactors]:
    """:func:`dynamic_sensitivity` and :func:`chain_decomposition` from one Jacobian computation.

    ``generator`` draws the output-space gradients ``w ~ N(0, I)`` of the ``*_grad`` directions
    (default: a generator seeded 0 on ``x``'s device)."""
    gj = generator_jacobian(x, fn, scale, base, K, hc_eps, norm_eps)
    dtype = gj.grams.comb.dtype
    x_flat = x.flatten(-2).to(dtype)
    x_norm, N = x_flat.norm(dim=-1), x_flat.shape[-1]
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    grams = (gj.grams.comb, gj.grams.pre, gj.grams.post)
    worst = [top_singular_value(g) * x_norm for g in grams]
    random = [(torch.diagonal(g, dim1=-2, dim2=-1).sum(-1).clamp_min(0.0) / N).sqrt() * x_norm for g in grams]
    grad = []
    for g in grams:
        w = torch.randn(g.shape[:-1], generator=generator, dtype=dtype, device=x.device)
        grad.append(_along_gradient(g, w) * x_norm)
    n = x.shape[-2]
    rms = gj.rms_gain
    s_c = gj.scale[..., 2].abs().expand_as(rms)
    w_comb = top_singular_value(gj.fn_gram[..., 2 * n :, 2 * n :]).expand_as(rms)
    ds = torch.linalg.matrix_norm(gj.sinkhorn, ord=2)
    bound = rms * s_c * w_comb * ds * x_norm
    chain = ChainFactors(rms, s_c, w_comb, ds, x_norm, bound, worst[0], worst[0] / bound)
    return Sensitivity(*worst, *random, *grad), chain


def dynamic_sensitivity(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
    *,
    generator: torch.Generator | None = None,
) -> Sensitivity:
    """``‖∂C/∂x‖₂·‖x‖``, ``‖∂pre/∂x‖₂·‖x‖``, ``‖∂post/∂x‖₂·‖x‖`` per sample, and the same along
    random and gradient directions (see :class:`Sensitivity`).

    ``x`` ``(..., n_s, d)``; ``fn`` ``(R, n_s·d)`` or one per sample ``(..., R, n_s·d)``; ``scale``
    and ``base`` likewise. Returns ``(...,)`` each. O(1) in d is condition 4 of Theorem D.
    """
    return sensitivity_and_chain(x, fn, scale, base, K, hc_eps, norm_eps, generator=generator)[0]


def chain_decomposition(
    x: torch.Tensor,
    fn: torch.Tensor,
    scale: torch.Tensor,
    base: torch.Tensor,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
) -> ChainFactors:
    """Each factor of the bound on diagnostic 4's ``‖DC(x)‖·‖x‖``, per sample (see :class:`ChainFactors`).

    ``J_C = s_C · DS_K(Z) · W_comb · D RMSNorm(x)``; ``‖D RMSNorm(x)‖₂ = r = rsqrt(mean(x²) + ε)``.
    With ``‖W_comb‖₂ ~ σ_W·√(n_s·d)`` and ``‖x‖ ~ √(n_s·d)`` the bound is Θ(σ_W·s_C·d)."""
    return sensitivity_and_chain(x, fn, scale, base, K, hc_eps, norm_eps)[1]


# ── 5. Generated-logit update scale ───────────────────────────────────────────────────────────
class LogitUpdate(NamedTuple):
    proj_perp_norm: torch.Tensor
    total_norm: torch.Tensor
    perp_ratio: torch.Tensor


OPTIMIZER_STEPS = ("sgd", "adam")
ADAM_EPS = 1e-8  # torch.optim.Adam's default


def _adam_direction(grad: torch.Tensor, eps: float) -> torch.Tensor:
    """Adam's first step from fresh state, per unit LR: ``m̂/(√v̂ + eps) = g/(|g| + eps)``."""
    return grad / (grad.abs() + eps)


Rates = float | tuple[float, float, float]


def logit_updates(
    x: torch.Tensor,
    W: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    lr: Mapping[str, Rates],
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
    *,
    adam_eps: float = ADAM_EPS,
) -> dict[str, LogitUpdate]:
    """:func:`logit_update` for several optimizers, ``lr = {"sgd": rates, "adam": rates}``, sharing one
    Sinkhorn backward pass: ``{optimizer: LogitUpdate}``."""
    unknown = [o for o in lr if o not in OPTIMIZER_STEPS]
    if unknown:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_STEPS}, got {unknown[0]!r}")
    if not adam_eps > 0:
        raise ValueError(f"adam_eps must be > 0, got {adam_eps!r}")
    n = x.shape[-2]
    x_hat, u, g, s = _comb_logit_grads(x, W, s, b, K, hc_eps, norm_eps)
    grad_s = (g * u).sum(dim=-1, keepdim=True)
    out = {}
    for optimizer, rates in lr.items():
        dZ = _logit_step(optimizer, rates, x_hat, u, g, grad_s, s, adam_eps)
        perp = project_perp(dZ.unflatten(-1, (n, n))).flatten(-2)
        p, t = perp.norm(dim=-1), dZ.norm(dim=-1)
        out[optimizer] = LogitUpdate(p, t, p / (t + KAPPA_GUARD))
    return out


def _comb_logit_grads(
    x: torch.Tensor, W: torch.Tensor, s: torch.Tensor, b: torch.Tensor, K: int, hc_eps: float, norm_eps: float
) -> tuple[torch.Tensor, ...]:
    """``(x̂, u, g, s)``: the normed state ``x̂`` ``(..., n·d)``, ``u = W x̂`` and ``g = ∂‖C − I‖²_F/∂Z`` ``(..., n²)``
    at the comb logits ``Z = s·u + b``, from one Sinkhorn backward pass (samples are independent), and ``s`` in
    the compute dtype."""
    n = x.shape[-2]
    x_flat = x.flatten(-2).to(compute_dtype(x.dtype))
    x_hat = x_flat * rms_rsqrt(x_flat, norm_eps)
    W, s, b = W.to(x_hat.dtype), s.to(x_hat.dtype), b.to(x_hat.dtype)
    u = (W @ x_hat.unsqueeze(-1)).squeeze(-1)  # (..., n²)
    Z = (s * u + b).detach().requires_grad_(True)
    eye = torch.eye(n, dtype=Z.dtype, device=Z.device)
    with torch.enable_grad():
        C = sinkhorn_knopp(Z.unflatten(-1, (n, n)), K, hc_eps)
        loss = (C - eye).square().sum()  # samples are independent: one backward gives every g
        (g,) = torch.autograd.grad(loss, Z)
    return x_hat, u, g, s


def _logit_step(
    optimizer: str,
    rates: Rates,
    x_hat: torch.Tensor,
    u: torch.Tensor,
    g: torch.Tensor,
    grad_s: torch.Tensor,
    s: torch.Tensor,
    adam_eps: float,
) -> torch.Tensor:
    """``ΔZ = Δs·u + (s + Δs)·ΔW x̂ + Δb`` ``(..., n²)``: the comb logits' change after one ``optimizer`` step at
    ``rates`` (one LR, or those of ``W``, ``s``, ``b``)."""
    lr_w, lr_s, lr_b = (rates, rates, rates) if isinstance(rates, (int, float)) else rates
    if optimizer == "sgd":
        ds, db = -lr_s * grad_s, -lr_b * g
        dWx = -lr_w * s * x_hat.square().sum(dim=-1, keepdim=True) * g
    else:
        ds, db = -lr_s * _adam_direction(grad_s, adam_eps), -lr_b * _adam_direction(g, adam_eps)
        # (φ(∇W) x̂)_i with ∇W_ij = s g_i x̂_j and φ(t) = t/(|t|+eps) is s g_i Σ_j x̂_j²/(|s g_i||x̂_j| + eps):
        # one (n², N) pass instead of forming ∇W, |∇W| and their ratio
        denom = torch.addcmul(
            torch.full((), adam_eps, dtype=g.dtype, device=g.device),
            (s * g).abs().unsqueeze(-1),
            x_hat.abs().unsqueeze(-2),
        )
        weighted = (denom.reciprocal_() @ x_hat.square().unsqueeze(-1)).squeeze(-1)
        dWx = -lr_w * s * g * weighted
    return ds * u + (s + ds) * dWx + db


def logit_update(
    x: torch.Tensor,
    W: torch.Tensor,
    s: torch.Tensor,
    b: torch.Tensor,
    lr: Rates = 1e-3,
    K: int = 20,
    hc_eps: float = HC_EPS,
    norm_eps: float = NORM_EPS,
    *,
    optimizer: str = "sgd",
    adam_eps: float = ADAM_EPS,
) -> LogitUpdate:
    """The comb-logit change ``ΔZ`` after one step on ``‖C − I‖²_F`` w.r.t. ``(W, s, b)``.

    ``Z = s·(W x̂) + b`` with ``x̂`` the RMS-normalised flat state; ``x`` ``(..., n_s, d)``,
    ``W`` ``(..., n_s², n_s·d)``, ``s`` ``(..., 1)``, ``b`` ``(..., n_s²)``. ``lr`` is one rate or
    ``(η_W, η_s, η_b)``. With ``g = ∂L/∂Z`` and ``u = W x̂`` the gradients are ``∇W = s·g x̂ᵀ``,
    ``∇s = g·u``, ``∇b = g``, and the step is exact in closed form:
    ``ΔZ = Δs·u + (s + Δs)·ΔW x̂ + Δb``. SGD: ``Δp = −η_p ∇p`` (so ``ΔW x̂ = −η_W s |x̂|² g``).
    Adam from fresh state (bias-corrected, no weight decay): ``Δp = −η_p ∇p/(|∇p| + eps)``.
    Returns ``‖Π_⊥ΔZ‖``, ``‖ΔZ‖`` and their ratio (guarded by 1e-10 as in the seed), ``(...,)`` each.
    """
    return logit_updates(x, W, s, b, {optimizer: lr}, K, hc_eps, norm_eps, adam_eps=adam_eps)[optimizer]


# ── 6. Gate statistics ────────────────────────────────────────────────────────────────────────
class GateStats(NamedTuple):
    pre_mean: torch.Tensor
    pre_l1: torch.Tensor
    post_mean: torch.Tensor
    post_linf: torch.Tensor


def gate_stats(pre: torch.Tensor, post: torch.Tensor) -> GateStats:
    """Per token: mean pre, ``‖pre‖₁``, mean post, ``‖post‖_∞``; ``(..., n_s)`` → ``(...,)`` each."""
    return GateStats(pre.mean(dim=-1), pre.abs().sum(dim=-1), post.mean(dim=-1), post.abs().amax(dim=-1))
