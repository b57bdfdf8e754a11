"""How the mHC generator is initialised: the std of ``fn``, the three ``scale`` values, ``base``.

The seed's (and the report's "baseline") choice is ``σ_W = 0.02``, ``scale = 0.1``, ``base = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GeneratorInit:
    """Initialisation of one sublayer's mHC generator.

    ``fn ~ N(0, sigma_w²)`` entrywise; ``scale = (s_pre, s_post, s_comb)``; ``base`` is a constant.
    """

    sigma_w: float = 0.02
    scale: tuple[float, float, float] = (0.1, 0.1, 0.1)
    base: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_w) and self.sigma_w > 0):
            raise ValueError(f"sigma_w must be a positive finite number, got {self.sigma_w!r}")
        if len(self.scale) != 3 or not all(math.isfinite(s) for s in self.scale):
            raise ValueError(f"scale must be three finite numbers, got {self.scale!r}")
        if not math.isfinite(self.base):
            raise ValueError(f"base must be finite, got {self.base!r}")

    def scale_tensor(self, dtype: torch.dtype, device=None) -> torch.Tensor:
        return torch.tensor(self.scale, dtype=dtype, device=device)

    def base_tensor(self, rows: int, dtype: torch.dtype, device=None) -> torch.Tensor:
        return torch.full((rows,), float(self.base), dtype=dtype, device=device)

    def sample_fn(
        self,
        rows: int,
        fan_in: int,
        batch: tuple[int, ...] = (),
        *,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> torch.Tensor:
        """A ``(*batch, rows, fan_in)`` generator weight drawn from ``N(0, sigma_w²)``."""
        w = torch.randn(*batch, rows, fan_in, generator=generator, dtype=dtype, device=device)
        return w.mul_(self.sigma_w)


SEED_INIT = GeneratorInit()
