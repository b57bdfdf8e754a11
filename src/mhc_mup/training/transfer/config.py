"""A transfer sweep's configuration: the grid, the model, each run's recipe, its numerics and the analysis, as
nested frozen dataclasses; and a run's frozen spec (:class:`RunSpec`), which goes to the workers.

What identifies a sweep's folder (:meth:`RunSettings.identity`) is every leaf of :class:`RunSettings`, derived
from the dataclasses: a run's result depends on exactly these besides its grid point and configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mhc_mup._device import resolve_device
from mhc_mup._nested import FlatView, flat_fields
from mhc_mup.errors import ConfigError, ParameterizationError, TransferError
from mhc_mup.kernels import fused
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.config import ModelShape, TrainingRecipe, check_at_least
from mhc_mup.training.data import DEFAULT_MAX_BYTES, Corpus, cached_corpus
from mhc_mup.training.model import ATTENTION_CHOICES, STREAM_DTYPES, stream_probe
from mhc_mup.training.step import precision_of
from mhc_mup.training.transfer.configurations import BUILTIN_CONFIGS, DEFAULT_CONFIGS, Configuration
from mhc_mup.training.transfer.hyper import SweptValue

__all__ = [
    "CUDA_GRAPH_CHOICES", "IMPLICIT_SETTINGS", "LOSSES", "Numerics", "RunKey", "RunRecipe", "RunSettings", "RunSpec",
    "SweepGrid", "TransferAnalysis", "TransferConfig", "distinct_values", "grid_seeds", "grid_values", "log2_key",
    "log2_text", "lr_grid",
]  # fmt: skip

CUDA_GRAPH_CHOICES = ("auto", "on", "off")
IMPLICIT_SETTINGS = {"hc_eps": MHCShape().hc_eps, "norm_eps": MHCShape().norm_eps, "hyper": "lr", "base_lr": None,
                     "base_lr_by_width": (), "torch_compile": False, "attention": "auto",
                     "corpus_bytes": DEFAULT_MAX_BYTES, "qk_norm": False}
"""Settings the first sweep format did not store because they could not change, and later ones off by default: a
folder stores them only when they differ from these values, and a folder without them was made with these values
(an lr sweep, no torch.compile, PyTorch's own choice of attention kernel, 16 MiB a corpus split, no q/k norm)."""


def log2_key(lr: float) -> str:
    """The learning rate's place in file names: ``log2 η`` to 4 decimals, e.g. ``-10.0000``."""
    return f"{math.log2(lr):+.4f}"


def log2_text(values: Iterable[float]) -> str:
    """Swept values as powers of two for a note, ``2^-3.00, 2^5.00``."""
    return ", ".join(f"2^{math.log2(v):.2f}" for v in values)


def distinct_values(*groups: Iterable[float]) -> tuple[float, ...]:
    """The values of ``groups``, one per :func:`log2_key` (the first one met, so an earlier group's float wins
    over a later one's that rounds to the same key), increasing."""
    first: dict[str, float] = {}
    for group in groups:
        for v in group:
            first.setdefault(log2_key(float(v)), float(v))
    return tuple(sorted(first.values()))


def lr_grid(lr_min: float, lr_max: float, points: int) -> tuple[float, ...]:
    """``points`` learning rates evenly spaced in ``log2 η`` from ``lr_min`` to ``lr_max`` (inclusive)."""
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise TransferError(f"need 0 < --lr-min < --lr-max, got {lr_min!r} and {lr_max!r}")
    if points < 3:
        raise TransferError(f"a parabola fit needs at least 3 learning rates, got --lr-points {points}")
    return tuple(float(2.0**x) for x in np.linspace(math.log2(lr_min), math.log2(lr_max), points))


@dataclass(frozen=True)
class SweepGrid:
    """Configurations × widths × seeds × the swept values ``lrs`` (increasing, distinct in ``log2`` to 1e-4):
    base learning rates in an lr sweep, multipliers of the rule's value otherwise (:class:`SweptValue`)."""

    configs: tuple[Configuration, ...] = tuple(BUILTIN_CONFIGS[n] for n in DEFAULT_CONFIGS)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    lrs: tuple[float, ...] = lr_grid(2.0**-12, 2.0**-4, 9)
    seeds: int = 2

    def __post_init__(self) -> None:
        self._check_configs()
        if len(set(self.widths)) != len(self.widths) or len(self.widths) < 1:
            raise TransferError(f"widths must be distinct, got {list(self.widths)}")
        self._check_lrs()
        check_at_least(self, 1, ("seeds",))

    def _check_configs(self) -> None:
        if not self.configs:
            raise TransferError("no configuration to sweep")
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise TransferError(f"configuration names must differ, got {names}")

    def _check_lrs(self) -> None:
        for lr in self.lrs:
            if not (math.isfinite(lr) and lr > 0):
                raise TransferError(f"learning rate {lr!r} must be a positive finite number")
        keys = [log2_key(lr) for lr in self.lrs]
        if len(set(keys)) != len(keys):
            raise TransferError(f"learning rates must differ (by more than 1e-4 in log2), got {list(self.lrs)}")
        if list(self.lrs) != sorted(self.lrs):
            raise TransferError("learning rates must be given in increasing order")

    def to_dict(self) -> dict:
        """The grid as ``sweep.json`` stores it."""
        return {"configs": [c.to_dict() for c in self.configs], "widths": list(self.widths), "seeds": self.seeds,
                "lrs": list(self.lrs)}  # fmt: skip


def grid_values(grids: Iterable[SweepGrid]) -> dict[tuple[str, int], tuple[float, ...]]:
    """``(configuration name, width) → values``: each configuration × width's swept values planned by ``grids``
    (the grids swept into one folder, earliest first), the union over the grids that hold both, increasing
    (:func:`distinct_values`). A folder grown adaptively plans different values at different configurations and
    widths; these are what each of them must have run before its curves are complete."""
    planned: dict[tuple[str, int], tuple[float, ...]] = {}
    for g in grids:
        for c in g.configs:
            for w in g.widths:
                planned[(c.name, w)] = distinct_values(planned.get((c.name, w), ()), g.lrs)
    return planned


def grid_seeds(grids: Iterable[SweepGrid]) -> dict[tuple[str, int], int]:
    """``(configuration name, width) → seeds``: how many seeds ``grids`` (the grids swept into one folder) planned
    for each configuration × width, the most any of them did."""
    planned: dict[tuple[str, int], int] = {}
    for g in grids:
        for c in g.configs:
            for w in g.widths:
                planned[(c.name, w)] = max(planned.get((c.name, w), 0), g.seeds)
    return planned


@dataclass(frozen=True)
class RunRecipe:
    """What each run does: the training recipe on ``corpus`` (``None``: the Python standard library's ``.py``
    sources; read in path order until its training split holds ``corpus_bytes`` bytes, validation from the same
    files' range), with a linear warmup over the first ``warmup`` fraction of the steps and a cosine decay to 0.1×
    after it; the validation loss over ``eval_batches`` fixed batches every ``eval_every`` steps (0: only at the
    end) and at the end; a run diverged when a loss is not finite or above ``divergence_factor`` × its first-step
    loss."""

    train: TrainingRecipe = field(default_factory=TrainingRecipe)
    warmup: float = 0.1
    eval_every: int = 50
    eval_batches: int = 8
    divergence_factor: float = 2.0
    corpus: str | None = None
    corpus_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        check_at_least(self, 0, ("eval_every",))
        check_at_least(self, 1, ("eval_batches", "corpus_bytes"))
        if not 0 <= self.warmup < 1:
            raise TransferError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        if not (math.isfinite(self.divergence_factor) and self.divergence_factor > 1):
            raise TransferError(f"divergence factor must be a finite number > 1, got {self.divergence_factor!r}")

    def read_corpus(self) -> Corpus:
        """The corpus the runs train on, as this machine reads it (loaded once per process)."""
        return cached_corpus(self.corpus, self.corpus_bytes)


@dataclass(frozen=True)
class Numerics:
    """How a run computes its function: the residual streams' storage (``"bfloat16"`` stores them as V4 does),
    the mHC ops (fused Triton kernels on CUDA with ``"auto"``, ``"reference"`` or ``"triton"``), whether each
    training step is one CUDA graph replay (``"auto"``: on CUDA; ``"on"``; ``"off"``: eager), whether the
    captured step runs ``torch.compile(model)`` (``torch_compile``: captured CUDA steps only) and which kernels
    may run the attention (``attention``: ``"auto"``, PyTorch's choice, or ``"no-cudnn"``, every one but cuDNN's:
    :func:`~mhc_mup.training.model.attention_backends`). A sweep's settings record ``cuda_graphs`` resolved to
    ``"on"`` or ``"off"``: a captured step computes the same function with a capturable optimizer, equal to the
    eager one to round-off, not bit for bit; a compiled one likewise, and one with other attention kernels."""

    stream_dtype: str = "float32"
    kernels: str = "auto"
    cuda_graphs: str = "auto"
    torch_compile: bool = False
    attention: str = "auto"

    def __post_init__(self) -> None:
        if self.cuda_graphs not in CUDA_GRAPH_CHOICES:
            choices = ", ".join(CUDA_GRAPH_CHOICES)
            raise TransferError(f"cuda graphs must be one of {choices}, got {self.cuda_graphs!r}")
        if self.stream_dtype not in STREAM_DTYPES:
            raise TransferError(f"stream dtype must be one of {', '.join(STREAM_DTYPES)}, got {self.stream_dtype!r}")
        if self.attention not in ATTENTION_CHOICES:
            raise TransferError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}, got {self.attention!r}")
        try:
            fused.check_kernel_choice(self.kernels)
        except ValueError as exc:
            raise TransferError(str(exc)) from None


LOSSES = {
    "val": ("final_val_loss", "final validation loss"),
    "train": ("final_train_loss", "training loss of the last 10% of steps"),
}
"""What a run's loss is read from, ``name → (its column in transfer.csv, its words)``: the validation loss over
the fixed validation batches at the end, or the mean training loss of the last tenth of the steps (on data read
at most once, bytes the run has not seen before, and many more of them)."""


@dataclass(frozen=True)
class TransferAnalysis:
    """The parabola through the argmin and ``fit_halfwidth`` neighbours on each side; the joint fit's window,
    the argmin and up to ``joint_halfwidth`` points on each side (:mod:`~mhc_mup.training.transfer.joint`); the
    drift fits' settings; **transfers** when the drift exponent's interval lies in ``±tolerance``; ``loss``: which
    of :data:`LOSSES` every fit reads; ``degrade_nats``: how far above its best a curve's loss must rise for
    training to count as degraded (the *degraded* edge, :mod:`~mhc_mup.training.transfer.edges`); ``partial``:
    read a partly run width over the values every one of its seeds has run (by default a width is read once every
    seed has run every value; a grid being extended leaves its widths out until then)."""

    fit_halfwidth: int = 1
    tolerance: float = 0.1
    fit: FitSettings = field(default_factory=FitSettings)
    joint_halfwidth: int = 2
    loss: str = "val"
    degrade_nats: float = 0.1
    partial: bool = False

    def __post_init__(self) -> None:
        check_at_least(self, 1, ("fit_halfwidth", "joint_halfwidth"))
        for name in ("tolerance", "degrade_nats"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise TransferError(f"{name} must be a positive finite number, got {value!r}")
        if self.loss not in LOSSES:
            raise TransferError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")

    @property
    def loss_column(self) -> str:
        """The column of ``transfer.csv`` the fits read."""
        return LOSSES[self.loss][0]

    @property
    def loss_words(self) -> str:
        """What the fits read, in words ("final validation loss", ...)."""
        return LOSSES[self.loss][1]


@dataclass(frozen=True)
class RunKey:
    """One grid point: ``lr`` is the swept value (a learning rate when ``hyper`` is ``lr``, else a multiplier)."""

    config: str
    width: int
    seed: int
    lr: float
    hyper: str = "lr"

    def path(self, out: Path) -> Path:
        """Where this run's record is written: ``out/runs/CONFIG/dWIDTH/seedSEED/log2HYPER±X.json.gz`` (JSON,
        gzip-compressed: a run's per-step losses make up most of it, and compress 2.4×)."""
        folder = Path(out) / "runs" / self.config / f"d{self.width}" / f"seed{self.seed}"
        return folder / f"log2{self.hyper}{log2_key(self.lr)}.json.gz"

    def record_paths(self, out: Path) -> tuple[Path, Path]:
        """The names this run's record may have: :meth:`path`, and the plain ``.json`` records were written as
        before."""
        path = self.path(out)
        return path, path.with_suffix("")

    def stored_path(self, out: Path) -> Path | None:
        """This run's stored record (one of :meth:`record_paths`), ``None`` where there is none."""
        return next((p for p in self.record_paths(out) if p.exists()), None)

    def label(self) -> str:
        what = "η" if self.hyper == "lr" else self.hyper
        return f"{self.config} d={self.width} seed {self.seed} {what}=2^{math.log2(self.lr):.2f}"


@dataclass(frozen=True)
class RunSettings:
    """What a run's result depends on besides its grid point and configuration: compared on resume, stored
    with every run. ``base_d`` is the width at which µP and SP coincide; ``precision`` follows the device;
    ``sweep`` what the grid's values are; ``corpus_sha256`` identifies the data (the corpus path alone does not:
    the default corpus is this machine's Python library)."""

    recipe: RunRecipe
    model: ModelShape
    base_d: int
    precision: str
    numerics: Numerics
    sweep: SweptValue = field(default_factory=SweptValue)
    corpus_sha256: str = ""

    def identity(self) -> dict:
        """Every leaf, ``{name: value}``, less the :data:`IMPLICIT_SETTINGS` at their implicit values; tuples as
        lists, as JSON stores them, so that a stored folder's settings compare equal to these."""
        return {k: _as_json(v) for k, v in flat_fields(self).items()
                if k not in IMPLICIT_SETTINGS or v != IMPLICIT_SETTINGS[k]}  # fmt: skip


def _as_json(value: object) -> object:
    """``value`` with its tuples as lists, at any depth."""
    return [_as_json(v) for v in value] if isinstance(value, tuple | list) else value


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs: its grid point (``lr``: the swept value), its configuration and the sweep's run
    settings. Frozen and picklable: it is what the process pool and Ray send to a worker."""

    configuration: Configuration
    width: int
    seed: int
    lr: float
    settings: RunSettings

    @property
    def key(self) -> RunKey:
        return RunKey(self.configuration.name, self.width, self.seed, self.lr, self.settings.sweep.hyper)


@dataclass(frozen=True)
class TransferConfig(FlatView):
    """The grid, the model's shape, what each run does (:class:`RunRecipe`) and computes with
    (:class:`Numerics`), the analysis, the base width (``None``: the smallest width) and the device
    (``"auto"``: CUDA when present), and what is swept (``sweep``: the base LR, or a multiplier on top of
    ``base_lr``). Each run trains with base LR ``η``; each parameter group steps with ``η`` × its multiplier
    (:mod:`~mhc_mup.training.width_rules`). ``plan_only``: the sweep is only priced (a dry run), so a CUDA device
    on a machine without CUDA is accepted as the GPUs it will run on (``--workers`` of them, default one); such a
    config cannot train."""

    grid: SweepGrid = field(default_factory=SweepGrid)
    model: ModelShape = field(default_factory=ModelShape)
    recipe: RunRecipe = field(default_factory=RunRecipe)
    numerics: Numerics = field(default_factory=Numerics)
    analysis: TransferAnalysis = field(default_factory=TransferAnalysis)
    base_d: int | None = None
    device: str = "auto"
    sweep: SweptValue = field(default_factory=SweptValue)
    plan_only: bool = False

    def __post_init__(self) -> None:
        if self.base_d is not None and self.base_d < 1:
            raise TransferError(f"base width must be >= 1, got {self.base_d}")

    def validate(self) -> TransferConfig:
        """Self, or :class:`TransferError` naming the first value that does not fit with another or with this
        machine (each part checked its own values when it was made)."""
        try:
            self.model.check_widths(self.grid.widths)
        except ConfigError as exc:
            raise TransferError(str(exc)) from None
        need = 2 * self.analysis.fit_halfwidth + 1
        if len(self.grid.lrs) < need:
            raise TransferError(f"a parabola fit needs at least {need} learning rates, got {len(self.grid.lrs)}")
        by_width = dict(self.sweep.base_lr_by_width)
        if by_width and (missing := [w for w in self.grid.widths if w not in by_width]):
            raise TransferError(f"no base learning rate for width {missing[0]}: given for widths "
                                f"{', '.join(map(str, by_width))}")  # fmt: skip
        plain = [c.name for c in self.grid.configs if not c.hc]
        if self.sweep.spec.needs_mhc and plain:
            raise TransferError(f"--sweep {self.sweep.hyper} acts on the mHC generator; {plain[0]!r} has none")
        for c in self.grid.configs:
            if c.hc_param is not None:
                try:
                    c.hc_param.check(self.model.mhc.n_s, self.grid.widths)
                except ParameterizationError as exc:
                    raise TransferError(f"configuration {c.name!r}: {exc}") from None
        device = self.resolved_device()
        self._check_kernels_run_here(device)
        if self.numerics.cuda_graphs == "on" and device.type != "cuda":
            raise TransferError(f"--cuda-graphs on needs a CUDA device; this sweep runs on {device}")
        if self.numerics.torch_compile and (device.type != "cuda" or self.numerics.cuda_graphs == "off"):
            where = f"this sweep runs on {device}" if device.type != "cuda" else "--cuda-graphs is off"
            raise TransferError(f"--compile compiles the captured CUDA step; {where}")
        return self

    def _check_kernels_run_here(self, device: torch.device) -> None:
        if device.type == "cuda" and not torch.cuda.is_available():
            return  # a plan_only config's absent GPU: its kernels are checked where it runs
        if self.numerics.kernels == "triton" and any(c.hc for c in self.grid.configs):
            probe = stream_probe(self.model.mhc.n_s, 1, self.numerics.stream_dtype, device)
            try:
                fused.use_triton("triton", probe)
            except fused.KernelUnavailableError as exc:
                raise TransferError(str(exc)) from None

    def resolved_device(self) -> torch.device:
        """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; :class:`TransferError` for an absent one
        (unless ``plan_only``)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return resolve_device(self.device, absent_ok=self.plan_only)
        except ConfigError as exc:
            raise TransferError(str(exc)) from None

    @property
    def base_width(self) -> int:
        return self.base_d or min(self.grid.widths)

    def run_settings(self) -> RunSettings:
        """The settings every run of this sweep shares, resolved on this machine (device, CUDA graphs, the corpus's
        hash: this reads the corpus once per process, :class:`~mhc_mup.errors.CorpusError` if it cannot; ``""``
        for a dry run's corpus that is not here, :meth:`corpus_here`)."""
        device = self.resolved_device()
        graphs = self.numerics.cuda_graphs
        if graphs == "auto":
            graphs = "on" if device.type == "cuda" else "off"
        numerics = dataclasses.replace(self.numerics, cuda_graphs=graphs)
        corpus = self.corpus_here()
        sha = corpus.sha256 if corpus is not None else ""
        return RunSettings(self.recipe, self.model, self.base_width, precision_of(device), numerics, self.sweep, sha)

    def corpus_here(self) -> Corpus | None:
        """The corpus as this machine reads it; ``None`` for a dry run (``plan_only``) whose ``--corpus`` is not on
        this machine: a laptop prices a sweep for the GPU machine that holds the data, unread (its hash is one of
        the :data:`~mhc_mup.training.transfer.store.PRICED_ANYWHERE` settings)."""
        if self.plan_only and self.recipe.corpus is not None and not Path(self.recipe.corpus).exists():
            return None
        return self.recipe.read_corpus()

    def settings(self) -> dict:
        """What identifies the sweep's folder: :meth:`RunSettings.identity` of :meth:`run_settings`."""
        return self.run_settings().identity()

    def runs(self) -> list[RunKey]:
        """Every grid point, seed-major (a partial sweep has whole seeds first) and widest first within a seed
        (the longest runs start early, so parallel workers finish together)."""
        g = self.grid
        return [
            RunKey(c.name, w, s, lr, self.sweep.hyper)
            for s in range(g.seeds)
            for w in sorted(g.widths, reverse=True)
            for c in g.configs
            for lr in g.lrs
        ]

    def config_named(self, name: str) -> Configuration:
        return next(c for c in self.grid.configs if c.name == name)

    def run_spec(self, key: RunKey, settings: RunSettings | None = None) -> RunSpec:
        """The spec of grid point ``key`` (``settings``: :meth:`run_settings`, passed to make it once)."""
        return RunSpec(self.config_named(key.config), key.width, key.seed, key.lr, settings or self.run_settings())

    def describe(self, ragged: bool = False) -> str:
        """The recipe, the model's shape and the grid in one line; ``ragged``: the configurations and widths
        analysed do not all share the grid's values (a folder grown adaptively), so the grid's values are
        described as their union and the reader sent to ``transfer.csv`` for each configuration's and width's."""
        train, shape = self.recipe.train, self.model
        return (
            f"{train.optimizer} for {train.steps} steps of {train.batch_size}×{train.seq_len} bytes (warmup "
            f"{self.recipe.warmup:g}, cosine to 0.1×); depth {shape.depth}, {shape.heads} heads"
            + (" with q/k RMSNorm" if shape.qk_norm else "") + ", "
            f"n_s={shape.mhc.n_s}, K={shape.mhc.K}; base width {self.base_width}; {self.grid.seeds} seed(s); "
            + self._describe_grid(ragged)
            + ("; bf16 residual streams" if self.numerics.stream_dtype == "bfloat16" else "")
            + ("; torch.compile inside the captured step" if self.numerics.torch_compile else "")
            + ("; attention without cuDNN's kernel" if self.numerics.attention == "no-cudnn" else "")
            + (f"; corpus splits of at most {self.recipe.corpus_bytes / 2**20:g} MiB"
               if self.recipe.corpus_bytes != DEFAULT_MAX_BYTES else "")
        )

    def _describe_grid(self, ragged: bool = False) -> str:
        lrs, sweep = self.grid.lrs, self.sweep
        count = f"{len(lrs)} values in all; values per configuration and width: see transfer.csv" if ragged else (
            f"{len(lrs)} points")
        span = f"2^{math.log2(lrs[0]):.2f} … 2^{math.log2(lrs[-1]):.2f} ({count})"
        if sweep.hyper == "lr":
            return f"η = {span}"
        at = (f"η = 2^{math.log2(sweep.base_lr):.2f}" if sweep.base_lr is not None else "each width's own η ("
              + ", ".join(f"2^{math.log2(x):.2f} at d = {w}" for w, x in sweep.base_lr_by_width) + ")")
        return f"{sweep.hyper} ({sweep.spec.what}) = {span} × the rule's, at {at}"
