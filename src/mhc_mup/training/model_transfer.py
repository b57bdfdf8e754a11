"""Learning-rate transfer of any model: train ``{width: model factory}`` over a grid of base learning rates with its
width plan, find each width's optimal ``η*`` and fit its drift ``η* ≈ c·d^β``.

The same analysis as :func:`~mhc_mup.training.transfer.sweep.run_transfer` (a parabola in ``log2 η`` through each
seed's best loss and its neighbours, :func:`~mhc_mup.training.transfer.analysis.fit_parabola`; the geometric mean of
the seeds' ``η*`` per width; a power law with a bootstrap interval, read as transfers / drifts / unclear), on
batches you give, in this process. What it leaves to ``run_transfer``: resuming a stored sweep, process pools and
Ray (they need run specs that pickle and identify themselves; a model factory is a closure), warmup and schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mhc_mup._device import resolve_device
from mhc_mup.errors import ConfigError
from mhc_mup.stats.fitting import FitSettings, fit_power_law
from mhc_mup.stats.readings import classify, drift_verdict
from mhc_mup.training.config import check_at_least
from mhc_mup.training.coordcheck import base_and_delta, batch_to, lm_cross_entropy
from mhc_mup.training.plan import OPTIMIZERS, WidthPlan, WidthRule, width_plan
from mhc_mup.training.step import descend
from mhc_mup.training.transfer.analysis import fit_parabola

__all__ = ["ModelTransferConfig", "ModelTransferResult", "run_model_transfer"]

RUN_COLUMNS = ("width", "seed", "lr", "log2_lr", "final_loss", "diverged")
OPTIMA_COLUMNS = ("width", "seed", "log2_opt", "loss_opt", "note")


@dataclass(frozen=True)
class ModelTransferConfig:
    """A learning-rate sweep of your own model: ``widths``, base learning rates ``lrs`` (ascending; the plan's
    multipliers apply on top), ``seeds`` initialisations, ``optimizer`` (adam, adamw or sgd) under ``rule``,
    multipliers relative to ``base_width`` (``None``: the smallest); a run diverges when a training loss is not
    finite or exceeds ``divergence_factor`` × its first; the drift fit's settings and its O(1) band."""

    widths: tuple[int, ...]
    lrs: tuple[float, ...]
    seeds: int = 1
    optimizer: str = "adam"
    rule: WidthRule = field(default_factory=WidthRule)
    base_width: int | None = None
    divergence_factor: float = 3.0
    device: str = "cpu"
    fit: FitSettings = field(default_factory=FitSettings)
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if len(set(self.widths)) < 2:
            raise ConfigError(f"a transfer sweep needs at least 2 distinct widths, got {list(self.widths)}")
        if len(self.lrs) < 3 or list(self.lrs) != sorted(set(self.lrs)):
            raise ConfigError(f"lrs must be at least 3 distinct ascending learning rates, got {list(self.lrs)}")
        if not all(math.isfinite(lr) and lr > 0 for lr in self.lrs):
            raise ConfigError(f"learning rates must be positive finite numbers, got {list(self.lrs)}")
        check_at_least(self, 1, ("seeds",))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.base_width is not None and self.base_width not in self.widths:
            raise ConfigError(f"base width {self.base_width} is not one of the widths {list(self.widths)}")
        if not (math.isfinite(self.divergence_factor) and self.divergence_factor > 1):
            raise ConfigError(f"divergence_factor must be a finite number > 1, got {self.divergence_factor!r}")

    @property
    def base(self) -> int:
        return self.base_width or min(self.widths)


@dataclass
class ModelTransferResult:
    """``runs`` (:data:`RUN_COLUMNS`), each (width, seed)'s optimum ``optima`` (:data:`OPTIMA_COLUMNS`) and the
    drift fit ``drift``: exponent β, its interval, and the verdict (transfers, drifts or unclear)."""

    config: ModelTransferConfig
    runs: pd.DataFrame
    optima: pd.DataFrame
    drift: dict


def _train_once(
    model: nn.Module, plan: WidthPlan, cfg: ModelTransferConfig, lr: float, batches: Sequence[Any], loss_fn: Callable
) -> bool:
    """Train one step per batch at base learning rate ``lr``; ``False`` as soon as the run diverges."""
    opt = plan.make_optimizer(model, cfg.rule, cfg.optimizer, lr)
    first = None
    for batch in batches:
        value = float(descend(opt, loss_fn(model, batch)))
        first = value if first is None else first
        if not math.isfinite(value) or value > cfg.divergence_factor * first:
            return False
    return True


@torch.no_grad()
def _evaluate(model: nn.Module, batches: Sequence[Any], loss_fn: Callable) -> float:
    """The mean of ``loss_fn`` over ``batches``, in eval mode."""
    model.eval()
    try:
        return float(np.mean([float(loss_fn(model, batch)) for batch in batches]))
    finally:
        model.train()


def run_model_transfer(
    models: Mapping[int, Callable[[], nn.Module]],
    train_batches: Sequence[Any],
    val_batches: Sequence[Any],
    config: ModelTransferConfig,
    *,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] = lm_cross_entropy,
    kinds: Mapping[str, str] | None = None,
) -> ModelTransferResult:
    """Train every width × seed × learning rate of ``config`` on ``train_batches`` (one step each, the same
    batches for every run), measure the mean loss on ``val_batches``, and analyse the optimum's drift.

    Each model is built by its width's factory and initialised by the width plan under ``config.rule`` (seed
    ``s`` → the same draws at every learning rate); ``kinds`` overrides the plan's kinds as in
    :func:`~mhc_mup.training.plan.width_plan`.
    """
    if set(config.widths) != set(models):
        raise ConfigError(f"the config's widths {sorted(config.widths)} are not the models' {sorted(models)}")
    if not train_batches or not val_batches:
        raise ConfigError("a transfer sweep needs at least one training and one validation batch")
    device = resolve_device(config.device)
    train, val = [batch_to(b, device) for b in train_batches], [batch_to(b, device) for b in val_batches]
    base, other = base_and_delta(models, config.base)
    rows = []
    for width in sorted(config.widths):
        plan = None
        for seed in range(config.seeds):
            for lr in config.lrs:
                model = models[width]()
                plan = plan or width_plan(model, base, other, kinds=kinds)
                plan.initialise(model, config.rule, torch.Generator().manual_seed(seed))
                model.to(device).train()
                ok = _train_once(model, plan, config, lr, train, loss_fn)
                loss = _evaluate(model, val, loss_fn) if ok else math.nan
                diverged = not (ok and math.isfinite(loss))
                rows.append((width, seed, lr, math.log2(lr), math.nan if diverged else loss, diverged))
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    optima = _optima(runs)
    return ModelTransferResult(config, runs, optima, _drift(optima, config))


def _optima(runs: pd.DataFrame) -> pd.DataFrame:
    """Each (width, seed)'s ``log2 η*`` from :func:`fit_parabola` over its learning-rate curve."""
    rows = []
    for (width, seed), curve in runs.groupby(["width", "seed"]):
        curve = curve.sort_values("log2_lr")
        fit = fit_parabola(curve.log2_lr, curve.final_loss)
        rows.append((int(width), int(seed), fit.log2_opt, fit.loss_opt, fit.note))
    return pd.DataFrame(rows, columns=list(OPTIMA_COLUMNS))


def _drift(optima: pd.DataFrame, cfg: ModelTransferConfig) -> dict:
    """``η* ≈ c·d^β`` over the widths with an optimum (geometric mean over seeds), and its reading."""
    found = optima[np.isfinite(optima.log2_opt)]
    per_width = {int(w): np.exp2(g.log2_opt.to_numpy()) for w, g in found.groupby("width")}
    if len(per_width) < 2:
        return {"exponent": math.nan, "ci_low": math.nan, "ci_high": math.nan, "verdict": "unclear",
                "note": f"an optimum at {len(per_width)} width(s): no drift fit"}  # fmt: skip
    widths = sorted(per_width)
    fit = fit_power_law(widths, [per_width[w] for w in widths], lambda a: np.exp(np.log(a).mean(axis=-1)),
                        n_boot=cfg.fit.n_boot, confidence=cfg.fit.confidence, seed=0)  # fmt: skip
    reading = classify(fit, cfg.tolerance)
    verdict, _ = drift_verdict(reading)
    return {"exponent": fit.exponent, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "verdict": verdict,
            "note": fit.note}  # fmt: skip
