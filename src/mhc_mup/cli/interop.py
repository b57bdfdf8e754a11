"""Subcommands on real implementations and checkpoints: ``mhc-mup inspect`` and ``mhc-mup adapter``.

Registered from :data:`mhc_mup.cli.app.COMMANDS`; errors become one line and exit code 2 there.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mhc_mup._io import csv_text, write_bundle
from mhc_mup.cli.common import (
    add_eps,
    add_n_s,
    add_outputs,
    add_samples,
    add_seed,
    add_sinkhorn_iters,
    add_widths,
    check_out_dir,
    consoles,
    flat,
    positive_float,
    table,
    write_failure,
)
from mhc_mup.diagnostics.results import FITS_CSV_COLUMNS, RESULTS_CSV_COLUMNS
from mhc_mup.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from mhc_mup.interop.adapter_diagnostics import AdapterSweep
    from mhc_mup.interop.inspection import Inspection

__all__ = ["register_adapter", "register_inspect", "run_adapter", "run_inspect", "write_outputs"]

# the sweep's fits.csv columns less the two intervals an adapter sweep does not keep apart
ADAPTER_FITS_COLUMNS = tuple(c for c in FITS_CSV_COLUMNS if c not in ("boot_low", "boot_high", "ols_low", "ols_high"))
INSPECT_WRITES = "inspect.csv, inspect.json and inspect.png"
ADAPTER_WRITES = "adapter_results.csv and adapter_fits.csv"


def write_outputs(out: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """:func:`~mhc_mup._io.write_bundle` into ``out``, a failure as one line; render everything first."""
    try:
        return write_bundle(out, files)
    except OSError as exc:
        raise write_failure(out, exc, "to") from None


# ── inspect ────────────────────────────────────────────────────────────────────────────────────
def register_inspect(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup inspect``'s parser."""
    p.description = (
        "Read only the mHC tensors (fn, base, scale of every attn/ffn sublayer and the head) of a "
        "DeepSeek-V4-style safetensors checkpoint — a file, a model.safetensors.index.json or a directory; "
        "transformers' or DeepSeek's naming — and report per sublayer: fn row norms and ‖fn‖₂ per gate block, "
        "scales, the static comb Sinkhorn(base) (‖·‖₂, distance to I and to 11ᵀ/n), the dynamic sensitivity "
        "(diagnostic 4) on synthetic states at the checkpoint's width, and σ₂ of the product of static combs "
        f"across depth. Writes DIR/{INSPECT_WRITES.replace(', ', ', DIR/').replace(' and ', ' and DIR/')}."
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="safetensors file, index JSON or directory")
    add_samples(p, "synthetic residual states x ~ N(0,1) for the dynamic sensitivity", 32, fill=True)
    add_seed(p, "the states", 0, fill=True)
    add_sinkhorn_iters(p, "config.json's hc_sinkhorn_iters, else 20")
    add_eps(p, "config.json's hc_eps, else 1e-6", "config.json's rms_norm_eps, else 1e-6")
    add_outputs(p, "mhc-mup-inspect", INSPECT_WRITES, quiet="no table")
    p.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """The ``inspect`` handler: read the checkpoint's mHC tensors, write the three files, print the table."""
    from mhc_mup.interop.inspection import figure_png, inspect_checkpoint, inspection_csv

    check_out_dir(args.out)
    result = inspect_checkpoint(
        args.checkpoint, samples=args.samples, seed=args.seed, K=args.K, hc_eps=args.hc_eps, norm_eps=args.norm_eps
    )
    summary = result.summary()
    files: dict[str, str | bytes] = {
        "inspect.csv": inspection_csv(result),
        "inspect.json": json.dumps(summary, indent=2) + "\n",
        "inspect.png": figure_png(result),
    }
    paths = write_outputs(args.out, files)
    if not args.quiet:
        console, _, _ = consoles(args.quiet)
        _print_inspection(result, summary, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _print_inspection(result: Inspection, summary: dict, console: Console) -> None:
    """The per-sublayer table, the head's line and what was read (``summary``: ``result.summary()``)."""
    t = table(
        f"{summary['checkpoint']}: {summary['n_layers']} layers, n_s = {summary['n_s']}, d = {summary['d']}, "
        f"K = {summary['K']} ({summary['naming']})",
        ("layer", "sub", "‖fn_pre‖₂", "‖fn_post‖₂", "‖fn_comb‖₂", "scale (pre, post, comb)", "‖C₀−I‖_F", "‖DC‖·‖x‖",
         "σ₂(ΠC₀)"),
    )  # fmt: skip
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


# ── adapter ────────────────────────────────────────────────────────────────────────────────────
def register_adapter(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup adapter``'s parser."""
    from mhc_mup.interop.adapters import ADAPTER_BUILDERS

    p.description = (
        "Build a real mHC implementation at each width with its package's own initialisation, run "
        "diagnostics 1, 2, 4 and 6 through its adapter on states x ~ N(0,1), and fit metric ~ d^exponent. "
        "Needs the optional packages: pip install mhc-mup[adapters]. Writes "
        f"DIR/{ADAPTER_WRITES.replace(' and ', ' and DIR/')}."
    )
    p.add_argument("implementation", choices=sorted(ADAPTER_BUILDERS), help="which implementation to build")
    add_widths(p, "widths d to build, at least 2 distinct for a fit", (64, 128, 256, 512), fill=True, spaced=False)
    add_n_s(p, 4, fill=True)
    add_sinkhorn_iters(p, 20, fill=True)
    add_samples(p, "states x ~ N(0,1) per width", 32, fill=True)
    add_seed(p, "the implementation's initialisation and the states", 0, fill=True)
    p.add_argument(
        "--dynamic-std",
        type=positive_float("dynamic std", allow_zero=True),
        default=0.0,
        metavar="STD",
        help="hyper-connections only: draw its zero-initialised dynamic weights from N(0, STD²) (default 0: "
        "the package's init, where the gates ignore the state and diagnostic 4 is exactly 0)",
    )
    add_outputs(p, "mhc-mup-adapter", ADAPTER_WRITES, quiet="no table")
    p.set_defaults(handler=run_adapter)


def run_adapter(args: argparse.Namespace) -> int:
    """The ``adapter`` handler: build the implementation at each width, run the diagnostics, fit, write, print."""
    from mhc_mup.interop.adapter_diagnostics import sweep_adapter
    from mhc_mup.interop.adapters import ADAPTER_BUILDERS

    widths = list(flat(args.widths))
    if len(set(widths)) < 2:
        raise UsageError(f"a scaling fit needs at least 2 distinct widths, got {','.join(map(str, widths))!r}")
    check_out_dir(args.out)
    if args.dynamic_std and args.implementation != "hyper-connections":
        raise UsageError("--dynamic-std applies to hyper-connections only")
    build = ADAPTER_BUILDERS[args.implementation]
    extra = {"dynamic_std": args.dynamic_std} if args.implementation == "hyper-connections" else {}
    result = sweep_adapter(
        lambda d: build(args.n_s, d, args.K, seed=args.seed, **extra),
        widths,
        samples=args.samples,
        seed=args.seed,
        name=args.implementation,
    )
    paths = write_outputs(args.out, _adapter_files(result, args.samples))
    if not args.quiet:
        console, _, _ = consoles(args.quiet)
        _print_adapter(result, args.implementation, args.samples, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _adapter_files(result: AdapterSweep, samples: int) -> dict[str, str]:
    """``adapter_results.csv`` (one row per width, diagnostic and metric) and ``adapter_fits.csv`` (one per fit)."""
    rows = [
        {"width": w, "diagnostic": diag, "metric": key, "value": value, "n_samples": samples}
        for w in result.widths
        for diag, keys in result.summary(w).items()
        for key, value in keys.items()
    ]
    fit_rows = [{"diagnostic": diag, "metric": key, **fit.to_dict()} for (diag, key), fit in result.fits.items()]
    return {
        "adapter_results.csv": csv_text(rows, RESULTS_CSV_COLUMNS),
        "adapter_fits.csv": csv_text(fit_rows, ADAPTER_FITS_COLUMNS),
    }


def _print_adapter(result: AdapterSweep, name: str, samples: int, console: Console) -> None:
    """The per-width table of the diagnostics' means, then how each gate sensitivity scales."""
    t = table(
        f"{name}: diagnostics per width (means over {samples} states)",
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
