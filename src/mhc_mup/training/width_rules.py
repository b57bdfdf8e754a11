"""Whole-model width parameterization: standard (SP) or µP init and learning rates for every
parameter of :class:`~mhc_mup.training.model.MHCLM`, and the optimizer's parameter groups.

The rules follow Tensor Programs V (Yang et al. 2022, Table 3), written relative to a base width
``base_d`` so that SP and µP coincide there (as microsoft/mup's base shapes do). With the width
multiplier ``m = d / base_d`` and ``f`` a matrix's fan-in:

=============  ================  =====================  ========  ========  ========  ========
parameter      init SP           init µP                Adam SP   Adam µP   SGD SP    SGD µP
=============  ================  =====================  ========  ========  ========  ========
embedding      N(0, 1)           N(0, 1)                η         η         η         η·m
hidden         N(0, 1/f)         N(0, 1/f)              η         η/m       η         η
readout        N(0, 1/f)         N(0, 1/(f·m))          η         η/m       η         η/m
norm gain      1                 1                      η         η         η         η·m
=============  ================  =====================  ========  ========  ========  ========

Attention logits are ``q·k · 1/√d_head`` under SP and ``q·k · √d_head₀ / d_head`` under µP
(``d_head₀`` the base model's head width: 1/d_head scaling, equal to SP at the base width).
The mHC generator of every sublayer (``fn``, ``scale``, ``base``) and of the head collapse follow a
:class:`~mhc_mup.mhc.parameterizations.Parameterization` preset whatever the model rule is; the head
collapse, a pre-only gate, takes the preset's pre-gate init.

The multipliers are never stored on tensors (microsoft/mup's ``infshape`` attributes are lost by
``copy.deepcopy`` of some wrappers, pickling through FSDP and ``state_dict``): they are computed
from the model's config and each parameter's name, and the model puts both in its ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from mhc_mup.errors import WidthParamError
from mhc_mup.mhc.parameterizations import OPTIMIZERS, PARAMETERIZATIONS, Parameterization

MODEL_PARAMS = ("sp", "mup")
KINDS = ("embedding", "hidden", "readout", "gain", "hc_fn", "hc_scale", "hc_base")
"""Parameter kinds, in the order the optimizer groups are built."""
HC_KINDS = ("hc_fn", "hc_scale", "hc_base")
GAIN_OWNERS = ("norm", "norm_f", "q_norm", "k_norm")
"""The modules whose ``weight`` is an RMSNorm gain: the sublayers' and the final norm, and attention's q/k norms."""


def parameter_kind(name: str) -> str:
    """The kind of the parameter called ``name`` in :class:`~mhc_mup.training.model.MHCLM`.

    ``embed.weight`` → embedding; ``readout.weight`` → readout; ``*.norm.weight``, ``norm_f.weight`` and
    attention's ``*.q_norm.weight`` / ``*.k_norm.weight`` → gain; ``*.hc.fn`` / ``head.fn`` → hc_fn (and
    ``scale``, ``base``); every other matrix (attention q, k, v, o and the MLP) → hidden.
    """
    leaf = name.rsplit(".", 1)[-1]
    owner = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
    if name == "embed.weight":
        return "embedding"
    if name == "readout.weight":
        return "readout"
    if owner in ("hc", "head") and leaf in ("fn", "scale", "base"):
        return f"hc_{leaf}"
    if owner in GAIN_OWNERS and leaf == "weight":
        return "gain"
    if leaf == "weight":
        return "hidden"
    raise WidthParamError(f"parameter {name!r} has no known kind")


def body_init_std(model: str, kind: str, fan_in: int, m: float) -> float:
    """Std of the normal init of a matrix of ``kind`` under ``model`` (sp or mup), fan-in ``fan_in`` and width
    multiplier ``m``: embedding 1, hidden ``1/√f``, readout ``1/√f`` (SP) or ``1/√(f·m)`` (µP)."""
    if kind == "embedding":
        return 1.0
    if kind == "hidden":
        return 1.0 / math.sqrt(fan_in)
    if kind == "readout":
        return 1.0 / math.sqrt(fan_in * (m if model == "mup" else 1.0))
    raise WidthParamError(f"no matrix init for parameter kind {kind!r}")


def body_lr_multiplier(model: str, kind: str, optimizer: str, m: float) -> float:
    """The learning-rate multiplier of a non-mHC parameter of ``kind`` (embedding, hidden, readout, gain) under
    ``model`` (sp or mup), ``optimizer`` (adam or sgd) and width multiplier ``m`` (the module's table)."""
    if model == "sp":
        return 1.0
    if optimizer == "adam":
        return {"embedding": 1.0, "hidden": 1 / m, "readout": 1 / m, "gain": 1.0}[kind]
    return {"embedding": m, "hidden": 1.0, "readout": 1 / m, "gain": m}[kind]


@dataclass(frozen=True)
class WidthParameterization:
    """How every parameter is initialised and how fast it learns, as a function of the width ``d``.

    ``model``: ``"sp"`` or ``"mup"`` for embedding, hidden, readout, gains and attention;
    ``hc``: the mHC generator's preset; ``base_d``: the width at which SP and µP coincide.
    """

    model: str = "mup"
    hc: Parameterization = field(default_factory=lambda: PARAMETERIZATIONS["mup"])
    base_d: int = 32

    def __post_init__(self) -> None:
        if self.model not in MODEL_PARAMS:
            raise WidthParamError(f"model parameterization must be sp or mup, got {self.model!r}")
        if isinstance(self.base_d, bool) or not isinstance(self.base_d, int) or self.base_d < 1:
            raise WidthParamError(f"base width must be a positive integer, got {self.base_d!r}")

    @property
    def name(self) -> str:
        """``mup+baseline``: the model rule and the mHC preset."""
        return f"{self.model}+{self.hc.name}"

    def width_mult(self, d: int) -> float:
        """``m = d / base_d``."""
        return d / self.base_d

    def init_std(self, kind: str, fan_in: int, d: int) -> float:
        """Std of the normal init of a matrix of ``kind`` (embedding, hidden or readout) with fan-in ``fan_in``."""
        return body_init_std(self.model, kind, fan_in, self.width_mult(d))

    def attention_scale(self, d_head: int, base_d_head: int) -> float:
        """Multiplier of ``q·k``: ``1/√d_head`` (SP) or ``√base_d_head / d_head`` (µP)."""
        if self.model == "sp":
            return 1.0 / math.sqrt(d_head)
        return math.sqrt(base_d_head) / d_head

    def lr_multiplier(self, kind: str, optimizer: str, n_s: int, d: int) -> float:
        """The learning rate of a parameter of ``kind`` is ``η ·`` this (see the module's table)."""
        if optimizer not in OPTIMIZERS:
            raise WidthParamError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if kind in HC_KINDS:
            return self.hc.lr_multipliers(optimizer, n_s, d)[kind.removeprefix("hc_")]
        if kind not in KINDS:
            raise WidthParamError(f"unknown parameter kind {kind!r}")
        return body_lr_multiplier(self.model, kind, optimizer, self.width_mult(d))

    def to_dict(self) -> dict:
        return {"model": self.model, "hc": self.hc.to_dict(), "base_d": self.base_d}

    @classmethod
    def from_dict(cls, data: Mapping) -> WidthParameterization:
        return cls(str(data["model"]), Parameterization.from_dict(data["hc"]), int(data["base_d"]))


def rule_table(model: str) -> list[dict[str, str]]:
    """The init and LR rules of ``model`` (sp or mup) per non-mHC parameter kind, as formulas."""
    if model == "sp":
        rows = [
            ("embedding", "N(0, 1)", "η", "η"),
            ("hidden", "N(0, 1/f)", "η", "η"),
            ("readout", "N(0, 1/f)", "η", "η"),
            ("gain", "1", "η", "η"),
            ("attention q·k", "× 1/√d_head", "", ""),
        ]
    elif model == "mup":
        rows = [
            ("embedding", "N(0, 1)", "η", "η·m"),
            ("hidden", "N(0, 1/f)", "η/m", "η"),
            ("readout", "N(0, 1/(f·m))", "η/m", "η/m"),
            ("gain", "1", "η", "η·m"),
            ("attention q·k", "× √d_head₀/d_head", "", ""),
        ]
    else:
        raise WidthParamError(f"model parameterization must be sp or mup, got {model!r}")
    return [{"parameter": p, "init": i, "lr_adam": a, "lr_sgd": s} for p, i, a, s in rows]


def _model_param(model: nn.Module) -> tuple[WidthParameterization, int, int]:
    try:
        return model.param, model.config.n_s, model.config.d  # type: ignore[union-attr,return-value]
    except AttributeError:
        raise WidthParamError("param groups need an MHCLM (a model with .param and .config)") from None


def lr_multipliers(model: nn.Module, optimizer: str) -> dict[str, float]:
    """``{parameter name: LR multiplier}`` for every parameter of ``model`` under ``optimizer``.

    Computed from ``model.param``, ``model.config`` and the names alone, so it is the same after
    ``copy.deepcopy``, pickling or a ``state_dict`` round trip.
    """
    param, n_s, d = _model_param(model)
    return {name: param.lr_multiplier(parameter_kind(name), optimizer, n_s, d) for name, _ in model.named_parameters()}


def param_groups(model: nn.Module, optimizer: str, lr: float) -> list[dict]:
    """The optimizer's parameter groups: one per parameter kind present, each with ``lr = η·m``.

    Every group also carries ``kind`` and ``lr_mult`` (plain numbers and strings, so they survive an
    optimizer ``state_dict`` round trip). Use as ``torch.optim.Adam(param_groups(model, "adam", η))``.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise WidthParamError(f"learning rate must be a positive finite number, got {lr!r}")
    param, n_s, d = _model_param(model)
    by_kind: dict[str, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        by_kind.setdefault(parameter_kind(name), []).append(p)
    groups = []
    for kind in KINDS:
        if kind in by_kind:
            m = param.lr_multiplier(kind, optimizer, n_s, d)
            groups.append({"params": by_kind[kind], "lr": lr * m, "lr_mult": m, "kind": kind})
    return groups


def make_optimizer(model: nn.Module, optimizer: str, lr: float, **kwargs) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or ``SGD`` over :func:`param_groups` (``kwargs`` go to the optimizer)."""
    groups = param_groups(model, optimizer, lr)
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, **kwargs)
    return torch.optim.SGD(groups, lr=lr, **kwargs)
