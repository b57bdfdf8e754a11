"""``mhc-mup coordcheck``: train the mHC language model a few steps at several widths and check that every
module's output keeps its size (microsoft/mup's coordinate check, with fitted exponents).

Registered from :data:`mhc_mup.cli.app.COMMANDS` through :func:`register`; bad input is one line on stderr,
exit code 2, nothing written.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from rich.console import Console

from mhc_mup._locks import exclusive_folder
from mhc_mup.cli.common import (
    add_base_width,
    add_batch,
    add_bootstrap,
    add_corpus,
    add_device,
    add_lr,
    add_model_shape,
    add_optimizer,
    add_outputs,
    add_param,
    add_quick,
    add_seeds,
    add_steps,
    add_tolerance,
    add_widths,
    check_out_dir,
    consoles,
    progress_bar,
    table,
    write_failure,
)
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, ParameterizationError
from mhc_mup.reporting.style import READING_RICH_STYLES
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

__all__ = ["coordcheck_config", "print_coordcheck", "register", "run_coordcheck_command"]

DEFAULTS = CoordCheckConfig()
QUICK = {"widths": (32, 64, 128, 256), "steps": 5, "seeds": 2, "n_boot": 300}
DEFAULT_LR = {"adam": 1e-2, "sgd": 0.1}
WRITES = "coord.csv (mup's get_coord_data columns), exponents.csv and coord.png"
SHOWN_KINDS = ("comb logits", "pre logits", "post logits", "residual stream", "attention", "MLP", "output logits")


def register(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup coordcheck``'s parser."""
    d = DEFAULTS
    p.description = (
        "Coordinate check: train the V4-style mHC language model (byte-level, on a text corpus) for a few "
        "steps at each width and seed, record the RMS (l2) and mean |x| (l1) of every module's output, of "
        "the residual streams and of the pre/post/comb gate logits, and fit size ≈ c·d^α per module with "
        f"an interval. Flat curves (α ≈ 0) after the first steps mean the parameterization transfers. Writes "
        f"DIR/{WRITES.replace(', ', ', DIR/').replace(' and ', ' and DIR/')}."
    )
    g = p.add_argument_group("parameterization")
    add_param(g, ", ".join(PARAMETERIZATIONS), before="the mHC generator's (fn, scale, base) init and LR rule "
              "(default: mup): ")  # fmt: skip
    model = g.add_mutually_exclusive_group()
    model.add_argument(
        "--model-param",
        choices=("sp", "mup"),
        help="embedding, hidden, readout, norm gains and attention scale: standard parameterization or µP "
        "(Tensor Programs V; default mup)",
    )
    model.add_argument("--mup", dest="model_param", action="store_const", const="mup", help="same as --model-param mup")
    model.add_argument("--sp", dest="model_param", action="store_const", const="sp", help="same as --model-param sp")
    add_base_width(g)
    add_optimizer(g)
    add_lr(g, "; each group steps with η × its multiplier",
           f"{DEFAULT_LR['adam']:g} for Adam, {DEFAULT_LR['sgd']:g} for SGD")  # fmt: skip

    g = p.add_argument_group("widths, steps, seeds")
    add_widths(g, "model widths d, multiples of --heads", d.widths)
    add_steps(g, d.steps)
    add_seeds(g, d.seeds, "width")
    add_quick(g, "widths 32,64,128,256, 5 steps, 2 seeds, 300 bootstrap resamples: about a minute on a laptop CPU")

    g = p.add_argument_group("model and data")
    add_model_shape(g, d.depth, d.heads, d.n_s, d.K)
    g.add_argument("--control", action="store_true", help="the plain-residual model of the same shape (no mHC)")
    add_batch(g, d.batch_size, d.seq_len)
    add_corpus(g)

    g = p.add_argument_group("run")
    add_device(g, "; CUDA runs branches in bf16")
    add_bootstrap(g, d.n_boot)
    add_tolerance(g, d.tolerance)
    add_outputs(g, "mhc-mup-coordcheck", WRITES)
    p.set_defaults(handler=run_coordcheck_command)


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
    optimizer = args.optimizer or DEFAULTS.recipe.optimizer
    changes["optimizer"] = optimizer
    changes["lr"] = args.lr if args.lr is not None else DEFAULT_LR[optimizer]
    for name in ("steps", "seeds", "depth", "heads", "n_s", "K", "batch_size", "seq_len", "device", "tolerance"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.bootstrap is not None:
        changes["n_boot"] = args.bootstrap
    changes["control"] = args.control
    try:
        return DEFAULTS.with_leaves(**changes).validate()
    except (ParameterizationError, ModelConfigError, WidthParamError) as exc:
        raise ConfigError(str(exc)) from None


def run_coordcheck_command(args: argparse.Namespace) -> int:
    """The ``coordcheck`` handler: validate everything, run, then write all three files."""
    check_out_dir(args.out)
    cfg = coordcheck_config(args)
    corpus = load_corpus(args.corpus)
    need = cfg.seq_len + 1
    if corpus.train.numel() < need:
        raise CorpusError(
            f"corpus '{corpus.source}' has {corpus.train.numel()} training bytes; --seq-len {cfg.seq_len} "
            f"needs at least {need}"
        )
    console, err, show_progress = consoles(args.quiet)
    with exclusive_folder(args.out):
        if show_progress:
            with progress_bar(err) as bar:
                task = bar.add_task("coordcheck", total=cfg.seeds * len(cfg.widths))

                def progress(what: str, done: int, total: int) -> None:
                    bar.update(task, description=what, completed=done, total=total)

                result = run_coord_check(cfg, corpus, progress)
        else:
            result = run_coord_check(cfg, corpus)
        try:
            paths = write_coord_check(result, args.out)
        except OSError as exc:
            raise write_failure(args.out, exc) from None
    if not args.quiet:
        console.print(f"corpus {corpus.describe()}", soft_wrap=True)
        print_coordcheck(result, console)
        console.print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def print_coordcheck(result: CoordCheckResult, console: Console) -> None:
    """The per-kind exponents (of the RMS) at each step, the final-step readings and the losses of a check of
    mhc-mup's own model (the command's)."""
    cfg = result.config
    if not isinstance(cfg, CoordCheckConfig):
        raise TypeError("print_coordcheck prints a coordinate check of mhc-mup's model (CoordCheckConfig)")
    level = f"{cfg.confidence:.0%}"
    steps = panel_steps(cfg.steps)
    last = cfg.steps
    kinds = [k for k in (*SHOWN_KINDS, *[k for k in KINDS if k not in SHOWN_KINDS]) if k in set(result.coords.kind)]
    t = table(
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
        colour = READING_RICH_STYLES.get(fit.reading, "yellow")
        size = {w: _kind_size(final, kind, w) for w in (lo, hi)}
        t.add_row(kind, *cells, f"[{fit.ci_low:+.2f}, {fit.ci_high:+.2f}]", f"[{colour}]{fit.reading}[/{colour}]",
                  f"{size[lo]:.3g} → {size[hi]:.3g}")  # fmt: skip
    console.print(t)

    loss = result.losses.groupby(["width", "t"]).loss.mean().unstack()
    lt = table("Training loss per byte (nats, mean over seeds)")
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
