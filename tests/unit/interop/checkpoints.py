"""Small safetensors checkpoints with random mHC tensors, under transformers' or DeepSeek's names."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

N_S, D, LAYERS = 4, 16, 3
ROWS = (2 + N_S) * N_S


def hc_tensors(gen: torch.Generator, n_layers: int = LAYERS, n_s: int = N_S, d: int = D) -> dict:
    """Random mHC parameters keyed (layer, sublayer, part), plus the head's under ("head", part)."""
    rows = (2 + n_s) * n_s
    out = {}
    for layer in range(n_layers):
        for sub in ("attn", "ffn"):
            out[(layer, sub, "fn")] = torch.randn(rows, n_s * d, generator=gen) * 0.1
            out[(layer, sub, "base")] = torch.randn(rows, generator=gen)
            out[(layer, sub, "scale")] = torch.rand(3, generator=gen) + 0.5
    out[("head", "fn")] = torch.randn(n_s, n_s * d, generator=gen) * 0.1
    out[("head", "base")] = torch.randn(n_s, generator=gen)
    out[("head", "scale")] = torch.rand(1, generator=gen)
    return out


def named(tensors: dict, naming: str) -> dict[str, torch.Tensor]:
    """The tensors under transformers' module names or DeepSeek's release names."""
    out = {}
    for key, t in tensors.items():
        if key[0] == "head":
            name = f"model.hc_head.hc_{key[1]}" if naming == "transformers" else f"hc_head_{key[1]}"
        else:
            layer, sub, part = key
            name = (
                f"model.layers.{layer}.{sub}_hc.{part}"
                if naming == "transformers"
                else f"layers.{layer}.hc_{sub}_{part}"
            )
        out[name] = t.contiguous()
    return out


def write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
