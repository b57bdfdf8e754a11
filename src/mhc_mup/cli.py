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

from rich import box
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import PRESETS
from .parameterizations import GeneratorInit
from .sweep import DTYPES, ConfigError, SweepConfig, SweepResult, run_sweep

EXIT_USAGE = 2
DEFAULTS = SweepConfig()


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit code 2."""


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


def _float_list(what: str):
    def parse(text: str) -> list[float]:
        try:
            values = [float(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number or comma-separated numbers") from None
        if len(values) not in (1, 3):
            raise argparse.ArgumentTypeError(f"{what} takes one value or three (pre,post,comb), got {text!r}")
        return values

    return parse


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
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

    g = p.add_argument_group("generator initialisation (the seed's baseline: fn ~ N(0, 0.02²), scale 0.1, base 0)")
    g.add_argument(
        "--sigma-w",
        type=_positive_float("sigma_w"),
        metavar="STD",
        help=f"std of the generator weight fn (default {d.init.sigma_w:g})",
    )
    g.add_argument(
        "--scale",
        type=_float_list("scale"),
        metavar="S",
        help="gate scales: one value for all three, or pre,post,comb (default 0.1)",
    )
    g.add_argument("--base", type=float, metavar="B", help=f"constant init of base (default {d.init.base:g})")

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
        help=f"learning rate of diagnostic 5's SGD step (default {d.lr:g})",
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
        help="directory for results.json, results.csv and fits.csv (default ./mhc-mup-out)",
    )
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no tables; errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mhc-mup",
        description="Does a dynamic mHC (DeepSeek V4 hyper-connection) parameterization transfer across width?",
    )
    parser.add_argument("--version", action="version", version=f"mhc-mup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="sweep widths, measure the six diagnostics, fit how each scales",
        description=(
            "Measure the six mHC diagnostics at every width and fit metric ~ prefactor·d^exponent with a 95% "
            "interval. Defaults reproduce the seed's run: widths 64..1024, n_s 4, K 20, fn ~ N(0, 0.02²), "
            "scale 0.1. Writes DIR/results.json (the seed's nested layout plus config and fits), "
            "DIR/results.csv (tidy) and DIR/fits.csv."
        ),
    )
    _add_run_arguments(run)
    run.set_defaults(handler=_run)
    from .cli_inspect import add_adapter_parser, add_inspect_parser  # here: cli_inspect imports this module

    add_inspect_parser(sub)
    add_adapter_parser(sub)
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
    if args.sigma_w is not None or args.scale is not None or args.base is not None:
        init = DEFAULTS.init
        scale = args.scale if args.scale is not None else list(init.scale)
        try:
            changes["init"] = GeneratorInit(
                sigma_w=args.sigma_w if args.sigma_w is not None else init.sigma_w,
                scale=tuple(scale * 3 if len(scale) == 1 else scale),
                base=args.base if args.base is not None else init.base,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return dataclasses.replace(DEFAULTS, **changes).validate()


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
    head = result.fit("dynamic_sensitivity", "dc_x_mean")
    console.print(
        f"‖DC(x)‖·‖x‖ scales as d^{head.exponent:.3f}  ({level} interval {head.ci_low:.3f} – {head.ci_high:.3f})"
    )


def _run(args: argparse.Namespace) -> int:
    from .results_io import write_results

    _check_out_dir(args.out)
    cfg = config_from_args(args)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=120)  # piped: do not squeeze tables into 80 columns
    err = Console(stderr=True)
    show_progress = not args.quiet and err.is_terminal
    if show_progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("sweep", total=len(cfg.widths) + 2)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            result = run_sweep(cfg, progress)
    else:
        result = run_sweep(cfg)
    try:
        paths = write_results(result, args.out)
    except OSError as exc:
        raise UsageError(f"cannot write results to '{args.out}': {exc.strerror or exc}") from None
    if not args.quiet:
        print_summary(result, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
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
