"""Subcommands on real implementations and checkpoints: ``mhc-mup inspect`` and ``mhc-mup adapter``.

Registered from :func:`mhc_mup.cli.app.build_parser`; errors become one line and exit code 2 there.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from mhc_mup._io import atomic_write_bytes, atomic_write_text, csv_text
from mhc_mup.cli.app import UsageError, _check_out_dir, _int_at_least, _int_list, _positive_float
from mhc_mup.diagnostics.results import FITS_CSV_COLUMNS, RESULTS_CSV_COLUMNS

# the sweep's fits.csv columns less the two intervals an adapter sweep does not keep apart
ADAPTER_FITS_COLUMNS = tuple(c for c in FITS_CSV_COLUMNS if c not in ("boot_low", "boot_high", "ols_low", "ols_high"))


def _widths_for_a_fit(text: str) -> list[int]:
    values = _int_list("width", 1)(text)
    if len(set(values)) < 2:
        raise argparse.ArgumentTypeError(f"a scaling fit needs at least 2 distinct widths, got {text!r}")
    return values


def write_outputs(out: Path, texts: dict[str, str], blobs: dict[str, bytes]) -> list[Path]:
    """Create ``out`` and write every file atomically; everything is rendered before the first write."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in texts.items():
            atomic_write_text(out / name, text)
            paths.append(out / name)
        for name, data in blobs.items():
            atomic_write_bytes(out / name, data)
            paths.append(out / name)
    except OSError as exc:
        raise UsageError(f"cannot write to '{out}': {exc.strerror or exc}") from None
    return paths


def _console() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=140)


def _table(title: str, columns: Sequence[str]) -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for c in columns:
        t.add_column(c, justify="right", no_wrap=True)
    return t


# ── inspect ────────────────────────────────────────────────────────────────────────────────────
def add_inspect_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "inspect",
        help="report a safetensors checkpoint's mHC parameters per layer and across depth",
        description=(
            "Read only the mHC tensors (fn, base, scale of every attn/ffn sublayer and the head) of a "
            "DeepSeek-V4-style safetensors checkpoint — a file, a model.safetensors.index.json or a directory; "
            "transformers' or DeepSeek's naming — and report per sublayer: fn row norms and ‖fn‖₂ per gate block, "
            "scales, the static comb Sinkhorn(base) (‖·‖₂, distance to I and to 11ᵀ/n), the dynamic sensitivity "
            "(diagnostic 4) on synthetic states at the checkpoint's width, and σ₂ of the product of static combs "
            "across depth. Writes DIR/inspect.csv, DIR/inspect.json and DIR/inspect.png."
        ),
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="safetensors file, index JSON or directory")
    p.add_argument(
        "--samples",
        type=_int_at_least("samples", 2),
        default=32,
        metavar="N",
        help="synthetic residual states x ~ N(0,1) for the dynamic sensitivity (default 32)",
    )
    p.add_argument("--seed", type=_int_at_least("seed", 0), default=0, metavar="S", help="seed of the states")
    p.add_argument(
        "-K",
        "--sinkhorn-iters",
        dest="K",
        type=_int_at_least("K", 1),
        metavar="K",
        help="Sinkhorn iterations (default: config.json's hc_sinkhorn_iters, else 20)",
    )
    p.add_argument(
        "--hc-eps",
        type=_positive_float("hc_eps", allow_zero=True),
        metavar="EPS",
        help="default: config.json's, else 1e-6",
    )
    p.add_argument(
        "--norm-eps",
        type=_positive_float("norm_eps", allow_zero=True),
        metavar="EPS",
        help="default: config.json's rms_norm_eps, else 1e-6",
    )
    p.add_argument("--out", type=Path, default=Path("mhc-mup-inspect"), metavar="DIR", help="default ./mhc-mup-inspect")
    p.add_argument("--quiet", "-q", action="store_true", help="no table; errors only")
    p.set_defaults(handler=run_inspect)
    return p


def run_inspect(args: argparse.Namespace) -> int:
    from mhc_mup.interop.checkpoint import CheckpointError
    from mhc_mup.interop.inspection import figure_png, inspect_checkpoint, inspection_csv

    _check_out_dir(args.out)
    try:
        result = inspect_checkpoint(
            args.checkpoint, samples=args.samples, seed=args.seed, K=args.K, hc_eps=args.hc_eps, norm_eps=args.norm_eps
        )
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    summary = result.summary()
    texts = {"inspect.csv": inspection_csv(result), "inspect.json": json.dumps(summary, indent=2) + "\n"}
    paths = write_outputs(args.out, texts, {"inspect.png": figure_png(result)})
    if not args.quiet:
        console = _console()
        t = _table(
            f"{summary['checkpoint']}: {summary['n_layers']} layers, n_s = {summary['n_s']}, d = {summary['d']}, "
            f"K = {summary['K']} ({summary['naming']})",
            (
                "layer",
                "sub",
                "‖fn_pre‖₂",
                "‖fn_post‖₂",
                "‖fn_comb‖₂",
                "scale (pre, post, comb)",
                "‖C₀−I‖_F",
                "‖DC‖·‖x‖",
                "σ₂(ΠC₀)",
            ),
        )
        for r in result.sublayer_rows:
            t.add_row(
                str(r["layer"]),
                r["sublayer"],
                f"{r['pre_fn_norm2']:.4g}",
                f"{r['post_fn_norm2']:.4g}",
                f"{r['comb_fn_norm2']:.4g}",
                f"{r['scale_pre']:.3g}, {r['scale_post']:.3g}, {r['scale_comb']:.3g}",
                f"{r['static_comb_dist_identity']:.4f}",
                f"{r['dc_x_mean']:.4g}",
                f"{r['depth_comb_sigma2']:.4g}",
            )
        console.print(t)
        head = result.head_row
        if head is not None:
            console.print(
                f"head: ‖fn‖₂ {head['pre_fn_norm2']:.4g}, scale {head['scale_pre']:.3g}, "
                f"mean static pre {head['static_pre_mean']:.4f}, ‖∂pre/∂x‖·‖x‖ {head['dp_x_mean']:.4g}"
            )
        console.print(
            f"read {summary['hc_tensors_read']} mHC tensors ({summary['hc_parameters']:,} parameters) in "
            f"{summary['seconds']:.2f} s; " + ", ".join(f"{k} from {v}" for k, v in summary["settings_source"].items())
        )
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


# ── adapter ────────────────────────────────────────────────────────────────────────────────────
def add_adapter_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from mhc_mup.interop.adapters import ADAPTER_BUILDERS

    p = sub.add_parser(
        "adapter",
        help="diagnose a real mHC implementation (transformers, hyper-connections) across widths",
        description=(
            "Build a real mHC implementation at each width with its package's own initialisation, run "
            "diagnostics 1, 2, 4 and 6 through its adapter on states x ~ N(0,1), and fit metric ~ d^exponent. "
            "Needs the optional packages: pip install mhc-mup[adapters]. Writes DIR/adapter_results.csv and "
            "DIR/adapter_fits.csv."
        ),
    )
    p.add_argument("implementation", choices=sorted(ADAPTER_BUILDERS), help="which implementation to build")
    p.add_argument(
        "--widths",
        type=_widths_for_a_fit,
        default=[64, 128, 256, 512],
        metavar="D,D,...",
        help="default 64,128,256,512",
    )
    p.add_argument("--n-s", type=_int_at_least("n_s", 2), default=4, metavar="N", help="streams (default 4)")
    p.add_argument(
        "-K", "--sinkhorn-iters", dest="K", type=_int_at_least("K", 1), default=20, metavar="K", help="default 20"
    )
    p.add_argument("--samples", type=_int_at_least("samples", 2), default=32, metavar="N", help="states per width")
    p.add_argument("--seed", type=_int_at_least("seed", 0), default=0, metavar="S")
    p.add_argument(
        "--dynamic-std",
        type=_positive_float("dynamic std", allow_zero=True),
        default=0.0,
        metavar="STD",
        help="hyper-connections only: draw its zero-initialised dynamic weights from N(0, STD²) (default 0: "
        "the package's init, where the gates ignore the state and diagnostic 4 is exactly 0)",
    )
    p.add_argument("--out", type=Path, default=Path("mhc-mup-adapter"), metavar="DIR")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(handler=run_adapter)
    return p


def run_adapter(args: argparse.Namespace) -> int:
    from mhc_mup.interop.adapter_diagnostics import sweep_adapter
    from mhc_mup.interop.adapters import ADAPTER_BUILDERS, MissingExtraError

    _check_out_dir(args.out)
    if args.dynamic_std and args.implementation != "hyper-connections":
        raise UsageError("--dynamic-std applies to hyper-connections only")
    build = ADAPTER_BUILDERS[args.implementation]
    extra = {"dynamic_std": args.dynamic_std} if args.implementation == "hyper-connections" else {}
    try:
        result = sweep_adapter(
            lambda d: build(args.n_s, d, args.K, seed=args.seed, **extra),
            args.widths,
            samples=args.samples,
            seed=args.seed,
            name=args.implementation,
        )
    except MissingExtraError as exc:
        raise UsageError(str(exc)) from None
    rows = [
        {"width": w, "diagnostic": diag, "metric": key, "value": value, "n_samples": args.samples}
        for w in result.widths
        for diag, keys in result.summary(w).items()
        for key, value in keys.items()
    ]
    fit_rows = [{"diagnostic": diag, "metric": key, **fit.to_dict()} for (diag, key), fit in result.fits.items()]
    texts = {
        "adapter_results.csv": csv_text(rows, RESULTS_CSV_COLUMNS),
        "adapter_fits.csv": csv_text(fit_rows, ADAPTER_FITS_COLUMNS),
    }
    paths = write_outputs(args.out, texts, {})
    if not args.quiet:
        console = _console()
        t = _table(
            f"{args.implementation}: diagnostics per width (means over {args.samples} states)",
            ("width", "‖DC‖·‖x‖", "‖Dp‖·‖x‖", "‖Dq‖·‖x‖", "‖C‖₂", "ε_K", "mean pre", "mean post"),
        )
        for w in result.widths:
            s = result.summary(w)
            ds = s["dynamic_sensitivity"]
            t.add_row(
                str(w),
                f"{ds['dc_x_mean']:.4g}",
                f"{ds['dp_x_mean']:.4g}",
                f"{ds['dq_x_mean']:.4g}",
                f"{s['spectral_norm']['spectral_norm_mean']:.6f}",
                f"{s['sinkhorn_error']['eps_K_mean']:.1e}",
                f"{s['gate_stats']['pre_mean']:.3f}",
                f"{s['gate_stats']['post_mean']:.3f}",
            )
        console.print(t)
        for key in ("dc_x_mean", "dp_x_mean", "dq_x_mean"):
            fit = result.fits[("dynamic_sensitivity", key)]
            text = (
                f"d^{fit.exponent:.3f} (95% interval {fit.ci_low:.3f} – {fit.ci_high:.3f})"
                if math.isfinite(fit.exponent)
                else f"no fit: {fit.note}"
            )
            console.print(f"{key} scales as {text}")
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
