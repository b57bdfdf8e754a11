"""Coordinate checks of the mHC language model across width (microsoft/mup's ``get_coord_data``, for mHC).

For every width × seed the model is trained for a few optimizer steps on the same byte batches;
forward hooks on every module record the size of its output at each step ``t`` (``t = 1`` is the
model at init, ``t = k`` after ``k-1`` updates, as in mup):

* ``l1`` = mean |x| and ``l2`` = RMS = √mean(x²) over all coordinates of the output tensor.

The taps of :mod:`~mhc_mup.training.model` make the gate pre-activations (``pre_logits``, ``post_logits``,
``comb_logits``) and the residual streams (block outputs) modules like any other. Under a width
parameterization that transfers, each curve of size vs width is flat once training starts. The
fitted exponent ``size ≈ c·d^α`` of every module (and of each module kind, the geometric mean over
its modules) comes with a bootstrap-over-seeds and regression interval
(:func:`~mhc_mup.stats.fitting.fit_power_law`) and a reading: O(1), grows, decays or unclear.

:func:`run_coord_check` checks our :class:`~mhc_mup.training.model.MHCLM`; :func:`coord_check` any model, given
``{width: factory}`` and batches, with its width plan (:mod:`mhc_mup.training.plan`); both return the same table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from mhc_mup._device import resolve_device
from mhc_mup._io import write_bundle
from mhc_mup._nested import LEAF, FlatView
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, Parameterization
from mhc_mup.nn.modules import HeadCollapse, MHCSublayer, Tap
from mhc_mup.stats.fitting import FitSettings, fit_power_laws
from mhc_mup.stats.readings import classify
from mhc_mup.training.config import ModelShape, TrainingRecipe, check_at_least
from mhc_mup.training.data import Corpus, sample_batch
from mhc_mup.training.model import MHCLM, ModelConfig
from mhc_mup.training.plan import OPTIMIZERS, WidthPlan, WidthRule, width_plan
from mhc_mup.training.step import descend, train_step
from mhc_mup.training.width_rules import MODEL_PARAMS, WidthParameterization, make_optimizer

COORD_COLUMNS = ("width", "module", "t", "l1", "l2", "optimizer", "lr", "seed", "kind")
"""coord.csv: microsoft/mup's ``get_coord_data`` columns (width, module, t, l1, l2, optimizer, lr) plus seed
and kind."""
EXPONENT_COLUMNS = (
    "level",
    "name",
    "kind",
    "t",
    "metric",
    "exponent",
    "ci_low",
    "ci_high",
    "prefactor",
    "r2",
    "n_widths",
    "n_seeds",
    "reading",
)
METRICS = ("l1", "l2")

# Paul Tol's "muted" qualitative scheme: distinguishable under the common colour-vision deficiencies.
KIND_COLOURS: dict[str, str] = {
    "comb logits": "#882255",
    "pre logits": "#CC6677",
    "post logits": "#DDCC77",
    "residual stream": "#332288",
    "attention": "#88CCEE",
    "MLP": "#44AA99",
    "norm": "#999933",
    "embedding": "#117733",
    "output logits": "#AA4499",
    "other": "#BBBBBB",
}
KINDS = tuple(KIND_COLOURS)


def module_kind(name: str) -> str:
    """The kind of a recorded module name, for the figure's colours and the per-kind fits."""
    if name == "embed":
        return "embedding"
    if name.endswith("pre_logits") or name == "head.logits":
        return "pre logits"
    if name.endswith("post_logits"):
        return "post logits"
    if name.endswith("comb_logits"):
        return "comb logits"
    if re.fullmatch(r"blocks\.\d+(\.(attn|mlp))?", name):
        return "residual stream"
    if name.endswith(".norm") or name == "norm_f":
        return "norm"
    if ".attn.branch" in name:
        return "attention"
    if ".mlp.branch" in name:
        return "MLP"
    if name == "readout":
        return "output logits"
    return "other"


@dataclass(frozen=True)
class CoordCheckConfig(FlatView):
    """Widths × seeds of a coordinate check; the model's shape, its training recipe and base LR ``lr``; its
    parameterization (the mHC generator ``hc_param``, the body's rule ``model_param``, the base width
    ``base_d``, ``None``: the smallest width) or the plain-residual ``control``; the device; the fits'
    settings and the O(1) band ``±tolerance``."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    seeds: int = 3
    model: ModelShape = field(default_factory=ModelShape)
    recipe: TrainingRecipe = field(default_factory=lambda: TrainingRecipe(steps=5, batch_size=8, seq_len=64))
    lr: float = 1e-2
    hc_param: Parameterization = field(default_factory=lambda: PARAMETERIZATIONS["mup"], metadata=LEAF)
    model_param: str = "mup"
    base_d: int | None = None
    control: bool = False
    device: str = "cpu"
    fit: FitSettings = field(default_factory=FitSettings)
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if len(set(self.widths)) < 2:
            raise ConfigError(f"a coordinate check needs at least 2 distinct widths, got {list(self.widths)}")
        check_at_least(self, 1, ("seeds",))
        if self.model_param not in MODEL_PARAMS:
            raise ConfigError(f"model parameterization must be sp or mup, got {self.model_param!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ConfigError(f"tolerance must be a positive finite number, got {self.tolerance!r}")

    def validate(self) -> CoordCheckConfig:
        """Self, or :class:`~mhc_mup.errors.ConfigError` naming the first value that does not fit with another
        or with this machine (each part checked its own values when it was made)."""
        self.model.check_widths(self.widths)
        self.hc_param.check(self.model.mhc.n_s, self.widths)
        resolve_device(self.device)
        return self

    @property
    def width_param(self) -> WidthParameterization:
        return WidthParameterization(self.model_param, self.hc_param, self.base_d or min(self.widths))

    def model_config(self, width: int) -> ModelConfig:
        return self.model.model_config(width, hc=not self.control)

    def describe(self) -> str:
        shape = self.model
        model = "plain-residual control" if self.control else f"mHC (n_s={shape.mhc.n_s}, K={shape.mhc.K})"
        return (
            f"{model}, depth {shape.depth}, {shape.heads} heads; model {self.model_param}, mHC generator "
            f"{self.hc_param.name}; {self.recipe.optimizer} η={self.lr:g}; base width {self.base_d or min(self.widths)}"
        )


@dataclass
class CoordCheckResult:
    """``coords``: one row per width × seed × step × module (:data:`COORD_COLUMNS`);
    ``losses``: width, seed, t, loss; ``exponents``: the fits (:data:`EXPONENT_COLUMNS`)."""

    config: CoordCheckConfig | ModelCoordCheckConfig
    coords: pd.DataFrame
    losses: pd.DataFrame
    exponents: pd.DataFrame

    def exponent(self, name: str, t: int, metric: str = "l2", level: str = "kind") -> pd.Series:
        """The fit row of ``name`` (a kind or a module) at step ``t``."""
        e = self.exponents
        rows = e[(e.level == level) & (e.name == name) & (e.t == t) & (e.metric == metric)]
        if len(rows) != 1:
            raise KeyError(f"no {level} exponent for {name!r} at t={t} ({metric})")
        return rows.iloc[0]


def _stat_hook(store: list, name: str) -> Callable:
    """A forward hook appending ``(module name, mean|x|, RMS)`` of each output tensor to ``store``."""

    def record(key: str, x: torch.Tensor) -> None:
        x = x.detach().float()
        store.append((key, x.abs().mean(), x.square().mean().sqrt()))

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor):
            record(name, output)
        elif isinstance(output, (tuple, list)):
            for i, o in enumerate(output):
                if isinstance(o, torch.Tensor):
                    record(f"{name}:out[{i}]", o)

    return hook


def _batches(cfg: CoordCheckConfig, corpus: Corpus) -> list[tuple[torch.Tensor, torch.Tensor]]:
    r = cfg.recipe
    gen = torch.Generator().manual_seed(r.data_seed)
    return [sample_batch(corpus.train, r.batch_size, r.seq_len, gen) for _ in range(r.steps)]


def train_and_record(
    model: MHCLM, batches: list[tuple[torch.Tensor, torch.Tensor]], optimizer: str, lr: float, device: torch.device
) -> tuple[list[tuple[int, str, float, float]], list[float]]:
    """Train ``model`` one step per batch, recording every module's output size at each step.

    Returns rows ``(t, module, l1, l2)`` and the loss at each step. On CUDA the forward pass runs under
    bf16 autocast (the model keeps the mHC math in fp32).
    """
    model.to(device).train()
    opt = make_optimizer(model, optimizer, lr)
    return _train_recording(model, batches, lambda b: train_step(model, opt, b[0], b[1], device), model_output=False)


def _train_recording(
    model: nn.Module, batches: Sequence[Any], step: Callable[[Any], torch.Tensor], model_output: bool
) -> tuple[list[tuple[int, str, float, float]], list[float]]:
    """``step(batch)`` (one optimizer step, returning the detached loss) for each batch, recording every module's
    output size (and, with ``model_output``, the model's own) at each step: rows ``(t, module, l1, l2)`` and the
    loss at each step."""
    store: list = []
    handles = [m.register_forward_hook(_stat_hook(store, n)) for n, m in model.named_modules() if n]
    if model_output:
        handles.append(model.register_forward_hook(_output_hook(store)))
    rows, losses = [], []
    try:
        for t, batch in enumerate(batches, 1):
            store.clear()
            losses.append(step(batch))
            stats = torch.stack([torch.stack([a, b]) for _, a, b in store]).cpu().tolist()
            rows += [(t, key, l1, l2) for (key, _, _), (l1, l2) in zip(store, stats, strict=True)]
    finally:
        for h in handles:
            h.remove()
    return rows, torch.stack(losses).float().cpu().tolist()


def run_coord_check(
    cfg: CoordCheckConfig, corpus: Corpus, progress: Callable[[str, int, int], None] | None = None
) -> CoordCheckResult:
    """Train every width × seed for ``cfg.steps`` steps on the same batches and fit each module's size vs width."""
    cfg.validate()
    device = resolve_device(cfg.device)
    batches = _batches(cfg, corpus)
    param = cfg.width_param
    coord_rows, loss_rows = [], []
    total, done = cfg.seeds * len(cfg.widths), 0
    for seed in range(cfg.seeds):
        for width in cfg.widths:
            if progress:
                progress(f"width {width}, seed {seed}", done, total)
            model = MHCLM(cfg.model_config(width), param, seed=seed)
            rows, losses = train_and_record(model, batches, cfg.recipe.optimizer, cfg.lr, device)
            coord_rows += [
                (width, module, t, l1, l2, cfg.recipe.optimizer, cfg.lr, seed, module_kind(module))
                for t, module, l1, l2 in rows
            ]
            loss_rows += [(width, seed, t, loss) for t, loss in enumerate(losses, 1)]
            done += 1
    if progress:
        progress("fitting exponents", done, total)
    coords = pd.DataFrame(coord_rows, columns=list(COORD_COLUMNS))
    losses = pd.DataFrame(loss_rows, columns=["width", "seed", "t", "loss"])
    return CoordCheckResult(cfg, coords, losses, fit_exponents(coords, cfg))


def fit_exponents(coords: pd.DataFrame, cfg: CoordCheckConfig | ModelCoordCheckConfig) -> pd.DataFrame:
    """Fit ``size ≈ c·d^α`` per module and per kind (geometric mean over its modules), per step and metric.

    The samples at each width are the seeds; the statistic is their mean. A kind's value for one seed
    is ``exp(mean log size)`` over its modules, so its exponent is the mean of its modules' exponents.
    """
    widths = sorted(coords.width.unique())
    rows = []
    levels = {
        "module": coords,
        "kind": coords.assign(log_l1=np.log(coords.l1), log_l2=np.log(coords.l2))
        .groupby(["width", "kind", "t", "seed"], as_index=False)[["log_l1", "log_l2"]]
        .mean()
        .assign(l1=lambda f: np.exp(f.log_l1), l2=lambda f: np.exp(f.log_l2), module=lambda f: f.kind),
    }
    for level, frame in levels.items():
        for (name, t), group in frame.groupby(["module", "t"], sort=False):
            per_width = {w: g.sort_values("seed") for w, g in group.groupby("width")}
            if sorted(per_width) != widths:
                continue  # a module that exists at some widths only: no fit
            samples = {m: [per_width[w][m].to_numpy() for w in widths] for m in METRICS}
            fits = {
                m: fit_power_laws(widths, samples[m], {"mean": lambda a: a.mean(axis=-1)},
                                  n_boot=cfg.fit.n_boot, confidence=cfg.fit.confidence, seed=0)["mean"]
                for m in METRICS
            }  # fmt: skip
            kind = name if level == "kind" else module_kind(name)
            for m, fit in fits.items():
                rows.append(
                    (level, name, kind, int(t), m, fit.exponent, fit.ci_low, fit.ci_high, fit.prefactor, fit.r2,
                     fit.n_widths, len(per_width[widths[0]]), classify(fit, cfg.tolerance))
                )  # fmt: skip
    return pd.DataFrame(rows, columns=list(EXPONENT_COLUMNS))


# ── any model ───────────────────────────────────────────────────────────────────────────────────
OUTPUT = "output"
"""The module name under which :func:`coord_check` records the model's own output (its logits)."""


@dataclass(frozen=True)
class ModelCoordCheckConfig:
    """A coordinate check of your own model: its ``widths``, ``seeds`` initialisations at each, ``optimizer``
    (adam, adamw or sgd) at base learning rate ``lr`` with the width plan's multipliers under ``rule`` (the body's
    SP or µP and the mHC generator's preset), multipliers relative to ``base_width`` (``None``: the smallest);
    ``initialise``: the plan initialises every model by ``rule`` (``False``: the factories' own init); the
    device, the fits' settings and the O(1) band ``±tolerance``."""

    widths: tuple[int, ...]
    seeds: int = 1
    optimizer: str = "adam"
    lr: float = 1e-2
    rule: WidthRule = field(default_factory=WidthRule)
    base_width: int | None = None
    initialise: bool = True
    device: str = "cpu"
    fit: FitSettings = field(default_factory=FitSettings)
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        for w in self.widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError(f"width {w!r} must be a positive integer")
        if len(set(self.widths)) < 2:
            raise ConfigError(f"a coordinate check needs at least 2 distinct widths, got {list(self.widths)}")
        check_at_least(self, 1, ("seeds",))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")
        if self.base_width is not None and self.base_width not in self.widths:
            raise ConfigError(f"base width {self.base_width} is not one of the widths {list(self.widths)}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0):
            raise ConfigError(f"tolerance must be a positive finite number, got {self.tolerance!r}")

    @property
    def base(self) -> int:
        return self.base_width or min(self.widths)

    def describe(self) -> str:
        return (
            f"your model; body {self.rule.model}, mHC generator {self.rule.hc.name}; {self.optimizer} "
            f"η={self.lr:g}; base width {self.base}"
        )


def lm_cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The default loss: ``batch = (x, y)``, the mean cross-entropy of ``model(x)``'s logits ``(..., V)`` (or its
    ``.logits``, as transformers returns them) against ``y`` ``(...)``, in fp32."""
    x, y = batch
    out = model(x)
    logits = getattr(out, "logits", out)
    return F.cross_entropy(logits.float().flatten(0, -2), y.flatten())


def any_module_kinds(model: nn.Module) -> dict[str, str]:
    """``{module name: kind}`` for any model, by module type: the drop-in modules' gate taps and residual
    sublayers, embeddings, norms, attention and MLP-like classes by name; ``other`` for the rest."""
    modules = dict(model.named_modules())
    kinds = {}
    for name, module in modules.items():
        parent = modules.get(name.rpartition(".")[0])
        kinds[name] = _any_kind(name, module, parent)
    return {OUTPUT: "output logits", **{n: k for n, k in kinds.items() if n}}


def _any_kind(name: str, module: nn.Module, parent: nn.Module | None) -> str:
    cls = type(module).__name__
    if isinstance(module, Tap):
        return "pre logits" if isinstance(parent, HeadCollapse) else module_kind(name)
    if isinstance(module, MHCSublayer) or cls.endswith("DecoderLayer"):
        return "residual stream"
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, (nn.RMSNorm, nn.LayerNorm)) or cls.endswith(("RMSNorm", "LayerNorm")):
        return "norm"
    if "Attention" in cls:
        return "attention"
    if cls.endswith(("MLP", "FeedForward", "MoE")):
        return "MLP"
    return "other"


def _output_hook(store: list) -> Callable:
    """A forward hook on the model itself recording its output (or its ``.logits``) as :data:`OUTPUT`."""
    inner = _stat_hook(store, OUTPUT)

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        inner(module, inputs, getattr(output, "logits", output))

    return hook


def batch_to(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor, or a tuple/list/dict of them) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: batch_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(batch_to(v, device) for v in batch)
    return batch


def record_any(
    model: nn.Module, plan: WidthPlan, cfg: ModelCoordCheckConfig, batches: Sequence[Any], loss_fn: Callable
) -> tuple[list[tuple[int, str, float, float]], list[float]]:
    """Train ``model`` one step per batch with the plan's optimizer groups, recording every module's output
    size (and the model's output) at each step: rows ``(t, module, l1, l2)`` and the loss at each step."""
    device = resolve_device(cfg.device)
    model.to(device).train()
    opt = plan.make_optimizer(model, cfg.rule, cfg.optimizer, cfg.lr)
    return _train_recording(model, batches, lambda b: descend(opt, loss_fn(model, batch_to(b, device))), True)


def coord_check(
    models: Mapping[int, Callable[[], nn.Module]],
    batches: Sequence[Any],
    config: ModelCoordCheckConfig | None = None,
    *,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] = lm_cross_entropy,
    kinds: Mapping[str, str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CoordCheckResult:
    """The coordinate check of any model, as microsoft/mup's ``get_coord_data``: ``models`` maps each width to a
    factory of the model at that width; every width × seed trains one step per batch of ``batches`` (the same
    batches everywhere; ``loss_fn(model, batch)`` → scalar) and records each module's output size.

    The width plan of each width comes from the models themselves (:func:`~mhc_mup.training.plan.width_plan`
    against the base width, ``kinds`` its overrides); the plan initialises each model (seed ``s`` → the
    same draws at every width) and gives the optimizer's groups. Returns the table our command writes
    (mup's columns, plus seed and kind), the losses and the fitted exponents: plot it with
    :func:`plot_coords`, write it with :func:`write_coord_check`.
    """
    cfg = config or ModelCoordCheckConfig(widths=tuple(sorted(models)))
    if set(cfg.widths) != set(models):
        raise ConfigError(f"the config's widths {sorted(cfg.widths)} are not the models' {sorted(models)}")
    if len(batches) < 1:
        raise ConfigError("a coordinate check needs at least one batch")
    base, delta = base_and_delta(models, cfg.base)
    plans: dict[int, WidthPlan] = {}
    coord_rows, loss_rows = [], []
    total = cfg.seeds * len(cfg.widths)
    for i, (seed, width) in enumerate((s, w) for s in range(cfg.seeds) for w in sorted(cfg.widths)):
        if progress:
            progress(f"width {width}, seed {seed}", i, total)
        model = models[width]()
        if width not in plans:
            plans[width] = width_plan(model, base, delta, kinds=kinds)
        rows, losses = _one_model(model, plans[width], cfg, seed, batches, loss_fn)
        coord_rows += [(width, *row) for row in rows]
        loss_rows += [(width, seed, t, loss) for t, loss in enumerate(losses, 1)]
    if progress:
        progress("fitting exponents", total, total)
    coords = pd.DataFrame(coord_rows, columns=list(COORD_COLUMNS))
    losses = pd.DataFrame(loss_rows, columns=["width", "seed", "t", "loss"])
    sized = coords[(coords.l1 > 0) & (coords.l2 > 0)]  # an output that is exactly 0 (a masked path) has no size
    return CoordCheckResult(cfg, coords, losses, fit_exponents(sized, cfg))


def _one_model(
    model: nn.Module, plan: WidthPlan, cfg: ModelCoordCheckConfig, seed: int, batches: Sequence[Any], loss_fn: Callable
) -> tuple[list[tuple], list[float]]:
    """One width × seed: initialise by the plan (draws from ``seed``), train and record; the table's rows without
    their width (``module, t, l1, l2, optimizer, lr, seed, kind``) and the losses."""
    if cfg.initialise:
        plan.initialise(model, cfg.rule, torch.Generator().manual_seed(seed))
    rows, losses = record_any(model, plan, cfg, batches, loss_fn)
    kind_of = any_module_kinds(model)
    return [(m, t, l1, l2, cfg.optimizer, cfg.lr, seed, kind_of[m.partition(":")[0]]) for t, m, l1, l2 in rows], losses


def base_and_delta(models: Mapping[int, Callable[[], nn.Module]], base_width: int) -> tuple[nn.Module, nn.Module]:
    """The base model (its shapes set the multipliers) and one at another width (which dimensions grow), built on
    the meta device where the factory allows it (only shapes are read)."""
    other = next(w for w in sorted(models) if w != base_width)
    return _shapes_only(models[base_width]), _shapes_only(models[other])


def _shapes_only(factory: Callable[[], nn.Module]) -> nn.Module:
    try:
        with torch.device("meta"):
            return factory()
    except Exception:  # a factory that cannot build on meta (it fills tensors itself): a real one
        return factory()


# ── figure ──────────────────────────────────────────────────────────────────────────────────────
def panel_steps(steps: int, most: int = 6) -> list[int]:
    """The steps that get a panel: all of them up to ``most``, else ``most`` spread from 1 to ``steps``."""
    if steps <= most:
        return list(range(1, steps + 1))
    return sorted({round(float(x)) for x in np.linspace(1, steps, most)})


def plot_coords(result: CoordCheckResult, metric: str = "l2", title: str | None = None) -> Figure:
    """One log-log panel per step: ``metric`` (mean over seeds) vs width, one line per module coloured by
    its kind. Returns the matplotlib figure (Agg backend; nothing is shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    coords = result.coords
    mean = coords.groupby(["t", "module", "kind", "width"], as_index=False)[metric].mean()
    steps = panel_steps(int(coords.t.max()))
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps) + 2.2, 4.0), sharey=True, squeeze=False)
    order = {k: i for i, k in enumerate(KINDS)}
    for ax, t in zip(axes[0], steps, strict=True):
        at_t = mean[mean.t == t]
        kind_of = dict(zip(at_t.module, at_t.kind, strict=True))  # the table's kinds (any model's too)
        modules = sorted(kind_of, key=lambda n: (-order[kind_of[n]], n))  # key kinds on top
        for module in modules:
            kind = kind_of[module]
            line = at_t[at_t.module == module].sort_values("width")
            ax.plot(line.width, line[metric], color=KIND_COLOURS[kind], marker="o", ms=2.5,
                    lw=1.8 if kind == "comb logits" else 1.0, alpha=0.55 if kind == "other" else 0.9)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"t = {t}" + (" (init)" if t == 1 else ""), fontsize=10)
        ax.set_xlabel("width d")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel({"l2": "RMS of output", "l1": "mean |output|"}[metric])
    present = [k for k in KINDS if k in set(coords.kind)]
    handles = [Line2D([], [], color=KIND_COLOURS[k], marker="o", ms=3, lw=1.5, label=k) for k in present]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False, title="module kind")
    fig.suptitle(title or f"Coordinate check: {result.config.describe()}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / fig.get_figwidth(), 0.95))
    return fig


def figure_png(result: CoordCheckResult, metric: str = "l2") -> bytes:
    """:func:`plot_coords` rendered to PNG bytes (for an atomic write)."""
    from mhc_mup.reporting import png_bytes

    return png_bytes(plot_coords(result, metric), dpi=130)


# ── files ───────────────────────────────────────────────────────────────────────────────────────
def write_coord_check(result: CoordCheckResult, out_dir: str | Path) -> list[Path]:
    """Write ``coord.csv``, ``exponents.csv`` and ``coord.png`` into ``out_dir``; every file's contents are
    made before the first is written, and each is written atomically."""
    coords = result.coords[list(COORD_COLUMNS)].to_csv(index=False, float_format="%.9g", lineterminator="\n")
    exps = result.exponents[list(EXPONENT_COLUMNS)].to_csv(index=False, float_format="%.6g", lineterminator="\n")
    png = figure_png(result)
    return write_bundle(Path(out_dir), {"coord.csv": coords, "exponents.csv": exps, "coord.png": png})
