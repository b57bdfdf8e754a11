"""Learning-rate transfer sweeps: does the optimal learning rate found at a small width hold at large width?

A sweep trains the byte-level mHC language model (:class:`~mhc_mup.training.model.MHCLM`) for ``steps`` optimizer
steps at every point of a grid: configuration × width ``d`` × seed × base learning rate ``η`` (log2-spaced).
A *configuration* is the model rule (``sp`` or ``mup``, :class:`~mhc_mup.training.width_rules.WidthParameterization`),
the mHC generator preset and whether the model has mHC at all (the plain-residual control has none).

The analysis, all from the final validation loss ``L(η)`` of each run:

* **optimum per seed**: a parabola ``L ≈ a·x² + b·x + c`` in ``x = log2 η`` through the grid's argmin and its
  ``fit_halfwidth`` neighbours on each side; ``log2 η* = −b / 2a``. An argmin at the edge of the grid, or next to
  a diverged run, gives no optimum (a note says which side to extend), never a fake one.
* **optimum per width**: the mean of ``log2 η*`` over the seeds that have one, with a percentile-bootstrap
  interval over those seeds.
* **drift**: ``η* ≈ c · d^β`` fitted by :func:`~mhc_mup.stats.fitting.fit_power_law` on the per-seed optima at each
  width (statistic: their geometric mean; interval: the union of the bootstrap over seeds and the regression
  t-interval across widths). Verdict: **transfers** when the whole interval of ``β`` lies in ``±tolerance``,
  **drifts** (η* grows / shrinks with width) when ``β`` lies outside the band, **unclear** otherwise.

A run **diverges** when a training loss is NaN/inf or exceeds ``divergence_factor`` × its first-step loss, or
when its final validation loss does; it is stored with ``diverged = true`` and left out of the parabola fits.

Every finished run is written atomically to ``OUT/runs/<config>/d<width>/seed<seed>/log2lr<x>.json`` as soon as it
ends; a restart with the same settings skips them (a run stored with other settings is an error, never reused).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mhc_mup._device import resolve_device
from mhc_mup._io import atomic_write_bytes, atomic_write_text, json_safe, software_versions
from mhc_mup.errors import ConfigError, TransferError
from mhc_mup.kernels import fused
from mhc_mup.mhc.parameterizations import (
    OPTIMIZERS,
    PARAMETERIZATIONS,
    Parameterization,
    ParameterizationError,
    parse_spec,
)
from mhc_mup.stats.fitting import bootstrap_estimate, fit_power_law
from mhc_mup.stats.readings import DECAYS, GROWS, O1, classify
from mhc_mup.stats.readings import UNCLEAR as UNCLEAR_READING
from mhc_mup.training.data import CorpusError, load_corpus, sample_batch
from mhc_mup.training.model import MHCLM, STREAM_DTYPES, ModelConfig
from mhc_mup.training.step import eval_loss, precision_of, train_step
from mhc_mup.training.width_rules import MODEL_PARAMS, WidthParameterization, make_optimizer

RUN_FORMAT = "mhc-mup-transfer-run/1"
SWEEP_FORMAT = "mhc-mup-transfer-sweep/1"
TRANSFER_COLUMNS = (
    "config", "width", "seed", "lr", "log2_lr", "final_train_loss", "final_val_loss", "initial_loss", "diverged",
    "diverged_reason", "steps_done", "tokens_per_s", "seconds", "device", "mhc_kernels",
)  # fmt: skip
SEED_OPTIMA_COLUMNS = (
    "config", "width", "seed", "log2_lr_opt", "lr_opt", "loss_at_opt", "curvature", "argmin_log2_lr", "edge", "note",
)  # fmt: skip
OPTIMA_COLUMNS = (
    "config", "width", "log2_lr_opt", "lr_opt", "ci_low", "ci_high", "loss_at_opt", "n_seeds_fit", "n_seeds",
    "argmin_log2_lr", "note",
)  # fmt: skip
DRIFT_COLUMNS = (
    "config", "exponent", "ci_low", "ci_high", "boot_low", "boot_high", "ols_low", "ols_high", "r2", "n_widths",
    "tolerance", "verdict", "direction", "note",
)  # fmt: skip
CURVE_COLUMNS = ("config", "width", "seed", "lr", "split", "step", "loss")
CHECK_EVERY = 10  # training losses are copied to the host (a sync) and checked for divergence every this many steps
TRANSFERS, DRIFTS, UNCLEAR = "transfers", "drifts", "unclear"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")



# ── configurations ─────────────────────────────────────────────────────────────────────────────
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


# ── the sweep's settings ───────────────────────────────────────────────────────────────────────
def log2_key(lr: float) -> str:
    """The learning rate's place in file names: ``log2 η`` to 4 decimals, e.g. ``-10.0000``."""
    return f"{math.log2(lr):+.4f}"


def lr_grid(lr_min: float, lr_max: float, points: int) -> tuple[float, ...]:
    """``points`` learning rates evenly spaced in ``log2 η`` from ``lr_min`` to ``lr_max`` (inclusive)."""
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise TransferError(f"need 0 < --lr-min < --lr-max, got {lr_min!r} and {lr_max!r}")
    if points < 3:
        raise TransferError(f"a parabola fit needs at least 3 learning rates, got --lr-points {points}")
    return tuple(float(2.0**x) for x in np.linspace(math.log2(lr_min), math.log2(lr_max), points))


@dataclass(frozen=True)
class TransferConfig:
    """The grid (configurations × widths × seeds × learning rates), what each run does, and the analysis.

    Each run trains ``steps`` Adam (or SGD) steps on ``batch_size × seq_len`` bytes with a linear warmup over
    the first ``warmup`` fraction of the steps and a cosine decay to 0.1× after it; the base LR is ``η`` and each
    parameter group steps with ``η`` × its multiplier. The validation loss (``eval_batches`` fixed batches of the
    validation split) is measured every ``eval_every`` steps (0: only at the end) and at the end.
    """

    configs: tuple[Configuration, ...] = tuple(BUILTIN_CONFIGS[n] for n in DEFAULT_CONFIGS)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    lrs: tuple[float, ...] = lr_grid(2.0**-12, 2.0**-4, 9)
    seeds: int = 2
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 128
    depth: int = 2
    heads: int = 4
    n_s: int = 4
    K: int = 20
    base_d: int | None = None  # None: the smallest width
    optimizer: str = "adam"
    warmup: float = 0.1
    eval_every: int = 50
    eval_batches: int = 8
    divergence_factor: float = 2.0
    data_seed: int = 0
    corpus: str | None = None  # None: the Python standard library's .py sources
    device: str = "auto"
    stream_dtype: str = "float32"  # the residual streams' storage: "bfloat16" stores them as V4 does
    kernels: str = "auto"  # the mHC ops: fused Triton kernels on CUDA ("auto"), "reference" or "triton"
    fit_halfwidth: int = 1
    tolerance: float = 0.1
    n_boot: int = 1000
    confidence: float = 0.95

    def validate(self) -> TransferConfig:
        """Self, or :class:`TransferError` naming the first bad value."""
        if not self.configs:
            raise TransferError("no configuration to sweep")
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise TransferError(f"configuration names must differ, got {names}")
        if len(set(self.widths)) != len(self.widths) or len(self.widths) < 1:
            raise TransferError(f"widths must be distinct, got {list(self.widths)}")
        for w in self.widths:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1 or w % self.heads:
                raise TransferError(f"width {w} must be a positive multiple of heads={self.heads}")
        if len(self.lrs) < 2 * self.fit_halfwidth + 1:
            raise TransferError(
                f"a parabola fit needs at least {2 * self.fit_halfwidth + 1} learning rates, got {len(self.lrs)}"
            )
        for lr in self.lrs:
            if not (math.isfinite(lr) and lr > 0):
                raise TransferError(f"learning rate {lr!r} must be a positive finite number")
        keys = [log2_key(lr) for lr in self.lrs]
        if len(set(keys)) != len(keys):
            raise TransferError(f"learning rates must differ (by more than 1e-4 in log2), got {list(self.lrs)}")
        if list(self.lrs) != sorted(self.lrs):
            raise TransferError("learning rates must be given in increasing order")
        for name in ("seeds", "steps", "batch_size", "seq_len", "depth", "heads", "K", "eval_batches", "fit_halfwidth"):
            if getattr(self, name) < 1:
                raise TransferError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_s < 2:
            raise TransferError(f"n_s must be >= 2, got {self.n_s}")
        if self.eval_every < 0 or self.data_seed < 0:
            raise TransferError(f"eval_every and data_seed must be >= 0, got {self.eval_every}, {self.data_seed}")
        if self.base_d is not None and self.base_d < 1:
            raise TransferError(f"base width must be >= 1, got {self.base_d}")
        if self.optimizer not in OPTIMIZERS:
            raise TransferError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.warmup < 1:
            raise TransferError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup!r}")
        if not (math.isfinite(self.divergence_factor) and self.divergence_factor > 1):
            raise TransferError(f"divergence factor must be a finite number > 1, got {self.divergence_factor!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance > 0) or self.n_boot < 1:
            raise TransferError(f"need a positive tolerance and n_boot >= 1, got {self.tolerance!r}, {self.n_boot}")
        if not 0 < self.confidence < 1:
            raise TransferError(f"confidence must be in (0, 1), got {self.confidence!r}")
        for c in self.configs:
            if c.hc_param is not None:
                try:
                    c.hc_param.check(self.n_s, self.widths)
                except ParameterizationError as exc:
                    raise TransferError(f"configuration {c.name!r}: {exc}") from None
        if self.stream_dtype not in STREAM_DTYPES:
            raise TransferError(f"stream dtype must be one of {', '.join(STREAM_DTYPES)}, got {self.stream_dtype!r}")
        try:
            fused.check_kernel_choice(self.kernels)
        except ValueError as exc:
            raise TransferError(str(exc)) from None
        device = self.resolved_device()
        if self.kernels == "triton" and any(c.hc for c in self.configs):
            try:
                fused.use_triton("triton", _stream_probe(self.n_s, 1, self.stream_dtype, device))
            except fused.KernelUnavailableError as exc:
                raise TransferError(str(exc)) from None
        return self

    def resolved_device(self) -> torch.device:
        """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; :class:`TransferError` for an absent one."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return resolve_device(self.device)
        except ConfigError as exc:
            raise TransferError(str(exc)) from None

    @property
    def base_width(self) -> int:
        return self.base_d or min(self.widths)

    def settings(self) -> dict:
        """What a run's result depends on besides its grid point: compared on resume, stored with every run."""
        return {
            "steps": self.steps, "batch_size": self.batch_size, "seq_len": self.seq_len, "depth": self.depth,
            "heads": self.heads, "n_s": self.n_s, "K": self.K, "base_d": self.base_width,
            "optimizer": self.optimizer, "warmup": self.warmup, "eval_every": self.eval_every,
            "eval_batches": self.eval_batches, "divergence_factor": self.divergence_factor,
            "data_seed": self.data_seed, "corpus": self.corpus,
            "precision": precision_of(self.resolved_device()), "stream_dtype": self.stream_dtype,
            "kernels": self.kernels,
        }  # fmt: skip

    def grid(self) -> dict:
        return {
            "configs": [c.to_dict() for c in self.configs],
            "widths": list(self.widths),
            "seeds": self.seeds,
            "lrs": list(self.lrs),
        }

    def runs(self) -> list[RunKey]:
        """Every grid point, seed-major (a partial sweep has whole seeds first) and widest first within a seed
        (the longest runs start early, so parallel workers finish together)."""
        return [
            RunKey(c.name, w, s, lr)
            for s in range(self.seeds)
            for w in sorted(self.widths, reverse=True)
            for c in self.configs
            for lr in self.lrs
        ]

    def config_named(self, name: str) -> Configuration:
        return next(c for c in self.configs if c.name == name)

    def describe(self) -> str:
        return (
            f"{self.optimizer} for {self.steps} steps of {self.batch_size}×{self.seq_len} bytes (warmup "
            f"{self.warmup:g}, cosine to 0.1×); depth {self.depth}, {self.heads} heads, n_s={self.n_s}, K={self.K}; "
            f"base width {self.base_width}; {self.seeds} seed(s); η = 2^{math.log2(self.lrs[0]):.2f} … "
            f"2^{math.log2(self.lrs[-1]):.2f} ({len(self.lrs)} points)"
            + ("; bf16 residual streams" if self.stream_dtype == "bfloat16" else "")
        )


@dataclass(frozen=True)
class RunKey:
    """One grid point."""

    config: str
    width: int
    seed: int
    lr: float

    def path(self, out: Path) -> Path:
        folder = Path(out) / "runs" / self.config / f"d{self.width}" / f"seed{self.seed}"
        return folder / f"log2lr{log2_key(self.lr)}.json"

    def label(self) -> str:
        return f"{self.config} d={self.width} seed {self.seed} η=2^{math.log2(self.lr):.2f}"


# ── one run ────────────────────────────────────────────────────────────────────────────────────
def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Multiplier of every group's LR at optimizer step ``step`` (0-based): ``(step+1)/w`` during the
    ``w = round(warmup·steps)`` warmup steps, then ``0.1 + 0.9·(1 + cos(π·p))/2`` with ``p`` the fraction of
    the remaining steps done."""
    w = round(warmup * steps)
    if step < w:
        return (step + 1) / w
    rest = max(1, steps - w - 1)
    p = min(1.0, (step - w) / rest)
    return 0.1 + 0.9 * (1 + math.cos(math.pi * p)) / 2


@functools.lru_cache(maxsize=2)
def _corpus(path: str | None):
    return load_corpus(path)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def execute_run(settings: Mapping, configuration: Mapping, width: int, seed: int, lr: float, device: str) -> dict:
    """Train one grid point and return its record (a JSON-safe dict; see :data:`RUN_FORMAT`).

    Top-level and picklable: the process pool and Ray call it. Training batches depend only on
    ``(data_seed, seed)`` and the validation batches only on ``data_seed``, so every learning rate and
    width of a seed sees the same data (the parabola compares like with like).
    """
    start = time.perf_counter()
    s = dict(settings)
    cfg = Configuration.from_dict(configuration)
    dev = torch.device(device)
    corpus = _corpus(s["corpus"])
    model_cfg = ModelConfig(
        d=width, depth=s["depth"], heads=s["heads"], n_s=s["n_s"], K=s["K"], hc=cfg.hc, stream_dtype=s["stream_dtype"]
    )
    model = MHCLM(model_cfg, cfg.width_param(s["base_d"]), seed=seed, kernels=s["kernels"]).to(dev)
    opt = make_optimizer(model, s["optimizer"], lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(k, s["steps"], s["warmup"]))
    train_gen = torch.Generator().manual_seed(1_000_003 * s["data_seed"] + seed)
    val_gen = torch.Generator().manual_seed(2_000_003 + s["data_seed"])
    val_batches = [sample_batch(corpus.val, s["batch_size"], s["seq_len"], val_gen) for _ in range(s["eval_batches"])]
    train_losses: list[float] = []
    val_curve: list[list] = []
    pending: list[torch.Tensor] = []
    initial = math.nan
    reason = ""
    train_seconds = 0.0
    _sync(dev)
    t0 = time.perf_counter()
    for step in range(s["steps"]):
        x, y = sample_batch(corpus.train, s["batch_size"], s["seq_len"], train_gen)
        pending.append(train_step(model, opt, x, y, dev))
        sched.step()
        done = step + 1
        if done % CHECK_EVERY == 0 or done == s["steps"] or done == 1:
            new = torch.stack(pending).float().cpu().tolist()  # the sync
            pending.clear()
            train_losses += new
            initial = train_losses[0]
            limit = s["divergence_factor"] * initial
            bad = next((v for v in new if not math.isfinite(v) or v > limit), None)
            if bad is not None:
                reason = f"training loss {bad:.4g} at step ≤ {done}: " + (
                    "not finite" if not math.isfinite(bad) else f"above {s['divergence_factor']:g}× the first"
                )
                break
        if s["eval_every"] and done % s["eval_every"] == 0 and done < s["steps"]:
            _sync(dev)
            train_seconds += time.perf_counter() - t0
            val_curve.append([done, eval_loss(model, val_batches, dev)])
            t0 = time.perf_counter()
    _sync(dev)
    train_seconds += time.perf_counter() - t0
    steps_done = len(train_losses)
    final_val = math.nan
    if not reason:
        final_val = eval_loss(model, val_batches, dev)
        val_curve.append([steps_done, final_val])
        if not math.isfinite(final_val) or final_val > s["divergence_factor"] * initial:
            reason = f"final validation loss {final_val:.4g}: " + (
                "not finite" if not math.isfinite(final_val) else f"above {s['divergence_factor']:g}× the first"
            )
    tail = train_losses[-max(1, s["steps"] // 10) :]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return json_safe({
        "format": RUN_FORMAT,
        "config": cfg.name,
        "configuration": cfg.to_dict(),
        "width": width,
        "seed": seed,
        "lr": lr,
        "log2_lr": math.log2(lr),
        "settings": s,
        "train_loss": train_losses,
        "val_curve": val_curve,
        "initial_loss": initial,
        "final_train_loss": float(np.mean(tail)) if not reason else math.nan,
        "final_val_loss": final_val if not reason else math.nan,
        "diverged": bool(reason),
        "diverged_reason": reason,
        "steps_done": steps_done,
        "tokens_per_s": steps_done * s["batch_size"] * s["seq_len"] / train_seconds if train_seconds > 0 else None,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
        "device": f"{dev} ({name})" if dev.type == "cuda" else "cpu",
        "mhc_kernels": _mhc_kernels(model, dev),
        "n_params": model.num_parameters(),
        "corpus": corpus.describe(),
        "versions": software_versions(),
    })  # fmt: skip


# ── the output folder: resume checks ───────────────────────────────────────────────────────────
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TransferError(f"cannot read '{path}': {exc}") from None


SETTINGS_ADDED = {"stream_dtype": "float32", "kernels": "auto"}
"""Settings added after the first format: what runs stored before them were made with."""


def _stored_settings(doc: Mapping) -> dict:
    return {**SETTINGS_ADDED, **doc.get("settings", {})}


def _first_difference(a: Mapping, b: Mapping) -> str:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            return f"{k}: {a.get(k)!r} there, {b.get(k)!r} now"
    return ""


def plan(cfg: TransferConfig, out: Path) -> tuple[list[RunKey], list[RunKey]]:
    """``(finished, pending)`` grid points of ``cfg`` in ``out``, reading nothing but ``out``, writing nothing.

    :class:`TransferError` when ``out`` holds a sweep made with other settings (``sweep.json``, or any stored
    run of this grid whose settings or configuration differ from ``cfg``'s). The grid itself (configurations,
    widths, seeds, learning rates) may grow between calls.
    """
    out = Path(out)
    settings = cfg.settings()
    sweep_file = out / "sweep.json"
    if sweep_file.exists():
        stored = _read_json(sweep_file)
        if stored.get("format") != SWEEP_FORMAT:
            raise TransferError(f"'{sweep_file}' is not a transfer sweep's (format {stored.get('format')!r})")
        diff = _first_difference(_stored_settings(stored), settings)
        if diff:
            raise TransferError(f"'{out}' holds a sweep made with other settings ({diff}); use another --out")
        for c in stored.get("grid", {}).get("configs", []):
            mine = next((m for m in cfg.configs if m.name == c["name"]), None)
            if mine is not None and mine.to_dict() != c:
                raise TransferError(
                    f"'{out}' defines configuration {c['name']!r} differently; rename it or use another --out"
                )
    finished, pending = [], []
    configs = {c.name: c.to_dict() for c in cfg.configs}
    for key in cfg.runs():
        path = key.path(out)
        if not path.exists():
            pending.append(key)
            continue
        record = _read_json(path)
        diff = _first_difference(_stored_settings(record), settings)
        if record.get("format") != RUN_FORMAT or diff or record.get("configuration") != configs[key.config]:
            why = diff or "its configuration differs"
            raise TransferError(f"stored run '{path}' was made with other settings ({why}); use another --out")
        finished.append(key)
    return finished, pending


def _write_sweep_file(cfg: TransferConfig, out: Path) -> None:
    """``sweep.json``: the settings (fixed for the folder) and the union of every grid swept into it."""
    path = Path(out) / "sweep.json"
    grid = cfg.grid()
    if path.exists():
        old = _read_json(path).get("grid", {})
        names = {c["name"] for c in grid["configs"]}
        grid["configs"] = grid["configs"] + [c for c in old.get("configs", []) if c["name"] not in names]
        grid["widths"] = sorted(set(grid["widths"]) | set(old.get("widths", [])))
        grid["seeds"] = max(grid["seeds"], old.get("seeds", 0))
        grid["lrs"] = sorted(set(grid["lrs"]) | set(old.get("lrs", [])))
    doc = {"format": SWEEP_FORMAT, "settings": cfg.settings(), "grid": grid, "versions": software_versions()}
    atomic_write_text(path, json.dumps(json_safe(doc), indent=1) + "\n")


# ── executing the grid ─────────────────────────────────────────────────────────────────────────
OnRun = Callable[[dict, int, int], None]
"""Called in the parent after each run is stored: ``(record, runs finished so far, runs in the grid)``."""

_WORKER_DEVICE = "cpu"


def _init_worker(devices, threads: int) -> None:
    """Pool initializer: take one device from the shared queue (one GPU per worker) and pin to it."""
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()
    if _WORKER_DEVICE.startswith("cuda"):
        torch.cuda.set_device(torch.device(_WORKER_DEVICE))
    torch.set_num_threads(threads)


def _pool_run(settings: Mapping, configuration: Mapping, width: int, seed: int, lr: float) -> dict:
    return execute_run(settings, configuration, width, seed, lr, _WORKER_DEVICE)


def worker_devices(cfg: TransferConfig, workers: int | None) -> list[str]:
    """The device of each worker: every CUDA device once (``--workers`` at most that many), or ``workers``
    CPU workers (default 1: serial)."""
    dev = cfg.resolved_device()
    if dev.type == "cuda":
        if dev.index is not None:
            return [str(dev)]
        n = torch.cuda.device_count()
        if workers is not None and workers > n:
            raise TransferError(f"--workers {workers}: only {n} CUDA device(s), one run per GPU at a time")
        return [f"cuda:{i}" for i in range(workers or n)]
    return ["cpu"] * (workers or 1)


class _Store:
    """Writes each finished run as it arrives and counts them."""

    def __init__(self, out: Path, done: int, total: int, on_run: OnRun | None) -> None:
        self.out, self.done, self.total, self.on_run = Path(out), done, total, on_run

    def __call__(self, key: RunKey, record: dict) -> None:
        path = key.path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record) + "\n")
        self.done += 1
        if self.on_run:
            self.on_run(record, self.done, self.total)


def _mhc_kernels(model: MHCLM, device: torch.device) -> str:
    """Which implementation ran the model's mHC sublayers: 'triton' (fused), 'reference', or 'none' (control)."""
    if not model.config.hc:
        return "none"
    streams = _stream_probe(model.config.n_s, model.config.d, model.config.stream_dtype, device)
    return "triton" if fused.use_triton(model.kernels, streams) else "reference"


def _stream_probe(n_s: int, d: int, stream_dtype: str, device: torch.device) -> torch.Tensor:
    """An empty ``(0, n_s, d)`` stream tensor of the model's storage, to ask :func:`mhc_mup.kernels.fused.use_triton`
    which path the mHC ops take."""
    return torch.empty(0, n_s, d, dtype=getattr(torch, stream_dtype), device=device)


def _args(cfg: TransferConfig, key: RunKey) -> tuple:
    return (cfg.settings(), cfg.config_named(key.config).to_dict(), key.width, key.seed, key.lr)


def _run_local(cfg: TransferConfig, pending: list[RunKey], devices: list[str], store: _Store, deadline: float) -> int:
    """Serial in this process (one device) or a spawn-context process pool with one worker per device."""
    if len(devices) == 1:
        left = 0
        for i, key in enumerate(pending):
            if time.monotonic() >= deadline:
                return len(pending) - i
            store(key, execute_run(*_args(cfg, key), devices[0]))
        return left
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    todo = list(pending)
    pool = cf.ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker, initargs=(queue, threads))
    running: dict[cf.Future, RunKey] = {}
    try:
        while todo or running:
            while todo and len(running) < len(devices) and time.monotonic() < deadline:
                key = todo.pop(0)
                running[pool.submit(_pool_run, *_args(cfg, key))] = key
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                store(running.pop(fut), fut.result())
    finally:
        pool.shutdown(wait=not running, cancel_futures=True)
    return len(todo)


def _run_ray(cfg: TransferConfig, pending: list[RunKey], store: _Store, deadline: float, address: str | None) -> int:
    """Each run a Ray task with one GPU (CUDA) or one CPU; results are stored as they complete."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    cuda = cfg.resolved_device().type == "cuda"
    task = ray.remote(num_gpus=1 if cuda else 0, num_cpus=1)(execute_run)
    device = "cuda" if cuda else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES: the task's GPU is cuda:0 there
    slots = max(1, int(ray.cluster_resources().get("GPU" if cuda else "CPU", 1)))
    todo = list(pending)
    running: dict = {}
    try:
        while todo or running:
            while todo and len(running) < slots and time.monotonic() < deadline:
                key = todo.pop(0)
                running[task.remote(*_args(cfg, key), device)] = key
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                store(running.pop(ref), ray.get(ref))
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
    return len(todo)


def import_ray():
    """The ``ray`` module, or :class:`TransferError` with the install line."""
    try:
        import ray
    except ImportError:
        raise TransferError("--backend ray needs Ray: pip install mhc-mup[ray]") from None
    return ray


@dataclass
class TransferResult:
    """The sweep's tables (see the ``*_COLUMNS`` tuples) and its drift verdicts."""

    config: TransferConfig
    runs: pd.DataFrame
    curves: pd.DataFrame
    seed_optima: pd.DataFrame
    optima: pd.DataFrame
    drift: pd.DataFrame
    missing: int = 0
    executed: int = 0
    notes: list[str] = field(default_factory=list)


def run_transfer(
    cfg: TransferConfig,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    time_budget: float | None = None,
    ray_address: str | None = None,
    on_run: OnRun | None = None,
) -> TransferResult:
    """Run every pending grid point of ``cfg`` (storing each as it ends), then analyse the whole grid and write
    ``transfer.csv``, ``curves.csv``, ``optima_seeds.csv``, ``optima.csv``, ``drift.csv``, ``transfer.png``
    and ``transfer_report.md`` / ``.html`` into ``out``.

    Every check runs before anything is written. No new run starts after ``time_budget`` seconds; the tables
    are then written from the finished runs and ``missing`` counts the rest (run again to continue).
    """
    cfg.validate()
    out = Path(out)
    if backend not in ("local", "ray"):
        raise TransferError(f"unknown backend {backend!r} (use local or ray)")
    if backend == "ray":
        import_ray()
        if workers is not None:
            raise TransferError("--workers is for the local backend; Ray schedules by the cluster's resources")
    devices = worker_devices(cfg, workers)
    try:
        corpus = _corpus(cfg.corpus)
    except CorpusError as exc:
        raise TransferError(str(exc)) from None
    for split, data in (("train", corpus.train), ("validation", corpus.val)):
        if data.numel() < cfg.seq_len + 1:
            raise TransferError(
                f"corpus '{corpus.source}' has {data.numel()} {split} bytes; seq_len {cfg.seq_len} needs "
                f"{cfg.seq_len + 1}"
            )
    finished, pending = plan(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    _write_sweep_file(cfg, out)
    store = _Store(out, len(finished), len(finished) + len(pending), on_run)
    deadline = time.monotonic() + (time_budget if time_budget is not None else math.inf)
    if backend == "ray":
        left = _run_ray(cfg, pending, store, deadline, ray_address)
    else:
        left = _run_local(cfg, pending, devices, store, deadline)
    result = analyse(cfg, load_records(cfg, out))
    result.missing, result.executed = left, len(pending) - left
    write_outputs(result, out)
    return result


def load_records(cfg: TransferConfig, out: str | Path) -> list[dict]:
    """The stored records of ``cfg``'s grid points present in ``out`` (grid order)."""
    return [_read_json(k.path(Path(out))) for k in cfg.runs() if k.path(Path(out)).exists()]


# ── analysis ───────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class ParabolaFit:
    """``log2 η*`` and the loss there from ``L ≈ a·x² + b·x + c`` (``x = log2 η``) around the argmin;
    NaN with ``edge`` (``low`` / ``high`` / ``""``) and ``note`` when there is no interior minimum."""

    log2_opt: float
    loss_opt: float
    curvature: float
    argmin: float
    edge: str
    note: str


def fit_parabola(log2_lrs: Iterable[float], losses: Iterable[float], halfwidth: int = 1) -> ParabolaFit:
    """The optimum of ``losses`` vs ``log2_lrs`` (ascending; NaN marks a diverged run) from a least-squares
    parabola through the argmin and its ``halfwidth`` grid neighbours on each side: ``x* = −b/(2a)``.

    No optimum (NaN) when the argmin's window leaves the grid or holds a diverged run (``edge`` says on which
    side: the optimum may lie beyond it), or when the parabola opens downwards.
    """
    x = np.asarray(list(log2_lrs), dtype=np.float64)
    y = np.asarray(list(losses), dtype=np.float64)
    nan = math.nan
    ok = np.isfinite(y)
    if not ok.any():
        return ParabolaFit(nan, nan, nan, nan, "", "every run diverged")
    i = int(np.nanargmin(np.where(ok, y, np.inf)))
    lo, hi = i - halfwidth, i + halfwidth

    def at(j: int) -> str:
        return f"2^{x[j]:.2f}"

    if lo < 0:
        note = f"minimum at the smallest learning rate {at(i)}: extend the grid down"
        return ParabolaFit(nan, nan, nan, x[i], "low", note)
    if hi >= len(x):
        note = f"minimum at the largest learning rate {at(i)}: extend the grid up"
        return ParabolaFit(nan, nan, nan, x[i], "high", note)
    if not ok[lo : hi + 1].all():
        side = "high" if not ok[i + 1 : hi + 1].all() else "low"
        note = f"minimum at {at(i)} next to a diverged run ({side}er η): refine the grid there"
        return ParabolaFit(nan, nan, nan, x[i], side, note)
    a, b, c = np.polyfit(x[lo : hi + 1], y[lo : hi + 1], 2)
    if not a > 0:
        return ParabolaFit(nan, nan, nan, x[i], "", f"parabola around {at(i)} opens downwards (a = {a:.3g})")
    xs = -b / (2 * a)
    if not x[lo] <= xs <= x[hi]:
        return ParabolaFit(nan, nan, a, x[i], "", f"parabola vertex 2^{xs:.2f} outside the fitted points")
    return ParabolaFit(float(xs), float(c - b * b / (4 * a)), float(a), float(x[i]), "", "")


def _geomean(a: np.ndarray) -> np.ndarray:
    return np.exp(np.log(a).mean(axis=-1))


def analyse(cfg: TransferConfig, records: list[dict]) -> TransferResult:
    """Tables, optima and drift fits from run records (the grid of ``cfg``; missing points are left out)."""
    rows = [{c: r.get(c) for c in TRANSFER_COLUMNS} for r in records]
    runs = pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))
    for col in ("final_train_loss", "final_val_loss", "initial_loss", "tokens_per_s", "seconds"):
        runs[col] = runs[col].astype(float)
    curve_rows = []
    for r in records:
        base = (r["config"], r["width"], r["seed"], r["lr"])
        curve_rows += [(*base, "train", k + 1, v) for k, v in enumerate(r["train_loss"])]
        curve_rows += [(*base, "val", int(step), v) for step, v in r["val_curve"]]
    curves = pd.DataFrame(curve_rows, columns=list(CURVE_COLUMNS))
    log2_grid = [math.log2(lr) for lr in cfg.lrs]
    seed_rows, opt_rows, drift_rows, notes = [], [], [], []
    for c in cfg.configs:
        per_width: dict[int, list[float]] = {}
        for w in cfg.widths:
            fits = []
            for s in range(cfg.seeds):
                sel = runs[(runs.config == c.name) & (runs.width == w) & (runs.seed == s)]
                if sel.empty:
                    continue
                by_lr = {log2_key(lr): v for lr, v, dv in zip(sel.lr, sel.final_val_loss, sel.diverged, strict=True)
                         if not dv}  # fmt: skip
                missing = [log2_key(lr) for lr in cfg.lrs if log2_key(lr) not in set(map(log2_key, sel.lr))]
                if missing:
                    note = f"{len(missing)} of {len(cfg.lrs)} runs not finished yet"
                    fit = ParabolaFit(math.nan, math.nan, math.nan, math.nan, "", note)
                else:
                    fit = fit_parabola(log2_grid, [by_lr.get(log2_key(lr), math.nan) for lr in cfg.lrs],
                                       cfg.fit_halfwidth)  # fmt: skip
                    n_div = int(sel.diverged.sum())
                    if n_div:
                        div = ", ".join(f"2^{x:.2f}" for x in sorted(np.log2(sel.lr[sel.diverged.astype(bool)])))
                        fit = dataclasses.replace(
                            fit, note="; ".join(filter(None, [fit.note, f"diverged, left out of the fit: η = {div}"]))
                        )
                fits.append(fit)
                seed_rows.append({
                    "config": c.name, "width": w, "seed": s, "log2_lr_opt": fit.log2_opt,
                    "lr_opt": 2.0**fit.log2_opt, "loss_at_opt": fit.loss_opt, "curvature": fit.curvature,
                    "argmin_log2_lr": fit.argmin, "edge": fit.edge, "note": fit.note,
                })  # fmt: skip
            good = [f for f in fits if math.isfinite(f.log2_opt)]
            values = np.array([f.log2_opt for f in good])
            wnotes = [f"seed {r['seed']}: {r['note']}" for r in seed_rows[-len(fits) :] if r["note"]] if fits else []
            if len(values) >= 2:
                est = bootstrap_estimate(values, n_boot=cfg.n_boot, confidence=cfg.confidence, seed=0)
                mean, lo, hi = est.value, est.ci_low, est.ci_high
            elif len(values) == 1:
                mean, lo, hi = float(values[0]), math.nan, math.nan
                wnotes.append("one seed has an optimum: no interval")
            else:
                mean = lo = hi = math.nan
            if len(values):
                per_width[w] = list(2.0**values)
            argmins = [f.argmin for f in fits if math.isfinite(f.argmin)]
            opt_rows.append({
                "config": c.name, "width": w, "log2_lr_opt": mean, "lr_opt": 2.0**mean, "ci_low": lo, "ci_high": hi,
                "loss_at_opt": float(np.mean([f.loss_opt for f in good])) if good else math.nan,
                "n_seeds_fit": len(values), "n_seeds": len(fits),
                "argmin_log2_lr": float(np.median(argmins)) if argmins else math.nan, "note": "; ".join(wnotes),
            })  # fmt: skip
        drift_rows.append(_drift_row(cfg, c.name, per_width))
    seed_optima = pd.DataFrame(seed_rows, columns=list(SEED_OPTIMA_COLUMNS))
    optima = pd.DataFrame(opt_rows, columns=list(OPTIMA_COLUMNS))
    drift = pd.DataFrame(drift_rows, columns=list(DRIFT_COLUMNS))
    n_div = int(runs.diverged.astype(bool).sum()) if len(runs) else 0
    if n_div:
        notes.append(f"{n_div} of {len(runs)} runs diverged; they are kept in transfer.csv and left out of the fits")
    return TransferResult(cfg, runs, curves, seed_optima, optima, drift, notes=notes)


def _drift_row(cfg: TransferConfig, name: str, per_width: Mapping[int, list[float]]) -> dict:
    """Fit ``η* ≈ c·d^β`` over the widths that have an optimum; the verdict from ``β``'s interval."""
    widths = sorted(per_width)
    row = dict.fromkeys(DRIFT_COLUMNS, math.nan) | {"config": name, "tolerance": cfg.tolerance, "n_widths": len(widths)}
    skipped = [w for w in cfg.widths if w not in per_width]
    note = f"no optimum at d = {', '.join(map(str, sorted(skipped)))}" if skipped else ""
    if len(widths) < 2:
        why = "; ".join(filter(None, [note, "optimum at < 2 widths: no drift fit"]))
        row |= {"verdict": UNCLEAR, "direction": "", "note": why}
        return row
    fit = fit_power_law(widths, [np.array(per_width[w]) for w in widths], _geomean, n_boot=cfg.n_boot,
                        confidence=cfg.confidence, seed=0)  # fmt: skip
    reading = classify(fit, cfg.tolerance)
    no_interval = len(widths) < 3 and min(len(per_width[w]) for w in widths) < 2
    if no_interval:
        # no regression interval and a bootstrap over one seed: a zero-width interval that says nothing
        reading = UNCLEAR_READING
        why = f"{len(widths)} widths and 1 seed at some width: no interval, no verdict"
        note = "; ".join(filter(None, [note, why]))
    verdict = {O1: TRANSFERS, GROWS: DRIFTS, DECAYS: DRIFTS}.get(reading, UNCLEAR)
    direction = {GROWS: "η* grows with width", DECAYS: "η* shrinks with width"}.get(reading, "")
    row |= {
        "exponent": fit.exponent, "ci_low": fit.ci_low, "ci_high": fit.ci_high, "boot_low": fit.boot_low,
        "boot_high": fit.boot_high, "ols_low": fit.ols_low, "ols_high": fit.ols_high, "r2": fit.r2,
        "verdict": verdict, "direction": direction, "note": "; ".join(filter(None, [note, fit.note])),
    }  # fmt: skip
    if no_interval:
        row |= {"ci_low": math.nan, "ci_high": math.nan}
    return row


def drift_sentence(row: Mapping, confidence: float = 0.95) -> str:
    """One sentence per configuration, built from its fit row."""
    name, tol = row["config"], row["tolerance"]
    if not math.isfinite(row["exponent"]):
        return f"{name}: no drift fit ({row['note']}); verdict unclear."
    if not math.isfinite(row["ci_low"]):
        return f"{name}: η* ∝ d^{row['exponent']:+.3f} without an interval ({row['note']}); verdict unclear."
    head = (
        f"{name}: η* ∝ d^{row['exponent']:+.3f} ({confidence:.0%} interval [{row['ci_low']:+.3f}, "
        f"{row['ci_high']:+.3f}], {row['n_widths']} widths)"
    )
    if row["verdict"] == TRANSFERS:
        return f"{head}; the whole interval lies inside ±{tol:g}: the optimal learning rate transfers."
    if row["verdict"] == DRIFTS:
        return f"{head}; the exponent lies outside ±{tol:g}: it drifts ({row['direction']})."
    return f"{head}; the interval is neither inside ±{tol:g} nor clear of 0: unclear (more seeds or widths)."


# ── figure, report, files ──────────────────────────────────────────────────────────────────────
def transfer_figure(result: TransferResult):
    """Final validation loss (mean over seeds) vs log2 η, one panel per configuration, one line per width;
    the optimum (star, with its interval) and diverged runs (×, at the panel's top) marked."""
    import matplotlib.pyplot as plt

    from mhc_mup.reporting.style import MARKERS, OKABE_ITO

    cfg = result.config
    runs = result.runs
    n = len(cfg.configs)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 0.6, 4.2), sharey=True, squeeze=False)
    finite = runs.final_val_loss[np.isfinite(runs.final_val_loss)] if len(runs) else pd.Series(dtype=float)
    if len(finite):
        low = float(finite.min())
        top = min(float(finite.max()), low + 1.5)
        pad = 0.05 * max(top - low, 0.05)
        ylim = (low - pad, top + 3 * pad)
    else:
        ylim = (0.0, 6.0)
    widths = sorted(cfg.widths)
    for ax, c in zip(axes[0], cfg.configs, strict=True):
        for i, w in enumerate(widths):
            colour, marker = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
            sel = runs[(runs.config == c.name) & (runs.width == w)]
            if sel.empty:
                continue
            x = np.log2(sel.lr.astype(float))
            ok = sel.assign(x=x)[~sel.diverged.astype(bool)]
            mean = ok.groupby("x").final_val_loss.mean()
            ax.plot(mean.index, mean.values, color=colour, marker=marker, ms=4, lw=1.3, label=f"d={w}")
            div = sorted(set(x[sel.diverged.astype(bool)]))
            ax.plot(div, [ylim[1] - pad_of(ylim)] * len(div), ls="none", marker="x", color=colour, ms=6)
            o = result.optima[(result.optima.config == c.name) & (result.optima.width == w)]
            if len(o) and math.isfinite(o.log2_lr_opt.iloc[0]):
                xo, yo = float(o.log2_lr_opt.iloc[0]), float(o.loss_at_opt.iloc[0])
                lo, hi = o.ci_low.iloc[0], o.ci_high.iloc[0]
                if math.isfinite(lo):
                    ax.errorbar([xo], [yo], xerr=[[xo - lo], [hi - xo]], color=colour, capsize=3, lw=1)
                ax.plot([xo], [yo], marker="*", ms=13, color=colour, markeredgecolor="black", mew=0.6, ls="none")
            edges = result.seed_optima[(result.seed_optima.config == c.name) & (result.seed_optima.width == w)]
            for edge, tri in (("low", "<"), ("high", ">")):
                # a seed's minimum at the grid's edge or next to a diverged run: an open triangle at that minimum
                for xa in set(edges.loc[edges.edge == edge, "argmin_log2_lr"]):
                    near = np.isclose(mean.index, xa, atol=1e-6)
                    if near.any():
                        ax.plot([xa], [mean.values[near][0]], marker=tri, ms=11, mfc="none", mec=colour, mew=1.5,
                                ls="none")  # fmt: skip
        d = result.drift[result.drift.config == c.name]
        title = c.name
        if len(d) and math.isfinite(d.exponent.iloc[0]):
            r = d.iloc[0]
            interval = f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]" if math.isfinite(r.ci_low) else "(no interval)"
            title += f"\nη* ∝ d^{r.exponent:+.2f} {interval}: {r.verdict}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("log2 learning rate η")
        ax.set_ylim(*ylim)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("final validation loss (nats/byte, mean over seeds)")
    if axes[0][-1].get_legend_handles_labels()[0]:
        legend_title = "width (★ optimum, × diverged,\n▷ ◁ minimum at the grid's edge)"
        axes[0][-1].legend(fontsize=8, frameon=False, title=legend_title, title_fontsize=8)
    fig.tight_layout()
    return fig


def pad_of(ylim: tuple[float, float]) -> float:
    return 0.04 * (ylim[1] - ylim[0])


def _fmt(v: float, spec: str = ".3f") -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, spec)


def build_transfer_report(result: TransferResult, png: bytes):
    """The report's blocks (:mod:`mhc_mup.diagnostics.report`): settings, drift verdicts (sentences from the fits),
    the optima table, the figure, the cost and the notes."""
    from mhc_mup.reporting.blocks import FigureBlock, Heading, Paragraph, Report, Table

    cfg = result.config
    blocks: list = [Heading("Drift of the optimal learning rate")]
    blocks += [Paragraph(drift_sentence(r, cfg.confidence)) for r in result.drift.to_dict("records")]
    blocks.append(Paragraph(
        f"η* per seed: vertex of a parabola in log2 η through the argmin of the final validation loss and its "
        f"{cfg.fit_halfwidth} neighbour(s) on each side; per width: mean of log2 η* over seeds with a bootstrap "
        f"interval; drift: η* ≈ c·d^β by least squares on the per-seed optima (geometric mean per width), interval "
        f"= union of the bootstrap over seeds and the regression t-interval. A run diverged when a loss was not "
        f"finite or above {cfg.divergence_factor:g}× its first-step loss."
    ))  # fmt: skip
    blocks.append(Table(
        ["configuration", "β (η* ∝ d^β)", f"{cfg.confidence:.0%} interval", "widths", "verdict", "note"],
        [[r["config"], _fmt(r["exponent"], "+.3f"), f"[{_fmt(r['ci_low'], '+.3f')}, {_fmt(r['ci_high'], '+.3f')}]",
          str(r["n_widths"]), f"{r['verdict']}{' (' + r['direction'] + ')' if r['direction'] else ''}", r["note"]]
         for r in result.drift.to_dict("records")],
        f"Drift of log η* against log d; transfers when the interval lies inside ±{cfg.tolerance:g}",
    ))  # fmt: skip
    blocks.append(Heading("Optimal learning rate per width"))
    blocks.append(Table(
        ["configuration", "width", "log2 η*", "interval", "η*", "loss at η*", "seeds fitted", "note"],
        [[r["config"], str(r["width"]), _fmt(r["log2_lr_opt"], "+.2f"),
          f"[{_fmt(r['ci_low'], '+.2f')}, {_fmt(r['ci_high'], '+.2f')}]", _fmt(r["lr_opt"], ".3g"),
          _fmt(r["loss_at_opt"], ".4f"), f"{r['n_seeds_fit']}/{r['n_seeds']}", r["note"]]
         for r in result.optima.to_dict("records")],
    ))  # fmt: skip
    blocks.append(FigureBlock("transfer.png", "Final validation loss vs learning rate, one line per width", png))
    blocks.append(Heading("Settings and cost"))
    runs = result.runs
    cost = (
        f"{len(runs)} runs stored ({result.missing} of the grid still missing), {runs.seconds.sum() / 3600:.3g} "
        f"device-hours in all; per run: median {runs.seconds.median():.3g} s, "
        f"{runs.tokens_per_s.median():,.0f} tokens/s (median) on {', '.join(sorted(set(runs.device)))}."
        if len(runs)
        else "No run stored yet."
    )
    blocks.append(Paragraph("Configurations: " + "; ".join(f"{c.name} = {c.describe()}" for c in cfg.configs) + "."))
    blocks.append(Paragraph(f"Each run: {cfg.describe()}. {cost}"))
    for note in result.notes:
        blocks.append(Paragraph(note))
    return Report("Learning-rate transfer across width", blocks)


def _csv(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return frame[list(columns)].to_csv(index=False, float_format="%.6g", lineterminator="\n")


def write_outputs(result: TransferResult, out: str | Path) -> list[Path]:
    """Write the tables, the figure and the report; every content is made before the first write."""
    from mhc_mup.reporting.blocks import render_html, render_markdown
    from mhc_mup.reporting.style import png_bytes

    out = Path(out)
    png = png_bytes(transfer_figure(result))
    report = build_transfer_report(result, png)
    texts = {
        "transfer.csv": _csv(result.runs, TRANSFER_COLUMNS),
        "curves.csv": _csv(result.curves, CURVE_COLUMNS),
        "optima_seeds.csv": _csv(result.seed_optima, SEED_OPTIMA_COLUMNS),
        "optima.csv": _csv(result.optima, OPTIMA_COLUMNS),
        "drift.csv": _csv(result.drift, DRIFT_COLUMNS),
        # report.py links figures under figures/; this report keeps its one figure beside it
        "transfer_report.md": render_markdown(report).replace("](figures/transfer.png)", "](transfer.png)"),
        "transfer_report.html": render_html(report),
    }
    paths = []
    for name, text in texts.items():
        atomic_write_text(out / name, text)
        paths.append(out / name)
    atomic_write_bytes(out / "transfer.png", png)
    return [*paths, out / "transfer.png"]
