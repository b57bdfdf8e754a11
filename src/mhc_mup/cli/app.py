"""``mhc-mup`` command line. A thin layer: parse and validate, run the sweep, print, write.

Bad input never produces a traceback: one line on stderr naming the bad value, exit code 2,
and nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from mhc_mup import __version__
from mhc_mup.diagnostics.compare import CORRECTION_QUANTITIES, corrections_rows, run_compare
from mhc_mup.diagnostics.results import chain_rows
from mhc_mup.diagnostics.sweep import DTYPES, ConfigError, SweepConfig, SweepResult, run_sweep
from mhc_mup.diagnostics.verdict import Verdict, VerdictConfig, describe_scaling, theorem_d
from mhc_mup.errors import UsageError
from mhc_mup.mhc.parameterizations import (
    COMPARE_DEFAULT,
    GATES,
    PARAMETERIZATIONS,
    Parameterization,
    ParameterizationError,
    get_parameterization,
    parse_spec,
    split_top_level,
)
from mhc_mup.mhc.presets import PRESETS

EXIT_USAGE = 2
DEFAULTS = SweepConfig()



class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(message)


# ── argument types: each names the bad value ───────────────────────────────────────────────────
def _int_list(what: str, minimum: int):
    def parse(text: str) -> list[int]:
        values = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            try:
                value = int(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{what} {part!r} is not an integer") from None
            if value < minimum:
                raise argparse.ArgumentTypeError(f"{what} {part!r} must be >= {minimum}")
            values.append(value)
        if not values:
            raise argparse.ArgumentTypeError(f"no {what} given in {text!r}")
        return values

    return parse


def _int_at_least(what: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {value}")
        return value

    return parse


def _positive_float(what: str, allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
        ok = value >= 0 if allow_zero else value > 0
        if not ok or value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(
                f"{what} must be a {'non-negative' if allow_zero else 'positive'} finite number, got {text!r}"
            )
        return value

    return parse


PARAM_HELP = (
    "a preset ({presets}) or a rule set 'NAME: rule=expr, ...' starting from the baseline (or from "
    "a preset with from=PRESET). Rules: sigma_w / sigma_{{pre,post,comb}} (std of fn's rows per gate), "
    "scale / scale_{{pre,post,comb}}, base / base_{{pre,post,comb}}, lr_fn / lr_scale / lr_base "
    "(LR multipliers, both optimizers) or lr_{{fn,scale,base}}_{{sgd,adam}}. Expressions use n_s, d, "
    "numbers, + - * / **, pi, e, sqrt, log, exp, min, max, abs; e.g. 'mine: sigma_w=1/(n_s*d), lr_fn=1/d'"
)


def _parameterization(text: str) -> Parameterization:
    try:
        return parse_spec(text)
    except ParameterizationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_init_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "parameterization (default: baseline, the seed's: fn ~ N(0, 0.02²), scale 0.1, base 0, one LR η)"
    )
    g.add_argument(
        "--param",
        type=_parameterization,
        metavar="SPEC",
        help=PARAM_HELP.format(presets=", ".join(PARAMETERIZATIONS)),
    )
    g.add_argument("--sigma-w", metavar="EXPR", help="override: std of fn, a number or an expression in n_s and d")
    g.add_argument(
        "--scale",
        metavar="EXPR",
        help="override: gate scales, one expression for all three or pre,post,comb",
    )
    g.add_argument("--base", metavar="EXPR", help="override: constant init of base")


def _add_run_arguments(p: argparse.ArgumentParser, writes: str) -> None:
    d = DEFAULTS
    g = p.add_argument_group("widths and mHC shape")
    g.add_argument(
        "--widths",
        nargs="+",
        type=_int_list("width", 1),
        metavar="D",
        help="stream widths d to sweep, space- or comma-separated; at least 2 for a fit "
        f"(default: {','.join(map(str, d.widths))}, the seed's)",
    )
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="take n_s, K and the eps values from a named mHC config (v4-pro, v4-flash and seed "
        "share them: n_s=4, K=20, eps=1e-6; they differ only in d, which --widths sets)",
    )
    g.add_argument(
        "--n-s",
        type=_int_at_least("n_s", 2),
        metavar="N",
        help=f"number of residual streams n_s (V4: hc_mult; default {d.n_s})",
    )
    g.add_argument(
        "-K",
        "--sinkhorn-iters",
        dest="K",
        type=_int_at_least("K", 1),
        metavar="K",
        help=f"Sinkhorn iterations of the realised comb (V4: {d.K})",
    )
    g.add_argument(
        "--hc-eps",
        type=_positive_float("hc_eps", allow_zero=True),
        metavar="EPS",
        help=f"eps added in the gates and Sinkhorn (default {d.hc_eps:g})",
    )
    g.add_argument(
        "--norm-eps",
        type=_positive_float("norm_eps", allow_zero=True),
        metavar="EPS",
        help=f"eps inside the RMS rsqrt (default {d.norm_eps:g})",
    )

    g = p.add_argument_group("samples per diagnostic")
    g.add_argument(
        "--samples",
        type=_int_at_least("samples", 2),
        metavar="N",
        help=f"samples for diagnostics 4 and 5, each a fresh parameter draw and state "
        f"(default {d.sensitivity_samples}); the two flags below override it per diagnostic",
    )
    g.add_argument(
        "--sensitivity-samples",
        type=_int_at_least("sensitivity samples", 2),
        metavar="N",
        help="samples for diagnostic 4, dynamic sensitivity",
    )
    g.add_argument(
        "--update-samples",
        type=_int_at_least("update samples", 2),
        metavar="N",
        help="samples for diagnostic 5, generated-logit update",
    )
    g.add_argument(
        "--quotient-samples",
        type=_int_at_least("quotient samples", 2),
        metavar="N",
        help=f"logit matrices Z ~ N(0,1) for diagnostic 3 (default {d.quotient_samples})",
    )
    g.add_argument(
        "--quotient-K",
        type=_int_list("quotient K", 1),
        metavar="K,K,...",
        help=f"Sinkhorn iteration counts for diagnostic 3 (default {','.join(map(str, d.quotient_K))})",
    )
    g.add_argument(
        "--state-tokens",
        type=_int_at_least("state tokens", 2),
        metavar="N",
        help=f"token states per width for diagnostics 1, 2 and 6, one parameter draw "
        f"(default {d.state_tokens}: the seed's 4×16 batch)",
    )
    g.add_argument(
        "--lr",
        type=_positive_float("lr"),
        metavar="LR",
        help=f"base learning rate η of diagnostic 5's SGD and Adam steps; each parameter group steps with "
        f"η × its parameterization's multiplier (default {d.lr:g})",
    )
    g.add_argument(
        "--tolerance",
        type=_positive_float("tolerance"),
        metavar="T",
        help=f"an exponent reads O(1) when its whole interval lies in [-T, +T] (default {VerdictConfig().tolerance:g})",
    )

    g = p.add_argument_group("run")
    g.add_argument(
        "--seed",
        type=_int_at_least("seed", 0),
        metavar="S",
        help=f"random seed; the same seed gives the same numbers (default {d.seed})",
    )
    g.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default cpu)")
    g.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        help="precision of the mHC math (default float32, as V4; diagnostic 3 always uses float64)",
    )
    g.add_argument(
        "--bootstrap",
        type=_int_at_least("bootstrap", 1),
        metavar="B",
        help=f"bootstrap resamples for the fits' intervals (default {d.n_boot})",
    )
    g.add_argument(
        "--confidence",
        type=_positive_float("confidence"),
        metavar="C",
        help=f"confidence level of the intervals (default {d.confidence:g})",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=Path("mhc-mup-out"),
        metavar="DIR",
        help=f"directory for {writes} (default ./mhc-mup-out)",
    )
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no tables; errors only")


RUN_WRITES = "results.json, results.csv, fits.csv, chain.csv, verdict.json, report.md, report.html and figures/"
COMPARE_WRITES = (
    "one folder per parameterization (results as run) plus corrections.csv, chain.csv, verdict.json, "
    "report.md, report.html and figures/"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mhc-mup",
        description="Does a dynamic mHC (DeepSeek V4 hyper-connection) parameterization transfer across width?",
    )
    parser.add_argument("--version", action="version", version=f"mhc-mup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="sweep widths, measure the six diagnostics, fit how each scales, check Theorem D",
        description=(
            "Measure the six mHC diagnostics at every width and fit metric ~ prefactor·d^exponent with a 95% "
            "interval; decompose diagnostic 4 into its chain factors; check Theorem D's conditions. Defaults "
            "reproduce the seed's run: widths 64..1024, n_s 4, K 20, fn ~ N(0, 0.02²), scale 0.1. Writes "
            f"DIR/{RUN_WRITES.replace(', ', ', DIR/').replace(' and ', ' and DIR/')}."
        ),
    )
    _add_init_arguments(run)
    _add_run_arguments(run, RUN_WRITES)
    run.set_defaults(handler=_run)

    compare = sub.add_parser(
        "compare",
        help="one sweep per parameterization; the corrections table and Theorem D for each",
        description=(
            "Run the sweep once per parameterization (same widths, seed and samples) and tabulate, for the "
            "comb, pre and post sensitivities and the generated-logit update under each parameterization's "
            "own LR rule (one SGD and one Adam step), the exponent with its interval and a verdict: O(1) when "
            "the interval lies inside ±tolerance, grows / decays when the exponent is outside and the interval "
            "excludes 0, unclear "
            f"otherwise. Writes {COMPARE_WRITES}."
        ),
    )
    g = compare.add_argument_group("parameterizations")
    g.add_argument(
        "--params",
        metavar="NAMES",
        help=f"comma-separated presets to compare (default: {','.join(COMPARE_DEFAULT)}; all presets: "
        f"{', '.join(PARAMETERIZATIONS)})",
    )
    g.add_argument(
        "--param",
        action="append",
        type=_parameterization,
        default=[],
        metavar="SPEC",
        help="add one more (repeatable): " + PARAM_HELP.format(presets="any preset"),
    )
    _add_run_arguments(compare, COMPARE_WRITES)
    compare.set_defaults(handler=_compare)

    report = sub.add_parser(
        "report",
        help="rebuild report.md, report.html and figures/ from a run or compare folder",
        description=(
            "Rebuild the report from the results a `run` or `compare` wrote into DIR (results.json and "
            "verdict.json; nothing is recomputed): DIR/report.md, DIR/report.html (self-contained, figures "
            "embedded) and DIR/figures/*.png. Every number in it is read from those files."
        ),
    )
    report.add_argument("folder", type=Path, metavar="DIR", help="a folder written by mhc-mup run or compare")
    report.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    report.set_defaults(handler=_report)

    from mhc_mup.cli.interop import add_adapter_parser, add_inspect_parser  # here: cli_inspect imports this module

    add_inspect_parser(sub)
    add_adapter_parser(sub)

    from mhc_mup.cli.coordcheck import add_coordcheck_parser  # here, not at the top: it imports this module's helpers

    add_coordcheck_parser(sub)

    from mhc_mup.cli.transfer import add_transfer_parser  # here, not at the top: it imports this module's helpers

    add_transfer_parser(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """A validated :class:`SweepConfig` from parsed arguments (unset flags keep the defaults)."""
    changes: dict = {}
    if args.preset:
        mhc = PRESETS[args.preset]
        changes.update(n_s=mhc.n_s, K=mhc.K, hc_eps=mhc.hc_eps, norm_eps=mhc.norm_eps)
    if args.widths:
        changes["widths"] = tuple(w for group in args.widths for w in group)
    for name in (
        "n_s",
        "K",
        "hc_eps",
        "norm_eps",
        "quotient_samples",
        "state_tokens",
        "lr",
        "seed",
        "device",
        "dtype",
        "confidence",
    ):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.quotient_K:
        changes["quotient_K"] = tuple(args.quotient_K)
    if args.samples is not None:
        changes["sensitivity_samples"] = changes["update_samples"] = args.samples
    if args.sensitivity_samples is not None:
        changes["sensitivity_samples"] = args.sensitivity_samples
    if args.update_samples is not None:
        changes["update_samples"] = args.update_samples
    if args.bootstrap is not None:
        changes["n_boot"] = args.bootstrap
    if args.command == "run":
        changes["parameterization"] = _run_parameterization(args)
    return dataclasses.replace(DEFAULTS, **changes).validate()


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
    try:
        return param.with_rules(description=f"{param.description}; {described}", **overrides)
    except ParameterizationError as exc:
        raise ConfigError(str(exc)) from None


def compare_parameterizations(args: argparse.Namespace) -> list[Parameterization]:
    """The parameterizations named by ``--params`` (default :data:`COMPARE_DEFAULT`) plus each ``--param``."""
    names = split_top_level(args.params) if args.params is not None else list(COMPARE_DEFAULT)
    if args.params is not None and not names:
        raise UsageError(f"--params names no parameterization: {args.params!r}")
    try:
        chosen = [get_parameterization(n) for n in names]
    except ParameterizationError as exc:
        raise UsageError(str(exc)) from None
    chosen += args.param
    seen: set[str] = set()
    for p in chosen:
        if p.name in seen:
            raise UsageError(f"parameterization {p.name!r} is given more than once")
        seen.add(p.name)
    return chosen


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path '{out}' is a file, not a directory")
    parent = next((p for p in (out, *out.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"output path '{out}' is inside '{parent}', which is a file")


# ── output ─────────────────────────────────────────────────────────────────────────────────────
def _fmt_ci(fit) -> str:
    return f"[{fit.ci_low:+.3f}, {fit.ci_high:+.3f}]" if fit.ci_low == fit.ci_low else "—"


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")


def print_summary(result: SweepResult, console: Console) -> None:
    widths = sorted(result.samples)
    t = _table("Diagnostics per width (means over samples)")
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

    q = _table("Diagnostic 3: Sinkhorn quotient Jacobian")
    for col in ("K", "σ_max", "σ_min", "κ mean", "κ median", "gauge leakage"):
        q.add_column(col, justify="right", no_wrap=True)
    for k, v in result.summary(widths[0])["quotient_jacobian"].items():
        q.add_row(
            k.removeprefix("K="),
            f"{v['sigma_max_mean']:.3f}",
            f"{v['sigma_min_mean']:.3f}",
            f"{v['kappa_mean']:.2f}",
            f"{v['kappa_median']:.2f}",
            f"{v['gauge_leakage_mean']:.1e}",
        )
    console.print(q)

    level = f"{result.config.confidence:.0%}"
    f = _table(f"Scaling fits: metric ≈ prefactor · d^exponent ({level} interval)")
    for col in ("diagnostic", "metric", "exponent", f"{level} interval", "prefactor", "r²"):
        f.add_column(col, justify="left" if col in ("diagnostic", "metric") else "right", no_wrap=True)
    previous = None
    for (diag, key), fit in result.fits.items():
        f.add_row(
            diag if diag != previous else "",
            key,
            f"{fit.exponent:+.3f}",
            _fmt_ci(fit),
            f"{fit.prefactor:.3g}",
            f"{fit.r2:.4f}",
        )
        previous = diag
    console.print(f)
    print_chain_and_typical(result, console)
    head = result.fit("dynamic_sensitivity", "dc_x_mean")
    console.print(f"‖DC(x)‖·‖x‖ scales as {describe_scaling(head)}")


def print_chain_and_typical(result: SweepResult, console: Console) -> None:
    widths = sorted(result.samples)
    t = _table("Chain decomposition: ‖DC(x)‖·‖x‖ ≤ ‖D RMSNorm‖ · |s_C| · ‖W_comb‖ · ‖DS_K‖ · ‖x‖ (means)")
    t.add_column("factor", no_wrap=True)
    for w in widths:
        t.add_column(f"d={w}", justify="right", no_wrap=True)
    t.add_column("exponent [interval]", justify="right", no_wrap=True)
    for row in chain_rows(result):
        t.add_row(
            row["label"],
            *(f"{row[f'd={w}']:.4g}" for w in widths),
            f"{row['exponent']:+.3f} {_fmt_ci(result.fit('chain_decomposition', row['factor'] + '_mean'))}",
        )
    console.print(t)

    t = _table("Typical vs worst case: sensitivity × ‖x‖ along random and gradient-step directions (exponents)")
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
    t = _table(f"Theorem D checklist: {verdict.parameterization}")
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
    t = _table("Parameterizations compared")
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
        t = _table(f"{title}: exponent of d [{level} interval], O(1) band ±{tolerance:g}")
        t.add_column("parameterization", no_wrap=True)
        for q in quantities:
            t.add_column(labels[q], justify="right", no_wrap=True)
        for name in results:
            cells = {r["quantity"]: r for r in rows if r["parameterization"] == name}
            t.add_row(name, *(_exponent_cell(cells[q]) for q in quantities))
        console.print(t)


def _exponent_cell(row: dict) -> str:
    colour = {"O(1)": "green", "grows": "red", "decays": "cyan"}.get(row["verdict"], "yellow")
    return (
        f"{row['exponent']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] [{colour}]{row['verdict']:>7}[/{colour}]"
    )


def print_verdict_matrix(verdicts: dict[str, Verdict], console: Console) -> None:
    t = _table("Theorem D per parameterization")
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


def _consoles(quiet: bool) -> tuple[Console, Console, bool]:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)  # piped: do not squeeze tables into 80 columns
    err = Console(stderr=True)
    return console, err, not quiet and err.is_terminal


def _progress_bar(err: Console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _verdict_config(args: argparse.Namespace) -> VerdictConfig:
    return VerdictConfig(tolerance=args.tolerance) if args.tolerance is not None else VerdictConfig()


def _run(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.results import write_results

    _check_out_dir(args.out)
    cfg = config_from_args(args)
    vc = _verdict_config(args)
    console, err, show_progress = _consoles(args.quiet)
    if show_progress:
        with _progress_bar(err) as bar:
            task = bar.add_task("sweep", total=len(cfg.widths) + 2)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            result = run_sweep(cfg, progress)
    else:
        result = run_sweep(cfg)
    try:
        verdict = theorem_d(result, vc)
        paths = write_results(result, args.out, vc, verdict)
        paths += _write_report(args.out, err, show_progress)
    except OSError as exc:
        raise UsageError(f"cannot write results to '{args.out}': {exc.strerror or exc}") from None
    if not args.quiet:
        print_summary(result, console)
        print_verdict(verdict, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _write_report(out: Path, err: Console, show_progress: bool) -> list[Path]:
    """report.md, report.html and figures/ from the files just written (so they hold the same numbers)."""
    from mhc_mup.diagnostics.report import write_report

    if not show_progress:
        return write_report(out)
    with err.status("writing the report and its figures"):
        return write_report(out)


def _report(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.report import write_report
    from mhc_mup.diagnostics.results import ResultsError

    try:
        paths = write_report(args.folder)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write the report into '{args.folder}': {exc.strerror or exc}") from None
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in paths[-2:])} and {len(paths) - 2} figures under {args.folder}/figures")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from mhc_mup.diagnostics.results import write_comparison

    _check_out_dir(args.out)
    params = compare_parameterizations(args)
    cfg = config_from_args(args)
    vc = _verdict_config(args)
    console, err, show_progress = _consoles(args.quiet)
    steps = len(cfg.widths) + 2
    if show_progress:
        with _progress_bar(err) as bar:
            task = bar.add_task("compare", total=len(params) * steps)

            def progress(name: str, i: int, n: int, what: str, done: int, total: int) -> None:
                bar.update(task, description=f"{name} ({i + 1}/{n}): {what}", completed=i * steps + done)

            results = run_compare(cfg, params, progress)
    else:
        results = run_compare(cfg, params)
    try:
        verdicts = {name: theorem_d(r, vc) for name, r in results.items()}
        paths = write_comparison(results, args.out, vc, verdicts)
        paths += _write_report(args.out, err, show_progress)
    except OSError as exc:
        raise UsageError(f"cannot write results to '{args.out}': {exc.strerror or exc}") from None
    if not args.quiet:
        print_corrections(results, vc.tolerance, console)
        print_verdict_matrix(verdicts, console)
        console.print(
            f"wrote {len(paths)} files under {args.out}: report.md, report.html, figures/, corrections.csv, "
            "chain.csv, verdict.json and one folder per parameterization"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return args.handler(args)
    except (UsageError, ConfigError) as exc:
        print(f"mhc-mup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mhc-mup: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
