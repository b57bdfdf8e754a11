"""``mhc-mup coordcheck``: train the mHC language model a few steps at several widths and check that every
module's output keeps its size (microsoft/mup's coordinate check, with fitted exponents).

Registered by :func:`mhc_mup.cli.app.build_parser` through :func:`add_coordcheck_parser`; bad input is one
line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from mhc_mup.cli.app import (
    PARAM_HELP,
    UsageError,
    _check_out_dir,
    _consoles,
    _int_at_least,
    _int_list,
    _parameterization,
    _positive_float,
    _progress_bar,
    _table,
)
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, ParameterizationError
from mhc_mup.training.coordcheck import (
    KINDS,
    CoordCheckConfig,
    CoordCheckResult,
    panel_steps,
    run_coord_check,
    write_coord_check,
)
from mhc_mup.training.data import CorpusError, load_corpus
from mhc_mup.training.model import ModelConfigError
from mhc_mup.training.width_rules import WidthParamError

DEFAULTS = CoordCheckConfig()
QUICK = {"widths": (32, 64, 128, 256), "steps": 5, "seeds": 2, "n_boot": 300}
DEFAULT_LR = {"adam": 1e-2, "sgd": 0.1}
WRITES = "coord.csv (mup's get_coord_data columns), exponents.csv and coord.png"
SHOWN_KINDS = ("comb logits", "pre logits", "post logits", "residual stream", "attention", "MLP", "output logits")


def add_coordcheck_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``coordcheck`` subcommand to ``sub`` (the parser's subparsers) and return it."""
    d = DEFAULTS
    p = sub.add_parser(
        "coordcheck",
        help="train the mHC LM a few steps per width; check every module's output size stays O(1)",
        description=(
            "Coordinate check: train the V4-style mHC language model (byte-level, on a text corpus) for a few "
            "steps at each width and seed, record the RMS (l2) and mean |x| (l1) of every module's output, of "
            "the residual streams and of the pre/post/comb gate logits, and fit size ≈ c·d^α per module with "
            f"an interval. Flat curves (α ≈ 0) after the first steps mean the parameterization transfers. Writes "
            f"DIR/{WRITES.replace(', ', ', DIR/').replace(' and ', ' and DIR/')}."
        ),
    )
    g = p.add_argument_group("parameterization")
    g.add_argument(
        "--param",
        type=_parameterization,
        metavar="SPEC",
        help="the mHC generator's (fn, scale, base) init and LR rule (default: mup): "
        + PARAM_HELP.format(presets=", ".join(PARAMETERIZATIONS)),
    )
    model = g.add_mutually_exclusive_group()
    model.add_argument(
        "--model-param",
        choices=("sp", "mup"),
        help="embedding, hidden, readout, norm gains and attention scale: standard parameterization or µP "
        "(Tensor Programs V; default mup)",
    )
    model.add_argument("--mup", dest="model_param", action="store_const", const="mup", help="same as --model-param mup")
    model.add_argument("--sp", dest="model_param", action="store_const", const="sp", help="same as --model-param sp")
    g.add_argument(
        "--base-width",
        type=_int_at_least("base width", 1),
        metavar="D",
        help="width at which µP and SP coincide (default: the smallest width)",
    )
    g.add_argument("--optimizer", choices=("adam", "sgd"), help="default adam")
    g.add_argument(
        "--lr",
        type=_positive_float("lr"),
        metavar="LR",
        help=f"base learning rate η; each group steps with η × its multiplier (default {DEFAULT_LR['adam']:g} for "
        f"Adam, {DEFAULT_LR['sgd']:g} for SGD)",
    )

    g = p.add_argument_group("widths, steps, seeds")
    g.add_argument(
        "--widths",
        nargs="+",
        type=_int_list("width", 1),
        metavar="D",
        help="model widths d, space- or comma-separated; multiples of --heads "
        f"(default {','.join(map(str, d.widths))})",
    )
    g.add_argument("--steps", type=_int_at_least("steps", 1), metavar="N", help=f"optimizer steps (default {d.steps})")
    g.add_argument("--seeds", type=_int_at_least("seeds", 1), metavar="N", help=f"seeds per width (default {d.seeds})")
    g.add_argument(
        "--quick",
        action="store_true",
        help="widths 32,64,128,256, 5 steps, 2 seeds, 300 bootstrap resamples: about a minute on a laptop CPU "
        "(flags given explicitly still win)",
    )

    g = p.add_argument_group("model and data")
    g.add_argument("--depth", type=_int_at_least("depth", 1), metavar="L", help=f"blocks (default {d.depth})")
    g.add_argument("--heads", type=_int_at_least("heads", 1), metavar="H", help=f"attention heads (default {d.heads})")
    g.add_argument("--n-s", type=_int_at_least("n_s", 2), metavar="N", help=f"residual streams (default {d.n_s})")
    g.add_argument("-K", "--sinkhorn-iters", dest="K", type=_int_at_least("K", 1), metavar="K",
                   help=f"Sinkhorn iterations (default {d.K})")  # fmt: skip
    g.add_argument("--control", action="store_true", help="the plain-residual model of the same shape (no mHC)")
    g.add_argument("--batch-size", type=_int_at_least("batch size", 1), metavar="B", help=f"default {d.batch_size}")
    g.add_argument("--seq-len", type=_int_at_least("sequence length", 1), metavar="T", help=f"default {d.seq_len}")
    g.add_argument(
        "--corpus",
        type=Path,
        metavar="PATH",
        help="a text file or a folder of text files (default: the Python standard library's .py sources)",
    )

    g = p.add_argument_group("run")
    g.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default cpu; CUDA runs branches in bf16)")
    g.add_argument("--bootstrap", type=_int_at_least("bootstrap", 1), metavar="B",
                   help=f"bootstrap resamples for the intervals (default {d.n_boot})")  # fmt: skip
    g.add_argument(
        "--tolerance",
        type=_positive_float("tolerance"),
        metavar="T",
        help=f"an exponent reads O(1) when its interval lies in [-T, +T] (default {d.tolerance:g})",
    )
    g.add_argument("--out", type=Path, default=Path("mhc-mup-coordcheck"), metavar="DIR",
                   help=f"directory for {WRITES} (default ./mhc-mup-coordcheck)")  # fmt: skip
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no tables; errors only")
    p.set_defaults(handler=run_coordcheck_command)
    return p


def coordcheck_config(args: argparse.Namespace) -> CoordCheckConfig:
    """A validated :class:`CoordCheckConfig` from parsed arguments: defaults, then ``--quick``, then flags."""
    changes: dict = dict(QUICK) if args.quick else {}
    if args.widths:
        changes["widths"] = tuple(w for group in args.widths for w in group)
    changes["hc_param"] = args.param or PARAMETERIZATIONS["mup"]
    if args.model_param is not None:
        changes["model_param"] = args.model_param
    if args.base_width is not None:
        changes["base_d"] = args.base_width
    optimizer = args.optimizer or DEFAULTS.optimizer
    changes["optimizer"] = optimizer
    changes["lr"] = args.lr if args.lr is not None else DEFAULT_LR[optimizer]
    for name in ("steps", "seeds", "depth", "heads", "n_s", "K", "batch_size", "seq_len", "device", "tolerance"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.bootstrap is not None:
        changes["n_boot"] = args.bootstrap
    changes["control"] = args.control
    try:
        return dataclasses.replace(DEFAULTS, **changes).validate()
    except (ParameterizationError, ModelConfigError, WidthParamError) as exc:
        raise ConfigError(str(exc)) from None


def run_coordcheck_command(args: argparse.Namespace) -> int:
    """The ``coordcheck`` handler: validate everything, run, then write all three files."""
    _check_out_dir(args.out)
    cfg = coordcheck_config(args)
    try:
        corpus = load_corpus(args.corpus)
        need = cfg.seq_len + 1
        if corpus.train.numel() < need:
            raise CorpusError(
                f"corpus '{corpus.source}' has {corpus.train.numel()} training bytes; --seq-len {cfg.seq_len} "
                f"needs at least {need}"
            )
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    console, err, show_progress = _consoles(args.quiet)
    if show_progress:
        with _progress_bar(err) as bar:
            task = bar.add_task("coordcheck", total=cfg.seeds * len(cfg.widths))

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what, completed=done, total=total)

            result = run_coord_check(cfg, corpus, progress)
    else:
        result = run_coord_check(cfg, corpus)
    try:
        paths = write_coord_check(result, args.out)
    except OSError as exc:
        raise UsageError(f"cannot write results to '{args.out}': {exc.strerror or exc}") from None
    if not args.quiet:
        console.print(f"corpus {corpus.describe()}", soft_wrap=True)
        print_coordcheck(result, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def print_coordcheck(result: CoordCheckResult, console: Console) -> None:
    """The per-kind exponents (of the RMS) at each step, the final-step readings and the losses."""
    cfg = result.config
    level = f"{cfg.confidence:.0%}"
    steps = panel_steps(cfg.steps)
    last = cfg.steps
    kinds = [k for k in (*SHOWN_KINDS, *[k for k in KINDS if k not in SHOWN_KINDS]) if k in set(result.coords.kind)]
    t = _table(
        f"Coordinate check: RMS ≈ c·d^α per module kind (geometric mean over its modules), widths "
        f"{','.join(map(str, cfg.widths))}, {cfg.seeds} seed(s); {cfg.describe()}"
    )
    t.add_column("module kind", no_wrap=True)
    for s in steps:
        t.add_column(f"α at t={s}" + (" (init)" if s == 1 else ""), justify="right", no_wrap=True)
    t.add_column(f"{level} interval at t={last}", justify="right", no_wrap=True)
    t.add_column("reading", justify="left", no_wrap=True)
    lo, hi = min(cfg.widths), max(cfg.widths)
    t.add_column(f"RMS at t={last}: d={lo} → d={hi}", justify="right", no_wrap=True)
    final = result.coords[result.coords.t == last]
    for kind in kinds:
        cells = [f"{result.exponent(kind, s).exponent:+.2f}" for s in steps]
        fit = result.exponent(kind, last)
        colour = {"O(1)": "green", "grows": "red", "decays": "cyan"}.get(fit.reading, "yellow")
        size = {w: _kind_size(final, kind, w) for w in (lo, hi)}
        t.add_row(kind, *cells, f"[{fit.ci_low:+.2f}, {fit.ci_high:+.2f}]", f"[{colour}]{fit.reading}[/{colour}]",
                  f"{size[lo]:.3g} → {size[hi]:.3g}")  # fmt: skip
    console.print(t)

    loss = result.losses.groupby(["width", "t"]).loss.mean().unstack()
    lt = _table("Training loss per byte (nats, mean over seeds)")
    lt.add_column("width", justify="right")
    for s in steps:
        lt.add_column(f"t={s}", justify="right")
    for w, row in loss.iterrows():
        lt.add_row(str(w), *(f"{row[s]:.3f}" for s in steps))
    console.print(lt)


def _kind_size(rows: pd.DataFrame, kind: str, width: int) -> float:
    """The geometric mean over a kind's modules of their RMS (mean over seeds) at one width."""
    sel = rows[(rows.kind == kind) & (rows.width == width)]
    return float(np.exp(np.log(sel.groupby("module").l2.mean()).mean()))
