"""Diagnostics 1, 2, 4 and 6 for any :class:`~mhc_mup.interop.adapters.MHCAdapter`, and a width sweep over
implementations that can be built at several widths.

Diagnostic 4 needs ``∂(pre, post, comb)/∂x``. For an arbitrary adapter it comes from autograd:
``torch.func.jacrev`` of one state's gates, ``torch.func.vmap``-ed over the samples, so the Jacobian
``J`` ``((2+n_s)·n_s, n_s·d)`` of each sample is one batched reverse pass, never a Python loop over
entries. Its operator norms are ``sqrt(λ_max(J Jᵀ))`` from the small Gram matrix, as in
:mod:`mhc_mup.mhc.jacobians`. Adapters with a closed form (``gate_jacobian_norms``) may use it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mhc_mup.diagnostics import measures as dg
from mhc_mup.diagnostics import summaries as sm
from mhc_mup.interop.adapters import MHCAdapter
from mhc_mup.mhc.ops import HCWeights
from mhc_mup.stats.fitting import PowerLawFit, fit_power_laws

ADAPTER_DIAGNOSTICS = ("sinkhorn_error", "spectral_norm", "dynamic_sensitivity", "gate_stats")
"""The diagnostics defined for any implementation (3 and 5 assume V4's Sinkhorn and generator layout)."""

JacobianMethod = Literal["auto", "autograd", "closed_form"]


def top_singular_values(J: torch.Tensor) -> torch.Tensor:
    """``σ_max`` of each ``(..., m, N)`` matrix with small ``m``: ``sqrt(λ_max(J Jᵀ))``, ``(...,)``."""
    gram = J @ J.transpose(-1, -2)
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0.0).sqrt()


def autograd_jacobians(
    gates: Callable[[torch.Tensor], torch.Tensor], states: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """Per-sample Jacobians of a vector-valued ``gates`` ``(n_s, d) → (m,)``: ``states`` ``(B, n_s, d)``
    → ``(B, m, n_s·d)``, by ``vmap(jacrev(gates))`` in chunks of ``chunk`` samples (all at once if None)."""
    per_sample = torch.func.vmap(torch.func.jacrev(gates), chunk_size=chunk)
    return per_sample(states).flatten(-2)


def autograd_gate_jacobian_norms(adapter: MHCAdapter, states: torch.Tensor, chunk: int | None = None) -> HCWeights:
    """``‖∂pre/∂x‖₂, ‖∂post/∂x‖₂, ‖∂C/∂x‖₂`` per state by autograd: ``states`` ``(B, n_s, d)`` → ``(B,)`` each."""
    n = adapter.n_s

    def stacked(state: torch.Tensor) -> torch.Tensor:
        pre, post, comb = adapter.weights(state)
        return torch.cat([pre, post, comb.flatten(-2)], dim=-1)

    J = autograd_jacobians(stacked, states, chunk)
    return HCWeights(
        pre=top_singular_values(J[:, :n]),
        post=top_singular_values(J[:, n : 2 * n]),
        comb=top_singular_values(J[:, 2 * n :]),
    )


def gate_jacobian_norms(
    adapter: MHCAdapter, states: torch.Tensor, method: JacobianMethod = "auto", chunk: int | None = None
) -> HCWeights:
    """Gate Jacobian norms of ``adapter`` at ``states`` ``(B, n_s, d)``. ``auto`` uses the adapter's closed
    form when it has one (``gate_jacobian_norms``), autograd otherwise."""
    closed = getattr(adapter, "gate_jacobian_norms", None)
    if method == "closed_form" and closed is None:
        raise ValueError(f"{type(adapter).__name__} has no closed-form Jacobian; use method='autograd'")
    if closed is not None and method in ("auto", "closed_form"):
        return closed(states)
    return autograd_gate_jacobian_norms(adapter, states, chunk)


def check_shapes(adapter: MHCAdapter, weights: HCWeights, batch: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the first of pre/post/comb whose shape is not what the protocol says."""
    n = adapter.n_s
    expected = {"pre": (*batch, n), "post": (*batch, n), "comb": (*batch, n, n)}
    for name, shape in expected.items():
        got = tuple(getattr(weights, name).shape)
        if got != shape:
            raise ValueError(f"adapter returned {name} of shape {got}, expected {shape}")


def _measured_keys(diag: str, measured: dict[str, dict]) -> list[sm.SummaryKey]:
    """The summary keys of ``diag`` whose samples an adapter measures (no typical-direction keys)."""
    return [sk for sk in sm.SUMMARY_KEYS[diag] if sk.sample in measured[diag]]


def diagnose(
    adapter: MHCAdapter,
    states: torch.Tensor,
    *,
    method: JacobianMethod = "auto",
    chunk: int | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Diagnostics 1, 2, 4 and 6 of ``adapter`` on residual states ``(B, n_s, d)``, one value per state.

    Returns ``{diagnostic: {sample name: (B,) tensor}}`` in the layout of
    :data:`mhc_mup.diagnostics.summaries.SUMMARY_KEYS`, so ``sm.summarize(name, result[name])`` gives the seed's keys.
    Diagnostic 4 is ``‖∂C/∂x‖₂·‖x‖`` etc.; 1, 2 and 6 are evaluated on the same states.
    """
    if states.dim() != 3 or tuple(states.shape[1:]) != (adapter.n_s, adapter.d):
        raise ValueError(f"states must be (B, {adapter.n_s}, {adapter.d}), got {tuple(states.shape)}")
    with torch.no_grad():
        pre, post, comb = w = adapter.weights(states)
    check_shapes(adapter, w, (states.shape[0],))
    norms = gate_jacobian_norms(adapter, states, method, chunk)
    x_norm = states.flatten(-2).to(norms.comb.dtype).norm(dim=-1)
    return {
        "sinkhorn_error": {"eps_K": dg.sinkhorn_error(comb)},
        "spectral_norm": dg.spectral_stats(comb)._asdict(),
        "dynamic_sensitivity": {
            "dc_x": norms.comb * x_norm,
            "dp_x": norms.pre * x_norm,
            "dq_x": norms.post * x_norm,
        },
        "gate_stats": dg.gate_stats(pre, post)._asdict(),
    }


def summarize(result: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """:func:`diagnose`'s per-sample values reduced to the seed's keys (``dc_x_mean`` …)."""
    return {name: sm.summarize(name, samples) for name, samples in result.items()}


@dataclass
class AdapterSweep:
    """Per-width diagnostics of an implementation built at several widths, and power-law fits."""

    name: str
    widths: list[int]
    samples: dict[int, dict[str, dict[str, np.ndarray]]]  # width → diagnostic → sample name → values
    fits: dict[tuple[str, str], PowerLawFit]

    def summary(self, width: int) -> dict[str, dict[str, float]]:
        return {name: sm.summarize(name, s) for name, s in self.samples[width].items()}


def sweep_adapter(
    build: Callable[[int], MHCAdapter],
    widths: Sequence[int],
    *,
    samples: int = 32,
    seed: int = 0,
    method: JacobianMethod = "auto",
    n_boot: int = 1000,
    confidence: float = 0.95,
    name: str = "adapter",
) -> AdapterSweep:
    """Build the implementation at each width (``build(d)``), run :func:`diagnose` on ``samples`` states
    ``x ~ N(0, 1)`` ``(n_s, d)`` and fit every summary key as ``prefactor·d^exponent``. A metric that is
    zero at some width (a gate that ignores the state) gets a NaN fit with a note, not an exception."""
    widths = sorted(widths)
    per_width: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for w in widths:
        adapter = build(w)
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, w]).generate_state(1)[0]))
        states = torch.randn(samples, adapter.n_s, adapter.d, generator=gen)
        result = diagnose(adapter, states, method=method)
        per_width[w] = {
            diag: {k: v.detach().double().cpu().numpy() for k, v in values.items()} for diag, values in result.items()
        }
    fits: dict[tuple[str, str], PowerLawFit] = {}
    for i, diag in enumerate(ADAPTER_DIAGNOSTICS):
        by_sample: dict[str, dict[str, sm.Reducer]] = {}
        for sk in _measured_keys(diag, per_width[widths[0]]):
            by_sample.setdefault(sk.sample, {})[sk.key] = sm.REDUCERS[sk.reducer]
        for j, (sample, stats) in enumerate(by_sample.items()):
            group = fit_power_laws(
                widths,
                [per_width[w][diag][sample] for w in widths],
                stats,
                n_boot=n_boot,
                confidence=confidence,
                seed=seed * 1000 + i * 50 + j,
            )
            fits.update({(diag, key): fit for key, fit in group.items()})
    ordered = {
        (d, sk.key): fits[(d, sk.key)] for d in ADAPTER_DIAGNOSTICS for sk in _measured_keys(d, per_width[widths[0]])
    }
    return AdapterSweep(name, widths, per_width, ordered)
