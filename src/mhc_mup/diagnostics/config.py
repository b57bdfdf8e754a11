"""What determines a width sweep's numbers: the widths, the mHC shape, the parameterization, how many draws each
diagnostic takes, the fit settings and where it runs.

Plain data, no torch: a command validates its configuration before it pays for importing torch.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from mhc_mup._device import check_device
from mhc_mup._nested import LEAF, FlatView, flat_fields
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, Parameterization, ParameterizationError
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.stats.fitting import FitSettings

__all__ = ["DTYPE_NAMES", "SamplingSettings", "SweepConfig"]

DTYPE_NAMES = ("float32", "float64")  # the precisions the sweep's mHC math runs in


def _positive_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class SamplingSettings:
    """How many draws each diagnostic takes (the module docstring gives the design)."""

    state_tokens: int = 64  # diagnostics 1, 2, 6: the seed's (4, 16) batch of token states
    quotient_samples: int = 100  # diagnostic 3
    quotient_K: tuple[int, ...] = (1, 2, 5, 10, 20, 50)  # diagnostic 3's Sinkhorn iteration counts
    sensitivity_samples: int = 30  # diagnostic 4
    update_samples: int = 30  # diagnostic 5

    def __post_init__(self) -> None:
        for k in self.quotient_K:
            _positive_int("quotient K", k, minimum=1)
        if not self.quotient_K:
            raise ConfigError("quotient K values must not be empty")
        for name in ("state_tokens", "quotient_samples", "sensitivity_samples", "update_samples"):
            _positive_int(name.replace("_", " "), getattr(self, name), minimum=2)


_PARTS: dict[str, type] = {"shape": MHCShape, "sampling": SamplingSettings, "fit": FitSettings}
_PART_OF = {f.name: part for part, cls in _PARTS.items() for f in dataclasses.fields(cls)}  # flat name → part


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


@dataclass(frozen=True, init=False)
class SweepConfig(FlatView):
    """Everything that determines a sweep's numbers.

    Build it from its fields (``SweepConfig(shape=MHCShape(n_s=8), fit=FitSettings(n_boot=500))``) or from
    the flat names of results.json's ``config`` (``SweepConfig(n_s=8, n_boot=500)``): each flat name goes
    to its part, on top of that part when both are given. The flat names also read back (``cfg.n_s``,
    through :class:`~mhc_mup._nested.FlatView`, as the training configurations do).
    The parts check themselves when built (:class:`ConfigError` naming the bad value); :meth:`validate`
    checks the rest.
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    shape: MHCShape = field(default_factory=MHCShape)
    parameterization: Parameterization = field(default=PARAMETERIZATIONS["baseline"], metadata=LEAF)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    lr: float = 1e-3  # diagnostic 5's base learning rate η; each group steps with η × its multiplier
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    # Diagnostic 3 is a 16×16 Jacobian: fp64 costs nothing and keeps the gauge leakage above
    # round-off (fp32 floors it at ~1e-7, which K ≥ 20 reaches).
    quotient_dtype: str = "float64"
    fit: FitSettings = field(default_factory=lambda: FitSettings(n_boot=2000))
    chunk_elements: int = 1 << 24  # cap on generator entries held at once (memory bound)

    def __init__(self, **values: Any) -> None:
        """Keyword arguments only: the fields above and the parts' flat names (see the class docstring)."""
        flat = {name: values.pop(name) for name in list(values) if name in _PART_OF}
        for f in dataclasses.fields(self):
            value = values.pop(f.name) if f.name in values else _default(f)
            own = {name: v for name, v in flat.items() if _PART_OF[name] == f.name}
            object.__setattr__(self, f.name, dataclasses.replace(value, **own) if own else value)
        if values:
            raise TypeError(f"SweepConfig got an unexpected keyword argument {next(iter(values))!r}")

    def validate(self) -> SweepConfig:
        """Raise :class:`ConfigError` naming the first bad value; return self when all is well."""
        for w in self.widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError(f"widths must be positive integers, got {w!r}")
        if len(set(self.widths)) != len(self.widths):
            dup = next(w for w in self.widths if self.widths.count(w) > 1)
            raise ConfigError(f"width {dup} is given more than once")
        if len(self.widths) < 2:
            raise ConfigError(f"a scaling fit needs at least 2 widths, got {len(self.widths)}: {list(self.widths)}")
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("dtype", "quotient_dtype"):
            if getattr(self, name) not in DTYPE_NAMES:
                raise ConfigError(f"{name} must be one of {', '.join(DTYPE_NAMES)}, got {getattr(self, name)!r}")
        try:
            self.parameterization.check(self.shape.n_s, self.widths)
        except ParameterizationError as exc:
            raise ConfigError(str(exc)) from None
        check_device(self.device)
        return self

    def to_dict(self) -> dict:
        """Flat and JSON-ready: the leaves in field order (tuples as lists), the parameterization last."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in flat_fields(self).items()}
        del out["parameterization"]
        return out | {"parameterization": self.parameterization.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        """Inverse of :meth:`to_dict` (e.g. the ``config`` of a results.json, today's or an older one's);
        unknown keys are ignored, missing ones keep their defaults."""
        known = set(flat_fields(cls()))
        values = {k: v for k, v in data.items() if k in known}
        for name in ("widths", "quotient_K"):
            if name in values:
                values[name] = tuple(values[name])
        if "parameterization" in values:
            values["parameterization"] = Parameterization.from_dict(values["parameterization"])
        return cls(**values)
