"""What a transfer sweep sweeps: the base learning rate (``lr``, the default) or a multiplier on one part of the
model, on top of the width rule's own value, with the base learning rate held fixed (one for every width, or each
width's own, e.g. each width's optimum where a body's optimum drifts).

µTransfer tests every hyperparameter the same way: hold the rest at its optimum and sweep one across width.
Under a rule that is right for that part the optimal multiplier stays put; under a wrong one it moves like a
power of the width (the seed's generator LR η for ``fn`` against µP's η/d: the optimal ``lr_fn`` multiplier
should fall like 1/d).

=================  ==================================================================================
``lr``             the base learning rate η of every group (the grid holds learning rates)
``lr_fn``          LR multiplier of the mHC generators' ``fn`` (every sublayer's and the head collapse's)
``lr_scale``       LR multiplier of the generators' ``scale``
``lr_base``        LR multiplier of the generators' ``base``
``init_fn``        multiplier of the std of ``fn``'s initialisation
``lr_readout``     LR multiplier of the readout matrix
``output_mult``    multiplier of the readout's output (the logits)
``lr_embedding``   LR multiplier of the embedding
``lr_hidden``      LR multiplier of the hidden matrices (attention and MLP)
``lr_gain``        LR multiplier of the norms' gains
=================  ==================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mhc_mup.errors import TransferError
from mhc_mup.training.width_rules import parameter_kind

__all__ = ["HYPERPARAMETERS", "Hyper", "SweptValue"]


@dataclass(frozen=True)
class Hyper:
    """One sweepable hyperparameter: its ``name``, what it is (``what``), the parameter kind it acts on
    (:data:`~mhc_mup.training.width_rules.KINDS`; ``""``: every one) and how (``effect``: ``"lr"`` multiplies that
    kind's learning rate, ``"init"`` its initial values, ``"output"`` the readout's output)."""

    name: str
    what: str
    kind: str
    effect: str

    @property
    def needs_mhc(self) -> bool:
        return self.kind.startswith("hc_")


HYPERPARAMETERS: dict[str, Hyper] = {
    h.name: h
    for h in (
        Hyper("lr", "base learning rate η", "", "lr"),
        Hyper("lr_fn", "LR multiplier of the mHC generator's fn", "hc_fn", "lr"),
        Hyper("lr_scale", "LR multiplier of the mHC generator's scale", "hc_scale", "lr"),
        Hyper("lr_base", "LR multiplier of the mHC generator's base", "hc_base", "lr"),
        Hyper("init_fn", "init std multiplier of the mHC generator's fn", "hc_fn", "init"),
        Hyper("lr_readout", "LR multiplier of the readout", "readout", "lr"),
        Hyper("output_mult", "output multiplier of the readout (logits)", "readout", "output"),
        Hyper("lr_embedding", "LR multiplier of the embedding", "embedding", "lr"),
        Hyper("lr_hidden", "LR multiplier of the hidden matrices", "hidden", "lr"),
        Hyper("lr_gain", "LR multiplier of the norms' gains", "gain", "lr"),
    )
}


@dataclass(frozen=True)
class SweptValue:
    """The swept hyperparameter ``hyper`` (:data:`HYPERPARAMETERS`) and, for a multiplier, the base learning
    rate every run of the sweep trains with: ``base_lr`` at every width, or ``base_lr_by_width`` ``((d, η), ...)``
    each width's own (sorted by width; a list of pairs, as JSON gives it back, is read as one). The grid's values
    are learning rates for ``lr`` and multiples of the width rule's own value otherwise (1 is the rule)."""

    hyper: str = "lr"
    base_lr: float | None = None
    base_lr_by_width: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.hyper not in HYPERPARAMETERS:
            raise TransferError(f"unknown hyperparameter {self.hyper!r}; sweep one of {', '.join(HYPERPARAMETERS)}")
        by_width = tuple(sorted((int(w), float(x)) for w, x in self.base_lr_by_width))
        object.__setattr__(self, "base_lr_by_width", by_width)  # frozen: normalised once, here
        given = self.base_lr is not None or bool(by_width)
        if self.hyper == "lr" and given:
            raise TransferError("a base learning rate is for sweeps of a multiplier; the lr sweep sweeps it")
        if self.hyper != "lr" and not given:
            raise TransferError(
                f"sweeping {self.hyper} needs the base learning rate it holds fixed: give --base-lr LR or "
                "--base-from DIR (an earlier lr sweep)"
            )
        if self.base_lr is not None and by_width:
            raise TransferError("give one base learning rate, or one per width, not both")
        for lr in (self.base_lr,) if self.base_lr is not None else (x for _, x in by_width):
            if not (math.isfinite(lr) and lr > 0):
                raise TransferError(f"base learning rate must be a positive finite number, got {lr!r}")
        widths = [w for w, _ in by_width]
        if twice := sorted({w for w in widths if widths.count(w) > 1}):
            raise TransferError(f"one base learning rate per width: width {twice[0]} is given twice")

    @property
    def spec(self) -> Hyper:
        return HYPERPARAMETERS[self.hyper]

    @property
    def symbol(self) -> str:
        """The optimum's name in sentences: ``η*`` or ``lr_fn*``."""
        return "η*" if self.hyper == "lr" else f"{self.hyper}*"

    @property
    def noun(self) -> str:
        """What is swept, in sentences and headings: ``learning rate`` or the part's multiplier."""
        return "learning rate" if self.hyper == "lr" else self.spec.what

    @property
    def axis(self) -> str:
        """The figure's x-axis label."""
        return "log2 learning rate η" if self.hyper == "lr" else f"log2 {self.spec.what} (1 = the rule)"

    def run_lr(self, value: float, width: int) -> float:
        """The base learning rate of the run at grid value ``value`` and width ``width``."""
        if self.hyper == "lr":
            return value
        if self.base_lr is not None:
            return float(self.base_lr)
        by_width = dict(self.base_lr_by_width)
        if width not in by_width:
            raise TransferError(f"no base learning rate for width {width}: given for {', '.join(map(str, by_width))}")
        return by_width[width]

    def apply(self, model: nn.Module, opt: torch.optim.Optimizer, value: float) -> None:
        """Put multiplier ``value`` in place on a freshly built ``model`` and its ``opt`` (before a scheduler
        records the groups' initial learning rates); nothing for the lr sweep."""
        h = self.spec
        if self.hyper == "lr":
            return
        if h.effect == "lr":
            for group in opt.param_groups:
                if group.get("kind") == h.kind:
                    group["lr"] *= value
        elif h.effect == "init":
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if parameter_kind(name) == h.kind:
                        p.mul_(value)
        else:
            model.readout.register_forward_hook(lambda _m, _i, out: out * value)  # type: ignore[union-attr]
