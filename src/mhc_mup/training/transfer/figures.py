"""A transfer sweep's figures: the loss against the swept value per width (:func:`transfer_figure`), the optima
against width (:func:`optima_figure`), the routing gates' logit RMS (:func:`routing_figure`) and the largest
attention logit (:func:`logits_figure`). Each takes a :class:`~.analysis.TransferResult` and returns a matplotlib
figure; all but the first return None where there is nothing to draw. matplotlib is imported where a figure is drawn,
so that reading a folder's results does not need it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mhc_mup.reporting.numbers import fmt_interval
from mhc_mup.training.transfer.analysis import EXPONENT_PRINT_BOUND, TransferResult
from mhc_mup.training.transfer.anchors import difference_interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

__all__ = ["ROUTING_GATES", "logits_figure", "optima_figure", "routing_figure", "transfer_figure"]


def transfer_figure(result: TransferResult) -> Figure:
    """Final validation loss (mean over seeds) vs log2 η, one panel per configuration, one line per width;
    the per-seed optimum (star, with its interval), the joint fit's (tick at the foot) and diverged runs (×, at
    the panel's top) marked."""
    import matplotlib.pyplot as plt

    from mhc_mup.reporting.style import MARKERS, OKABE_ITO

    cfg = result.config
    n = len(cfg.grid.configs)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1.9, 4.2), sharey=True, squeeze=False)
    ylim = _loss_range(result.runs[cfg.analysis.loss_column])
    for ax, c in zip(axes[0], cfg.grid.configs, strict=True):
        for i, w in enumerate(sorted(cfg.grid.widths)):
            _plot_width(ax, result, c.name, w, OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)], ylim)
        ax.set_title(_panel_title(result, c.name), fontsize=9)
        ax.set_xlabel(cfg.sweep.axis)
        ax.set_xlim(*_swept_range(result.runs, c.name))
        ax.set_ylim(*ylim)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{cfg.analysis.loss_words}\n(nats/byte, mean over seeds)")
    # every width drawn in any panel, once: the last panel may lack some
    lines = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    if lines:
        ordered = sorted(lines, key=lambda label: int(label.removeprefix("d=")))
        marks = ("★ optimum per seed", "| joint fit's optimum", "× diverged", "▷ ◁ minimum at the\n    grid's edge")
        legend_title = "\n".join(("width", *marks))
        # beside the last panel, never over a curve: "best" inside it still hides the top width's points
        axes[0][-1].legend([lines[k] for k in ordered], ordered, fontsize=8, frameon=False, title=legend_title,
                           title_fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5),
                           alignment="left")  # fmt: skip
    fig.tight_layout()
    return fig


def logits_figure(result: TransferResult) -> Figure | None:
    """The largest attention logit at the end of training (mean over the finished runs that recorded it) vs log2
    of the swept value, log scale: one panel per configuration with such runs, one line per width, coloured as in
    :func:`transfer_figure`. None when no run recorded it."""
    import matplotlib.pyplot as plt

    from mhc_mup.reporting.style import MARKERS, OKABE_ITO

    cfg, runs = result.config, result.runs
    probed = runs[runs.attn_logit_max.notna() & ~runs.diverged.astype(bool)]
    names = [c.name for c in cfg.grid.configs if (probed.config == c.name).any()]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 0.6, 4.0), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for i, w in enumerate(sorted(cfg.grid.widths)):
            at = probed[(probed.config == name) & (probed.width == w)]
            if len(at):
                peak = at.groupby(np.log2(at.value.astype(float))).attn_logit_max.mean()
                ax.plot(peak.index, peak.values, color=OKABE_ITO[i % len(OKABE_ITO)], marker=MARKERS[i % len(MARKERS)],
                        ms=4, lw=1.3, label=f"d={w}")  # fmt: skip
        ax.set_xlim(*_swept_range(runs, name))  # the configuration's whole grid, for context
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(cfg.sweep.axis)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("largest attention logit at the end\n(max |q·kᵀ·scale|, mean over seeds)")
    lines = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    ordered = sorted(lines, key=lambda label: int(label.removeprefix("d=")))
    axes[0][-1].legend([lines[k] for k in ordered], ordered, fontsize=8, frameon=False, title="width",
                       title_fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def optima_figure(result: TransferResult) -> Figure | None:
    """Each configuration's optimum against width, one colour per configuration: the per-seed estimate (mean over
    seeds, with its interval; configurations a little apart in x so that their bars do not hide each other) and
    the joint fit's line through the widths it fitted, on log2 axes; the legend gives each joint β and its
    interval. Where the sweep pairs mHC configurations with their controls, a second panel draws the same
    against the control: the difference of the two optima at each width both placed (the intervals combined in
    quadrature) and of the two joint fits' lines, the legend giving δ of :func:`~.anchors.relative_drift`. None
    where no width has an optimum."""
    import matplotlib.pyplot as plt

    from mhc_mup.reporting.style import MARKERS, OKABE_ITO

    cfg, optima = result.config, result.optima
    placed = optima[np.isfinite(optima.log2_lr_opt.astype(float)) | np.isfinite(optima.joint_log2_opt.astype(float))]
    names = [c.name for c in cfg.grid.configs if (placed.config == c.name).any()]
    if not names:
        return None
    style = {n: (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)], 0.05 * (i - (len(names) - 1) / 2))
             for i, n in enumerate(names)}  # fmt: skip
    pairs = [(r["config"], r["anchor"], r) for r in result.relative.to_dict("records")
             if r["config"] in style and r["anchor"] in style]  # fmt: skip
    fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(13.0 if pairs else 7.6, 4.4), squeeze=False)
    joint = {r["config"]: (r["joint_exponent"], r["joint_low"], r["joint_high"])
             for r in result.drift.to_dict("records")}  # fmt: skip
    for name in names:
        rows = placed[placed.config == name].sort_values("width")
        _optima_series(axes[0][0], rows.width, rows.log2_lr_opt, rows.ci_low, rows.ci_high, rows.joint_log2_opt,
                       style[name], _estimate_label(name, "β", *joint.get(name, (math.nan,) * 3)))  # fmt: skip
    _optima_axes(axes[0][0], placed.width, f"log2 {cfg.sweep.symbol}\nper seed (points), joint fit (lines)",
                 f"{cfg.sweep.symbol} ∝ d^β (joint fit)")  # fmt: skip
    axes[0][0].set_ylim(*_optima_range(placed, _swept_range(result.runs)))
    if pairs:
        paired_widths: set[int] = set()
        for name, anchor, rel in pairs:
            both = placed[placed.config == name].merge(placed[placed.config == anchor], on="width",
                                                       suffixes=("", "_c")).sort_values("width")  # fmt: skip
            sides = zip(both.log2_lr_opt, both.ci_low, both.ci_high, both.log2_lr_opt_c, both.ci_low_c,
                        both.ci_high_c, strict=True)  # fmt: skip
            apart = np.array([difference_interval(s[:3], s[3:]) for s in sides]).reshape(-1, 3)  # (δ, low, high)
            paired_widths |= set(both.width)
            delta, low, high = apart.T
            _optima_series(axes[0][1], both.width, delta, low, high, both.joint_log2_opt - both.joint_log2_opt_c,
                           style[name], _estimate_label(f"{name} − {anchor}", "δ", rel["exponent"], rel["ci_low"],
                                                        rel["ci_high"]))  # fmt: skip
        axes[0][1].axhline(0.0, color="0.5", lw=0.8, ls="--")
        _optima_axes(axes[0][1], paired_widths, f"log2 {cfg.sweep.symbol} − the control's (same body)",
                     "against the control: δ = β − β_control")  # fmt: skip
    fig.tight_layout()
    return fig


def _swept_range(runs: pd.DataFrame, name: str | None = None) -> tuple[float, float]:
    """log2 of the smallest and largest value swept (by configuration ``name``; by any without), padded by 0.3 or
    4% of the span: a panel's range, so that an interval wider than the grid runs off the panel's edge instead of
    squeezing the curves into its middle. ``(-1, 1)`` without runs."""
    values = runs.value if name is None else runs.value[runs.config == name]
    if not len(values):
        return -1.0, 1.0
    x = np.log2(values.astype(float))
    low, high = float(x.min()), float(x.max())
    pad = max(0.3, 0.04 * (high - low))
    return low - pad, high + pad


def _optima_range(placed: pd.DataFrame, swept: tuple[float, float]) -> tuple[float, float]:
    """The optima panel's y range: every point, joint line and interval drawn, the intervals cut at the swept
    range ``swept`` (an interval wider than the grid runs off the panel), padded by 0.3."""
    points = np.concatenate([placed.log2_lr_opt, placed.joint_log2_opt]).astype(float)
    points = points[np.isfinite(points)]
    low = max(np.nanmin(np.append(placed.ci_low.astype(float), points.min())), swept[0])
    high = min(np.nanmax(np.append(placed.ci_high.astype(float), points.max())), swept[1])
    return min(low, points.min()) - 0.3, max(high, points.max()) + 0.3


def _optima_series(
    ax: Axes, widths: ArrayLike, y: ArrayLike, low: ArrayLike, high: ArrayLike, joint: ArrayLike,
    style: tuple[str, str, float], label: str,
) -> None:
    """One configuration's points (``y`` with its interval ``[low, high]``, NaN: no bar) and joint line."""
    colour, marker, shift = style
    y = np.asarray(y, dtype=float)
    bars = np.nan_to_num(np.vstack([y - np.asarray(low, dtype=float), np.asarray(high, dtype=float) - y]))
    lw = np.log2(np.asarray(widths, dtype=float))
    ax.errorbar(lw + shift, y, yerr=bars, fmt=marker, color=colour, ms=5, capsize=2, lw=1, label=label)
    joint = np.asarray(joint, dtype=float)
    ax.plot(lw[np.isfinite(joint)], joint[np.isfinite(joint)], color=colour, lw=1.4)


def _optima_axes(ax: Axes, widths: Iterable[int], ylabel: str, legend_title: str) -> None:
    ticks = sorted(set(widths))
    ax.set_xticks(np.log2(ticks), [str(w) for w in ticks])
    ax.set_xlabel("width d")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False, title=legend_title, title_fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), alignment="left", ncol=2)  # fmt: skip


def _figure_interval(low: float, high: float) -> str:
    """``[-0.03, +0.05]`` for a figure's title or legend, a bound beyond :data:`EXPONENT_PRINT_BOUND` as ``< -10``
    or ``> +10``."""
    return fmt_interval(low, high, "+.2f", cap=EXPONENT_PRINT_BOUND)


def _estimate_label(head: str, symbol: str, value: float, low: float, high: float) -> str:
    """``head: β +0.01 [-0.03, +0.05]`` (:func:`_figure_interval`), or ``head`` alone where the estimate or its
    interval is NaN (the estimate printed as it is)."""
    if not all(map(math.isfinite, (value, low, high))):
        return head
    return f"{head}: {symbol} {value:+.2f} {_figure_interval(low, high)}"


ROUTING_GATES = ("comb", "pre", "post")
"""The gates whose logit RMS :func:`routing_figure` draws, one panel each."""


def routing_figure(result: TransferResult) -> Figure | None:
    """The mHC gates' logit RMS vs width (log-log), one panel per gate of :data:`ROUTING_GATES`, one colour per
    configuration: at the end of training (solid) and at its start (dashed), mean over seeds at each width's best
    grid value (:func:`~mhc_mup.training.transfer.analysis.routing_table`). Routing that learns at every width
    ends well above its start everywhere; routing the width silences ends near its start at large width. None
    without mHC runs."""
    import matplotlib.pyplot as plt

    from mhc_mup.reporting.style import MARKERS, OKABE_ITO

    table = result.routing
    if table.empty:
        return None
    names = list(dict.fromkeys(table.config))
    fig, axes = plt.subplots(1, len(ROUTING_GATES), figsize=(4.2 * len(ROUTING_GATES) + 1.6, 4.0), sharey=True)
    for ax, gate in zip(axes, ROUTING_GATES, strict=True):
        for i, name in enumerate(names):
            rows = table[table.config == name].sort_values("width")
            colour, marker = OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)]
            ax.plot(rows.width, rows[f"{gate}_rms"], color=colour, marker=marker, ms=4, lw=1.3, label=name)
            ax.plot(rows.width, rows[f"{gate}_rms_init"], color=colour, marker=marker, ms=3, lw=1.0, ls="--",
                    mfc="none")  # fmt: skip
        widths = sorted(set(table.width))
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_title(f"{gate} logits", fontsize=9)
        ax.set_xlabel("width d")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("logit RMS over sublayers\n(mean over seeds, at each width's best value)")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, labels, fontsize=8, frameon=False, title="solid: end of training\ndashed: start",
                    title_fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), alignment="left")  # fmt: skip
    fig.tight_layout()
    return fig


def _loss_range(losses: pd.Series) -> tuple[float, float]:
    """The panels' y range: the finite final losses, at most 1.5 nats above the lowest, with room at the top
    for the diverged runs' marks."""
    finite = losses[np.isfinite(losses)] if len(losses) else pd.Series(dtype=float)
    if not len(finite):
        return (0.0, 6.0)
    low = float(finite.min())
    top = min(float(finite.max()), low + 1.5)
    pad = 0.05 * max(top - low, 0.05)
    return (low - pad, top + 3 * pad)


def _plot_width(
    ax: Axes, result: TransferResult, name: str, width: int, colour: str, marker: str, ylim: tuple[float, float]
) -> None:
    """One width's line of configuration ``name``: the mean loss per learning rate, its diverged runs (×), its
    optimum (★ with its interval) and each seed's minimum at the grid's edge (open triangle)."""
    runs = result.runs
    sel = runs[(runs.config == name) & (runs.width == width)]
    if sel.empty:
        return
    x = np.log2(sel.value.astype(float))
    ok = sel.assign(x=x)[~sel.diverged.astype(bool)]
    mean = ok.groupby("x")[result.config.analysis.loss_column].mean()
    ax.plot(mean.index, mean.values, color=colour, marker=marker, ms=4, lw=1.3, label=f"d={width}")
    div = sorted(set(x[sel.diverged.astype(bool)]))
    ax.plot(div, [ylim[1] - _edge_pad(ylim)] * len(div), ls="none", marker="x", color=colour, ms=6)
    o = result.optima[(result.optima.config == name) & (result.optima.width == width)]
    if len(o) and math.isfinite(o.log2_lr_opt.iloc[0]):
        xo, yo = float(o.log2_lr_opt.iloc[0]), float(o.loss_at_opt.iloc[0])
        lo, hi = o.ci_low.iloc[0], o.ci_high.iloc[0]
        if math.isfinite(lo):
            ax.errorbar([xo], [yo], xerr=[[xo - lo], [hi - xo]], color=colour, capsize=3, lw=1)
        ax.plot([xo], [yo], marker="*", ms=13, color=colour, markeredgecolor="black", mew=0.6, ls="none")
    if len(o) and math.isfinite(o.joint_log2_opt.iloc[0]):
        # the joint fit's optimum at this width: a tick at the panel's foot
        ax.plot([o.joint_log2_opt.iloc[0]], [ylim[0] + _edge_pad(ylim)], marker="|", ms=14, mew=2, color=colour,
                ls="none")  # fmt: skip
    edges = result.seed_optima[(result.seed_optima.config == name) & (result.seed_optima.width == width)]
    for edge, tri in (("low", "<"), ("high", ">")):
        # a seed's minimum at the grid's edge or next to a diverged run: an open triangle at that minimum
        for xa in set(edges.loc[edges.edge == edge, "argmin_log2_lr"]):
            near = np.isclose(mean.index, xa, atol=1e-6)
            if near.any():
                ax.plot([xa], [mean.values[near][0]], marker=tri, ms=11, mfc="none", mec=colour, mew=1.5, ls="none")


def _panel_title(result: TransferResult, name: str) -> str:
    """The configuration's name and, when fitted, its drift exponent, interval and verdict (the joint fit's;
    the per-seed estimator's when there is no joint fit), naming how few widths it rests on when some are left
    out."""
    d = result.drift[result.drift.config == name]
    if not len(d):
        return name
    r, sym = d.iloc[0], result.config.sweep.symbol
    if math.isfinite(r.joint_exponent):
        planned = int((result.optima.config == name).sum())  # its widths: planned by the folder's grids, or run
        fewer = f" ({int(r.joint_widths)} of {planned} widths)" if int(r.joint_widths) < planned else ""
        return (f"{name}\n{sym} ∝ d^{r.joint_exponent:+.2f} {_figure_interval(r.joint_low, r.joint_high)}: "
                f"{r.joint_verdict}{fewer}")  # fmt: skip
    if not math.isfinite(r.exponent):
        return name
    interval = _figure_interval(r.ci_low, r.ci_high) if math.isfinite(r.ci_low) else "(no interval)"
    return f"{name}\n{sym} ∝ d^{r.exponent:+.2f} {interval}: {r.verdict} (per-seed optima)"


def _edge_pad(ylim: tuple[float, float]) -> float:
    """How far inside a panel's top or foot its marks sit (the diverged runs' ×, the joint fit's tick): 4% of the
    y range ``ylim``."""
    return 0.04 * (ylim[1] - ylim[0])
