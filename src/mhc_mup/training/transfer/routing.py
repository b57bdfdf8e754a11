"""Is the mHC routing alive? What a run's hyper-connections route, read through the model's taps on one batch.

For every sublayer's hyper-connection: the RMS of its comb, pre and post gate logits (pooled over sublayers,
tokens and entries), and how far its mean comb (the ``n_s × n_s`` mixing matrix averaged over the tokens) is
from the uniform matrix ``11ᵀ/n_s`` (every stream mixed evenly) and from the identity (no mixing), in Frobenius
norm, averaged over sublayers. A run records them at its start and at its end: a parameterization whose routing
learns moves them with training at every width; one whose routing stays at its initial value does not move them
at large width.
"""

from __future__ import annotations

import math

import torch

from mhc_mup.training.model import MHCLM, HyperConnection

__all__ = ["ROUTING_STATS", "routing_stats"]

ROUTING_STATS = ("comb_rms", "pre_rms", "post_rms", "comb_to_uniform", "comb_to_identity")


@torch.no_grad()
def routing_stats(model: MHCLM, tokens: torch.Tensor) -> dict[str, float]:
    """:data:`ROUTING_STATS` of ``model`` on ``tokens`` ``(B, T)`` (one forward pass, reference mHC ops: a
    watched tap turns the fused kernels off); ``{}`` for a model without mHC."""
    if not model.config.hc:
        return {}
    logits: dict[str, list[torch.Tensor]] = {"comb": [], "pre": [], "post": []}
    combs: list[torch.Tensor] = []
    handles = []
    for m in model.modules():
        if isinstance(m, HyperConnection):
            for name, tap in (("comb", m.comb_logits), ("pre", m.pre_logits), ("post", m.post_logits)):
                handles.append(tap.register_forward_hook(lambda _m, _i, out, k=name: logits[k].append(out.float())))
            handles.append(m.register_forward_hook(lambda _m, _i, out: combs.append(out[2].float())))
    try:
        model(tokens)
    finally:
        for h in handles:
            h.remove()
    n = model.config.n_s
    means = [c.reshape(-1, n, n).mean(dim=0) for c in combs]  # (n_s, n_s) per sublayer
    uniform, eye = torch.full((n, n), 1.0 / n, device=tokens.device), torch.eye(n, device=tokens.device)
    stats = {f"{k}_rms": _rms(v) for k, v in logits.items()}
    stats["comb_to_uniform"] = float(torch.stack([(c - uniform).norm() for c in means]).mean())
    stats["comb_to_identity"] = float(torch.stack([(c - eye).norm() for c in means]).mean())
    return {k: stats[k] if math.isfinite(stats[k]) else math.nan for k in ROUTING_STATS}


def _rms(tensors: list[torch.Tensor]) -> float:
    """``√mean(v²)`` over every entry of ``tensors``."""
    return float(torch.cat([t.reshape(-1) for t in tensors]).pow(2).mean().sqrt())
