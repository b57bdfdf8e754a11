"""Do the logits stay bounded? A run's attention and output logits, read on one batch at its start and its end.

Growing attention logits are the instability that limits a Transformer's largest stable learning rate as it
grows (Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training instabilities"); under µP
neither these nor the output logits should grow with width. So when the loss at large learning rates rises
faster at large width, these say whether the logits are where it happens:

* ``attn_logit_max``: ``max |q·kᵀ · scale|`` over every attention layer, head and causal (query, key) pair;
* ``attn_logit_rms``: the RMS of the same entries;
* ``output_logit_rms``: the RMS of the readout logits, each position's mean over the vocabulary removed (a
  softmax does not see it).
"""

from __future__ import annotations

import torch

from mhc_mup.training.model import MHCLM, Attention

__all__ = ["LOGIT_STATS", "logit_stats"]

LOGIT_STATS = ("attn_logit_max", "attn_logit_rms", "output_logit_rms")


@torch.no_grad()
def logit_stats(model: MHCLM, tokens: torch.Tensor) -> dict[str, float]:
    """:data:`LOGIT_STATS` of ``model`` on ``tokens`` ``(B, T)``: one forward pass, each attention layer's
    ``q·kᵀ·scale`` ``(B, heads, T, T)`` recomputed in fp32 from its input."""
    peak, squares, count = 0.0, 0.0, 0
    handles = []

    def attention_logits(m: Attention, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        nonlocal peak, squares, count
        x = inputs[0]
        T = x.shape[1]
        q, k = (t.float() for t in m.queries_keys(x))
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        s = (q @ k.transpose(-1, -2) * m.scale)[..., causal]  # (B, heads, T(T+1)/2)
        peak = max(peak, float(s.abs().max()))
        squares += float(s.square().sum())
        count += s.numel()

    for m in model.modules():
        if isinstance(m, Attention):
            handles.append(m.register_forward_hook(attention_logits))
    try:
        out = model(tokens).float()
    finally:
        for h in handles:
            h.remove()
    centred = out - out.mean(dim=-1, keepdim=True)
    return {"attn_logit_max": peak, "attn_logit_rms": (squares / count) ** 0.5,
            "output_logit_rms": float(centred.square().mean().sqrt())}  # fmt: skip
