"""Configurations of a transfer sweep: one line of the comparison is a model rule (``sp`` | ``mup``) and an mHC
generator preset, or the plain-residual control (no mHC)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mhc_mup.errors import ParameterizationError, TransferError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, Parameterization, parse_spec
from mhc_mup.training.width_rules import MODEL_PARAMS, WidthParameterization

__all__ = ["BUILTIN_CONFIGS", "DEFAULT_CONFIGS", "Configuration", "parse_configuration"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")


@dataclass(frozen=True)
class Configuration:
    """One line of the comparison: model rule ``model`` (sp | mup), mHC generator ``hc_param``
    (``None``: the plain-residual control, which has no mHC parameter)."""

    name: str
    model: str
    hc_param: Parameterization | None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TransferError(f"configuration name {self.name!r} must be 1–40 letters, digits or _.+- (a folder)")
        if self.model not in MODEL_PARAMS:
            raise TransferError(f"configuration {self.name!r}: model must be sp or mup, got {self.model!r}")

    @property
    def hc(self) -> bool:
        return self.hc_param is not None

    def describe(self) -> str:
        body = "µP" if self.model == "mup" else "SP"
        if self.hc_param is None:
            return f"plain-residual control, {body} body"
        return f"mHC, {body} body, generator {self.hc_param.name}"

    def width_param(self, base_d: int) -> WidthParameterization:
        # the control has no mHC parameter: its preset is never used, any will do
        return WidthParameterization(self.model, self.hc_param or PARAMETERIZATIONS["mup"], base_d)

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "hc": self.hc_param.to_dict() if self.hc_param else None}

    @classmethod
    def from_dict(cls, data: Mapping) -> Configuration:
        hc = Parameterization.from_dict(data["hc"]) if data.get("hc") else None
        return cls(str(data["name"]), str(data["model"]), hc)


BUILTIN_CONFIGS: dict[str, Configuration] = {
    c.name: c
    for c in (
        Configuration("baseline", "mup", PARAMETERIZATIONS["baseline"]),
        Configuration("mup", "mup", PARAMETERIZATIONS["mup"]),
        Configuration("sp-baseline", "sp", PARAMETERIZATIONS["baseline"]),
        Configuration("control-sp", "sp", None),
        Configuration("control-mup", "mup", None),
    )
}
"""``baseline``: µP body with the seed's generator (σ_W = 0.02, s = 0.1, LR η); ``mup``: µP body with the
µP generator; ``sp-baseline``: everything standard; ``control-sp`` / ``control-mup``: the plain-residual
model under SP / µP."""
DEFAULT_CONFIGS = ("baseline", "mup", "control-sp", "control-mup")


def parse_configuration(text: str) -> Configuration:
    """A built-in name, or ``NAME=MODEL:PARAM`` with MODEL ``sp``/``mup`` and PARAM a generator preset, a
    rule set (``'slow: from=mup, lr_fn=1/(n_s*d)'``) or ``control`` (no mHC)."""
    text = text.strip()
    if "=" not in text:
        if text in BUILTIN_CONFIGS:
            return BUILTIN_CONFIGS[text]
        raise TransferError(
            f"unknown configuration {text!r}; built-ins: {', '.join(BUILTIN_CONFIGS)}, or NAME=MODEL:PARAM"
        )
    name, _, rest = text.partition("=")
    model, colon, param = rest.partition(":")
    if not colon or not param.strip():
        raise TransferError(f"configuration {text!r}: write NAME=MODEL:PARAM, e.g. mine=mup:C or ctl=sp:control")
    if param.strip() == "control":
        return Configuration(name.strip(), model.strip(), None)
    try:
        return Configuration(name.strip(), model.strip(), parse_spec(param))
    except ParameterizationError as exc:
        raise TransferError(f"configuration {name.strip()!r}: {exc}") from None
