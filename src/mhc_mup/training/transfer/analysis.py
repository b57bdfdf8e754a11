"""The analysis of a transfer sweep, all from the final validation loss ``L(η)`` of each run:

* **optimum per seed**: a parabola ``L ≈ a·x² + b·x + c`` in ``x = log2 η`` through the grid's argmin and its
  ``fit_halfwidth`` neighbours on each side; ``log2 η* = −b / 2a``. An argmin at the edge of the grid, or next to
  a diverged run, gives no optimum (a note says which side to extend), never a fake one.
* **optimum per width**: the mean of ``log2 η*`` over the seeds that have one, with a percentile-bootstrap
  interval over those seeds.
* **joint drift** (the headline, :mod:`~mhc_mup.training.transfer.joint`): every width and seed near the
  optimum in one fit, ``L = c_g + a(d)·(x − x₀ − β·log2 d)²·(1 + κ·(x − x*))``; ``β``'s interval is the union of
  the fit's t-interval and a bootstrap over seeds. A width whose loss is flat within the seeds' noise has no
  optimum. The ``joint_*`` columns of ``drift.csv``; ``joint_log2_opt`` and ``flat`` in ``optima.csv``.
* **anchors** (:mod:`~mhc_mup.training.transfer.anchors`): whether the plain-residual controls' joint fits read
  as theory says, and each mHC configuration's joint β against its body's control (``anchors.csv``,
  ``relative_drift.csv``).
* **penalty** (:mod:`~mhc_mup.training.transfer.penalty`): the loss each width gives up at the base width's
  optimum instead of its own, per seed, read off its curve (``transfer_penalty.csv``); in a multiplier sweep also
  at the rule's own value, the multiplier 1 (``rule_penalty.csv``).
* **drift** (per-seed optima, kept for comparison): ``η* ≈ c · d^β`` fitted by
  :func:`~mhc_mup.stats.fitting.fit_power_law` on the per-seed optima at each width (statistic: their geometric
  mean; interval: the union of the bootstrap over seeds and the regression t-interval across widths, or across
  two widths, where a regression has no residual, the seeds' Welch t-interval of the slope). Verdict:
  **transfers** when the whole interval of ``β`` lies in ``±tolerance``, **drifts** (η* grows / shrinks with
  width) when ``β`` lies outside the band, **unclear** otherwise.

Each configuration × width is analysed over its own values (:func:`~mhc_mup.training.transfer.joint.width_values`:
those the grids swept into its folder planned there and any value run there), so that a folder grown adaptively —
a coarse grid everywhere, then more values only where needed — is analysed as a whole; its curves are complete,
and fitted, once every seed present there has run every one of them ("not finished yet" otherwise). Diverged runs
are kept in the tables and left out of the parabola fits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mhc_mup._io import StrEnum
from mhc_mup.reporting.numbers import fmt_interval, fmt_widths
from mhc_mup.stats.fitting import (
    ONE_SEED_NOTE,
    bootstrap_estimate,
    fit_power_law,
    mean_t_interval,
    two_width_interval,
)
from mhc_mup.stats.optimum import JointOptimumFit, paired_difference
from mhc_mup.stats.readings import UNCLEAR as UNCLEAR_READING
from mhc_mup.stats.readings import classify_interval, drift_verdict
from mhc_mup.training.transfer.anchors import (
    ANCHOR_COLUMNS,
    RELATIVE_COLUMNS,
    anchor_table,
    relative_drift,
    rule_pairs,
)
from mhc_mup.training.transfer.config import (
    SweepGrid,
    TransferAnalysis,
    TransferConfig,
    grid_seeds,
    grid_values,
    log2_key,
    log2_text,
)
from mhc_mup.training.transfer.configurations import Configuration
from mhc_mup.training.transfer.edges import EDGE_COLUMNS, EDGE_DRIFT_COLUMNS, edge_drift, edges_table
from mhc_mup.training.transfer.joint import (
    WidthCurves,
    joint_drift,
    values_every_seed_ran,
    width_curves,
    width_values,
)
from mhc_mup.training.transfer.logits import LOGIT_STATS
from mhc_mup.training.transfer.noise import NOISE_COLUMNS, noise_table
from mhc_mup.training.transfer.penalty import PENALTY_COLUMNS, RULE_PENALTY_COLUMNS, penalty_table, rule_penalty_table
from mhc_mup.training.transfer.routing import ROUTING_STATS

__all__ = [
    "CURVE_COLUMNS", "DRIFTS", "DRIFT_COLUMNS", "EXPONENT_PRINT_BOUND", "JOINT_COLUMNS", "LOGIT_COLUMNS",
    "LOGIT_POINTS", "LOGIT_TABLE_COLUMNS", "OPTIMA_COLUMNS", "ROUTING_COLUMNS", "ROUTING_TABLE_COLUMNS",
    "SEED_OPTIMA_COLUMNS", "TRANSFERS", "TRANSFER_COLUMNS", "UNCLEAR", "ParabolaFit", "TransferResult", "Verdict",
    "analyse", "curves_table", "drift_row", "drift_sentence", "fit_parabola", "joint_sentence", "logits_table",
    "routing_table", "runs_table",
]  # fmt: skip

_DEFAULT_LOSS = TransferAnalysis().loss_column  # the run column the fits read by default: final_val_loss

ROUTING_COLUMNS = (*ROUTING_STATS, *(f"{k}_init" for k in ROUTING_STATS))
"""What each mHC run's routing does at its end and at its start (:mod:`~mhc_mup.training.transfer.routing`)."""
LOGIT_COLUMNS = (*LOGIT_STATS, *(f"{k}_init" for k in LOGIT_STATS))
"""How large each run's attention and output logits are at its end and at its start
(:mod:`~mhc_mup.training.transfer.logits`)."""
ROUTING_TABLE_COLUMNS = ("config", "width", "value", "n_seeds", *ROUTING_COLUMNS)
LOGIT_TABLE_COLUMNS = ("config", "width", "at", "value", "n_seeds", *LOGIT_COLUMNS)
LOGIT_POINTS = ("best", "octave_above")
"""Where :func:`logits_table` reads the logits: the best grid value, and the smallest one at least an octave above
it (towards the high-learning-rate wall, where attention logits that grow would show first)."""

TRANSFER_COLUMNS = (
    "config", "width", "seed", "lr", "log2_lr", "final_train_loss", "final_val_loss", "initial_loss", "diverged",
    "diverged_reason", "steps_done", "tokens_per_s", "seconds", "device", "runs_per_device", "mhc_kernels", "hyper",
    "value", *ROUTING_COLUMNS, *LOGIT_COLUMNS,
)  # fmt: skip
SEED_OPTIMA_COLUMNS = (
    "config", "width", "seed", "log2_lr_opt", "lr_opt", "loss_at_opt", "curvature", "argmin_log2_lr", "edge", "note",
)  # fmt: skip
OPTIMA_COLUMNS = (
    "config", "width", "log2_lr_opt", "lr_opt", "ci_low", "ci_high", "loss_at_opt", "n_seeds_fit", "n_seeds",
    "argmin_log2_lr", "note", "joint_log2_opt", "flat",
)  # fmt: skip
JOINT_COLUMNS = (
    "joint_exponent", "joint_low", "joint_high", "joint_se", "joint_fit_low", "joint_fit_high", "joint_boot_low",
    "joint_boot_high", "joint_sigma", "joint_widths", "joint_verdict", "joint_direction", "flat_widths",
    "joint_note",
)  # fmt: skip
"""The joint fit's columns of ``drift.csv`` (:mod:`~mhc_mup.training.transfer.joint`), after today's."""
DRIFT_COLUMNS = (
    "config", "exponent", "ci_low", "ci_high", "boot_low", "boot_high", "ols_low", "ols_high", "r2", "n_widths",
    "tolerance", "verdict", "direction", "note", *JOINT_COLUMNS,
)  # fmt: skip
CURVE_COLUMNS = ("config", "width", "seed", "lr", "split", "step", "loss", "value")


class Verdict(StrEnum):
    """Whether the optimal learning rate transfers across width."""

    TRANSFERS = "transfers"
    DRIFTS = "drifts"
    UNCLEAR = "unclear"


TRANSFERS, DRIFTS, UNCLEAR = Verdict.TRANSFERS, Verdict.DRIFTS, Verdict.UNCLEAR


@dataclass
class TransferResult:
    """The sweep's tables (see the ``*_COLUMNS`` tuples; ``noise``: :mod:`~mhc_mup.training.transfer.noise`;
    ``edges`` and ``edge_drift``: :mod:`~mhc_mup.training.transfer.edges`; ``anchors``, ``relative`` (each mHC
    rule against its control) and ``rules`` (two mHC rules of one body against each other):
    :mod:`~mhc_mup.training.transfer.anchors`; ``penalty`` and ``rule_penalty``, a multiplier sweep's:
    :mod:`~mhc_mup.training.transfer.penalty`), its drift
    verdicts, the corpora its runs trained on
    (each run's description, with its content hash), and ``values``: each configuration × width's own values
    ``(config, width) → (J,)``, increasing, over which it was analysed; ``left_out``: those of them a partial
    reading (``analysis.partial``) left out, not yet run by every seed there."""

    config: TransferConfig
    runs: pd.DataFrame
    curves: pd.DataFrame
    seed_optima: pd.DataFrame
    optima: pd.DataFrame
    drift: pd.DataFrame
    missing: int = 0
    executed: int = 0
    notes: list[str] = field(default_factory=list)
    routing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ROUTING_TABLE_COLUMNS)))
    logits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LOGIT_TABLE_COLUMNS)))
    noise: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(NOISE_COLUMNS)))
    edges: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EDGE_COLUMNS)))
    edge_drift: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(EDGE_DRIFT_COLUMNS)))
    anchors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ANCHOR_COLUMNS)))
    relative: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(RELATIVE_COLUMNS)))
    rules: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(RELATIVE_COLUMNS)))
    penalty: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(PENALTY_COLUMNS)))
    rule_penalty: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(RULE_PENALTY_COLUMNS)))
    corpora: tuple[str, ...] = ()
    values: dict[tuple[str, int], tuple[float, ...]] = field(default_factory=dict)
    left_out: dict[tuple[str, int], tuple[float, ...]] = field(default_factory=dict)

    @property
    def ragged(self) -> bool:
        """Whether some configuration × width was analysed over other values than the grid's (``config.grid.lrs``,
        the folder's union): a folder grown adaptively."""
        grid = [log2_key(v) for v in self.config.grid.lrs]
        return any([log2_key(v) for v in own] != grid for own in self.values.values())


# ── the optimum of one seed's curve ────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class ParabolaFit:
    """``log2 η*`` and the loss there from ``L ≈ a·x² + b·x + c`` (``x = log2 η``) around the argmin;
    NaN with ``edge`` (``low`` / ``high`` / ``""``) and ``note`` when there is no interior minimum.
    ``off_grid``: the argmin's window leaves the grid at ``edge`` (the note says to extend it), as against a
    window that holds a diverged run."""

    log2_opt: float
    loss_opt: float
    curvature: float
    argmin: float
    edge: str
    note: str
    off_grid: bool = False


def fit_parabola(
    log2_lrs: Iterable[float],
    losses: Iterable[float],
    halfwidth: int = 1,
    *,
    noun: str = "learning rate",
    symbol: str = "η",
) -> ParabolaFit:
    """The optimum of ``losses`` vs ``log2_lrs`` (ascending; NaN marks a diverged run) from a least-squares
    parabola through the argmin and its ``halfwidth`` grid neighbours on each side: ``x* = −b/(2a)``.

    No optimum (NaN) when the argmin's window leaves the grid or holds a diverged run (``edge`` says on which
    side: the optimum may lie beyond it), or when the parabola opens downwards. ``noun`` and ``symbol`` name
    the swept value in the notes.
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

    def near_end(steps: int, end: str) -> str:  # at the grid's end, or within the window's reach of it
        if steps == 0:
            return f"the {end} {noun} {at(i)}"
        return f"{at(i)}, {steps} point{'s' * (steps > 1)} in from the {end} {noun}"

    if lo < 0:
        note = f"minimum at {near_end(i, 'smallest')}: extend the grid down"
        return ParabolaFit(nan, nan, nan, x[i], "low", note, off_grid=True)
    if hi >= len(x):
        note = f"minimum at {near_end(len(x) - 1 - i, 'largest')}: extend the grid up"
        return ParabolaFit(nan, nan, nan, x[i], "high", note, off_grid=True)
    if not ok[lo : hi + 1].all():
        side = "high" if not ok[i + 1 : hi + 1].all() else "low"
        note = f"minimum at {at(i)} next to a diverged run ({side}er {symbol}): refine the grid there"
        return ParabolaFit(nan, nan, nan, x[i], side, note)
    a, b, c = np.polyfit(x[lo : hi + 1], y[lo : hi + 1], 2)
    if not a > 0:
        return ParabolaFit(nan, nan, nan, x[i], "", f"parabola around {at(i)} opens downwards (a = {a:.3g})")
    xs = -b / (2 * a)
    if not x[lo] <= xs <= x[hi]:
        return ParabolaFit(nan, nan, a, x[i], "", f"parabola vertex 2^{xs:.2f} outside the fitted points")
    return ParabolaFit(float(xs), float(c - b * b / (4 * a)), float(a), float(x[i]), "", "")


# ── the whole grid ─────────────────────────────────────────────────────────────────────────────
def analyse(cfg: TransferConfig, records: list[dict], grids: Sequence[SweepGrid] | None = None) -> TransferResult:
    """Tables, optima and drift fits from run records, per configuration and width of ``cfg``'s grid.

    ``grids``: the grids swept into the records' folder (default: ``cfg``'s grid alone), which say what each
    configuration × width was planned to run; a configuration × width that no grid planned and no record holds
    is left out. Each is analysed over its own values, the planned ones and any value its records hold
    (:func:`~mhc_mup.training.transfer.joint.width_values`); missing points are left out and a seed missing one of
    its width's values is "not finished yet". A uniform grid (one full cross product) gives what it always did.
    """
    runs, curves = runs_table(records), curves_table(records)
    swept = grids if grids is not None else (cfg.grid,)
    planned, seeds = grid_values(swept), grid_seeds(swept)
    parts = {c.name: _analyse_configuration(cfg, c.name, runs[runs.config == c.name], planned, seeds)
             for c in cfg.grid.configs}  # fmt: skip
    seed_optima = pd.DataFrame([r for p in parts.values() for r in p.seed_rows], columns=list(SEED_OPTIMA_COLUMNS))
    optima = pd.DataFrame([r for p in parts.values() for r in p.optimum_rows], columns=list(OPTIMA_COLUMNS))
    drift = pd.DataFrame([p.drift_row for p in parts.values()], columns=list(DRIFT_COLUMNS))
    notes = [*_loss_notes(cfg), *_divergence_notes(runs)]
    result = TransferResult(cfg, runs, curves, seed_optima, optima, drift, notes=notes,
                            corpora=tuple(sorted({r["corpus"] for r in records if r.get("corpus")})))  # fmt: skip
    result.routing = routing_table(runs, cfg.analysis.loss_column)
    result.logits = logits_table(runs, cfg.analysis.loss_column)
    result.values = {key: v for p in parts.values() for key, v in p.values.items()}
    result.left_out = {key: v for p in parts.values() for key, v in p.left_out.items()}
    result.noise = noise_table(cfg, runs, records, result.values)
    result.edges = _concat([p.edges for p in parts.values()], EDGE_COLUMNS)
    result.edge_drift = _concat([p.edge_drift for p in parts.values()], EDGE_DRIFT_COLUMNS)
    result.anchors = anchor_table(cfg, drift)
    joint_inputs = {name: p.joint_input for name, p in parts.items()}
    result.relative = _relative_table(cfg, drift, joint_inputs)
    result.rules = _relative_table(cfg, drift, joint_inputs, rule_pairs(cfg))
    result.penalty = _concat([p.penalty for p in parts.values()], PENALTY_COLUMNS)
    result.rule_penalty = _concat([p.rule_penalty for p in parts.values()], RULE_PENALTY_COLUMNS)
    return result


@dataclass(frozen=True)
class _ConfigurationAnalysis:
    """One configuration's share of :func:`analyse`'s tables, its values per width, and what its drift against
    the control needs: its complete curves, the widths its joint fit placed an optimum at, and that fit."""

    seed_rows: list[dict]
    optimum_rows: list[dict]
    drift_row: dict
    edges: pd.DataFrame
    edge_drift: pd.DataFrame
    penalty: pd.DataFrame
    rule_penalty: pd.DataFrame
    values: dict[tuple[str, int], tuple[float, ...]]
    joint_input: tuple[list[WidthCurves], frozenset[int], JointOptimumFit | None]
    left_out: dict[tuple[str, int], tuple[float, ...]]


def _analyse_configuration(
    cfg: TransferConfig,
    name: str,
    runs: pd.DataFrame,
    planned: Mapping[tuple[str, int], tuple[float, ...]],
    seeds: Mapping[tuple[str, int], int],
) -> _ConfigurationAnalysis:
    """Configuration ``name``'s runs (rows of ``transfer.csv``) at each width planned for it or run (``planned``
    values and ``seeds`` there): the seeds' and the widths' optima, both drift fits, the edges and the penalty. A
    width is fitted across widths once complete (:func:`~mhc_mup.training.transfer.joint.width_curves`); a partly
    run one only in the optima table."""
    at = {w: runs[runs.width == w] for w in cfg.grid.widths}
    widths = [w for w in cfg.grid.widths if (name, w) in planned or len(at[w])]
    own = {w: width_values(at[w], planned.get((name, w), ())) for w in widths}
    partly_read, readable_partly = _partial_reading(cfg, at, own)
    own, left_out = (partly_read, readable_partly) if cfg.analysis.partial else (own, {})
    loss_grids = [wc for w in widths if (wc := width_curves(cfg, at[w], own[w]))]
    complete = {wc.width for wc in loss_grids}
    unfinished = [w for w in widths if len(at[w]) and w not in complete]
    joint_row, joint_widths, joint = joint_drift(cfg, loss_grids, cfg.sweep.symbol)
    joint_row |= {"joint_note": "; ".join(filter(None, [joint_row["joint_note"], _unfinished_note(unfinished),
                                                        _partial_hint(sorted(set(unfinished) & set(readable_partly))),
                                                        _partial_note(left_out)]))}  # fmt: skip
    placed = frozenset(w for w, (_, x) in joint_widths.items() if math.isfinite(x))
    seed_rows, optimum_rows = [], []
    per_width: dict[int, list[float]] = {}
    width_optima: dict[int, float] = {}
    for w in widths:
        fits = _seed_fits(cfg, at[w], own[w])
        if w in left_out:
            fits = [(seed, _partial_edge(fit, own[w], left_out[w])) for seed, fit in fits]
        seed_rows += [_seed_row(name, w, s, fit) for s, fit in fits]
        row, optima = _width_optimum(cfg, name, w, fits)
        row, optima = _with_joint(_with_unstarted(row, fits, seeds.get((name, w), 0)), optima,
                                  *joint_widths.get(w, (False, math.nan)))  # fmt: skip
        if w in left_out:
            row["note"] = "; ".join(filter(None, [row["note"], _partial_note({w: left_out[w]})]))
        optimum_rows.append(row)
        width_optima[w] = row["log2_lr_opt"]
        if optima and w in complete:  # one seed's optimum does not stand for a partly run width
            per_width[w] = optima
    edges = edges_table(cfg, name, loss_grids)
    confidence = cfg.analysis.fit.confidence
    penalty = penalty_table(name, loss_grids, width_optima, _base_of(cfg, loss_grids), confidence)
    rule = (rule_penalty_table(name, loss_grids, width_optima, confidence) if cfg.sweep.hyper != "lr"
            else pd.DataFrame(columns=list(RULE_PENALTY_COLUMNS)))  # fmt: skip
    return _ConfigurationAnalysis(
        seed_rows, optimum_rows, drift_row(cfg, name, per_width, widths, unfinished) | joint_row, edges,
        edge_drift(cfg, name, loss_grids, edges), penalty, rule, {(name, w): v for w, v in own.items()},
        (loss_grids, placed, joint), {(name, w): v for w, v in left_out.items()},
    )  # fmt: skip


def _base_of(cfg: TransferConfig, curves: list[WidthCurves]) -> int:
    """The width a configuration's optimum is transferred from: the sweep's base width where it was run, else
    its smallest width."""
    widths = [c.width for c in curves]
    return cfg.base_width if cfg.base_width in widths or not widths else min(widths)


def _relative_table(
    cfg: TransferConfig,
    drift: pd.DataFrame,
    joint_inputs: Mapping[str, tuple[list[WidthCurves], frozenset[int], JointOptimumFit | None]],
    pairs: list[tuple[Configuration, Configuration]] | None = None,
) -> pd.DataFrame:
    """Each mHC configuration's drift against its control, or against another mHC rule (``pairs``; see
    :func:`~mhc_mup.training.transfer.anchors.relative_drift`), both joint fits over the same widths, paired
    (:func:`~mhc_mup.stats.optimum.paired_difference`): where the two fitted different widths, both are fitted again
    over those they share (at least 2), so that slopes over different spans are not compared."""

    def same_widths(c: Configuration, a: Configuration, row_c: Mapping, row_a: Mapping) -> tuple:
        (curves_c, fitted_c, fit_c), (curves_a, fitted_a, fit_a) = joint_inputs[c.name], joint_inputs[a.name]
        common = fitted_c & fitted_a
        note = ""
        if len(common) < 2:
            few = f"fits of {len(fitted_c)} and {len(fitted_a)} widths, fewer than 2 in common"
            return row_c, row_a, "" if fitted_c == fitted_a else few, None
        if fitted_c != fitted_a:
            (row_c, _, fit_c), (row_a, _, fit_a) = (joint_drift(cfg, [g for g in curves if g.width in common])
                                                    for curves in (curves_c, curves_a))  # fmt: skip
            note = f"both refitted over the {len(common)} widths they share ({min(common)}–{max(common)})"
        return row_c, row_a, note, paired_difference(fit_c, fit_a) if fit_c and fit_a else None

    return relative_drift(cfg, drift, same_widths, pairs)


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``frames`` in one table with ``columns`` (empty frames left out: pandas warns on them)."""
    full = [f for f in frames if not f.empty]
    return pd.concat(full, ignore_index=True) if full else pd.DataFrame(columns=list(columns))


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per run (:data:`TRANSFER_COLUMNS`); ``value`` is the swept value (runs stored before other
    hyperparameters could be swept are lr runs: ``hyper`` lr, ``value`` their lr)."""
    rows = [{c: r.get(c) for c in TRANSFER_COLUMNS} | {"hyper": r.get("hyper", "lr"), "value": r.get("value", r["lr"])}
            | _probe_of(r, "routing", ROUTING_STATS) | _probe_of(r, "logits", LOGIT_STATS)
            for r in records]  # fmt: skip
    runs = pd.DataFrame(rows, columns=list(TRANSFER_COLUMNS))
    for col in ("final_train_loss", "final_val_loss", "initial_loss", "tokens_per_s", "seconds", "runs_per_device",
                "value", *ROUTING_COLUMNS, *LOGIT_COLUMNS):  # fmt: skip
        runs[col] = runs[col].astype(float)  # runs_per_device: NaN for runs stored before it was recorded
    return runs


def _probe_of(record: dict, key: str, stats: tuple[str, ...]) -> dict:
    """The record's probe ``key`` (``routing``, ``logits``) at its end and, as ``<stat>_init``, at its start: NaN
    where it has none (a control's routing, a run stored before the probe was recorded)."""
    end, start = record.get(key) or {}, record.get(f"{key}_init") or {}
    out = {k: end.get(k) for k in stats} | {f"{k}_init": start.get(k) for k in stats}
    return {k: math.nan if v is None else v for k, v in out.items()}


def routing_table(runs: pd.DataFrame, loss: str = _DEFAULT_LOSS) -> pd.DataFrame:
    """Per configuration and width (:data:`ROUTING_TABLE_COLUMNS`): the routing statistics, mean over seeds, of
    the runs at the grid value with the lowest seed-mean ``loss`` (the best runs of that width); mHC runs only, in
    the configurations' order and increasing width."""
    hc = runs[runs.comb_rms.notna() | runs.comb_rms_init.notna()]
    rows = []
    for name, width, ok, best in _best_values(hc, loss):
        at = ok[ok.value == best]
        rows.append({"config": name, "width": width, "value": best, "n_seeds": len(at)}
                    | {k: float(at[k].mean()) for k in ROUTING_COLUMNS})  # fmt: skip
    return pd.DataFrame(rows, columns=list(ROUTING_TABLE_COLUMNS))


def logits_table(runs: pd.DataFrame, loss: str = _DEFAULT_LOSS) -> pd.DataFrame:
    """Per configuration, width and point of :data:`LOGIT_POINTS` (:data:`LOGIT_TABLE_COLUMNS`): the logit
    statistics, mean over seeds, of the runs at the best grid value by ``loss`` (over every run of that width) and
    at the smallest finished one at least twice it, over the runs there that recorded them (no row where there are
    none: runs stored before the probe), ordered as :func:`routing_table`."""
    rows = []
    for name, width, ok, best in _best_values(runs, loss):
        above = ok.value[ok.value >= 2 * best]
        for at, value in zip(LOGIT_POINTS, (best, above.min() if len(above) else None), strict=True):
            sel = ok[(ok.value == value) & ok.attn_logit_max.notna()]
            if value is not None and not sel.empty:
                rows.append({"config": name, "width": width, "at": at, "value": float(value), "n_seeds": len(sel)}
                            | {k: float(sel[k].mean()) for k in LOGIT_COLUMNS})  # fmt: skip
    return pd.DataFrame(rows, columns=list(LOGIT_TABLE_COLUMNS))


def _best_values(runs: pd.DataFrame, loss: str = _DEFAULT_LOSS) -> Iterator[tuple[str, int, pd.DataFrame, float]]:
    """Each configuration and width of ``runs``, in the configurations' order and increasing width: its finished
    runs and their grid value with the lowest seed-mean ``loss`` (a column; none without a finished run)."""
    order = list(dict.fromkeys(runs.config))
    for name, width in sorted(set(zip(runs.config, runs.width, strict=True)), key=lambda k: (order.index(k[0]), k[1])):
        sel = runs[(runs.config == name) & (runs.width == width)]
        ok = sel[~sel.diverged.astype(bool)]
        if not ok.empty:
            yield name, int(width), ok, float(ok.groupby("value")[loss].mean().idxmin())


def curves_table(records: list[dict]) -> pd.DataFrame:
    """Every training loss and every validation point of every run (:data:`CURVE_COLUMNS`)."""
    rows = []
    for r in records:
        base, value = (r["config"], r["width"], r["seed"], r["lr"]), r.get("value", r["lr"])
        rows += [(*base, "train", k + 1, v, value) for k, v in enumerate(r["train_loss"])]
        rows += [(*base, "val", int(step), v, value) for step, v in r["val_curve"]]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _unfinished_note(widths: Sequence[int]) -> str:
    """The note for widths with runs but no curves yet (a seed has not run every value there), which both drift
    fits, the noise and the edges leave out; ``""`` for none."""
    return f"not finished yet, left out: {fmt_widths(sorted(widths))}" if widths else ""


def _partial_hint(widths: Sequence[int]) -> str:
    """For unfinished widths a partial reading could read (enough values every seed there has run): how to read
    them; ``""`` for none."""
    if not widths:
        return ""
    return f"--partial reads {fmt_widths(widths)} over the values every seed has run"


def _partial_reading(
    cfg: TransferConfig, at: Mapping[int, pd.DataFrame], own: Mapping[int, tuple[float, ...]]
) -> tuple[dict[int, tuple[float, ...]], dict[int, tuple[float, ...]]]:
    """``(values read, values left out)`` per width of a partial reading: it leaves out the values not every seed
    with runs there has run, where the rest still give a parabola (``2·fit_halfwidth + 1`` values, at least 3); a
    width with fewer keeps all its values and stays unfinished."""
    least = max(3, 2 * cfg.analysis.fit_halfwidth + 1)
    read, left_out = dict(own), {}
    for w, values in own.items():
        kept = values_every_seed_ran(at[w], values)
        if len(at[w]) and len(kept) < len(values) and len(kept) >= least:
            read[w], left_out[w] = kept, tuple(v for v in values if v not in kept)
    return read, left_out


def _partial_edge(fit: ParabolaFit, kept: tuple[float, ...], left_out: tuple[float, ...]) -> ParabolaFit:
    """A seed's fit read partly whose minimum sits at an end of the kept values beyond which left-out values lie:
    not a grid to extend, but runs to finish (its note says so)."""
    beyond = {"low": min(left_out) < min(kept), "high": max(left_out) > max(kept)}
    if not (fit.off_grid and beyond[fit.edge]):  # interior, or next to a diverged run: not the kept values' end
        return fit
    at_end = fit.note.rpartition(": extend the grid")[0]
    side = "below" if fit.edge == "low" else "above"
    note = f"{at_end} of those read partly; the values {side} it are not run by every seed yet"
    return dataclasses.replace(fit, note=note)


def _partial_note(left_out: Mapping[int, tuple[float, ...]]) -> str:
    """The note for values a partial reading (``--partial``) left out, ``width → values`` not every seed there
    has run yet; ``""`` for none."""
    if not left_out:
        return ""
    each = " and ".join(f"d = {w}: {log2_text(vs)}" for w, vs in sorted(left_out.items()))
    return f"read partly, left out the values not every seed has run yet ({each})"


def _seed_fits(cfg: TransferConfig, runs: pd.DataFrame, values: tuple[float, ...]) -> list[tuple[int, ParabolaFit]]:
    """``(seed, optimum)`` of each seed with a stored run among ``runs`` (one configuration at one width, whose
    own values are ``values``)."""
    fits = []
    for s in range(cfg.grid.seeds):
        sel = runs[runs.seed == s]
        if not sel.empty:
            fits.append((s, _seed_fit(cfg, sel, values)))
    return fits


def _seed_fit(cfg: TransferConfig, sel: pd.DataFrame, lrs: tuple[float, ...]) -> ParabolaFit:
    """The parabola's optimum over one seed's runs, once it has run every one of its width's values ``lrs``
    (increasing, not necessarily evenly spaced: the parabola is a least-squares fit in ``log2``); the diverged runs
    left out of it and named in its note."""
    stored = set(map(log2_key, sel.value))
    missing = [lr for lr in lrs if log2_key(lr) not in stored]
    if missing:
        note = f"{len(missing)} of {len(lrs)} runs not finished yet"
        return ParabolaFit(math.nan, math.nan, math.nan, math.nan, "", note)
    rows = zip(sel.value, sel[cfg.analysis.loss_column], sel.diverged, strict=True)
    by_lr = {log2_key(x): v for x, v, dv in rows if not dv}
    losses = [by_lr.get(log2_key(lr), math.nan) for lr in lrs]
    symbol = cfg.sweep.symbol.removesuffix("*")
    x = [math.log2(lr) for lr in lrs]
    fit = fit_parabola(x, losses, cfg.analysis.fit_halfwidth, noun=cfg.sweep.noun, symbol=symbol)
    diverged = sel.diverged.astype(bool)
    if not diverged.any():
        return fit
    div = log2_text(sorted(sel.value[diverged]))
    note = "; ".join(filter(None, [fit.note, f"diverged, left out of the fit: {symbol} = {div}"]))
    return dataclasses.replace(fit, note=note)


def _seed_row(name: str, width: int, seed: int, fit: ParabolaFit) -> dict:
    return {
        "config": name, "width": width, "seed": seed, "log2_lr_opt": fit.log2_opt, "lr_opt": 2.0**fit.log2_opt,
        "loss_at_opt": fit.loss_opt, "curvature": fit.curvature, "argmin_log2_lr": fit.argmin, "edge": fit.edge,
        "note": fit.note,
    }  # fmt: skip


def _width_optimum(
    cfg: TransferConfig, name: str, width: int, fits: list[tuple[int, ParabolaFit]]
) -> tuple[dict, list[float]]:
    """The width's row of the optima table (mean ``log2 η*`` over the seeds with an optimum, and its interval over
    them: a percentile bootstrap united with the t-interval, since over a few seeds the bootstrap alone spans
    about their range and under-covers), and those seeds' ``η*``."""
    good = [f for _, f in fits if math.isfinite(f.log2_opt)]
    values = np.array([f.log2_opt for f in good])
    notes = [f"seed {s}: {f.note}" for s, f in fits if f.note]
    if len(values) >= 2:
        fit = cfg.analysis.fit
        est = bootstrap_estimate(values, n_boot=fit.n_boot, confidence=fit.confidence, seed=0)
        t_low, t_high = mean_t_interval(values, fit.confidence)
        mean, lo, hi = est.value, min(est.ci_low, t_low), max(est.ci_high, t_high)
    elif len(values) == 1:
        mean, lo, hi = float(values[0]), math.nan, math.nan
        notes.append("one seed has an optimum: no interval")
    else:
        mean = lo = hi = math.nan
        if not fits:
            notes.append("no runs yet")
    argmins = [f.argmin for _, f in fits if math.isfinite(f.argmin)]
    row = {
        "config": name, "width": width, "log2_lr_opt": mean, "lr_opt": 2.0**mean, "ci_low": lo, "ci_high": hi,
        "loss_at_opt": float(np.mean([f.loss_opt for f in good])) if good else math.nan,
        "n_seeds_fit": len(values), "n_seeds": len(fits),
        "argmin_log2_lr": float(np.median(argmins)) if argmins else math.nan, "note": "; ".join(notes),
    }  # fmt: skip
    return row, list(2.0**values)


def _with_unstarted(row: dict, fits: list[tuple[int, ParabolaFit]], planned_seeds: int) -> dict:
    """The optima row with the seeds the folder's grids planned there that have no run yet named in its note (a
    width fitted with the seeds it has would otherwise look whole); a width with no run at all says so already."""
    started = {s for s, _ in fits}
    idle = [s for s in range(planned_seeds) if s not in started]
    if not idle or not started:
        return row
    said = f"seed{'s' if len(idle) > 1 else ''} {', '.join(map(str, idle))}: no runs yet"
    return row | {"note": "; ".join(filter(None, [row["note"], said]))}


def _with_joint(row: dict, optima: list[float], flat: bool, joint_x: float) -> tuple[dict, list[float]]:
    """The width's row with the joint fit's optimum; at a width where the loss is flat within the seeds'
    noise, no optimum (the per-seed parabolas' vertices there are noise) and a note saying so."""
    row = row | {"joint_log2_opt": joint_x, "flat": flat}
    if not flat:
        return row, optima
    note = "; ".join(filter(None, [row["note"], "loss flat within the seeds' noise: no optimum"]))
    blank = dict.fromkeys(("log2_lr_opt", "lr_opt", "ci_low", "ci_high", "loss_at_opt"), math.nan)
    return row | blank | {"note": note}, []


def _loss_notes(cfg: TransferConfig) -> list[str]:
    """A sentence when the fits read another loss than the final validation loss (:data:`~.config.LOSSES`)."""
    if cfg.analysis.loss == "val":
        return []
    return [f"Every fit here reads each run's {cfg.analysis.loss_words} (--loss {cfg.analysis.loss}), not its final "
            "validation loss: bytes the run had not seen before only where it reads its training split at most "
            "once (Settings and cost say how often these runs did)."]  # fmt: skip


def _divergence_notes(runs: pd.DataFrame) -> list[str]:
    n_div = int(runs.diverged.astype(bool).sum()) if len(runs) else 0
    if not n_div:
        return []
    return [f"{n_div} of {len(runs)} runs diverged; they are kept in transfer.csv and left out of the fits"]


# ── the drift of the optimum ───────────────────────────────────────────────────────────────────
def _geomean(a: np.ndarray) -> np.ndarray:
    return np.exp(np.log(a).mean(axis=-1))


def drift_row(
    cfg: TransferConfig,
    name: str,
    per_width: Mapping[int, list[float]],
    analysed: Sequence[int] | None = None,
    unfinished: Sequence[int] = (),
) -> dict:
    """Fit ``η* ≈ c·d^β`` (the swept value's optimum) over the widths that have one; the verdict from ``β``'s
    interval, its direction naming the swept value (``lr_fn* shrinks with width``). ``analysed``:
    the configuration's widths (default: the grid's), those without an optimum named in the note; ``unfinished``:
    those of them left out because a seed there has not run all its values (named as such)."""
    widths = sorted(per_width)
    analysis = cfg.analysis
    row = dict.fromkeys(DRIFT_COLUMNS, math.nan) | {"config": name, "tolerance": analysis.tolerance,
                                                    "n_widths": len(widths)}  # fmt: skip
    skipped = [w for w in (cfg.grid.widths if analysed is None else analysed) if w not in per_width]
    no_optimum = sorted(set(skipped) - set(unfinished))
    note = "; ".join(filter(None, [f"no optimum at {fmt_widths(no_optimum)}" if no_optimum else "",
                                   _unfinished_note(unfinished)]))  # fmt: skip
    if len(widths) < 2:
        why = "; ".join(filter(None, [note, "optimum at < 2 widths: no drift fit"]))
        return row | {"verdict": UNCLEAR, "direction": "", "note": why}
    fit = fit_power_law(widths, [np.array(per_width[w]) for w in widths], _geomean, n_boot=analysis.fit.n_boot,
                        confidence=analysis.fit.confidence, seed=0)  # fmt: skip
    low, high, fit_note = fit.ci_low, fit.ci_high, fit.note
    # two widths and one seed at one of them: no regression interval and a bootstrap over one seed, a
    # zero-width interval that says nothing
    no_interval = len(widths) < 3 and min(len(per_width[w]) for w in widths) < 2
    if no_interval:
        note = "; ".join(filter(None, [note, ONE_SEED_NOTE]))
    elif len(widths) == 2:
        a, b = (np.log2(per_width[w]) for w in widths)
        dx = math.log2(widths[1] / widths[0])
        low, high, fit_note = two_width_interval(fit, a, b, dx, analysis.fit.confidence)
    reading = UNCLEAR_READING if no_interval else classify_interval(fit.exponent, low, high, analysis.tolerance)
    verdict, direction = drift_verdict(reading, cfg.sweep.symbol)
    row |= {
        "exponent": fit.exponent, "ci_low": low, "ci_high": high, "boot_low": fit.boot_low,
        "boot_high": fit.boot_high, "ols_low": fit.ols_low, "ols_high": fit.ols_high, "r2": fit.r2,
        "verdict": Verdict(verdict), "direction": direction,
        "note": "; ".join(filter(None, [note, fit_note])),
    }  # fmt: skip
    if no_interval:
        row |= {"ci_low": math.nan, "ci_high": math.nan}
    return row


EXPONENT_PRINT_BOUND = 10.0
"""A drift exponent's interval bound beyond ± this (octaves of the swept value per doubling of width; a two-width
fit on a few seeds can give thousands) prints as ``< -10`` / ``> +10`` in sentences, tables and figures; the
tables written as CSV keep the number."""


def drift_sentence(row: Mapping, confidence: float = 0.95, symbol: str = "η*", noun: str = "learning rate") -> str:
    """One sentence per configuration, built from its fit row (``symbol``, ``noun``: the swept value's names)."""
    name, tol = row["config"], row["tolerance"]
    if not math.isfinite(row["exponent"]):
        return f"{name}: no drift fit ({row['note']}); verdict unclear."
    if not math.isfinite(row["ci_low"]):
        return f"{name}: {symbol} ∝ d^{row['exponent']:+.3f} without an interval ({row['note']}); verdict unclear."
    head = (
        f"{name}: {symbol} ∝ d^{row['exponent']:+.3f} ({confidence:.0%} interval "
        f"{fmt_interval(row['ci_low'], row['ci_high'], cap=EXPONENT_PRINT_BOUND)}, {row['n_widths']} widths)"
    )
    return head + _verdict_clause(row["verdict"], tol, row["direction"], f"the optimal {noun} transfers")


def joint_sentence(row: Mapping, confidence: float = 0.95, symbol: str = "η*") -> str:
    """One sentence per configuration from the joint fit's columns of its drift row."""
    name, tol = row["config"], row["tolerance"]
    note = f" ({row['joint_note']})" if row["joint_note"] else ""
    if not math.isfinite(row["joint_exponent"]):
        return f"{name}: no joint fit{note}; verdict unclear."
    head = (
        f"{name}: {symbol} ∝ d^{row['joint_exponent']:+.3f} ({confidence:.0%} interval "
        f"{fmt_interval(row['joint_low'], row['joint_high'], cap=EXPONENT_PRINT_BOUND)}, joint fit of "
        f"{row['joint_widths']} widths){note}"
    )
    return head + _verdict_clause(row["joint_verdict"], tol, row["joint_direction"], "it transfers")


def _verdict_clause(verdict: str, tol: float, direction: str, transfers: str) -> str:
    """The end of a drift sentence: why the interval gives ``verdict``."""
    if verdict == TRANSFERS:
        return f"; the whole interval lies inside ±{tol:g}: {transfers}."
    if verdict == DRIFTS:
        return f"; the exponent lies outside ±{tol:g}: it drifts ({direction})."
    return f"; the interval is neither inside ±{tol:g} nor clear of 0: unclear (more seeds or widths)."
