"""mHC configurations: the shape every experiment shares (:class:`MHCShape`), and V4-Pro, V4-Flash and
the seed's diagnostic defaults as named presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mhc_mup.errors import ConfigError

__all__ = ["PRESETS", "MHCConfig", "MHCShape", "preset"]


@dataclass(frozen=True)
class MHCShape:
    """What an mHC residual is, apart from its width: ``n_s`` streams, ``K`` Sinkhorn iterations (V4's
    ``hc_sinkhorn_iters``), ``hc_eps`` added in the gates and Sinkhorn, ``norm_eps`` inside the RMS rsqrt.
    V4's values are the defaults. Shared by the width sweep, the model, the coordinate check and transfer.
    """

    n_s: int = 4
    K: int = 20
    hc_eps: float = 1e-6
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name, minimum in (("n_s", 2), ("K", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("hc_eps", "norm_eps"):
            value = getattr(self, name)
            finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (finite and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class MHCConfig:
    """Shape and numerics of one V4-style mHC residual.

    ``n_s`` streams of width ``d``; ``K`` Sinkhorn iterations (V4's ``hc_sinkhorn_iters``);
    ``hc_eps`` is added in the gates and Sinkhorn, ``norm_eps`` inside the RMS rsqrt.
    ``n_layers`` is informational (the depth of the model the preset describes).
    """

    n_s: int = 4
    d: int = 256
    K: int = 20
    hc_eps: float = 1e-6
    norm_eps: float = 1e-6
    n_layers: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_s, bool) or not isinstance(self.n_s, int) or self.n_s < 2:
            raise ValueError(f"n_s must be an integer >= 2, got {self.n_s!r}")
        if isinstance(self.d, bool) or not isinstance(self.d, int) or self.d < 1:
            raise ValueError(f"d must be a positive integer, got {self.d!r}")
        if isinstance(self.K, bool) or not isinstance(self.K, int) or self.K < 1:
            raise ValueError(f"K must be an integer >= 1, got {self.K!r}")
        if not self.hc_eps >= 0:
            raise ValueError(f"hc_eps must be >= 0, got {self.hc_eps!r}")
        if not self.norm_eps >= 0:
            raise ValueError(f"norm_eps must be >= 0, got {self.norm_eps!r}")

    @property
    def hc_dim(self) -> int:
        """Length of the flattened residual state, n_s·d (the generator's fan-in)."""
        return self.n_s * self.d

    @property
    def mix_dim(self) -> int:
        """Rows of the generator ``fn``: n_s (pre) + n_s (post) + n_s² (comb) = (2+n_s)·n_s."""
        return (2 + self.n_s) * self.n_s

    @property
    def shape(self) -> MHCShape:
        """The width-independent part: n_s, K and the eps values."""
        return MHCShape(self.n_s, self.K, self.hc_eps, self.norm_eps)

    def replace(self, **changes: object) -> MHCConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, MHCConfig] = {
    # DeepSeek-V4-Pro (the seed calls it "DeepSeek V4"): hidden 7168, 61 layers.
    "v4-pro": MHCConfig(n_s=4, d=7168, K=20, hc_eps=1e-6, norm_eps=1e-6, n_layers=61),
    # DeepSeek-V4-Flash: hidden 4096, 43 layers.
    "v4-flash": MHCConfig(n_s=4, d=4096, K=20, hc_eps=1e-6, norm_eps=1e-6, n_layers=43),
    # The seed script's MHCConfig defaults.
    "seed": MHCConfig(n_s=4, d=256, K=20, hc_eps=1e-6, norm_eps=1e-6, n_layers=None),
}


def preset(name: str) -> MHCConfig:
    """The named preset; raises ``KeyError`` naming the choices for an unknown name."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
