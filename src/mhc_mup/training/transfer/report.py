"""A transfer sweep's report (its blocks: anchors, verdicts, tables, the figures of :mod:`.figures`) and every file
it writes into its folder (:func:`write_outputs`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mhc_mup._io import gzip_text, write_bundle
from mhc_mup.reporting.numbers import fmt_interval, fmt_number, fmt_widths
from mhc_mup.training.data import described_train_bytes
from mhc_mup.training.transfer.analysis import (
    CURVE_COLUMNS,
    DRIFT_COLUMNS,
    EXPONENT_PRINT_BOUND,
    LOGIT_TABLE_COLUMNS,
    OPTIMA_COLUMNS,
    ROUTING_TABLE_COLUMNS,
    SEED_OPTIMA_COLUMNS,
    TRANSFER_COLUMNS,
    TransferResult,
    drift_sentence,
    joint_sentence,
)
from mhc_mup.training.transfer.anchors import ANCHOR_COLUMNS, RELATIVE_COLUMNS, anchor_sentence
from mhc_mup.training.transfer.config import log2_text
from mhc_mup.training.transfer.edges import EDGE_COLUMNS, EDGE_DRIFT_COLUMNS
from mhc_mup.training.transfer.figures import logits_figure, optima_figure, routing_figure, transfer_figure
from mhc_mup.training.transfer.logits import LOGIT_STATS
from mhc_mup.training.transfer.noise import NOISE_COLUMNS
from mhc_mup.training.transfer.penalty import PENALTY_COLUMNS, RULE_PENALTY_COLUMNS

if TYPE_CHECKING:
    from mhc_mup.reporting.blocks import Report

__all__ = ["build_transfer_report", "write_outputs"]


def _exponent_interval(low: float, high: float) -> str:
    """A drift exponent's interval in a table or sentence: ``[-3.494, > +10]`` (:data:`EXPONENT_PRINT_BOUND`)."""
    return fmt_interval(low, high, cap=EXPONENT_PRINT_BOUND)


def _method(result: TransferResult) -> str:
    """How both drift estimates are made, with the sweep's own settings."""
    a, recipe = result.config.analysis, result.config.recipe
    sym = result.config.sweep.symbol
    v = sym.removesuffix("*")  # the swept value: η, or a multiplier's name
    return (
        f"Joint fit: every run within {a.joint_halfwidth} grid point(s) of each width's argmin of the seed-mean "
        f"{a.loss_words}, all widths and seeds at once, L = c_curve + a(d)·t²·(1 + κ·t) with t = log2 {v} − x0 − "
        f"β·log2 d (a free height per width and seed, curvature log-linear in width, a shared skew); "
        f"interval = the fit's t-interval (widened by √F when the widths' optima leave the line) united with a "
        f"bootstrap over seeds. A width whose loss does not depend on {v} beyond the seeds' noise (F-test) is flat: "
        f"no optimum there. Per-seed optima (the earlier estimator, for comparison): the vertex of a parabola "
        f"through each seed's argmin and its {a.fit_halfwidth} neighbour(s) on each side; per width the mean of "
        f"log2 {sym} with an interval over seeds (a bootstrap united with the t-interval); {sym} ≈ c·d^β by "
        f"least squares on the per-seed optima, interval = "
        f"union of the bootstrap over seeds and the regression t-interval (across two widths, the seeds' Welch "
        f"t-interval of the slope). A run diverged when a loss was not finite "
        f"or above {recipe.divergence_factor:g}× its first-step loss."
    )


def _table_section(heading: str, text: str, columns: list[str], rows: list[list[str]]) -> list:
    """A report section: its heading, the paragraph that says how to read it, and its table."""
    from mhc_mup.reporting.blocks import Heading, Paragraph, Table

    return [Heading(heading), Paragraph(text), Table(columns, rows)]


def _anchor_blocks(result: TransferResult) -> list:
    """The sanity anchors first (a sentence per control), then each mHC configuration's drift against its body's
    control; nothing for a sweep without a control or of another hyperparameter than the learning rate."""
    from mhc_mup.reporting.blocks import Heading, Paragraph, Table

    if result.anchors.empty:
        return []
    tol = result.config.analysis.tolerance
    blocks: list = [Heading("Sanity anchors"),
                    Paragraph("The plain-residual controls have known answers: under the µP body the optimal "
                              "learning rate transfers, under SP it shrinks with width. Read the verdicts below only "
                              "where the anchors hold.")]  # fmt: skip
    blocks += [Paragraph(anchor_sentence(r, tol, not result.relative.empty)) for r in result.anchors.to_dict("records")]
    if result.relative.empty:
        return blocks
    blocks.append(Table(
        ["configuration", "against", "β − β_control", f"{result.config.analysis.fit.confidence:.0%} interval",
         "verdict", "paired interval", "note"],
        _relative_rows(result.relative),
        f"Drift against the control of the same body (joint fits; the interval combines the two in quadrature, "
        f"each side on its own): within ±{tol:g}, the configuration's optimum moves no more with width than the "
        f"control's. A reading that assumes the method's own shift adds to both alike. The paired interval keeps "
        f"the noise the two share (the same seeds and batches; cluster-robust over the width × seed curves): "
        f"narrower, but it covers only 0.87–0.88 at 95% where one configuration's optimum leaves the power law at "
        f"a width for all its seeds at once, so the verdict reads the quadrature (docs/transfer.md)",
    ))  # fmt: skip
    return blocks


def _rule_drift_blocks(result: TransferResult) -> list:
    """Two mHC rules of one body against each other (``rule_drift.csv``), as each is against the control; nothing
    where the sweep has no such pair."""
    if result.rules.empty:
        return []
    a = result.config.analysis
    return _table_section(
        "Which mHC rule's optimum moves more with width?",
        f"Two rules of the same body fitted against each other, δ = β_first − β_second of the joint fits, as each is "
        f"against the control: the same intervals, and the verdict reads the quadrature. Within ±{a.tolerance:g} "
        f"their optima move alike; outside, the direction says which way the first moves relative to the second.",
        ["configuration", "against", "β − β_other", f"{a.fit.confidence:.0%} interval", "verdict", "paired interval",
         "note"],
        _relative_rows(result.rules),
    )  # fmt: skip


def _relative_rows(table: pd.DataFrame) -> list[list[str]]:
    """The cells of a relative-drift table (:data:`~mhc_mup.training.transfer.anchors.RELATIVE_COLUMNS`): each
    configuration, the one it is fitted against, δ, its interval, the verdict and the paired interval."""
    return [[r["config"], r["anchor"], fmt_number(r["exponent"], "+.3f"), _exponent_interval(r["ci_low"], r["ci_high"]),
             _verdict(r["verdict"], r["direction"]), _exponent_interval(r["paired_low"], r["paired_high"]), r["note"]]
            for r in table.to_dict("records")]  # fmt: skip


def _summary_blocks(result: TransferResult) -> list:
    """One line per configuration: its joint drift and verdict, its drift against the control, what transferring
    costs at the widest width that says, and its best loss at the widest width with an optimum (the tables
    below hold the rest)."""
    from mhc_mup.reporting.blocks import Heading, Paragraph, Table

    if result.drift.empty:
        return []
    sym = result.config.sweep.symbol
    relative = {r["config"]: r for r in result.relative.to_dict("records")}
    rows = []
    for r in result.drift.to_dict("records"):
        name = r["config"]
        rel = relative.get(name)
        against = (f"{_exponent_estimate(rel['exponent'], rel['ci_low'], rel['ci_high'])}, "
                   f"{_verdict(rel['verdict'], rel['direction'])}" if rel else "—")  # fmt: skip
        rows.append([name, _exponent_estimate(r["joint_exponent"], r["joint_low"], r["joint_high"]),
                     _verdict(r["joint_verdict"], r["joint_direction"]), against, _widest_penalty(result, name),
                     _widest_loss(result, name)])  # fmt: skip
    return [Heading("Summary"), Paragraph(
        f"Each configuration in one line; read them where the anchors above hold. The joint fit's drift of {sym} "
        f"with width (β, {sym} ∝ d^β) and its verdict, the drift against the control of the same body, the loss "
        f"the widest width gives up when run at the base width's optimum, and the best loss at the widest width "
        f"with an optimum from 2 or more seeds (nats/byte)."),
        Table(["configuration", "joint β", "verdict", "against the control", "cost of transferring", "best loss"],
              rows)]  # fmt: skip


def _widest_penalty(result: TransferResult, name: str) -> str:
    """What transferring costs at the configuration's widest width in the penalty table: ``+0.0185 [+0.011,
    +0.026] at d = 1024``, ``≥ +0.51 at d = 1024 (beyond its grid)``, or ``—``."""
    rows = result.penalty[result.penalty.config == name]
    if rows.empty:
        return "—"
    r = rows.sort_values("width").iloc[-1]
    if math.isfinite(r.penalty):
        return f"{_estimate(r.penalty, r.ci_low, r.ci_high, '+.4f')} at d = {r.width}"
    if math.isfinite(r.at_grid_end):
        return f"≥ {r.at_grid_end:+.4f} at d = {r.width} (the base optimum lies beyond its grid)"
    return f"— at d = {r.width} ({r.note})"


def _widest_loss(result: TransferResult, name: str) -> str:
    """``1.7051 at d = 1024`` from the optima table's widest width with an optimum from 2 or more seeds, or
    ``—``."""
    rows = result.optima[(result.optima.config == name) & result.optima.loss_at_opt.notna()
                         & (result.optima.n_seeds_fit >= 2)]  # fmt: skip
    if rows.empty:
        return "—"
    r = rows.sort_values("width").iloc[-1]
    return f"{fmt_number(r.loss_at_opt, '.4f')} at d = {r.width}"


def _penalty_blocks(result: TransferResult) -> list:
    """What transferring costs: per configuration and width, the loss given up at the base width's optimum
    (:mod:`~mhc_mup.training.transfer.penalty`); nothing where no width has one."""
    table = result.penalty
    if table.empty or table.penalty.isna().all():
        return []
    sym, conf = result.config.sweep.symbol, result.config.analysis.fit.confidence
    rows = [[r["config"], str(r["width"]), f"2^{fmt_number(r['base_log2'], '.2f')} (d = {r['base_width']})",
             f"2^{fmt_number(r['own_log2'], '.2f')}", fmt_number(r["penalty"], "+.4f"),
             fmt_interval(r["ci_low"], r["ci_high"], "+.4f"),
             str(r["n_seeds"]), r["note"]] for r in table.to_dict("records")]  # fmt: skip
    words = result.config.analysis.loss_words
    return _table_section(
        f"What does transferring {sym} cost?",
        f"Tune at the base width, train wide at the same value: the {words} each width gives up at the base width's "
        f"optimum instead of its own (both the per-seed optima's mean), per seed read off its curve by a parabola "
        f"through three grid values, then the mean over seeds with a {conf:.0%} t-interval over them, given the two "
        f"optima (their own error is in the optima table) (nats/byte; read against the seeds' σ in the noise "
        f"table). Where the drift verdict asks whether the optimum moves, this says what the move costs.",
        ["configuration", "width", f"base {sym}", f"own {sym}", "penalty", f"{conf:.0%} interval", "seeds", "note"],
        rows,
    )  # fmt: skip


def _rule_penalty_blocks(result: TransferResult) -> list:
    """A multiplier sweep's rule as it stands: per configuration and width, the loss given up at the multiplier 1
    instead of the width's own optimum (:func:`~mhc_mup.training.transfer.penalty.rule_penalty_table`); nothing
    where no width has one."""
    table = result.rule_penalty
    if table.empty or table.penalty.isna().all():
        return []
    sym, conf = result.config.sweep.symbol, result.config.analysis.fit.confidence
    rows = [[r["config"], str(r["width"]), f"2^{fmt_number(r['own_log2'], '.2f')}", fmt_number(r["penalty"], "+.4f"),
             fmt_interval(r["ci_low"], r["ci_high"], "+.4f"), str(r["n_seeds"]), r["note"]]
            for r in table.to_dict("records")]  # fmt: skip
    words = result.config.analysis.loss_words
    return _table_section(
        f"What does the rule's own {sym.removesuffix('*')} cost?",
        f"The width rule as it stands, the multiplier 1: the {words} each width gives up there instead of at its own "
        f"optimum, per seed read off its curve as above, then the mean over seeds with a {conf:.0%} t-interval "
        f"(nats/byte). Near 0 at every width, the rule's constant is right; a cost the same at every width is a "
        f"constant to tune at the base width; one that grows with width, a rule whose scaling is off too (the drift "
        f"table says whether the optimum moves).",
        ["configuration", "width", f"own {sym}", "penalty at 1", f"{conf:.0%} interval", "seeds", "note"],
        rows,
    )  # fmt: skip


def _routing_blocks(result: TransferResult, png: bytes = b"") -> list:
    """Is the mHC routing alive? The routing statistics per configuration and width, start → end of training,
    at each width's best grid value, and :func:`routing_figure`'s ``png`` when given; nothing for a sweep without
    mHC runs."""
    from mhc_mup.reporting.blocks import FigureBlock

    if result.routing.empty:
        return []
    moved = [
        [r["config"], str(r["width"]), f"2^{math.log2(r['value']):.2f}", str(r["n_seeds"]),
         *(f"{fmt_number(r[k + '_init'], '.3g')} → {fmt_number(r[k], '.3g')}" for k in ROUTING_TABLE_COLUMNS[4:9])]
        for r in result.routing.to_dict("records")
    ]  # fmt: skip
    figure = [FigureBlock("routing.png", "The gates' logit RMS vs width at the end of training (solid) and its "
                          "start (dashed), one colour per configuration (log-log)", png)] if png else []  # fmt: skip
    return _table_section(
        "Is the mHC routing alive?",
        "At the start → the end of each run, on the first validation batch: the RMS of the comb, pre and post "
        "gate logits over every sublayer, and the Frobenius distance of each sublayer's token-mean comb from "
        "the uniform matrix 11ᵀ/n_s and from the identity (averaged over sublayers); mean over seeds, at the "
        "grid value with the lowest mean loss at that width. Routing that learns moves these at every width; "
        "routing that stays at its initial value does not move them at large width.",
        ["configuration", "width", "at", "seeds", "comb logits RMS", "pre logits RMS", "post logits RMS",
         "comb to uniform", "comb to identity"],
        moved,
    ) + figure  # fmt: skip


def _logit_blocks(result: TransferResult, png: bytes = b"") -> list:
    """Do the logits stay bounded? The attention and output logits per configuration and width, start → end of
    training, at each width's best grid value and an octave above it, and :func:`logits_figure`'s ``png`` when
    given; nothing where no run recorded them."""
    from mhc_mup.reporting.blocks import FigureBlock

    if result.logits.empty:
        return []
    rows = [
        [r["config"], str(r["width"]), r["at"].replace("_", " "), f"2^{math.log2(r['value']):.2f}", str(r["n_seeds"]),
         *(f"{fmt_number(r[k + '_init'], '.3g')} → {fmt_number(r[k], '.3g')}" for k in LOGIT_STATS)]
        for r in result.logits.to_dict("records")
    ]  # fmt: skip
    figure = [FigureBlock("logits.png", "Largest attention logit at the end of training vs the swept value, one "
                          "line per width (log scale)", png)] if png else []  # fmt: skip
    return _table_section(
        "Do the logits stay bounded?",
        "At the start → the end of each run, on the first validation batch: the largest attention logit "
        "|q·kᵀ·scale| over every layer, head and causal pair, the RMS of those logits, and the RMS of the readout "
        "logits (each position's mean removed); mean over seeds, at the grid value with the lowest mean loss at "
        "that width and at the smallest one at least twice it. µP predicts that after training they do not grow with "
        "width at either point; attention logits that grow with width above the optimum go with a "
        "high-learning-rate side of the curve that steepens with width, which moves a fitted optimum down.",
        ["configuration", "width", "at", "value", "seeds", "attention logit max", "attention logit RMS",
         "output logit RMS"],
        rows,
    ) + figure  # fmt: skip


def _edge_blocks(result: TransferResult) -> list:
    """Where the loss is flat: the band of grid values within the seeds' noise of the best, its edges and the first
    divergence per width, and each edge's drift with width (nothing without complete curves)."""
    from mhc_mup.reporting.blocks import Paragraph

    if result.edges.empty:
        return []
    sym = result.config.sweep.symbol.rstrip("*")
    delta = result.config.analysis.degrade_nats

    def edge(v: float, is_open: bool, mark: str) -> str:
        return "—" if not math.isfinite(v) else f"{mark if is_open else ''}{v:+.2f}"

    rows = [
        [r["config"], str(r["width"]), fmt_number(r["best_log2"], "+.2f"),
         edge(r["low_edge_log2"], r["low_open"], "≤ "),
         edge(r["high_edge_log2"], r["high_open"], "≥ "), fmt_number(r["degraded_log2"], "+.2f"),
         fmt_number(r["first_diverged_log2"], "+.2f"),
         fmt_number(r["band_nats"], ".4f")]
        for r in result.edges.to_dict("records")
    ]  # fmt: skip
    drift = [
        f"{r['config']}, {r['edge'].replace('_', ' ')}: "
        + (f"2^edge ∝ d^{r['exponent']:+.3f} {_exponent_interval(r['ci_low'], r['ci_high'])} over "
           f"{r['n_widths']} widths, {_verdict(r['verdict'], r['direction'])}" if math.isfinite(r["exponent"])
           else "no fit")
        + (f" ({r['note']})" if r["note"] else "")
        for r in result.edge_drift.to_dict("records")
    ]  # fmt: skip
    section = _table_section(
        "Where the loss is flat: the band's edges",
        f"Per width, log2 {sym} at the seed-mean best, the smallest and largest grid values whose seed-mean loss "
        "stays within the seeds' noise of the best (the band, in nats per byte: the t-quantile times the noise "
        "of a difference of two seed means), where training degrades: the value above the best where the "
        f"seed-mean loss has risen {delta:g} nats per byte over it, interpolated between grid values (— where it "
        "never does on the grid), and the smallest value above the best where a seed diverged. ≤ / ≥: the band "
        "reaches the grid's end, so the edge lies beyond it. Where the loss is flat the optimum is noise and these "
        "edges are what moves with width. Below the table, each edge's drift 2^edge ∝ d^β over the widths where it "
        "is closed, the band's intervals widened for the grid's spacing (the degraded edge's is the seeds' alone); "
        "a bootstrap draw whose resampled seeds leave the edge open at some width has no value there and is dropped "
        "(the note counts them).",
        ["configuration", "width", f"best log2 {sym}", "low edge", "high edge", "degraded", "first diverged",
         "band"],
        rows,
    )
    return section + [Paragraph(line) for line in drift]


def _noise_blocks(result: TransferResult) -> list:
    """How noisy is it? Per configuration and width, the seeds' noise and the validation batches' (nothing for a
    sweep without runs)."""
    if result.noise.empty:
        return []
    rows = [
        [r["config"], str(r["width"]), str(r["n_seeds"]), fmt_number(r["seed_sigma"], ".4f"), str(r["seed_dof"]),
         fmt_number(r["val_batch_se"], ".4f"), fmt_number(r["val_pair_se"], ".4f")]
        for r in result.noise.to_dict("records")
    ]  # fmt: skip
    return _table_section(
        "How noisy is it?",
        f"The noise, in nats per byte. Seeds: one run's noise in its {result.config.analysis.loss_words} from the "
        "seeds' disagreement, their shared offsets removed, near each width's optimum (σ, on dof degrees of freedom; "
        "more seeds shrink an optimum's error as 1/√seeds). Validation batches (medians over the width's runs): the "
        "standard error of one run's final validation loss from its batches, and of the difference between "
        "neighbouring grid values of one seed on the same batches, which is what a curve's shape rests on; both "
        "shrink as 1/√eval_batches. A difference the verdict rests on should be at least three times these.",
        ["configuration", "width", "seeds", "seed σ", "dof", "batch SE (run)", "batch SE (neighbours)"],
        rows,
    )


def _values_text(result: TransferResult) -> str:
    """Which values each configuration × width was analysed over, for a folder whose configurations and widths do
    not share one set: one clause per distinct set of values (each value and their count), naming the
    configurations and widths analysed over it."""
    what = "η" if result.config.sweep.hyper == "lr" else result.config.sweep.hyper
    where: dict[tuple[float, ...], dict[str, list[int]]] = {}
    for (name, width), own in result.values.items():
        where.setdefault(own, {}).setdefault(name, []).append(width)
    clauses = [
        f"{what} = {', '.join(f'2^{math.log2(v):g}' for v in own)} ({len(own)} values) at "
        + "; ".join(f"{name} {fmt_widths(widths)}" for name, widths in places.items())
        for own, places in where.items()
    ]  # fmt: skip
    return ("The configurations and widths were swept over different values (a grid grown adaptively); each is "
            "analysed over its own: " + ". ".join(clauses) + ".")  # fmt: skip


def _estimate(value: float, low: float, high: float, spec: str = "+.3f", cap: float | None = None) -> str:
    """``+0.039 [-0.063, +0.141]``: a value and its interval, all three by ``spec`` (``—`` for what is NaN; an
    interval bound past ``±cap`` as ``> +cap``, :func:`~mhc_mup.reporting.numbers.fmt_interval`)."""
    return f"{fmt_number(value, spec)} {fmt_interval(low, high, spec, cap=cap)}"


def _exponent_estimate(value: float, low: float, high: float) -> str:
    """``-0.583 [-3.494, > +10]``: a drift exponent and its interval (:data:`EXPONENT_PRINT_BOUND`)."""
    return _estimate(value, low, high, cap=EXPONENT_PRINT_BOUND)


def _verdict(verdict: str, direction: str) -> str:
    return f"{verdict}{' (' + direction + ')' if direction else ''}"


def _runs(k: int) -> str:
    """``1 run``, ``3 runs``."""
    return f"{k} run{'s' if k != 1 else ''}"


def _devices_text(runs: pd.DataFrame) -> str:
    """The devices the runs ran on, with each one's count where there are several (a folder filled on two GPU
    models), e.g. "cuda:0 (NVIDIA H100 80GB HBM3) for 112 runs, cuda:0 (NVIDIA H200) for 52"."""
    counts = runs.device.value_counts().sort_index()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{device} for {_runs(k)}" for device, k in counts.items())


def _sharing_text(runs: pd.DataFrame) -> str:
    """How many runs ran alone on their device and how many shared it (``runs_per_device``), e.g. "Runs per
    device at once: 1 for 87 runs, 4 for 180."; runs stored before it was recorded are counted apart."""
    counts = runs.runs_per_device.value_counts().sort_index()
    parts = [f"{n:g} for {_runs(k)}" for n, k in counts.items()]
    if unrecorded := int(runs.runs_per_device.isna().sum()):
        parts.append(f"not recorded for {unrecorded} (stored before it was)")
    return f"Runs per device at once: {', '.join(parts)}."


def _join_notes(*notes: str) -> str:
    """``"; "``-joined notes, each clause once (the two drift fits both say which widths they left out)."""
    return "; ".join(dict.fromkeys(c for n in notes if n for c in n.split("; ")))


def build_transfer_report(
    result: TransferResult, png: bytes, logits_png: bytes = b"", routing_png: bytes = b"", optima_png: bytes = b""
) -> Report:
    """The report's blocks (:mod:`mhc_mup.diagnostics.report`): the repeats caveat, the sanity anchors, a summary
    line per configuration, drift verdicts (sentences from the fits), the optima table (with
    :func:`optima_figure`'s ``optima_png`` when given), what transferring costs, the routing and logit tables (with
    :func:`routing_figure`'s ``routing_png`` and :func:`logits_figure`'s ``logits_png`` when given), the figure,
    the cost and the notes."""
    from mhc_mup.reporting.blocks import FigureBlock, Report

    cfg = result.config
    words = cfg.analysis.loss_words
    # the caveat first: it qualifies the anchors as much as the verdicts
    blocks: list = [*_repeats_caveat(result), *_partial_caveat(result), *_anchor_blocks(result),
                    *_summary_blocks(result), *_drift_blocks(result), *_rule_drift_blocks(result),
                    *_optima_blocks(result, optima_png), *_penalty_blocks(result), *_rule_penalty_blocks(result),
                    *_routing_blocks(result, routing_png), *_logit_blocks(result, logits_png), *_edge_blocks(result),
                    *_noise_blocks(result),
                    FigureBlock("transfer.png", f"{words[0].upper()}{words[1:]} vs {cfg.sweep.noun}, one line per "
                                                f"width (an interval wider than the grid runs off the panel)", png),
                    *_settings_blocks(result)]  # fmt: skip
    what = "Learning-rate" if cfg.sweep.hyper == "lr" else f"{cfg.sweep.hyper} ({cfg.sweep.spec.what})"
    return Report(f"{what} transfer across width", blocks)


def _drift_blocks(result: TransferResult) -> list:
    """Each configuration's drift of the optimum: the joint fit's sentence, the method, both estimators' table and
    the per-seed fit's sentence."""
    from mhc_mup.reporting.blocks import Heading, Paragraph, Table

    cfg = result.config
    conf = cfg.analysis.fit.confidence
    rows = result.drift.to_dict("records")
    sym, noun = cfg.sweep.symbol, cfg.sweep.noun
    blocks: list = [Heading(f"Drift of the optimal {noun}")]
    blocks += [Paragraph(joint_sentence(r, conf, sym)) for r in rows]
    blocks.append(Paragraph(_method(result)))
    blocks.append(Table(
        ["configuration", "joint β", f"{conf:.0%} interval", "verdict", "per-seed β", f"{conf:.0%} interval",
         "verdict", "note"],
        [[r["config"], fmt_number(r["joint_exponent"], "+.3f"), _exponent_interval(r["joint_low"], r["joint_high"]),
          _verdict(r["joint_verdict"], r["joint_direction"]), fmt_number(r["exponent"], "+.3f"),
          _exponent_interval(r["ci_low"], r["ci_high"]), _verdict(r["verdict"], r["direction"]),
          _join_notes(r["joint_note"], r["note"])]
         for r in rows],
        f"Drift of log {sym} against log d by both estimators; transfers when the interval lies inside "
        f"±{cfg.analysis.tolerance:g}",
    ))  # fmt: skip
    return blocks + [Paragraph(f"Per-seed optima: {drift_sentence(r, conf, sym, noun)}") for r in rows]


def _optima_blocks(result: TransferResult, optima_png: bytes) -> list:
    """The optimum per configuration and width by both estimators, and :func:`optima_figure`'s PNG when given."""
    from mhc_mup.reporting.blocks import FigureBlock, Heading, Table

    sym, noun = result.config.sweep.symbol, result.config.sweep.noun
    blocks: list = [Heading(f"Optimal {noun} per width"), Table(
        ["configuration", "width", f"log2 {sym} (per seed)", "interval", sym, f"loss at {sym}", "seeds fitted",
         f"log2 {sym} (joint)", "note"],
        [[r["config"], str(r["width"]), fmt_number(r["log2_lr_opt"], "+.2f"),
          fmt_interval(r["ci_low"], r["ci_high"], "+.2f"), fmt_number(r["lr_opt"], ".3g"),
          fmt_number(r["loss_at_opt"], ".4f"), f"{r['n_seeds_fit']}/{r['n_seeds']}",
          fmt_number(r["joint_log2_opt"], "+.2f"),
          r["note"]]
         for r in result.optima.to_dict("records")],
    )]  # fmt: skip
    if optima_png:
        blocks.append(FigureBlock("optima.png", f"The optimal {noun} against width: per seed (points, with their "
                                                f"interval; one wider than the grid runs off the panel) and the joint "
                                                f"fit (lines)", optima_png))  # fmt: skip
    return blocks


def _settings_blocks(result: TransferResult) -> list:
    """Settings and cost: the configurations, each run's settings and the run time, the values swept where they
    differ, the data and the analysis's notes."""
    from mhc_mup.reporting.blocks import Heading, Paragraph

    cfg, runs = result.config, result.runs
    cost = (
        f"{len(runs)} runs stored ({result.missing} of the grid still missing), {runs.seconds.sum() / 3600:.3g} "
        f"hours of run time summed over the runs (more than the GPU time where runs took turns on one GPU: each "
        f"counts the time they shared); per run: median {runs.seconds.median():.3g} s, "
        f"{runs.tokens_per_s.median():,.0f} tokens/s (median) on {_devices_text(runs)}. "
        + _sharing_text(runs)
        if len(runs)
        else "No run stored yet."
    )
    configurations = "; ".join(f"{c.name} = {c.describe()}" for c in cfg.grid.configs)
    blocks: list = [Heading("Settings and cost"), Paragraph(f"Configurations: {configurations}."),
                    Paragraph(f"Each run: {cfg.describe(result.ragged)}. {cost}")]  # fmt: skip
    if result.ragged:
        blocks.append(Paragraph(_values_text(result)))
    if result.corpora:
        blocks.append(Paragraph(f"Data: {'; '.join(result.corpora)}.{_passes_text(result)}"))
    return blocks + [Paragraph(note) for note in result.notes]


def _train_sizes(result: TransferResult) -> list[int]:
    """The training splits' sizes in bytes, from the corpus lines the runs keep (one, unless the folder mixes)."""
    return sorted({b for c in result.corpora if (b := described_train_bytes(c))})


def _passes_text(result: TransferResult) -> str:
    """How many times a run reads its training split (from the corpus line its records keep), said after the data;
    that it then measures memorising too, when more than once."""
    tokens, sizes = result.config.recipe.train.tokens, _train_sizes(result)
    if not sizes:
        return ""
    passes = "/".join(f"{tokens / b:.2g}" for b in sizes)
    amount = f"{tokens / 1e6:,.1f} M" if tokens >= 10**6 else f"{tokens:,}"
    text = f" Each run reads {amount} tokens: {passes} passes over the training split"
    if tokens > min(sizes):
        return text + ", so it repeats the data and its validation loss measures memorising as well as learning."
    return text + "."


def _repeats_caveat(result: TransferResult) -> list:
    """A caveat at the top of the report when the runs repeat their training data (nothing otherwise): the reader
    of a verdict should not have to find it in the settings."""
    from mhc_mup.reporting.blocks import Paragraph

    tokens, sizes = result.config.recipe.train.tokens, _train_sizes(result)
    if not sizes or tokens <= min(sizes):
        return []
    loss = "validation loss" if result.config.analysis.loss == "val" else "training loss, of data seen before,"
    return [Paragraph(f"Caveat: each run reads its training split {tokens / min(sizes):.2g} times, so these optima "
                      f"are of a {loss} that measures memorising as well as learning, and wider models "
                      "memorise more (see Settings and cost).")]  # fmt: skip


def _partial_caveat(result: TransferResult) -> list:
    """A caveat at the top of the report when a partial reading (``--partial``) left values out (nothing
    otherwise): which configuration × width was read over fewer values than it will have."""
    from mhc_mup.reporting.blocks import Paragraph

    if not result.left_out:
        return []
    each = "; ".join(f"{c} at d = {w}: {log2_text(vs)}" for (c, w), vs in sorted(result.left_out.items()))
    return [Paragraph(f"Read partly (--partial): each width over the values every one of its seeds has run; left "
                      f"out until every seed has run them: {each}. Read again once they are done.")]  # fmt: skip


def _csv(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    return frame[list(columns)].to_csv(index=False, float_format="%.6g", lineterminator="\n")


def write_outputs(result: TransferResult, out: str | Path) -> list[Path]:
    """Write ``transfer.csv``, ``curves.csv.gz``, ``optima_seeds.csv``, ``optima.csv``, ``drift.csv``,
    ``routing.csv``, ``logits.csv``, ``noise.csv``, ``edges.csv``, ``edge_drift.csv``, ``anchors.csv``,
    ``relative_drift.csv``, ``rule_drift.csv``, ``transfer_penalty.csv``, for a multiplier sweep
    ``rule_penalty.csv``, the report (``transfer_report.md`` / ``.html``),
    ``transfer.png`` and, where runs recorded their logits, ``logits.png``, where there are mHC runs,
    ``routing.png``, and where a width has an optimum, ``optima.png`` into ``out``; every content is made before
    the first write."""
    from mhc_mup.reporting.blocks import render_html, render_markdown
    from mhc_mup.reporting.render import png_bytes

    png = png_bytes(transfer_figure(result))
    # the figures drawn only where there is something to draw: empty bytes, no file, where there is not
    optional = {name: png_bytes(fig) if (fig := draw(result)) is not None else b""
                for name, draw in (("logits.png", logits_figure), ("routing.png", routing_figure),
                                   ("optima.png", optima_figure))}  # fmt: skip
    report = build_transfer_report(result, png, optional["logits.png"], optional["routing.png"],
                                   optional["optima.png"])  # fmt: skip
    rule_penalty: dict[str, str] = {}
    if result.config.sweep.hyper != "lr":
        rule_penalty["rule_penalty.csv"] = _csv(result.rule_penalty, RULE_PENALTY_COLUMNS)
    files: dict[str, str | bytes] = {
        "transfer.csv": _csv(result.runs, TRANSFER_COLUMNS),
        # every run's per-step losses: 1,000 rows a run, so compressed (8× smaller); pandas reads it as it is.
        # mtime=0 keeps the bytes the same for the same runs.
        "curves.csv.gz": gzip_text(_csv(result.curves, CURVE_COLUMNS)),
        "optima_seeds.csv": _csv(result.seed_optima, SEED_OPTIMA_COLUMNS),
        "optima.csv": _csv(result.optima, OPTIMA_COLUMNS),
        "drift.csv": _csv(result.drift, DRIFT_COLUMNS),
        "routing.csv": _csv(result.routing, ROUTING_TABLE_COLUMNS),
        "logits.csv": _csv(result.logits, LOGIT_TABLE_COLUMNS),
        "noise.csv": _csv(result.noise, NOISE_COLUMNS),
        "edges.csv": _csv(result.edges, EDGE_COLUMNS),
        "edge_drift.csv": _csv(result.edge_drift, EDGE_DRIFT_COLUMNS),
        "anchors.csv": _csv(result.anchors, ANCHOR_COLUMNS),
        "relative_drift.csv": _csv(result.relative, RELATIVE_COLUMNS),
        "rule_drift.csv": _csv(result.rules, RELATIVE_COLUMNS),
        "transfer_penalty.csv": _csv(result.penalty, PENALTY_COLUMNS),
        **rule_penalty,
        # report.py links figures under figures/; this report keeps its figures beside it
        "transfer_report.md": render_markdown(report).replace("](figures/", "]("),
        "transfer_report.html": render_html(report),
        "transfer.png": png,
    }
    files.update({name: data for name, data in optional.items() if data})
    written = write_bundle(out, files)
    Path(out, "curves.csv").unlink(missing_ok=True)  # the uncompressed name of earlier versions: now stale
    return written
