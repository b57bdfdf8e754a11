"""The report's figures, drawn headless with matplotlib from a run's summaries and fits.

Every figure takes runs read back from disk or fresh (anything with ``widths``, ``summary(w)``,
``fit(diag, key)``, ``name``) and returns a :class:`matplotlib.figure.Figure`;
:func:`mhc_mup.reporting.render.png_bytes` renders one. Colours are the Okabe–Ito palette
(distinguishable with the common colour-vision deficiencies), and every series also has its own marker.

The figures are plain :class:`~matplotlib.figure.Figure` objects, not pyplot ones: nothing registers them
in pyplot's global state, so nothing has to close them, and ``matplotlib.pyplot`` is never imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mhc_mup.diagnostics.corrections import CORRECTION_QUANTITIES, FittedRun
from mhc_mup.reporting.style import MARKERS, OKABE_ITO, READING_COLOURS
from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import classify

# Each panel's title sits at the top of its axes (matplotlib's default height), set explicitly. Left to
# itself, matplotlib looks for tick labels above the axes before placing a title, at each layout pass and
# draw: a sixth of the rendering time in a profile. These figures never put tick labels there (x ticks
# are at the bottom; a y axis' offset text, when there is one, sits at the left corner, clear of the
# centred title), so the pictures are the same, byte for byte (benchmarks/bench_figures.py checks).
TITLE_Y = 1.0

SENSITIVITY_PANELS = (
    ("dc_x", "‖∂C/∂x‖₂·‖x‖ (comb)"),
    ("dp_x", "‖∂pre/∂x‖₂·‖x‖"),
    ("dq_x", "‖∂post/∂x‖₂·‖x‖"),
)
GATE_PANELS = (
    ("pre_mean", "mean pre"),
    ("pre_l1_mean", "‖pre‖₁"),
    ("post_mean", "mean post"),
    ("post_linf_mean", "‖post‖∞"),
)
CHAIN_SERIES = (
    ("rms_jacobian", "‖D RMSNorm(x)‖₂"),
    ("scale_comb", "|s_C|"),
    ("w_comb", "‖W_comb‖₂"),
    ("sinkhorn_jacobian", "‖DS_K(Z)‖₂"),
    ("x_norm", "‖x‖"),
    ("bound", "product (bound)"),
    ("measured", "‖DC(x)‖₂·‖x‖ measured"),
)


def _style(i: int) -> dict:
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)]}


def _hollow(i: int) -> dict:
    """Hollow markers that shrink with the index: series that coincide still show as nested shapes."""
    style = _style(i)
    return {**style, "markerfacecolor": "none", "markeredgecolor": style["color"], "ms": max(11 - 1.2 * i, 3.5)}


def _exponent_label(fit: PowerLawFit) -> str:
    if not np.isfinite(fit.exponent):
        return "no fit"
    return f"d^{fit.exponent:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}]"


def _fit_line(ax: Axes, widths: Sequence[int], fit: PowerLawFit, color: str) -> None:
    """The fitted power law and its band: exponents across the interval, pivoting at the geometric
    centre of the widths (where the fitted level is best determined)."""
    if not np.isfinite(fit.exponent):
        return
    d = np.geomspace(min(widths), max(widths), 50)
    centre = float(np.exp(np.mean(np.log(widths))))
    level = fit.prefactor * centre**fit.exponent
    ax.plot(d, level * (d / centre) ** fit.exponent, color=color, lw=1.2, alpha=0.9)
    lo, hi = (level * (d / centre) ** e for e in (fit.ci_low, fit.ci_high))
    ax.fill_between(d, np.minimum(lo, hi), np.maximum(lo, hi), color=color, alpha=0.15, lw=0)


def _width_axis(ax: Axes, widths: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(widths))
    ax.set_xticklabels([str(w) for w in widths])
    ax.minorticks_off()
    ax.set_xlabel("stream width d")
    ax.grid(True, which="major", alpha=0.3)


def sensitivity_figure(runs: Mapping[str, FittedRun]) -> Figure:
    """Diagnostic 4 vs width, log-log, one line per parameterization: means ± standard error, the
    fitted power law with its confidence band, the exponent and interval in the legend."""
    fig = Figure(figsize=(15, 4.2 + 0.22 * len(runs)), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (key, title) in zip(axes, SENSITIVITY_PANELS, strict=True):
        for i, (name, run) in enumerate(runs.items()):
            style = _hollow(i)
            widths = run.widths
            n = run.config["sensitivity_samples"] if isinstance(run.config, dict) else run.config.sensitivity_samples
            mean = np.array([run.summary(w)["dynamic_sensitivity"][f"{key}_mean"] for w in widths])
            sem = np.array([run.summary(w)["dynamic_sensitivity"][f"{key}_std"] for w in widths]) / np.sqrt(n)
            fit = run.fit("dynamic_sensitivity", f"{key}_mean")
            ax.errorbar(widths, mean, yerr=sem, ls="none", capsize=2, label=f"{name}: {_exponent_label(fit)}",
                        **style)  # fmt: skip
            _fit_line(ax, widths, fit, style["color"])
        _width_axis(ax, runs[next(iter(runs))].widths)
        ax.set_yscale("log")
        ax.set_title(title, y=TITLE_Y)
        ax.set_ylabel("sensitivity (dimensionless)")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle("Diagnostic 4: dynamic sensitivity vs width (mean ± s.e.; line: fit; band: exponent interval)")
    return fig


def quotient_figure(run: FittedRun) -> Figure:
    """Diagnostic 3 vs K: σ_max, σ_min and κ of the quotient Jacobian; gauge leakage (log scale)."""
    q = run.summary(run.widths[0])["quotient_jacobian"]
    ks = sorted(int(k.removeprefix("K=")) for k in q)
    get = {key: np.array([q[f"K={k}"][key] for k in ks]) for key in next(iter(q.values()))}
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    a1, a2, a3 = fig.subplots(1, 3)
    for i, (key, label) in enumerate((("sigma_max_mean", "σ_max (mean)"), ("sigma_min_mean", "σ_min (mean)"))):
        a1.plot(ks, get[key], label=label, **_style(i))
    a1.set_ylabel("singular value of Bᵀ J B")
    a1.set_title("Quotient-Jacobian singular values", y=TITLE_Y)
    for i, (key, label) in enumerate((("kappa_mean", "κ mean"), ("kappa_median", "κ median"))):
        a2.plot(ks, get[key], label=label, **_style(i + 2))
    a2.set_ylabel("condition number κ = σ_max/σ_min")
    a2.set_title("Quotient-Jacobian conditioning", y=TITLE_Y)
    for i, (key, label) in enumerate((("gauge_leakage_mean", "mean"), ("gauge_leakage_median", "median"))):
        values = get[key]
        keep = values > 0  # exact zeros cannot be drawn on a log axis
        a3.plot(np.array(ks)[keep], values[keep], label=label, **_style(i + 4))
    a3.set_yscale("log")
    a3.set_ylabel("‖Π_G J B‖₂ / ‖J B‖₂")
    a3.set_title("Gauge leakage", y=TITLE_Y)
    for ax in (a1, a2, a3):
        ax.set_xscale("log")
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("Sinkhorn iterations K")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    a1.set_ylim(bottom=0)
    a2.set_ylim(bottom=0)
    fig.suptitle("Diagnostic 3: Sinkhorn quotient Jacobian vs K (width independent, Z ~ N(0, 1))")
    return fig


def gates_figure(runs: Mapping[str, FittedRun]) -> Figure:
    """Diagnostic 6 vs width: the gates' means and norms, one line per parameterization."""
    fig = Figure(figsize=(16, 4.0), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, (key, title) in zip(axes, GATE_PANELS, strict=True):
        for i, (name, run) in enumerate(runs.items()):
            values = [run.summary(w)["gate_stats"][key] for w in run.widths]
            ax.plot(run.widths, values, label=name, **_hollow(i))
        _width_axis(ax, runs[next(iter(runs))].widths)
        ax.set_title(title, y=TITLE_Y)
        ax.set_ylabel("value")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 8), fontsize=8, frameon=False)
    fig.suptitle("Diagnostic 6: gate statistics vs width (means over tokens)")
    return fig


def chain_figure(run: FittedRun) -> Figure:
    """The chain factors of ``‖DC(x)‖·‖x‖`` vs width, log-log, with their product and the measured value."""
    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    ax = fig.subplots()
    widths = run.widths
    for i, (factor, label) in enumerate(CHAIN_SERIES):
        values = [run.summary(w)["chain_decomposition"][f"{factor}_mean"] for w in widths]
        fit = run.fit("chain_decomposition", f"{factor}_mean")
        bold = factor in ("bound", "measured")
        ax.plot(widths, values, label=f"{label}: {_exponent_label(fit)}", lw=2.2 if bold else 1.2,
                ls="--" if factor == "bound" else "-", ms=5, **_style(i))  # fmt: skip
    _width_axis(ax, widths)
    ax.set_yscale("log")
    ax.set_ylabel("factor (mean over samples)")
    ax.set_title(f"Chain decomposition of ‖DC(x)‖·‖x‖ — {run.name}", y=TITLE_Y)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def corrections_figure(runs: Mapping[str, FittedRun], tolerance: float) -> Figure:
    """Each parameterization's exponents with their intervals, against the O(1) band ±tolerance."""
    names = list(runs)
    fig = Figure(figsize=(16, 0.45 * len(names) + 2.2), layout="constrained")
    axes = fig.subplots(1, len(CORRECTION_QUANTITIES), sharey=True)
    for ax, (_, diag, key, label) in zip(np.atleast_1d(axes), CORRECTION_QUANTITIES, strict=True):
        ax.axvspan(-tolerance, tolerance, color="0.85", zorder=0, label=f"O(1) band ±{tolerance:g}")
        ax.axvline(0, color="0.5", lw=0.8)
        for y, name in enumerate(names):
            fit = runs[name].fit(diag, key)
            if not np.isfinite(fit.exponent):
                continue
            verdict = classify(fit, tolerance)
            ax.errorbar(fit.exponent, y, xerr=[[fit.exponent - fit.ci_low], [fit.ci_high - fit.exponent]],
                        fmt="o", color=READING_COLOURS[verdict], capsize=3, ms=5)  # fmt: skip
        ax.set_title(label, fontsize=10, y=TITLE_Y)
        ax.set_xlabel("exponent of d")
        ax.grid(True, axis="x", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(range(len(names)))
    first.set_yticklabels(names)
    first.invert_yaxis()
    handles: list[Artist] = [Line2D([], [], marker="o", ls="none", color=c, label=v)
                             for v, c in READING_COLOURS.items()]  # fmt: skip
    handles.append(Rectangle((0, 0), 1, 1, color="0.85", label=f"O(1) band ±{tolerance:g}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.suptitle("Corrections: exponent of each quantity with its interval (colour: verdict)")
    return fig
