"""The report: ``report.md`` and a self-contained ``report.html``, generated from a results folder.

Everything in it is read back from the files ``run`` or ``compare`` wrote (results.json and
verdict.json), so every number in the report is a number in the data, and ``mhc-mup report DIR``
rebuilds it without recomputing. Every sentence that compares a quantity with a scaling law is built
from that quantity's fit (:func:`~mhc_mup.diagnostics.verdict.scaling_phrase`), never from a template claim.

The report is a list of blocks (headings, paragraphs, tables, figures) rendered twice: to Markdown
(figures as PNG files beside it) and to HTML (figures embedded as data URIs, no external resource).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mhc_mup._io import write_bundle
from mhc_mup.diagnostics.corrections import CORRECTION_QUANTITIES, corrections_rows
from mhc_mup.diagnostics.results import CHAIN_FACTORS, LoadedRun, load_results_folder
from mhc_mup.diagnostics.verdict import join_numbers, scaling_phrase
from mhc_mup.mhc.parameterizations import Parameterization
from mhc_mup.reporting.blocks import Block, FigureBlock, Heading, Paragraph, Report, Table, render_html, render_markdown
from mhc_mup.reporting.figure_pool import FigureCall, FigurePool, render_figures
from mhc_mup.reporting.numbers import fmt_interval, fmt_number
from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import O1, classify

# ── number formats: the report's only ways of printing a number (the tests use them too) ─────────


# The figures are drawn by name (FigureCall), possibly in worker processes: this module never imports them, nor
# matplotlib, so a command pays for matplotlib only where the figures are drawn.
FIGURES = "mhc_mup.diagnostics.figures"

def fmt_value(v: float | None) -> str:
    """A measured value: 6 significant digits (enough to show ‖C‖₂ = 0.999999)."""
    return fmt_number(v, ".6g")


def fmt_exponent(v: float | None) -> str:
    return fmt_number(v, "+.3f")


# ── content ────────────────────────────────────────────────────────────────────────────────────


def _range(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return fmt_value(lo) if fmt_value(lo) == fmt_value(hi) else f"{fmt_value(lo)} – {fmt_value(hi)}"


def _tolerance(verdicts: Mapping[str, dict]) -> float:
    return float(next(iter(verdicts.values()))["thresholds"]["tolerance"])


def _column(run: LoadedRun, diag: str, key: str) -> list[float]:
    return [run.summary(w)[diag][key] for w in run.widths]


def _per_width_table(run: LoadedRun, columns: Sequence[tuple[str, str, str]], caption: str) -> Table:
    """Rows = widths; columns = (header, diagnostic, key) summaries; a last row of fitted exponents."""
    rows = [[str(w)] + [fmt_value(run.summary(w)[d][k]) for _, d, k in columns] for w in run.widths]
    fits = [run.fit(d, k) for _, d, k in columns]
    rows.append(["exponent"] + [f"{fmt_exponent(f.exponent)} {fmt_interval(f.ci_low, f.ci_high)}" for f in fits])
    return Table(["width d", *(h for h, _, _ in columns)], rows, caption)


def recommend(runs: Mapping[str, LoadedRun], verdicts: Mapping[str, dict], tolerance: float) -> tuple[str, str]:
    """The recommended parameterization and why, chosen from the measured fits: among those meeting every
    measured condition of Theorem D, the one with the most O(1) quantities in the corrections table,
    then the smallest largest |exponent|."""
    rows = corrections_rows(runs, tolerance)

    def score(name: str) -> tuple[int, int, float]:
        own = [r for r in rows if r["parameterization"] == name]
        n_o1 = sum(r["verdict"] == O1 for r in own)
        worst = max((abs(r["exponent"]) for r in own if math.isfinite(r["exponent"])), default=math.inf)
        return (int(verdicts[name]["measured_conditions_hold"]), n_o1, -worst)

    best = max(runs, key=score)
    holds, n_o1, neg_worst = score(best)
    total = len(CORRECTION_QUANTITIES)
    if holds:
        others = [n for n in runs if n != best and verdicts[n]["measured_conditions_hold"]]
        why = (
            f"every measured condition of Theorem D holds, and {n_o1} of the {total} quantities of the corrections "
            f"table are O(1) (largest |exponent| {-neg_worst:.3f})"
        )
        if others:
            why += f"; {', '.join(others)} also meet every measured condition"
        else:
            why += "; it is the only parameterization compared that meets every measured condition"
        return best, why
    return best, (
        f"no parameterization compared meets every measured condition; {best} comes closest, with {n_o1} of the "
        f"{total} quantities O(1) — it is a starting point, not a fix"
    )


def _executive_summary(
    runs: Mapping[str, LoadedRun], verdicts: Mapping[str, dict], comparison: bool, tol: float
) -> list[Block]:
    ref_name = next(iter(runs))
    ref = runs[ref_name]
    head = scaling_phrase("‖DC(x)‖·‖x‖", ref.fit("dynamic_sensitivity", "dc_x_mean"), tol)
    blocks: list[Block] = [Heading("Executive summary")]
    widths = ref.widths
    blocks.append(
        Paragraph(
            f"**Headline.** Under {ref_name} ({ref.description}), over widths {widths[0]}–{widths[-1]} with "
            f"n_s = {ref.config['n_s']} and K = {ref.config['K']}, {head}. "
            f"Verdict: {verdicts[ref_name]['summary']}"
        )
    )
    if comparison:
        best, why = recommend(runs, verdicts, tol)
        p = Parameterization.from_dict(runs[best].config["parameterization"])
        rules = "; ".join(f"{r['parameter']}: init {r['init']}, LR {r['lr_adam']} (Adam)" for r in p.rule_table())
        blocks.append(Paragraph(f"**Recommended: {best}** ({runs[best].description}) — {why}. Its rule: {rules}."))
    else:
        v = verdicts[ref_name]
        if v["measured_conditions_hold"]:
            text = f"**{ref_name} meets every measured condition** of Theorem D in this run."
        else:
            failed = [c["number"] for c in v["conditions"] if c["status"] == "fail"]
            text = (
                f"**No recommendation from one run**: {ref_name} fails condition{'s' if len(failed) > 1 else ''} "
                f"{join_numbers(failed)}. `mhc-mup compare` measures the corrections side by side."
            )
        blocks.append(Paragraph(text))
    return blocks


def _diagnostic_sections(run: LoadedRun, runs: Mapping[str, LoadedRun], verdict: dict, tol: float) -> list[Block]:
    """One section per diagnostic for ``run``; figures with one line per run of ``runs``."""
    by_number = {c["number"]: c for c in verdict["conditions"]}
    out: list[Block] = [Heading(f"Diagnostics ({run.name})")]
    for section in DIAGNOSTIC_SECTIONS:
        out += section(run, runs, by_number, tol)
    return out


def _span(run: LoadedRun) -> str:
    return f"{run.widths[0]}–{run.widths[-1]}"


def _sinkhorn_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 1: ε_K per width, with condition 2's sentence."""
    cfg = run.config
    eps_mean, eps_max = _column(run, "sinkhorn_error", "eps_K_mean"), _column(run, "sinkhorn_error", "eps_K_max")
    return [
        Heading("1. Finite-K Sinkhorn error ε_K", 3),
        _per_width_table(
            run,
            [("ε_K mean", "sinkhorn_error", "eps_K_mean"), ("ε_K max", "sinkhorn_error", "eps_K_max")],
            "Largest |row or column sum − 1| of the realised comb, over token states.",
        ),
        Paragraph(
            f"ε_K stays within {_range(eps_mean + eps_max)} over widths {_span(run)} (K = {cfg['K']}, hc_eps = "
            f"{cfg['hc_eps']:g}); {scaling_phrase('its mean', run.fit('sinkhorn_error', 'eps_K_mean'), tol)}. "
            f"{conditions[2]['sentence']}"
        ),
    ]


def _spectral_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 2: ‖C‖₂ and κ(C) per width."""
    s_max = _column(run, "spectral_norm", "spectral_norm_max")
    k_mean, k_med = (
        _column(run, "spectral_norm", "condition_number_mean"),
        _column(run, "spectral_norm", "condition_number_median"),
    )
    return [
        Heading("2. Spectral norm of the realised comb", 3),
        _per_width_table(
            run,
            [
                ("‖C‖₂ mean", "spectral_norm", "spectral_norm_mean"),
                ("‖C‖₂ max", "spectral_norm", "spectral_norm_max"),
                ("κ(C) mean", "spectral_norm", "condition_number_mean"),
                ("κ(C) median", "spectral_norm", "condition_number_median"),
            ],
            "σ_max(C) and κ(C) = σ_max/σ_min per comb.",
        ),
        Paragraph(
            f"The largest ‖C‖₂ at any width is {fmt_value(max(s_max))}: the realised comb "
            f"{'does not amplify the residual' if max(s_max) <= 1 + 1e-5 else 'amplifies the residual'}. "
            f"κ(C) is heavy-tailed — means {_range(k_mean)} against medians {_range(k_med)} — so the median "
            "is the typical comb."
        ),
    ]


def _quotient_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 3: the quotient Jacobian's spectrum and gauge leakage per K, with condition 3's sentence."""
    cfg = run.config
    q = run.summary(run.widths[0])["quotient_jacobian"]
    ks = sorted(int(k.removeprefix("K=")) for k in q)
    keys = (
        "sigma_max_mean",
        "sigma_min_mean",
        "kappa_mean",
        "kappa_median",
        "gauge_leakage_mean",
        "gauge_leakage_median",
    )
    qrows = [[str(k)] + [fmt_value(q[f"K={k}"][key]) for key in keys] for k in ks]
    model_k = cfg["K"]
    at_k = q[f"K={model_k}"]
    return [
        Heading("3. Sinkhorn quotient Jacobian", 3),
        Table(
            ["K", "σ_max", "σ_min", "κ mean", "κ median", "leakage mean", "leakage median"],
            qrows,
            f"Spectrum of Bᵀ J B on G⊥ and gauge leakage ‖Π_G J B‖₂/‖J B‖₂, {cfg['quotient_samples']} draws "
            "Z ~ N(0, 1) (width independent).",
        ),
        Paragraph(
            f"At the model's K = {model_k} the quotient Jacobian has σ_max = {fmt_value(at_k['sigma_max_mean'])}"
            f"{' < 1: Sinkhorn contracts tangent perturbations' if at_k['sigma_max_mean'] < 1 else ''}, and median "
            f"κ = {fmt_value(at_k['kappa_median'])} (mean {fmt_value(at_k['kappa_mean'])}). Gauge leakage falls from "
            f"{fmt_value(q[f'K={ks[0]}']['gauge_leakage_mean'])} at K = {ks[0]} to "
            f"{fmt_value(q[f'K={ks[-1]}']['gauge_leakage_mean'])} at K = {ks[-1]} (medians "
            f"{fmt_value(q[f'K={ks[0]}']['gauge_leakage_median'])} and "
            f"{fmt_value(q[f'K={ks[-1]}']['gauge_leakage_median'])}). {conditions[3]['sentence']}"
        ),
        FigureBlock(
            "quotient_jacobian.png",
            "Quotient-Jacobian spectrum and gauge leakage vs K.",
            draw=FigureCall(f"{FIGURES}:quotient_figure", (run,)),
        ),
    ]


def _sensitivity_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 4: each gate's sensitivity per width, and whether a gradient direction sees the worst case."""
    cfg, fit = run.config, run.fit
    worst, grad, random = (fit("dynamic_sensitivity", f"dc_x{s}_mean") for s in ("", "_grad", "_random"))
    return [
        Heading("4. Dynamic sensitivity", 3),
        _per_width_table(
            run,
            [
                ("‖DC‖·‖x‖", "dynamic_sensitivity", "dc_x_mean"),
                ("‖Dpre‖·‖x‖", "dynamic_sensitivity", "dp_x_mean"),
                ("‖Dpost‖·‖x‖", "dynamic_sensitivity", "dq_x_mean"),
                ("comb, gradient dir.", "dynamic_sensitivity", "dc_x_grad_mean"),
                ("comb, random dir.", "dynamic_sensitivity", "dc_x_random_mean"),
            ],
            f"Means over {cfg['sensitivity_samples']} draws per width: the operator norm (worst case) × ‖x‖ per "
            "gate, and the comb's sensitivity along a gradient step of the state and along random directions.",
        ),
        Paragraph(
            f"{scaling_phrase('‖DC(x)‖·‖x‖', fit('dynamic_sensitivity', 'dc_x_mean'), tol)}; "
            f"{scaling_phrase('‖Dpre(x)‖·‖x‖', fit('dynamic_sensitivity', 'dp_x_mean'), tol)}; "
            f"{scaling_phrase('‖Dpost(x)‖·‖x‖', fit('dynamic_sensitivity', 'dq_x_mean'), tol)}. "
            f"Along a gradient step of the state the comb's sensitivity scales as d^{grad.exponent:.3f}, along "
            f"random directions as d^{random.exponent:.3f}: training's direction "
            + ("sees the worst case." if abs(grad.exponent - worst.exponent) < tol else "does not see the worst case.")
        ),
        FigureBlock(
            "sensitivity.png",
            "Dynamic sensitivity vs width, one line per parameterization (mean ± standard error; line: fit; band: "
            "exponents within the interval).",
            draw=FigureCall(f"{FIGURES}:sensitivity_figure", (runs,)),
        ),
    ]


def _logit_update_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 5: ‖Π⊥ΔZ‖ after one SGD and one Adam step per width, and the share of ΔZ in G⊥."""
    cfg, fit = run.config, run.fit
    ratio = _column(run, "logit_update", "perp_ratio_mean") + _column(run, "logit_update", "adam_perp_ratio_mean")
    return [
        Heading("5. Generated-logit update", 3),
        _per_width_table(
            run,
            [
                ("‖Π⊥ΔZ‖ SGD", "logit_update", "proj_perp_norm_mean"),
                ("perp ratio SGD", "logit_update", "perp_ratio_mean"),
                ("‖Π⊥ΔZ‖ Adam", "logit_update", "adam_proj_perp_norm_mean"),
                ("perp ratio Adam", "logit_update", "adam_perp_ratio_mean"),
            ],
            f"One step on ‖C − I‖²_F from the init, each group at η = {cfg['lr']:g} × its multiplier under "
            f"{run.name}'s learning-rate rule; {cfg['update_samples']} draws per width.",
        ),
        Paragraph(
            f"After one SGD step {scaling_phrase('‖Π⊥ΔZ‖', fit('logit_update', 'proj_perp_norm_mean'), tol)}; "
            f"after one Adam step "
            f"{scaling_phrase('‖Π⊥ΔZ‖', fit('logit_update', 'adam_proj_perp_norm_mean'), tol)}. "
            f"The part of ΔZ in G⊥ (the part that moves the comb) is {_range(ratio)} of it."
        ),
    ]


def _gates_section(run: LoadedRun, runs: Mapping[str, LoadedRun], conditions: dict, tol: float) -> list[Block]:
    """Diagnostic 6: the pre and post gates' statistics per width."""
    pre, post = _column(run, "gate_stats", "pre_mean"), _column(run, "gate_stats", "post_mean")
    return [
        Heading("6. Gate statistics", 3),
        _per_width_table(
            run,
            [
                ("mean pre", "gate_stats", "pre_mean"),
                ("‖pre‖₁", "gate_stats", "pre_l1_mean"),
                ("mean post", "gate_stats", "post_mean"),
                ("‖post‖∞", "gate_stats", "post_linf_mean"),
            ],
            "Means over token states.",
        ),
        Paragraph(
            f"Mean pre stays within {_range(pre)} and mean post within {_range(post)} over widths {_span(run)}; "
            f"{scaling_phrase('‖post‖∞', run.fit('gate_stats', 'post_linf_mean'), tol)}."
        ),
        FigureBlock(
            "gates.png",
            "Gate statistics vs width, one line per parameterization.",
            draw=FigureCall(f"{FIGURES}:gates_figure", (runs,)),
        ),
    ]


# (run, every run, verdict conditions by number, tolerance) → the section's blocks
DiagnosticSection = Callable[[LoadedRun, Mapping[str, LoadedRun], dict, float], list[Block]]
DIAGNOSTIC_SECTIONS: tuple[DiagnosticSection, ...] = (
    _sinkhorn_section,
    _spectral_section,
    _quotient_section,
    _sensitivity_section,
    _logit_update_section,
    _gates_section,
)


def _corrections_section(runs: Mapping[str, LoadedRun], tol: float) -> list[Block]:
    rows = corrections_rows(runs, tol)
    table_rows = []
    for name, run in runs.items():
        cells = {r["quantity"]: r for r in rows if r["parameterization"] == name}
        table_rows.append(
            [name, run.description]
            + [
                f"{fmt_exponent(c['exponent'])} {fmt_interval(c['ci_low'], c['ci_high'])} {c['verdict']}"
                for c in (cells[q] for q, *_ in CORRECTION_QUANTITIES)
            ]
        )
    level = f"{next(iter(runs.values())).fit('dynamic_sensitivity', 'dc_x_mean').confidence:.0%}"
    return [
        Heading("Corrections"),
        Table(
            ["parameterization", "rule", *(label for *_, label in CORRECTION_QUANTITIES)],
            table_rows,
            f"Exponent of d with its {level} interval and the verdict: O(1) when the interval lies inside "
            f"±{tol:g}, grows / decays when the exponent lies outside and the interval excludes 0, unclear "
            "otherwise. The logit update is "
            "measured under each parameterization's own learning-rate rule.",
        ),
        FigureBlock(
            "corrections.png",
            "Exponents with their intervals against the O(1) band.",
            draw=FigureCall(f"{FIGURES}:corrections_figure", (runs, tol)),
        ),
    ]


def _chain_section(run: LoadedRun, tol: float) -> list[Block]:
    widths = run.widths
    rows = []
    for factor, label in CHAIN_FACTORS:
        f: PowerLawFit = run.fit("chain_decomposition", f"{factor}_mean")
        values = [fmt_value(run.summary(w)["chain_decomposition"][f"{factor}_mean"]) for w in widths]
        rows.append(
            [label, *values, f"{fmt_exponent(f.exponent)} {fmt_interval(f.ci_low, f.ci_high)}", classify(f, tol)]
        )
    measured = run.fit("chain_decomposition", "measured_mean")
    bound = run.fit("chain_decomposition", "bound_mean")
    tight = [run.summary(w)["chain_decomposition"]["tightness_mean"] for w in widths]
    factors = CHAIN_FACTORS[:5]  # the five factors of the bound, not the product, measured value or ratio
    growing = [
        label for factor, label in factors if classify(run.fit("chain_decomposition", f"{factor}_mean"), tol) != O1
    ]
    return [
        Heading(f"Chain decomposition ({run.name})", 3),
        Table(
            ["factor", *(f"d={w}" for w in widths), "exponent [interval]", "reading"],
            rows,
            "‖DC(x)‖·‖x‖ ≤ ‖D RMSNorm(x)‖₂ · |s_C| · ‖W_comb‖₂ · ‖DS_K(Z)‖₂ · ‖x‖, each factor's mean per width.",
        ),
        Paragraph(
            f"The factors that are not O(1): {', '.join(growing) if growing else 'none'}. Their product scales as "
            f"d^{bound.exponent:.3f} and the measured value as d^{measured.exponent:.3f}; the bound's tightness "
            f"(measured / bound) is {_range(tight)}."
        ),
        FigureBlock(
            f"chain_{run.name}.png",
            f"Chain factors vs width ({run.name}).",
            draw=FigureCall(f"{FIGURES}:chain_figure", (run,)),
        ),
    ]


def _rule_section(names: Sequence[str], runs: Mapping[str, LoadedRun]) -> list[Block]:
    out: list[Block] = [Heading("The µP rule table")]
    for name in names:
        p = Parameterization.from_dict(runs[name].config["parameterization"])
        rows = [[r["parameter"], r["init"], r["lr_sgd"], r["lr_adam"]] for r in p.rule_table()]
        out.append(
            Table(
                ["parameter", "init", "LR (SGD)", "LR (Adam)"],
                rows,
                f"{name}: {p.description}. η is the base learning rate; n_s streams of width d.",
            )
        )
    return out


def _checklist_section(runs: Mapping[str, LoadedRun], verdicts: Mapping[str, dict], detail: str) -> list[Block]:
    out: list[Block] = [Heading("Theorem D checklist")]
    if len(verdicts) > 1:
        first = next(iter(verdicts.values()))
        rows = [
            [f"{c['number']}. {c['statement']}", *(v["conditions"][i]["status"] for v in verdicts.values())]
            for i, c in enumerate(first["conditions"])
        ]
        out.append(Table(["condition", *verdicts], rows, "pass / fail / assumed per parameterization."))
    v = verdicts[detail]
    rows = []
    for c in v["conditions"]:
        for i, k in enumerate(c["checks"] or [None]):
            if k is None:
                rows.append([str(c["number"]), c["statement"], "—", "—", "—", c["status"]])
                continue
            if k["kind"] == "exponent":
                est = f"d^{fmt_exponent(k['estimate'])} {fmt_interval(k['ci_low'], k['ci_high'])}"
            else:
                interval = f" [{fmt_value(k['ci_low'])}, {fmt_value(k['ci_high'])}]" if k["ci_low"] is not None else ""
                est = fmt_value(k["estimate"]) + interval
            rows.append(
                [
                    str(c["number"]) if i == 0 else "",
                    c["statement"] if i == 0 else "",
                    k["label"],
                    est,
                    k["threshold"],
                    k["status"],
                ]
            )
    out.append(
        Table(
            ["#", "condition", "metric", "estimate [interval]", "threshold", "status"],
            rows,
            f"{detail}: the five conditions, the metric each is judged by, and its threshold.",
        )
    )
    out += [Paragraph(c["sentence"]) for c in v["conditions"]]
    out += [Paragraph(n) for n in v["notes"]]
    out.append(Paragraph(f"**{v['summary']}**"))
    return out


def _config_section(runs: Mapping[str, LoadedRun]) -> list[Block]:
    run = next(iter(runs.values()))
    cfg = {k: v for k, v in run.config.items() if k != "parameterization"}
    rows = [[k, ", ".join(map(str, v)) if isinstance(v, list) else str(v)] for k, v in cfg.items()]
    rows.append(["parameterizations", ", ".join(runs)])
    doc = run.document
    soft = [[k, str(v)] for k, v in doc.get("software", {}).items()]
    return [
        Heading("Configuration and software"),
        Table(["setting", "value"], rows, "The sweep's configuration (the same for every parameterization)."),
        Table(["package", "version"], soft, f"Created {doc.get('created', '?')} by `{doc.get('command', '?')}`."),
    ]


def build_report(runs: Mapping[str, LoadedRun], verdicts: Mapping[str, dict], comparison: bool) -> Report:
    """The report's blocks, every number read from ``runs`` (results.json) and ``verdicts`` (verdict.json)."""
    tol = _tolerance(verdicts)
    ref_name = next(iter(runs))
    detail = recommend(runs, verdicts, tol)[0] if comparison else ref_name
    title = f"mhc-mup report: {len(runs)} parameterizations compared" if comparison else f"mhc-mup report: {ref_name}"
    blocks: list[Block] = []
    blocks += _executive_summary(runs, verdicts, comparison, tol)
    blocks += _diagnostic_sections(runs[ref_name], runs, verdicts[ref_name], tol)
    blocks += _corrections_section(runs, tol)
    blocks += [Heading("Chain decomposition")]
    for name in dict.fromkeys([ref_name, detail]):
        blocks += _chain_section(runs[name], tol)
    blocks += _rule_section(list(dict.fromkeys([ref_name, detail])), runs)
    blocks += _checklist_section(runs, verdicts, detail)
    blocks += _config_section(runs)
    return Report(title, blocks)


def write_report(folder: Path, figures: FigurePool | None = None) -> list[Path]:
    """Read ``folder`` (a ``run`` or ``compare`` output), write ``figures/*.png``, ``report.md`` and
    ``report.html`` there; :class:`~mhc_mup.diagnostics.results.ResultsError` if the folder cannot be read.
    The figures are drawn in ``figures``' worker processes when given, else in this process."""
    folder = Path(folder)
    runs, verdicts, comparison = load_results_folder(folder)
    report = render_figures(build_report(runs, verdicts, comparison), figures)
    files: dict[str, str | bytes] = {f"figures/{fig.name}": fig.png for fig in report.figures}
    files |= {"report.md": render_markdown(report), "report.html": render_html(report)}  # all rendered first
    return write_bundle(folder, files)
