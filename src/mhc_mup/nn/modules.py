"""V4's manifold-constrained hyper-connection as drop-in ``nn.Module``s for any model.

With ``n_s`` streams of width ``d`` and any branch ``f`` ``(..., d) → (..., d)`` (attention, an MLP, …)::

    x  (..., n_s, d)  ──hc_pre──▶  y (..., d), post (..., n_s), comb (..., n_s, n_s)
                                    │
                                    ▼
                       f(RMSNorm(y))  (..., d)
                                    │
    x' = hc_post(f, x, post, comb): x'[o] = post[o]·f + Σ_i comb[i, o]·x[i]     (..., n_s, d)

:class:`MHCSublayer` wraps one branch this way (``n_s=None`` gives the plain pre-norm residual
``x + f(RMSNorm(x))`` on ``(..., d)``, a control with the same branch); :class:`HyperConnection` is its
generator alone (V4's ``hc_pre``: ``fn``, ``scale``, ``base``); :class:`HeadCollapse` the model head's
pre-only collapse of the streams to ``(..., d)``; :func:`expand_streams` copies an embedding into the
streams. On CUDA (``kernels="auto"``) the generator and ``hc_post`` run the fused kernels of
:mod:`mhc_mup.kernels.fused`, elsewhere the reference ops of :mod:`mhc_mup.mhc.ops`; the mHC math is fp32
even under autocast, as V4's is. Identity :class:`Tap`\\ s expose the gate pre-activations to forward hooks.
"""

from __future__ import annotations

import torch
from torch import nn

from mhc_mup.errors import ModelConfigError
from mhc_mup.kernels import fused
from mhc_mup.mhc.ops import HC_EPS, NORM_EPS, collapse, gate_logits, hc_head, hc_mixes, hc_post, split_mixes
from mhc_mup.mhc.parameterizations import Parameterization, get_parameterization

__all__ = [
    "HeadCollapse", "HyperConnection", "MHCSublayer", "Tap", "check_shape", "expand_streams", "fp32_region",
    "norm_input",
]  # fmt: skip

DEFAULT_INIT = "mup"
"""The generator preset a freshly built module is initialised with (a width plan re-initialises by its rule)."""


class Tap(nn.Identity):
    """Returns its input unchanged; a named place for a forward hook to read an intermediate value."""


def fp32_region(device_type: str) -> torch.autocast:
    """Autocast switched off: the mHC math runs in fp32 as in V4."""
    return torch.autocast(device_type=device_type, enabled=False)


def norm_input(y: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """``y`` in the dtype of ``norm``'s gain (``y`` itself if it has none): bf16 streams are upcast, so the
    RMSNorm computes in fp32 as V4's does (autocast rounds its output to bf16 once, at the branch's first
    matmul). Given bf16 ``y`` and an fp32 gain, ``torch.rms_norm`` cannot take its fused kernel."""
    weight = getattr(norm, "weight", None)
    return y if weight is None else y.to(weight.dtype)


def expand_streams(x: torch.Tensor, n_s: int) -> torch.Tensor:
    """``(..., d)`` → ``(..., n_s, d)``: ``n_s`` copies of ``x``, materialised (the fused ops take contiguous
    streams, and each op reading a stride-0 view would copy it, forward and backward)."""
    return x.unsqueeze(-2).expand(*x.shape[:-1], n_s, x.shape[-1]).contiguous()


def check_shape(d: int, n_s: int | None = None, K: int = 1) -> None:
    """:class:`ModelConfigError` naming the first of ``d`` (>= 1), ``n_s`` (>= 2) and ``K`` (>= 1) out of range."""
    for name, value, low in (("d", d, 1), ("n_s", 2 if n_s is None else n_s, 2), ("K", K, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ModelConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def _resolve(param: Parameterization | str | None) -> Parameterization:
    """A preset by name (default :data:`DEFAULT_INIT`), or ``param`` itself."""
    return param if isinstance(param, Parameterization) else get_parameterization(param or DEFAULT_INIT)


class HyperConnection(nn.Module):
    """One sublayer's mHC generator: ``fn`` ``((2+n_s)·n_s, n_s·d)``, ``scale`` ``(3,)``, ``base``
    ``((2+n_s)·n_s,)``. ``forward(x)`` ``(..., n_s, d)`` → V4's ``hc_pre``: ``(y (..., d), post
    (..., n_s), comb (..., n_s, n_s))``, with the gate pre-activations passed through taps.

    ``kernels`` (see :func:`mhc_mup.kernels.fused.use_triton`) picks the fused Triton kernels or the reference
    ops; while a forward hook watches a tap, the reference ops run so that the hook sees the logits. A new
    module is initialised by the ``init`` preset at ``(n_s, d)``, drawing from ``generator`` (default: the
    global RNG, as torch's layers do).
    """

    def __init__(
        self, n_s: int, d: int, K: int = 20, hc_eps: float = HC_EPS, norm_eps: float = NORM_EPS,
        *, init: Parameterization | str | None = None, generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_shape(d, n_s, K)
        rows = (2 + n_s) * n_s
        self.n_s, self.K, self.hc_eps, self.norm_eps = n_s, K, hc_eps, norm_eps
        self.fn = nn.Parameter(torch.empty(rows, n_s * d))
        self.scale = nn.Parameter(torch.empty(3))
        self.base = nn.Parameter(torch.empty(rows))
        self.pre_logits, self.post_logits, self.comb_logits = Tap(), Tap(), Tap()
        self.kernels = "auto"
        self.reset_parameters(init, generator)

    @property
    def d(self) -> int:
        return self.fn.shape[1] // self.n_s

    @torch.no_grad()
    def reset_parameters(
        self, init: Parameterization | str | None = None, generator: torch.Generator | None = None
    ) -> None:
        """``fn`` rows ``~ N(0, σ_gate²)``, ``scale`` and ``base`` constants, by the preset ``init`` (default
        :data:`DEFAULT_INIT`) at this module's ``(n_s, d)``; draws on the CPU from ``generator``."""
        values = _resolve(init).init(self.n_s, self.d)
        self.fn.copy_(values.sample_fn(self.n_s, self.fn.shape[1], generator=generator))
        self.scale.copy_(values.scale_tensor(torch.float32))
        self.base.copy_(values.base_tensor(self.n_s, torch.float32))

    def fused_for(self, x: torch.Tensor) -> bool:
        """Whether this hyper-connection runs the fused kernels on ``x`` (and its hc_post with it)."""
        observed = any(tap._forward_hooks or tap._forward_pre_hooks for tap in self._taps())
        return not observed and fused.use_triton(self.kernels, x)

    def fused_routed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused hc_pre, and the route for hc_post's gradient of ``x``
        (:func:`mhc_mup.kernels.fused.hc_pre_routed`)."""
        with fp32_region(x.device.type):
            return fused.hc_pre_routed(x, self.fn, self.scale, self.base, self.K, self.hc_eps, self.norm_eps)

    def _taps(self) -> tuple[Tap, Tap, Tap]:
        return self.pre_logits, self.post_logits, self.comb_logits

    def forward(
        self, x: torch.Tensor, fused_path: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``fused_path``: the caller's :meth:`fused_for` decision, so that it is made once per sublayer."""
        if fused_path is None:
            fused_path = self.fused_for(x)
        if fused_path:
            return self.fused_routed(x)[:3]
        with fp32_region(x.device.type):
            mixes = hc_mixes(x, self.fn, self.norm_eps)
            a_pre, a_post, z = gate_logits(mixes, self.scale, self.base, self.n_s)
            self.pre_logits(a_pre)
            self.post_logits(a_post)
            self.comb_logits(z)
            pre, post, comb = split_mixes(mixes, self.scale, self.base, self.n_s, self.K, self.hc_eps)
            return collapse(x, pre), post, comb


class HeadCollapse(nn.Module):
    """V4's head: ``Σ_i (σ(mixes_i·s + b_i) + hc_eps)·x[i]``; ``fn`` ``(n_s, n_s·d)``, ``scale`` ``(1,)``,
    ``base`` ``(n_s,)``; ``(..., n_s, d)`` → ``(..., d)``. A new module takes the ``init`` preset's pre gate."""

    def __init__(
        self, n_s: int, d: int, hc_eps: float = HC_EPS, norm_eps: float = NORM_EPS,
        *, init: Parameterization | str | None = None, generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_shape(d, n_s)
        self.hc_eps, self.norm_eps = hc_eps, norm_eps
        self.fn = nn.Parameter(torch.empty(n_s, n_s * d))
        self.scale = nn.Parameter(torch.empty(1))
        self.base = nn.Parameter(torch.empty(n_s))
        self.logits = Tap()
        self.reset_parameters(init, generator)

    @property
    def n_s(self) -> int:
        return self.fn.shape[0]

    @property
    def d(self) -> int:
        return self.fn.shape[1] // self.n_s

    @torch.no_grad()
    def reset_parameters(
        self, init: Parameterization | str | None = None, generator: torch.Generator | None = None
    ) -> None:
        """The preset's pre gate: ``fn ~ N(0, σ_pre²)``, ``scale = s_pre``, ``base = b_pre``."""
        values = _resolve(init).init(self.n_s, self.d)
        self.fn.copy_(values.sample_fn(self.n_s, self.fn.shape[1], generator=generator, gate="pre"))
        self.scale.fill_(values.scale[0])
        self.base.copy_(values.base_tensor(self.n_s, torch.float32, gate="pre"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with fp32_region(x.device.type):
            self.logits(hc_mixes(x, self.fn, self.norm_eps) * self.scale + self.base)  # hc_head's gate input
            return hc_head(x, self.fn, self.scale, self.base, self.hc_eps, self.norm_eps)


class MHCSublayer(nn.Module):
    """One residual sublayer around ``branch``: ``hc_post(branch(norm(y)), x, post, comb)`` with ``(y, post,
    comb) = hc_pre(x)``, ``x`` ``(..., n_s, d)`` → ``(..., n_s, d)``; with ``n_s=None``, the plain pre-norm
    residual ``x + branch(norm(x))`` on ``(..., d)`` and no mHC parameter.

    Args:
        branch: any module ``(..., d) → (..., d)``.
        d: the stream width; ``n_s``: the number of streams (V4: 4), or ``None`` for the plain residual.
        K, hc_eps, norm_eps: V4's Sinkhorn iterations and eps (``norm_eps`` also the RMSNorm's).
        norm: an RMSNorm of width ``d`` on the branch input (``True``, V4's), or none (``False``: the branch
            normalises its own input).
        kernels: ``"auto"`` (fused on CUDA), ``"reference"`` or ``"triton"``.
        init: the generator's preset (default :data:`DEFAULT_INIT`); a width plan re-initialises by its rule.
        generator: where the generator's init draws from (default: torch's global RNG, as torch's layers).
    """

    def __init__(
        self, branch: nn.Module, d: int, n_s: int | None = 4, *, K: int = 20, hc_eps: float = HC_EPS,
        norm_eps: float = NORM_EPS, norm: bool = True, kernels: str = "auto",
        init: Parameterization | str | None = None, generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        check_shape(d, n_s, K)
        if kernels not in fused.KERNEL_CHOICES:
            raise ModelConfigError(f"kernels must be one of {', '.join(fused.KERNEL_CHOICES)}, got {kernels!r}")
        hc = None if n_s is None else HyperConnection(n_s, d, K, hc_eps, norm_eps, init=init, generator=generator)
        self.hc = hc
        self.norm = nn.RMSNorm(d, eps=norm_eps) if norm else nn.Identity()
        self.branch = branch
        if self.hc is not None:
            self.hc.kernels = kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hc is None:
            return x + self.branch(self.norm(norm_input(x, self.norm)))
        fused_path = self.hc.fused_for(x)  # hc_pre and hc_post take the same path
        if fused_path:  # hc_post's gradient of x is added inside hc_pre's backward, not by autograd
            y, post, comb, route = self.hc.fused_routed(x)
        else:
            (y, post, comb), route = self.hc(x, fused_path=False), None
        out = self.branch(self.norm(norm_input(y, self.norm)))
        with fp32_region(x.device.type):
            return fused.hc_post(out, x, post, comb, x_grad_route=route) if fused_path else hc_post(out, x, post, comb)
