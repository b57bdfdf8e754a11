"""Fused mHC on the GPU: V4's ``hc_pre`` and ``hc_post`` as PyTorch custom ops backed by Triton kernels.

``hc_pre(x, fn, scale, base, K, hc_eps, norm_eps)`` and ``hc_post(branch_out, x, post, comb)`` compute
exactly :func:`mhc_mup.mhc.ops.hc_pre` and :func:`mhc_mup.mhc.ops.hc_post` (same shapes, same dtypes: outputs that
live on the residual stream keep its storage dtype, gates are fp32) in a few Triton launches each way
(:mod:`mhc_mup.kernels.triton_kernels`). They are registered with ``torch.library.custom_op``
(``torch.ops.mhc_mup.hc_pre`` …) with fake implementations and an autograd formula whose backward is itself a
custom op, so ``torch.compile`` traces whole models through them without graph breaks. :func:`hc_pre_routed`
and ``hc_post(..., x_grad_route=...)`` are the pair a sublayer uses: hc_post's gradient of the shared x is
added inside hc_pre's backward instead of in a separate autograd sum. :mod:`mhc_mup.mhc.ops` stays the
specification and the CPU path; :func:`use_triton` is the one place that decides between them.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any, Literal

import torch
from torch import Tensor

from mhc_mup.errors import KernelUnavailableError

KernelChoice = Literal["auto", "reference", "triton"]
KERNEL_CHOICES: tuple[str, ...] = ("auto", "reference", "triton")
MAX_STREAMS = 8



# CPU wheels of PyTorch do not ship Triton; probed once, without importing it.
_TRITON_MISSING = importlib.util.find_spec("triton") is None


def triton_unavailable_reason(device: torch.device) -> str | None:
    """Why the fused kernels cannot run on ``device``, or ``None`` when they can.

    They run on CUDA devices with Triton installed, and on the CPU only under Triton's interpreter
    (``TRITON_INTERPRET=1``, which the test suite uses to check the kernels without a GPU).
    """
    if _TRITON_MISSING:
        return "Triton is not installed (CUDA builds of PyTorch ship it)"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"the fused kernels run on CUDA devices, not on {device.type}"


def check_kernel_choice(kernels: str) -> str:
    """``kernels`` if it is one of :data:`KERNEL_CHOICES`; otherwise a ``ValueError`` naming it."""
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kernels!r}")
    return kernels


def use_triton(kernels: str, x: Tensor) -> bool:
    """Whether mHC on the stream tensor ``x`` ``(..., n_s, d)`` runs through the fused kernels.

    ``'reference'``: never. ``'auto'``: on a CUDA tensor of bf16, fp16 or fp32 when Triton is there
    and ``n_s`` ≤ 8 (fp64 stays on the reference ops, whose math is then fp64). ``'triton'``: always,
    raising :class:`KernelUnavailableError` with the reason when it cannot.
    """
    check_kernel_choice(kernels)
    if kernels == "reference":
        return False
    n_s = x.shape[-2]
    reason = triton_unavailable_reason(x.device)
    if reason is None and n_s > MAX_STREAMS:
        reason = f"the fused kernels support n_s <= {MAX_STREAMS}, got n_s={n_s}"
    if reason is None and x.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        reason = f"the fused kernels compute in fp32 and take bf16, fp16 or fp32 streams, got {x.dtype}"
    if kernels == "triton" and reason is not None:
        raise KernelUnavailableError(f"kernels='triton' cannot run: {reason}")
    return reason is None and (kernels == "triton" or x.device.type == "cuda")


def _kernels() -> ModuleType:
    from mhc_mup.kernels import triton_kernels

    return triton_kernels


def _streams(x: Tensor) -> Tensor:
    """``(..., n_s, d)`` → contiguous ``(T, n_s, d)``."""
    return x.reshape(-1, x.shape[-2], x.shape[-1]).contiguous()


def _fp32(t: Tensor) -> Tensor:
    return t.to(torch.float32).contiguous()


# ── hc_pre ─────────────────────────────────────────────────────────────────────────────────────
def _route(x: Tensor) -> Tensor:
    """hc_pre's route output: zeros of x's shape as a stride-0 view of one element, so it costs nothing; only
    its gradient matters (see :func:`hc_pre_routed`)."""
    return x.new_zeros(()).expand(x.shape)


@torch.library.custom_op("mhc_mup::hc_pre", mutates_args=())
def _hc_pre(
    x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, K: int, hc_eps: float, norm_eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(y, post, comb)``; for the backward, the mixes ``(..., (2+n_s)·n_s)`` and RMS scale ``(...,)``; and the
    route for hc_post's gradient of x."""
    lead, (n_s, d) = x.shape[:-2], x.shape[-2:]
    y, post, comb, mixes, rstd = _kernels().hc_pre_forward(
        _streams(x), _fp32(fn), _fp32(scale), _fp32(base), K, hc_eps, norm_eps
    )
    return (
        y.view(*lead, d),
        post.view(*lead, n_s),
        comb.view(*lead, n_s, n_s),
        mixes.view(*lead, -1),
        rstd.view(lead),
        _route(x),
    )


@_hc_pre.register_fake
def _(
    x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, K: int, hc_eps: float, norm_eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    lead, (n_s, d) = x.shape[:-2], x.shape[-2:]
    f32 = torch.float32
    return (
        x.new_empty((*lead, d)),
        x.new_empty((*lead, n_s), dtype=f32),
        x.new_empty((*lead, n_s, n_s), dtype=f32),
        x.new_empty((*lead, fn.shape[0]), dtype=f32),
        x.new_empty(lead, dtype=f32),
        _route(x),
    )


@torch.library.custom_op("mhc_mup::hc_pre_backward", mutates_args=())
def _hc_pre_backward(
    x: Tensor,
    fn: Tensor,
    scale: Tensor,
    base: Tensor,
    mixes: Tensor,
    rstd: Tensor,
    grad_y: Tensor,
    grad_post: Tensor,
    grad_comb: Tensor,
    grad_route: Tensor | None,
    K: int,
    hc_eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_s, d = x.shape[-2:]
    gx, gfn, gscale, gbase = _kernels().hc_pre_backward(
        _streams(x),
        _fp32(fn),
        _fp32(scale),
        _fp32(base),
        mixes.reshape(-1, mixes.shape[-1]).contiguous(),
        rstd.reshape(-1).contiguous(),
        grad_y.reshape(-1, d).contiguous(),
        _fp32(grad_post.reshape(-1, n_s)),
        _fp32(grad_comb.reshape(-1, n_s, n_s)),
        K,
        hc_eps,
        None if grad_route is None else _streams(grad_route).to(x.dtype),
    )
    return gx.view(x.shape), gfn.to(fn.dtype), gscale.to(scale.dtype), gbase.to(base.dtype)


@_hc_pre_backward.register_fake
def _(x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, mixes: Tensor, rstd: Tensor, grad_y: Tensor,
      grad_post: Tensor, grad_comb: Tensor, grad_route: Tensor | None, K: int, hc_eps: float,
      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    return torch.empty_like(x), torch.empty_like(fn), torch.empty_like(scale), torch.empty_like(base)


def _hc_pre_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    x, fn, scale, base, K, hc_eps, _norm_eps = inputs
    mixes, rstd = output[3:5]
    ctx.mark_non_differentiable(mixes, rstd)
    ctx.set_materialize_grads(False)  # no zero-filled gradients for the mixes, r, or an unused route
    ctx.save_for_backward(x, fn, scale, base, mixes, rstd)
    ctx.consts = (K, hc_eps)


def _hc_pre_grad(
    ctx: Any,
    grad_y: Tensor | None,
    grad_post: Tensor | None,
    grad_comb: Tensor | None,
    _grad_mixes: Tensor | None,
    _grad_rstd: Tensor | None,
    grad_route: Tensor | None,
) -> tuple[Tensor | None, ...]:
    x, fn, scale, base, mixes, rstd = ctx.saved_tensors
    if grad_y is None:  # an output that nothing downstream used
        grad_y = x.new_zeros(x.shape[:-2] + x.shape[-1:])
    if grad_post is None:
        grad_post = torch.zeros(x.shape[:-1], dtype=torch.float32, device=x.device)
    if grad_comb is None:
        grad_comb = torch.zeros(x.shape[:-1] + x.shape[-2:-1], dtype=torch.float32, device=x.device)
    gx, gfn, gscale, gbase = _hc_pre_backward(
        x, fn, scale, base, mixes, rstd, grad_y, grad_post, grad_comb, grad_route, *ctx.consts
    )
    return gx, gfn, gscale, gbase, None, None, None


_hc_pre.register_autograd(_hc_pre_grad, setup_context=_hc_pre_setup)


# ── hc_post ────────────────────────────────────────────────────────────────────────────────────
def _hc_post_forward(branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor) -> Tensor:
    n_s, d = x.shape[-2:]
    out = _kernels().hc_post_forward(
        branch_out.reshape(-1, d).contiguous(),
        _streams(x),
        _fp32(post.reshape(-1, n_s)),
        _fp32(comb.reshape(-1, n_s, n_s)),
    )
    return out.view(x.shape)


@torch.library.custom_op("mhc_mup::hc_post", mutates_args=())
def _hc_post(branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor) -> Tensor:
    return _hc_post_forward(branch_out, x, post, comb)


@_hc_post.register_fake
def _(branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("mhc_mup::hc_post_routed", mutates_args=())
def _hc_post_routed(branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor, route: Tensor) -> Tensor:
    """hc_post whose gradient of ``x`` goes to ``route`` (an output of hc_pre on the same x), not to x."""
    return _hc_post_forward(branch_out, x, post, comb)


@_hc_post_routed.register_fake
def _(branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor, route: Tensor) -> Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("mhc_mup::hc_post_backward", mutates_args=())
def _hc_post_backward(
    grad_out: Tensor, branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_s, d = x.shape[-2:]
    gf, gx, gpost, gcomb = _kernels().hc_post_backward(
        _streams(grad_out),
        branch_out.reshape(-1, d).contiguous(),
        _streams(x),
        _fp32(post.reshape(-1, n_s)),
        _fp32(comb.reshape(-1, n_s, n_s)),
    )
    return (
        gf.view(branch_out.shape),
        gx.view(x.shape),
        gpost.view(post.shape).to(post.dtype),
        gcomb.view(comb.shape).to(comb.dtype),
    )


@_hc_post_backward.register_fake
def _(
    grad_out: Tensor, branch_out: Tensor, x: Tensor, post: Tensor, comb: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return torch.empty_like(branch_out), torch.empty_like(x), torch.empty_like(post), torch.empty_like(comb)


def _hc_post_setup(ctx: Any, inputs: tuple[Tensor, ...], output: Tensor) -> None:
    ctx.save_for_backward(*inputs[:4])  # (branch_out, x, post, comb); not a route, whose values nothing reads


def _hc_post_grad(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _hc_post_backward(grad_out, *ctx.saved_tensors)


_hc_post.register_autograd(_hc_post_grad, setup_context=_hc_post_setup)


def _hc_post_routed_grad(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    gf, gx, gpost, gcomb = _hc_post_grad(ctx, grad_out)
    return gf, None, gpost, gcomb, gx


_hc_post_routed.register_autograd(_hc_post_routed_grad, setup_context=_hc_post_setup)


# ── the public functions ──────────────────────────────────────────────────────────────────────
def hc_pre(
    x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, K: int = 20, hc_eps: float = 1e-6, norm_eps: float = 1e-6
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused :func:`mhc_mup.mhc.ops.hc_pre`: ``x`` ``(..., n_s, d)`` → ``y`` ``(..., d)`` (x's dtype),
    ``post`` ``(..., n_s)`` and ``comb`` ``(..., n_s, n_s)`` (fp32). Differentiable in x, fn, scale, base."""
    return hc_pre_routed(x, fn, scale, base, K, hc_eps, norm_eps)[:3]


def hc_pre_routed(
    x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, K: int = 20, hc_eps: float = 1e-6, norm_eps: float = 1e-6
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`hc_pre`, and ``route``: pass it to :func:`hc_post` with the same ``x`` as ``x_grad_route``.

    In a sublayer, x feeds both hc_pre and hc_post, so autograd would add their two gradients of x in a pass
    of its own (two stream-sized reads and a write). Routed, hc_post's gradient of x flows back through
    ``route`` (zeros of x's shape that occupy one element) into hc_pre's backward, whose ∂L/∂x kernel adds it
    as it writes: one stream-sized read. The gradients are the same; only where the sum happens changes.
    """
    _check_pre(x, fn, scale, base, K)
    y, post, comb, _mixes, _rstd, route = torch.ops.mhc_mup.hc_pre(
        x, fn, scale, base, int(K), float(hc_eps), float(norm_eps)
    )
    return y, post, comb, route


def hc_post(
    branch_out: Tensor, residual: Tensor, post: Tensor, comb: Tensor, x_grad_route: Tensor | None = None
) -> Tensor:
    """Fused :func:`mhc_mup.mhc.ops.hc_post`: ``out[o] = post[o]·f + Σ_i comb[i, o]·residual[i]``,
    ``(..., n_s, d)`` in the residual's dtype. Differentiable in all four inputs; with ``x_grad_route`` (the
    route of :func:`hc_pre_routed` on this same ``residual``) its gradient of the residual goes there instead,
    to be added inside that hc_pre's backward."""
    n_s, d = residual.shape[-2:]
    lead = residual.shape[:-2]
    expected = {"branch_out": (*lead, d), "post": (*lead, n_s), "comb": (*lead, n_s, n_s)}
    if x_grad_route is not None:
        expected["x_grad_route"] = tuple(residual.shape)
    for name, t in (("branch_out", branch_out), ("post", post), ("comb", comb), ("x_grad_route", x_grad_route)):
        if t is not None and tuple(t.shape) != expected[name]:
            raise ValueError(
                f"{name} has shape {tuple(t.shape)}, expected {expected[name]} for residual {tuple(residual.shape)}"
            )
    if x_grad_route is None:
        return torch.ops.mhc_mup.hc_post(branch_out, residual, post, comb)
    return torch.ops.mhc_mup.hc_post_routed(branch_out, residual, post, comb, x_grad_route)


def _check_pre(x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, K: int) -> None:
    if x.dim() < 2:
        raise ValueError(f"x must be (..., n_s, d), got shape {tuple(x.shape)}")
    n_s, d = x.shape[-2:]
    rows = (2 + n_s) * n_s
    if not 1 <= n_s <= MAX_STREAMS:
        raise ValueError(f"the fused kernels support 1 <= n_s <= {MAX_STREAMS}, got n_s={n_s}")
    if tuple(fn.shape) != (rows, n_s * d) or tuple(base.shape) != (rows,) or tuple(scale.shape) != (3,):
        raise ValueError(
            f"for x of shape {tuple(x.shape)} expected fn {(rows, n_s * d)}, scale (3,), base ({rows},); "
            f"got {tuple(fn.shape)}, {tuple(scale.shape)}, {tuple(base.shape)} (batched generators are reference-only)"
        )
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
