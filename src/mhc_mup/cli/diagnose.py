"""``mhc-mup run``, ``compare`` and ``report``: the width-sweep diagnostics from the command line.

Registered from :data:`mhc_mup.cli.app.COMMANDS`; a thin layer: parse and validate, run the sweep, print, write.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from mhc_mup._locks import exclusive_folder
from mhc_mup.cli.common import (
    Group,
    add_bootstrap,
    add_device,
    add_eps,
    add_lr,
    add_n_s,
    add_outputs,
    add_param,
    add_quiet,
    add_samples,
    add_seed,
    add_sinkhorn_iters,
    add_tolerance,
    add_widths,
    check_out_dir,
    consoles,
    figure_pool,
    int_at_least,
    int_list,
    positive_float,
    progress_bar,
    table,
    write_failure,
)
from mhc_mup.diagnostics.budget import check_memory, estimate_cpu_seconds
from mhc_mup.diagnostics.config import DTYPE_NAMES, SweepConfig
from mhc_mup.diagnostics.corrections import CORRECTION_QUANTITIES, corrections_rows
from mhc_mup.diagnostics.results import chain_rows
from mhc_mup.diagnostics.verdict import Verdict, VerdictConfig, describe_scaling, theorem_d
from mhc_mup.errors import UsageError
from mhc_mup.mhc.parameterizations import (
    COMPARE_DEFAULT,
    GATES,
    PARAMETERIZATIONS,
    Parameterization,
    get_parameterization,
    split_top_level,
)
from mhc_mup.mhc.presets import PRESETS
from mhc_mup.reporting.numbers import fmt_interval
from mhc_mup.reporting.style import READING_RICH_STYLES

if TYPE_CHECKING:
    from mhc_mup.diagnostics.sweep import SweepResult
    from mhc_mup.reporting.figure_pool import FigurePool
    from mhc_mup.stats.fitting import PowerLawFit

__all__ = [
    "compare_parameterizations",
    "config_from_args",
    "print_chain_and_typical",
    "print_corrections",
    "print_summary",
    "print_verdict",
    "print_verdict_matrix",
    "register_compare",
    "register_report",
    "register_run",
]

DEFAULTS = SweepConfig()
# What the report's figure workers import ahead: the figure functions and the runs they are given.
REPORT_PRELOAD = ("mhc_mup.diagnostics.figures", "mhc_mup.diagnostics.results")
RUN_WRITES = "results.json, results.csv, fits.csv, chain.csv, verdict.json, report.md, report.html and figures/"
COMPARE_WRITES = (
    "one folder per parameterization (results as run) plus corrections.csv, chain.csv, verdict.json, "
    "report.md, report.html and figures/"
)


# ── parsers ────────────────────────────────────────────────────────────────────────────────────
def register_run(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup run``'s parser."""
    p.description = (
        "Measure the six mHC diagnostics at every width and fit metric ~ prefactor·d^exponent with a 95% "
        "interval; decompose diagnostic 4 into its chain factors; check Theorem D's conditions. Defaults "
        "reproduce the seed's run: widths 64..1024, n_s 4, K 20, fn ~ N(0, 0.02²), scale 0.1. Writes "
        f"DIR/{RUN_WRITES.replace(', ', ', DIR/').replace(' and ', ' and DIR/')}."
    )
    _add_init_arguments(p)
    _add_sweep_arguments(p, RUN_WRITES)
    p.set_defaults(handler=_run)


def register_compare(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup compare``'s parser."""
    p.description = (
        "Run the sweep once per parameterization (same widths, seed and samples) and tabulate, for the "
        "comb, pre and post sensitivities and the generated-logit update under each parameterization's "
        "own LR rule (one SGD and one Adam step), the exponent with its interval and a verdict: O(1) when "
        "the interval lies inside ±tolerance, grows / decays when the exponent is outside and the interval "
        "excludes 0, unclear "
        f"otherwise. Writes {COMPARE_WRITES}."
    )
    g = p.add_argument_group("parameterizations")
    g.add_argument(
        "--params",
        metavar="NAMES",
        help=f"comma-separated presets to compare (default: {','.join(COMPARE_DEFAULT)}; all presets: "
        f"{', '.join(PARAMETERIZATIONS)})",
    )
    add_param(g, "any preset", before="add one more (repeatable): ", repeatable=True)
    _add_sweep_arguments(p, COMPARE_WRITES)
    p.set_defaults(handler=_compare)


def register_report(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup report``'s parser."""
    p.description = (
        "Rebuild the report from the results a `run` or `compare` wrote into DIR (results.json and "
        "verdict.json; nothing is recomputed): DIR/report.md, DIR/report.html (self-contained, figures "
        "embedded) and DIR/figures/*.png. Every number in it is read from those files."
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="a folder written by mhc-mup run or compare")
    add_quiet(p, "print nothing")
    p.set_defaults(handler=_report)


def _add_init_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "parameterization (default: baseline, the seed's: fn ~ N(0, 0.02²), scale 0.1, base 0, one LR η)"
    )
    add_param(g, ", ".join(PARAMETERIZATIONS))
    g.add_argument("--sigma-w", metavar="EXPR", help="override: std of fn, a number or an expression in n_s and d")
    g.add_argument(
        "--scale",
        metavar="EXPR",
        help="override: gate scales, one expression for all three or pre,post,comb",
    )
    g.add_argument("--base", metavar="EXPR", help="override: constant init of base")


def _add_sweep_arguments(p: argparse.ArgumentParser, writes: str) -> None:
    """The flags ``run`` and ``compare`` share: widths and mHC shape, samples, run settings and outputs."""
    _shape_arguments(p.add_argument_group("widths and mHC shape"))
    _sample_arguments(p.add_argument_group("samples per diagnostic"))
    _run_arguments(p.add_argument_group("run"), writes)


def _shape_arguments(g: Group) -> None:
    """The widths swept and the mHC's shape: --widths, --preset, --n-s, -K and the eps values."""
    d = DEFAULTS
    add_widths(g, "stream widths d to sweep (at least 2 for a fit)", d.widths, note=", the seed's")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="take n_s, K and the eps values from a named mHC config (v4-pro, v4-flash and seed "
        "share them: n_s=4, K=20, eps=1e-6; they differ only in d, which --widths sets)",
    )
    add_n_s(g, d.n_s, note="; V4: hc_mult")
    add_sinkhorn_iters(g, d.K, note=", as V4")
    add_eps(g, f"{d.hc_eps:g}", f"{d.norm_eps:g}")


def _sample_arguments(g: Group) -> None:
    """How many samples each diagnostic draws, diagnostic 5's learning rate and the verdict's tolerance."""
    d = DEFAULTS
    add_samples(
        g,
        "samples for diagnostics 4 and 5, each a fresh parameter draw and state; the two flags below override "
        "it per diagnostic",
        d.sensitivity_samples,
    )
    g.add_argument(
        "--sensitivity-samples",
        type=int_at_least("sensitivity samples", 2),
        metavar="N",
        help="samples for diagnostic 4, dynamic sensitivity",
    )
    g.add_argument(
        "--update-samples",
        type=int_at_least("update samples", 2),
        metavar="N",
        help="samples for diagnostic 5, generated-logit update",
    )
    g.add_argument(
        "--quotient-samples",
        type=int_at_least("quotient samples", 2),
        metavar="N",
        help=f"logit matrices Z ~ N(0,1) for diagnostic 3 (default {d.quotient_samples})",
    )
    g.add_argument(
        "--quotient-K",
        type=int_list("quotient K", 1),
        metavar="K,K,...",
        help=f"Sinkhorn iteration counts for diagnostic 3 (default {','.join(map(str, d.quotient_K))})",
    )
    g.add_argument(
        "--state-tokens",
        type=int_at_least("state tokens", 2),
        metavar="N",
        help=f"token states per width for diagnostics 1, 2 and 6, one parameter draw "
        f"(default {d.state_tokens}: the seed's 4×16 batch)",
    )
    add_lr(
        g,
        " of diagnostic 5's SGD and Adam steps; each parameter group steps with η × its parameterization's multiplier",
        f"{d.lr:g}",
    )
    add_tolerance(g, VerdictConfig().tolerance)


def _run_arguments(g: Group, writes: str) -> None:
    """The seed, device, precision, intervals and outputs (``writes``: what the command writes)."""
    d = DEFAULTS
    add_seed(g, "the parameter draws and states", d.seed)
    add_device(g)
    g.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        help="precision of the mHC math (default float32, as V4; diagnostic 3 always uses float64)",
    )
    add_bootstrap(g, d.n_boot)
    g.add_argument(
        "--confidence",
        type=positive_float("confidence"),
        metavar="C",
        help=f"confidence level of the intervals (default {d.confidence:g})",
    )
    add_outputs(g, "mhc-mup-out", writes)


# ── arguments → configuration ──────────────────────────────────────────────────────────────────
def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """A validated :class:`SweepConfig` from parsed arguments (unset flags keep the defaults)."""

    def given(*names: str) -> dict:
        return {name: getattr(args, name) for name in names if getattr(args, name) is not None}

    shape = PRESETS[args.preset].shape if args.preset else DEFAULTS.shape
    sampling = given("quotient_samples", "state_tokens")
    if args.quotient_K:
        sampling["quotient_K"] = tuple(args.quotient_K)
    if args.samples is not None:
        sampling["sensitivity_samples"] = sampling["update_samples"] = args.samples
    sampling |= given("sensitivity_samples", "update_samples")
    fit = given("confidence") | ({"n_boot": args.bootstrap} if args.bootstrap is not None else {})
    changes = given("lr", "seed", "device", "dtype")
    if args.widths:
        changes["widths"] = tuple(w for group in args.widths for w in group)
    if args.command == "run":
        changes["parameterization"] = _run_parameterization(args)
    return dataclasses.replace(
        DEFAULTS,
        shape=dataclasses.replace(shape, **given("n_s", "K", "hc_eps", "norm_eps")),
        sampling=dataclasses.replace(DEFAULTS.sampling, **sampling),
        fit=dataclasses.replace(DEFAULTS.fit, **fit),
        **changes,
    ).validate()


def _run_parameterization(args: argparse.Namespace) -> Parameterization:
    """``--param`` (default baseline) with the ``--sigma-w``, ``--scale`` and ``--base`` overrides applied."""
    param = args.param or PARAMETERIZATIONS["baseline"]
    overrides: dict[str, str] = {}
    if args.sigma_w is not None:
        overrides["sigma_w"] = args.sigma_w
    if args.scale is not None:
        parts = split_top_level(args.scale)
        if len(parts) == 1:
            overrides["scale"] = parts[0]
        elif len(parts) == 3:
            overrides |= {f"scale_{g}": v for g, v in zip(GATES, parts, strict=True)}
        else:
            raise UsageError(f"--scale takes one expression or three (pre,post,comb), got {args.scale!r}")
    if args.base is not None:
        overrides["base"] = args.base
    if not overrides:
        return param
    described = ", ".join(f"{k}={v}" for k, v in overrides.items())
    return param.with_rules(description=f"{param.description}; {described}", **overrides)


def compare_parameterizations(args: argparse.Namespace) -> list[Parameterization]:
    """The parameterizations named by ``--params`` (default :data:`COMPARE_DEFAULT`) plus each ``--param``."""
    names = split_top_level(args.params) if args.params is not None else list(COMPARE_DEFAULT)
    if args.params is not None and not names:
        raise UsageError(f"--params names no parameterization: {args.params!r}")
    chosen = [get_parameterization(n) for n in names] + args.param
    seen: set[str] = set()
    for p in chosen:
        if p.name in seen:
            raise UsageError(f"parameterization {p.name!r} is given more than once")
        seen.add(p.name)
    return chosen


# ── output ─────────────────────────────────────────────────────────────────────────────────────
def _fit_interval(fit: PowerLawFit) -> str:
    return fmt_interval(fit.ci_low, fit.ci_high, whole=True)


def print_summary(result: SweepResult, console: Console) -> None:
    """The sweep's tables (the diagnostics per width, the quotient Jacobian, the scaling fits), the chain and the
    headline scaling."""
    _print_per_width(result, console)
    _print_quotient_jacobian(result, console)
    _print_fits(result, console)
    print_chain_and_typical(result, console)
    head = result.fit("dynamic_sensitivity", "dc_x_mean")
    console.print(f"‖DC(x)‖·‖x‖ scales as {describe_scaling(head)}")


def _print_per_width(result: SweepResult, console: Console) -> None:
    widths = sorted(result.samples)
    t = table("Diagnostics per width (means over samples)")
    for col in ("width", "‖DC‖·‖x‖", "‖Dp‖·‖x‖", "‖Dq‖·‖x‖", "‖C‖₂", "ε_K", "‖Π⊥ΔZ‖", "mean pre", "mean post"):
        t.add_column(col, justify="right", no_wrap=True)
    for w in widths:
        s = result.summary(w)
        ds, lu = s["dynamic_sensitivity"], s["logit_update"]
        t.add_row(
            str(w),
            f"{ds['dc_x_mean']:.4f}",
            f"{ds['dp_x_mean']:.4f}",
            f"{ds['dq_x_mean']:.4f}",
            f"{s['spectral_norm']['spectral_norm_mean']:.6f}",
            f"{s['sinkhorn_error']['eps_K_mean']:.1e}",
            f"{lu['proj_perp_norm_mean']:.5f}",
            f"{s['gate_stats']['pre_mean']:.3f}",
            f"{s['gate_stats']['post_mean']:.3f}",
        )
    console.print(t)


def _print_quotient_jacobian(result: SweepResult, console: Console) -> None:
    q = table("Diagnostic 3: Sinkhorn quotient Jacobian")
    for col in ("K", "σ_max", "σ_min", "κ mean", "κ median", "gauge leakage"):
        q.add_column(col, justify="right", no_wrap=True)
    for k, v in result.summary(min(result.samples))["quotient_jacobian"].items():
        q.add_row(
            k.removeprefix("K="),
            f"{v['sigma_max_mean']:.3f}",
            f"{v['sigma_min_mean']:.3f}",
            f"{v['kappa_mean']:.2f}",
            f"{v['kappa_median']:.2f}",
            f"{v['gauge_leakage_mean']:.1e}",
        )
    console.print(q)


def _print_fits(result: SweepResult, console: Console) -> None:
    level = f"{result.config.confidence:.0%}"
    f = table(f"Scaling fits: metric ≈ prefactor · d^exponent ({level} interval)")
    for col in ("diagnostic", "metric", "exponent", f"{level} interval", "prefactor", "r²"):
        f.add_column(col, justify="left" if col in ("diagnostic", "metric") else "right", no_wrap=True)
    previous = None
    for (diag, key), fit in result.fits.items():
        f.add_row(
            diag if diag != previous else "",
            key,
            f"{fit.exponent:+.3f}",
            _fit_interval(fit),
            f"{fit.prefactor:.3g}",
            f"{fit.r2:.4f}",
        )
        previous = diag
    console.print(f)


def print_chain_and_typical(result: SweepResult, console: Console) -> None:
    widths = sorted(result.samples)
    t = table("Chain decomposition: ‖DC(x)‖·‖x‖ ≤ ‖D RMSNorm‖ · |s_C| · ‖W_comb‖ · ‖DS_K‖ · ‖x‖ (means)")
    t.add_column("factor", no_wrap=True)
    for w in widths:
        t.add_column(f"d={w}", justify="right", no_wrap=True)
    t.add_column("exponent [interval]", justify="right", no_wrap=True)
    for row in chain_rows(result):
        t.add_row(
            row["label"],
            *(f"{row[f'd={w}']:.4g}" for w in widths),
            f"{row['exponent']:+.3f} {_fit_interval(result.fit('chain_decomposition', row['factor'] + '_mean'))}",
        )
    console.print(t)

    t = table("Typical vs worst case: sensitivity × ‖x‖ along random and gradient-step directions (exponents)")
    for col in ("gate", "worst (‖J‖₂)", "gradient direction", "random direction"):
        t.add_column(col, justify="left" if col == "gate" else "right", no_wrap=True)
    for gate, key in (("comb", "dc_x"), ("pre", "dp_x"), ("post", "dq_x")):
        cells = []
        for suffix in ("", "_grad", "_random"):
            fit = result.fit("dynamic_sensitivity", f"{key}{suffix}_mean")
            last = np.mean(result.samples[widths[-1]]["dynamic_sensitivity"][key + suffix])
            cells.append(f"{last:.3g} at d={widths[-1]}, d^{fit.exponent:+.2f}")
        t.add_row(gate, *cells)
    console.print(t)


def print_verdict(verdict: Verdict, console: Console) -> None:
    t = table(f"Theorem D checklist: {verdict.parameterization}")
    for col in ("#", "condition", "metric", "estimate [interval]", "threshold", "status"):
        t.add_column(col, justify="right" if col == "#" else "left", no_wrap=True)
    for c in verdict.conditions:
        checks = c.checks or (None,)
        for i, k in enumerate(checks):
            if k is None:
                metric, estimate, threshold = "—", "—", "—"
            else:
                metric = k.label
                if k.kind == "exponent":
                    estimate = f"d^{k.estimate:+.3f} [{k.ci_low:+.3f}, {k.ci_high:+.3f}]"
                else:
                    interval = f" [{k.ci_low:.3g}, {k.ci_high:.3g}]" if k.ci_low is not None else ""
                    estimate = f"{k.estimate:.3g}{interval}"
                threshold = k.threshold
            status = (k.status if k is not None else c.status) if len(checks) > 1 else c.status
            t.add_row(str(c.number) if i == 0 else "", c.name if i == 0 else "", metric, estimate, threshold,
                      _status(status))  # fmt: skip
    console.print(t)
    for line in [c.sentence for c in verdict.conditions] + verdict.notes:
        console.print(f"  {line}", soft_wrap=True)  # whole sentences: the terminal wraps them, pipes keep them
    console.print(f"[bold]{verdict.summary}[/bold]", soft_wrap=True)


def _status(status: str) -> str:
    return {"pass": "[green]pass[/green]", "fail": "[red]fail[/red]", "assumed": "[yellow]assumed[/yellow]"}.get(
        status, status
    )


def print_corrections(results: dict[str, SweepResult], tolerance: float, console: Console) -> None:
    level = f"{next(iter(results.values())).config.confidence:.0%}"
    t = table("Parameterizations compared")
    t.add_column("name", no_wrap=True)
    t.add_column("rule", overflow="fold")
    for name, result in results.items():
        t.add_row(name, result.config.parameterization.description)
    console.print(t)
    rows = corrections_rows(results, tolerance)
    groups = (
        ("Corrections: dynamic sensitivity (diagnostic 4)", ("comb", "pre", "post")),
        ("Generated-logit update under each parameterization's LR rule (diagnostic 5)", ("update_sgd", "update_adam")),
    )
    labels = {q: label for q, _, _, label in CORRECTION_QUANTITIES}
    for title, quantities in groups:
        t = table(f"{title}: exponent of d [{level} interval], O(1) band ±{tolerance:g}")
        t.add_column("parameterization", no_wrap=True)
        for q in quantities:
            t.add_column(labels[q], justify="right", no_wrap=True)
        for name in results:
            cells = {r["quantity"]: r for r in rows if r["parameterization"] == name}
            t.add_row(name, *(_exponent_cell(cells[q]) for q in quantities))
        console.print(t)


def _exponent_cell(row: dict) -> str:
    colour = READING_RICH_STYLES.get(row["verdict"], "yellow")
    return (
        f"{row['exponent']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] [{colour}]{row['verdict']:>7}[/{colour}]"
    )


def print_verdict_matrix(verdicts: dict[str, Verdict], console: Console) -> None:
    t = table("Theorem D per parameterization")
    t.add_column("condition", overflow="fold")
    for name in verdicts:
        t.add_column(name, justify="center", no_wrap=True)
    first = next(iter(verdicts.values()))
    for i, c in enumerate(first.conditions):
        t.add_row(f"{c.number}. {c.statement}", *(_status(v.conditions[i].status) for v in verdicts.values()))
    console.print(t)
    hold = [n for n, v in verdicts.items() if v.measured_hold]
    if hold:
        console.print(f"All measured conditions hold for: {', '.join(hold)} (condition 1 is assumed).")
    else:
        console.print("No parameterization meets every measured condition.")


def _verdict_config(args: argparse.Namespace) -> VerdictConfig:
    return VerdictConfig(tolerance=args.tolerance) if args.tolerance is not None else VerdictConfig()


def _run(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.results import write_results

    check_out_dir(args.out)
    cfg = config_from_args(args)
    check_memory(cfg)
    vc = _verdict_config(args)
    console, err, show_progress = consoles(args.quiet)
    _say_if_long(cfg, 1, err, args.quiet)
    with exclusive_folder(args.out), figure_pool(REPORT_PRELOAD) as figures:  # workers import matplotlib meanwhile
        from mhc_mup.diagnostics.sweep import run_sweep

        if show_progress:
            with progress_bar(err) as bar:
                task = bar.add_task("sweep", total=len(cfg.widths) + 2)

                def progress(what: str, done: int, total: int) -> None:
                    bar.update(task, description=what, completed=done, total=total)

                result = run_sweep(cfg, progress)
        else:
            result = run_sweep(cfg)
        try:
            verdict = theorem_d(result, vc)
            paths = write_results(result, args.out, vc, verdict)
            paths += _write_report(args.out, err, show_progress, figures)
        except OSError as exc:
            raise write_failure(args.out, exc) from None
    if not args.quiet:
        print_summary(result, console)
        print_verdict(verdict, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _say_if_long(cfg: SweepConfig, sweeps: int, err: Console, quiet: bool) -> None:
    """Before a CPU sweep estimated at more than a minute, say how long (rough: from one machine's timing)."""
    seconds = sweeps * estimate_cpu_seconds(cfg)
    if cfg.device == "cpu" and seconds > 60 and not quiet:
        err.print(f"estimated time: about {seconds / 60:.0f} min on a 2-core CPU (diagnostics 4 and 5; rough)")


def _write_report(out: Path, err: Console, show_progress: bool, figures: FigurePool) -> list[Path]:
    """report.md, report.html and figures/ from the files just written (so they hold the same numbers)."""
    from mhc_mup.diagnostics.report import write_report

    if not show_progress:
        return write_report(out, figures)
    with err.status("writing the report and its figures"):
        return write_report(out, figures)


def _report(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.report import write_report

    with exclusive_folder(args.folder, create=False), figure_pool(REPORT_PRELOAD) as figures:
        try:
            paths = write_report(args.folder, figures)
        except OSError as exc:
            raise write_failure(args.folder, exc, "the report into") from None
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in paths[-2:])} and {len(paths) - 2} figures under {args.folder}/figures")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.results import write_comparison

    check_out_dir(args.out)
    params = compare_parameterizations(args)
    cfg = config_from_args(args)
    vc = _verdict_config(args)
    console, err, show_progress = consoles(args.quiet)
    check_memory(cfg)
    _say_if_long(cfg, len(params), err, args.quiet)
    steps = len(cfg.widths) + 2
    with exclusive_folder(args.out), figure_pool(REPORT_PRELOAD) as figures:  # workers import matplotlib meanwhile
        from mhc_mup.diagnostics.compare import run_compare

        if show_progress:
            with progress_bar(err) as bar:
                task = bar.add_task("compare", total=len(params) * steps)

                def progress(name: str, i: int, n: int, what: str, done: int, total: int) -> None:
                    bar.update(task, description=f"{name} ({i + 1}/{n}): {what}", completed=i * steps + done)

                results = run_compare(cfg, params, progress)
        else:
            results = run_compare(cfg, params)
        try:
            verdicts = {name: theorem_d(r, vc) for name, r in results.items()}
            paths = write_comparison(results, args.out, vc, verdicts)
            paths += _write_report(args.out, err, show_progress, figures)
        except OSError as exc:
            raise write_failure(args.out, exc) from None
    if not args.quiet:
        print_corrections(results, vc.tolerance, console)
        print_verdict_matrix(verdicts, console)
        console.print(
            f"wrote {len(paths)} files under {args.out}: report.md, report.html, figures/, corrections.csv, "
            "chain.csv, verdict.json and one folder per parameterization"
        )
    return 0
