"""Adapters: diagnose any mHC implementation that maps a residual state to (pre, post, comb).

The protocol is one method. An adapter has ``n_s`` and ``d`` and ``weights(state)`` mapping a residual
state ``(..., n_s, d)`` to :class:`~mhc_mup.mhc.ops.HCWeights` — ``pre (..., n_s)``, ``post (..., n_s)`` and
``comb (..., n_s, n_s)`` indexed ``comb[input, output]``, i.e. the sublayer computes
``out[o] = post[o]·f(Σ_i pre[i]·x[i]) + Σ_i comb[i, o]·x[i]`` (V4's convention; an implementation that
mixes by ``comb`` rather than ``combᵀ`` must transpose in its adapter). Anything differentiable in
``state`` is enough for :mod:`mhc_mup.interop.adapter_diagnostics`, which takes Jacobians by autograd.

Built in:

* :class:`FunctionAdapter` — wraps a plain callable.
* :class:`V4Params` — parameters in V4's layout (``fn``, ``base``, ``scale``) run through our V4-exact ops;
  it also offers the closed-form Jacobian norms of :mod:`mhc_mup.mhc.jacobians`.
* :class:`TransformersV4Adapter` / :class:`V4HeadParams` — Hugging Face transformers'
  ``DeepseekV4HyperConnection`` / ``DeepseekV4HyperHead``: their live parameters through our ops (tests
  check agreement with the modules' own forward to fp32 round-off).
* :class:`HyperConnectionsAdapter` — the ``hyper-connections`` package's
  ``ManifoldConstrainedHyperConnections``: its own per-stream norm and Sinkhorn, differentiated by autograd.

transformers and hyper-connections are optional (``pip install mhc-mup[adapters]``) and imported lazily;
:class:`MissingExtraError` says what to install.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from mhc_mup.errors import MissingExtraError
from mhc_mup.mhc.jacobians import gate_jacobian_norms
from mhc_mup.mhc.ops import HC_EPS, NORM_EPS, HCWeights, collapse, hc_head, hc_mixes, hc_post, hc_weights

INSTALL_HINT = "pip install mhc-mup[adapters]"


def require(module: str, purpose: str) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` naming the package and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0].replace("_", "-")
        raise MissingExtraError(f"{purpose} needs the '{package}' package: {INSTALL_HINT}") from None


@runtime_checkable
class MHCAdapter(Protocol):
    """Anything that generates an mHC sublayer's (pre, post, comb) from the residual state.

    ``n_s`` streams of width ``d``; ``weights(state)`` maps ``(..., n_s, d)`` to ``HCWeights`` with
    ``pre (..., n_s)``, ``post (..., n_s)``, ``comb (..., n_s, n_s)`` (``comb[input, output]``).
    """

    @property
    def n_s(self) -> int: ...
    @property
    def d(self) -> int: ...
    def weights(self, state: torch.Tensor) -> HCWeights: ...


@dataclass(frozen=True)
class FunctionAdapter:
    """A callable ``state (..., n_s, d) -> (pre, post, comb)`` as an adapter (tuples are accepted)."""

    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    n_s: int
    d: int
    name: str = "function"

    def weights(self, state: torch.Tensor) -> HCWeights:
        return HCWeights(*self.fn(state))


def streams_from_rows(rows: int) -> int:
    """``n_s`` from the generator's row count ``(2+n_s)·n_s``; ``ValueError`` if no integer fits."""
    n = round(math.sqrt(rows + 1) - 1)
    if n < 1 or (2 + n) * n != rows:
        raise ValueError(f"{rows} rows is not (2+n_s)·n_s for any integer n_s")
    return n


def rms_norm_eps(norm: torch.nn.Module) -> float:
    """The ε of a transformers RMSNorm: ``eps`` in the releases we first read, ``variance_epsilon`` since (5.x)."""
    for name in ("eps", "variance_epsilon"):
        value = getattr(norm, name, None)
        if value is not None:
            return float(value)
    raise ValueError(f"{type(norm).__name__} has neither 'eps' nor 'variance_epsilon': cannot read its epsilon")


@dataclass(frozen=True)
class V4Params:
    """One sublayer's mHC parameters in V4's layout, run through :mod:`mhc_mup.mhc.ops`.

    ``fn`` ``((2+n_s)·n_s, n_s·d)``, ``base`` ``((2+n_s)·n_s,)``, ``scale`` ``(3,)``; ``K`` Sinkhorn
    iterations, ``hc_eps`` in the gates and Sinkhorn, ``norm_eps`` inside the RMS rsqrt.
    """

    fn: torch.Tensor
    base: torch.Tensor
    scale: torch.Tensor
    K: int = 20
    hc_eps: float = HC_EPS
    norm_eps: float = NORM_EPS

    def __post_init__(self) -> None:
        if self.fn.dim() != 2:
            raise ValueError(f"fn must be 2-D ((2+n_s)·n_s, n_s·d), got shape {tuple(self.fn.shape)}")
        rows, cols = self.fn.shape
        n = streams_from_rows(rows)
        if cols % n:
            raise ValueError(f"fn has {cols} columns, not a multiple of n_s = {n}")
        if tuple(self.base.shape) != (rows,):
            raise ValueError(f"base must have shape ({rows},), got {tuple(self.base.shape)}")
        if tuple(self.scale.shape) != (3,):
            raise ValueError(f"scale must have shape (3,), got {tuple(self.scale.shape)}")
        if self.K < 1:
            raise ValueError(f"K must be >= 1, got {self.K}")

    @property
    def n_s(self) -> int:
        return streams_from_rows(self.fn.shape[0])

    @property
    def d(self) -> int:
        return self.fn.shape[1] // self.n_s

    def weights(self, state: torch.Tensor) -> HCWeights:
        """V4's (pre, post, comb) of ``state`` ``(..., n_s, d)``."""
        return hc_weights(state, self.fn, self.scale, self.base, self.K, self.hc_eps, self.norm_eps)

    def gate_jacobian_norms(self, state: torch.Tensor) -> HCWeights:
        """Closed-form ``‖∂pre/∂x‖₂, ‖∂post/∂x‖₂, ‖∂C/∂x‖₂`` per state, ``(...,)`` each."""
        return gate_jacobian_norms(state, self.fn, self.scale, self.base, self.K, self.hc_eps, self.norm_eps)

    def sublayer(self, state: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The whole sublayer: ``hc_post(branch(Σ pre·x), x, post, comb)``, ``(..., n_s, d)`` → same."""
        pre, post, comb = self.weights(state)
        return hc_post(branch(collapse(state, pre)), state, post, comb)

    @classmethod
    def from_transformers(cls, module: torch.nn.Module) -> V4Params:
        """The parameters of a transformers ``DeepseekV4HyperConnection`` (detached, fp32), with its
        ``hc_sinkhorn_iters``, ``hc_eps`` and the eps of its un-weighted input RMSNorm."""
        m: Any = module  # another implementation's: its attributes are its own, unknown to a type checker
        return cls(
            fn=m.fn.detach().float(),
            base=m.base.detach().float(),
            scale=m.scale.detach().float(),
            K=int(m.hc_sinkhorn_iters),
            hc_eps=float(m.hc_eps),
            norm_eps=rms_norm_eps(m.input_norm),
        )


@dataclass(frozen=True)
class V4HeadParams:
    """The model head's pre-only collapse in V4's layout: ``fn`` ``(n_s, n_s·d)``, ``base`` ``(n_s,)``,
    ``scale`` ``(1,)``; ``pre = σ(mixes·scale + base) + hc_eps``."""

    fn: torch.Tensor
    base: torch.Tensor
    scale: torch.Tensor
    hc_eps: float = HC_EPS
    norm_eps: float = NORM_EPS

    def __post_init__(self) -> None:
        if self.fn.dim() != 2 or self.fn.shape[1] % self.fn.shape[0]:
            raise ValueError(f"head fn must be (n_s, n_s·d), got shape {tuple(self.fn.shape)}")
        if tuple(self.base.shape) != (self.fn.shape[0],):
            raise ValueError(f"head base must have shape ({self.fn.shape[0]},), got {tuple(self.base.shape)}")
        if self.scale.numel() != 1:
            raise ValueError(f"head scale must have one element, got shape {tuple(self.scale.shape)}")

    @property
    def n_s(self) -> int:
        return self.fn.shape[0]

    @property
    def d(self) -> int:
        return self.fn.shape[1] // self.n_s

    def pre(self, state: torch.Tensor) -> torch.Tensor:
        """Head gate ``(..., n_s, d)`` → ``(..., n_s)``."""
        mixes = hc_mixes(state, self.fn, self.norm_eps)
        return torch.sigmoid(mixes * self.scale.to(mixes.dtype) + self.base.to(mixes.dtype)) + self.hc_eps

    def collapse(self, state: torch.Tensor) -> torch.Tensor:
        """``Σ_i pre[i]·x[i]``: ``(..., n_s, d)`` → ``(..., d)`` (the final norm comes after)."""
        return hc_head(state, self.fn, self.scale, self.base, self.hc_eps, self.norm_eps)

    @classmethod
    def from_transformers(cls, head: torch.nn.Module) -> V4HeadParams:
        """The parameters of a transformers ``DeepseekV4HyperHead`` (detached, fp32)."""
        m: Any = head  # another implementation's: its attributes are its own, unknown to a type checker
        return cls(
            fn=m.hc_fn.detach().float(),
            base=m.hc_base.detach().float(),
            scale=m.hc_scale.detach().float(),
            hc_eps=float(m.eps),
            norm_eps=rms_norm_eps(m.input_norm),
        )


# ── transformers ───────────────────────────────────────────────────────────────────────────────
class TransformersV4Adapter:
    """transformers' ``DeepseekV4HyperConnection`` as an adapter.

    ``weights`` reads the module's current parameters (so it follows training) and runs them through
    V4-exact :mod:`mhc_mup.mhc.ops`; ``module_forward`` runs the module itself, ``(B, S, n_s, d)`` →
    ``(post, comb, collapsed)`` as transformers returns them. The two agree to fp32 round-off (tested).
    """

    def __init__(self, module: torch.nn.Module) -> None:
        for name in ("fn", "base", "scale", "hc_sinkhorn_iters", "hc_eps", "input_norm"):
            if not hasattr(module, name):
                kind = type(module).__name__
                raise TypeError(f"{kind} has no '{name}': not a transformers DeepseekV4HyperConnection")
        self.module: Any = module  # another implementation's: its attributes are its own

    @property
    def params(self) -> V4Params:
        return V4Params.from_transformers(self.module)

    @property
    def n_s(self) -> int:
        return int(self.module.hc_mult)

    @property
    def d(self) -> int:
        return self.module.fn.shape[1] // self.n_s

    def weights(self, state: torch.Tensor) -> HCWeights:
        return self.params.weights(state)

    def gate_jacobian_norms(self, state: torch.Tensor) -> HCWeights:
        return self.params.gate_jacobian_norms(state)

    def module_forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The module's own ``forward``: ``state`` ``(B, S, n_s, d)`` → ``(post, comb, collapsed)``."""
        return self.module(state)

    @classmethod
    def build(
        cls, n_s: int = 4, d: int = 64, K: int = 20, *, initializer_range: float = 0.02, seed: int = 0
    ) -> TransformersV4Adapter:
        """A freshly initialised ``DeepseekV4HyperConnection`` at width ``d`` (transformers' own init:
        ``fn ~ N(0, initializer_range²)``, ``base = 0``, ``scale = 1``), for width sweeps."""
        config = tiny_deepseek_v4_config(n_s=n_s, d=d, K=K, initializer_range=initializer_range)
        modeling = require("transformers.models.deepseek_v4.modeling_deepseek_v4", "the transformers adapter")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = modeling.DeepseekV4HyperConnection(config)
            modeling.DeepseekV4PreTrainedModel(config)._init_weights(module)
        return cls(module)


def tiny_deepseek_v4_config(
    n_s: int = 4, d: int = 64, K: int = 20, *, n_layers: int = 2, vocab: int = 64, initializer_range: float = 0.02
) -> Any:
    """A small random ``DeepseekV4Config``: hidden size ``d``, ``hc_mult = n_s``, ``hc_sinkhorn_iters = K``,
    every other size tiny, so that a whole ``DeepseekV4ForCausalLM`` builds in milliseconds."""
    transformers = require("transformers", "the transformers adapter")
    if not hasattr(transformers, "DeepseekV4Config"):
        raise MissingExtraError(
            f"transformers {transformers.__version__} has no DeepseekV4Config (needs >= 5.9): {INSTALL_HINT}"
        )
    return transformers.DeepseekV4Config(
        vocab_size=vocab,
        hidden_size=d,
        moe_intermediate_size=16,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        q_lora_rank=16,
        o_lora_rank=8,
        o_groups=2,
        n_routed_experts=4,
        num_experts_per_tok=2,
        index_n_heads=2,
        index_head_dim=8,
        index_topk=4,
        hc_mult=n_s,
        hc_sinkhorn_iters=K,
        initializer_range=initializer_range,
    )


# ── hyper-connections ──────────────────────────────────────────────────────────────────────────
class HyperConnectionsAdapter:
    """The ``hyper-connections`` package's ``ManifoldConstrainedHyperConnections`` as an adapter.

    Its gates, in our notation (``x̂_i`` = the module's per-stream RMSNorm of stream ``i``, ``W_α`` its
    ``dynamic_alpha_fn`` ``(p, d, 1+n_s)``, ``w_β`` its ``dynamic_beta_fn`` ``(d,)``):
    ``[a_i, Z_i] = s·(x̂_i W_α) + static_alpha_i`` per stream ``i`` (row ``i`` of the logits only sees stream
    ``i``), ``pre_i = σ(a_i)``, ``comb = Φ(Z)`` with the module's own constraint ``Φ`` (its Sinkhorn by
    default), averaged over ``p`` proposals, ``post_i = 2σ(h·(x̂_i·w_β) + static_beta_i)``. The branch input
    is ``Σ_i pre_i x_i`` and the output ``post_o·f + Σ_i comb[i, o]·x_i`` — V4's indexing. The module's own
    submodules and parameters are used, so its norm and constraint are exactly the package's; tests check
    the result against the module's ``forward``.

    Supported: one fraction, one input view, no channel-first layout, no residual transform.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        unsupported = {
            "num_fracs": getattr(module, "num_fracs", 1) != 1,
            "num_input_views": getattr(module, "num_input_views", 1) != 1,
            "channel_first": bool(getattr(module, "channel_first", False)),
            "add_branch_out_to_residual=False": not getattr(module, "add_branch_out_to_residual", True),
            "residual_transform": not isinstance(getattr(module, "residual_transform", None), torch.nn.Identity),
        }
        bad = [name for name, flag in unsupported.items() if flag]
        if bad:
            raise ValueError(f"HyperConnectionsAdapter does not support {', '.join(bad)}")
        if not hasattr(module, "residual_mix_constraint_fn"):
            raise TypeError(
                f"{type(module).__name__} has no residual_mix_constraint_fn: needs hyper-connections >= 0.4.2"
            )
        self.module: Any = module  # another implementation's: its attributes are its own

    @property
    def n_s(self) -> int:
        return int(self.module.num_residual_streams)

    @property
    def d(self) -> int:
        return int(self.module.dynamic_alpha_fn.shape[-2])

    def weights(self, state: torch.Tensor) -> HCWeights:
        """(pre, post, comb) of ``state`` ``(..., n_s, d)`` in fp32, as the module computes them."""
        m, n = self.module, self.n_s
        normed = m.norm(state).float()  # per-stream RMSNorm with the module's gamma: (..., n_s, d)
        dyn = torch.einsum("...sd,pde->p...se", normed, m.dynamic_alpha_fn.float())  # (p, ..., n_s, 1+n_s)
        gate_scale = torch.cat([m.pre_branch_scale.float(), m.residual_scale.float().expand(n)])
        alpha = dyn * gate_scale + m.static_alpha.float()
        pre = alpha[..., 0].sigmoid().mean(dim=0)
        comb = m.residual_mix_constraint_fn(alpha[..., 1:]).float().mean(dim=0)
        beta_logit = (normed @ m.dynamic_beta_fn.float()) * m.h_post_scale.float() + m.static_beta.float()
        post = 2.0 * beta_logit.sigmoid()
        return HCWeights(pre, post, comb)

    def module_forward(
        self, state: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the module itself on ``state`` ``(B, n_s, d)`` (streams folded into the batch as the
        package expects): returns ``(branch_input (B, d), output (B, n_s, d))``."""
        B = state.shape[0]
        branch_input, add_residual = self.module(state.reshape(B * self.n_s, self.d))
        out = add_residual(branch(branch_input))
        return branch_input, out.reshape(B, self.n_s, self.d)

    @classmethod
    def build(
        cls, n_s: int = 4, d: int = 64, K: int = 20, *, dynamic_std: float = 0.0, seed: int = 0
    ) -> HyperConnectionsAdapter:
        """A fresh module at width ``d`` with the package's init (``layer_index=0``). Its dynamic weights
        start at zero, so the gates do not depend on the state; ``dynamic_std > 0`` draws them from
        ``N(0, dynamic_std²)`` instead (a stand-in for weights that training has moved)."""
        hc = require("hyper_connections", "the hyper-connections adapter")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = hc.ManifoldConstrainedHyperConnections(n_s, dim=d, sinkhorn_iters=K, layer_index=0)
            if dynamic_std > 0:
                with torch.no_grad():
                    module.dynamic_alpha_fn.normal_(0.0, dynamic_std)
                    module.dynamic_beta_fn.normal_(0.0, dynamic_std)
        return cls(module)


ADAPTER_BUILDERS: dict[str, Callable[..., MHCAdapter]] = {
    "transformers": TransformersV4Adapter.build,
    "hyper-connections": HyperConnectionsAdapter.build,
}
"""Name → ``build(n_s, d, K, seed=…)`` for the implementations the ``adapter`` command can sweep."""
