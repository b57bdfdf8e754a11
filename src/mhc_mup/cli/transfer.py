"""``mhc-mup transfer``: learning-rate transfer sweeps across width, resumable, one run per GPU.

Registered from :data:`mhc_mup.cli.app.COMMANDS` through :func:`register`; bad input is one line on stderr,
exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mhc_mup.cli.common import (
    Group,
    add_base_width,
    add_batch,
    add_bootstrap,
    add_corpus,
    add_device,
    add_model_shape,
    add_optimizer,
    add_outputs,
    add_quick,
    add_seeds,
    add_steps,
    add_tolerance,
    add_widths,
    check_out_dir,
    consoles,
    int_at_least,
    positive_float,
    positive_number,
    progress_bar,
    table,
    write_failure,
)
from mhc_mup.errors import UsageError
from mhc_mup.kernels.fused import KERNEL_CHOICES
from mhc_mup.reporting.numbers import fmt_interval, fmt_number
from mhc_mup.training.model import ATTENTION_CHOICES, STREAM_DTYPES
from mhc_mup.training.transfer import (
    BUILTIN_CONFIGS,
    DEFAULT_CONFIGS,
    HYPERPARAMETERS,
    LOGIT_STATS,
    TransferConfig,
    TransferError,
    TransferResult,
    analyse_folder,
    anchor_sentence,
    drift_sentence,
    joint_sentence,
    lr_grid,
    parse_configuration,
    run_transfer,
)
from mhc_mup.training.transfer.analysis import EXPONENT_PRINT_BOUND
from mhc_mup.training.transfer.config import CUDA_GRAPH_CHOICES, LOSSES
from mhc_mup.training.transfer.store import base_lr_from, base_lrs_from
from mhc_mup.training.transfer.sweep import transfer_cost

if TYPE_CHECKING:  # annotations only: the command line imports neither at start
    import pandas as pd
    from rich.table import Table

__all__ = ["print_transfer", "register", "run_transfer_command", "transfer_config"]

DEFAULTS = TransferConfig()
DEFAULT_GRID = (2.0**-12, 2.0**-4, 9)
MULTIPLIER_GRID = (2.0**-4, 2.0**4, 9)
"""The default grid of a multiplier sweep: 1/16 … 16 × the rule's value (``--quick``: 5 points)."""
QUICK = {
    "configs": ("mup", "control-mup"),
    "widths": (32, 64, 128),
    "grid": (2.0**-9, 2.0**-3, 5),
    "seeds": 2,
    "steps": 20,
    "batch_size": 8,
    "seq_len": 64,
    "eval_every": 10,
    "eval_batches": 2,
    "n_boot": 300,
}
WRITES = (
    "runs/<config>/d<width>/seed<seed>/log2lr<x>.json.gz (one per run, as it finishes; gzip-compressed JSON), "
    "sweep.json, transfer.csv, curves.csv.gz, optima_seeds.csv, optima.csv, drift.csv, routing.csv, logits.csv, "
    "noise.csv, edges.csv, edge_drift.csv, anchors.csv, relative_drift.csv, rule_drift.csv, transfer_penalty.csv, "
    "rule_penalty.csv (a multiplier sweep's), transfer.png, optima.png, logits.png, routing.png (each where it has "
    "something to draw) and transfer_report.md/.html"
)
CONFIG_HELP = "; ".join(f"{c.name}: {c.describe()}" for c in BUILTIN_CONFIGS.values())


_learning_rate = positive_float("learning rate")


def _grid(text: str) -> list[float]:
    parts = [p for p in (q.strip() for q in text.split(",")) if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"no grid value given in {text!r}")
    return [positive_number(p, "grid value") for p in parts]


def _base_lr(text: str) -> float | tuple[tuple[int, float], ...]:
    """``--base-lr``: one learning rate (``2^-6.24``), or one per width (``128:2^-6.24,256:2^-6.41``)."""
    if ":" not in text:
        return _learning_rate(text)
    pairs = []
    for part in (q.strip() for q in text.split(",") if q.strip()):
        width, sep, lr = part.partition(":")
        if not (sep and width.strip().isdigit() and int(width) > 0):
            raise argparse.ArgumentTypeError(f"base learning rate {part!r} is not WIDTH:LR (e.g. 128:2^-6.24)")
        pairs.append((int(width), positive_number(lr, f"base learning rate at width {width.strip()}")))
    return tuple(pairs)


def _hyper(text: str) -> str:
    if text not in HYPERPARAMETERS:
        raise argparse.ArgumentTypeError(f"unknown hyperparameter {text!r}; sweep one of {', '.join(HYPERPARAMETERS)}")
    return text


def _lr_list(text: str) -> list[float]:
    parts = [p for p in (q.strip() for q in text.split(",")) if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"no learning rate given in {text!r}")
    return [_learning_rate(p) for p in parts]


def register(p: argparse.ArgumentParser) -> None:
    """Fill in ``mhc-mup transfer``'s parser."""
    p.description = (
        "Train the mHC language model at every configuration × width × seed × learning rate (log2-spaced), or "
        "× multiplier of one part with --sweep; fit the final validation loss near its minimum at every width "
        "and seed at once (a skewed parabola in log2 of the swept value whose optimum moves as d^β), and read "
        "β's 95% interval: transfers when it lies in ±tolerance, drifts when β lies outside and its interval "
        "excludes 0, unclear otherwise (the per-seed parabola optima and their drift are kept beside it). "
        "It also says whether the plain-residual controls read as theory says (control-mup transfers, "
        "control-sp drifts): read no verdict where they do not. "
        f"Writes DIR/{WRITES}. Finished runs are kept: the same command again skips them. The grid may grow "
        "adaptively: a later command into the same --out may sweep other values, widths, seeds or configurations "
        "(e.g. more learning rates for one configuration at one width), and the tables and report cover every "
        "run stored in DIR, each configuration and width over its own values (give --base-width when the "
        "commands sweep different widths: it is part of DIR's settings)."
    )
    _configuration_arguments(p.add_argument_group("configurations"))
    _grid_arguments(p.add_argument_group("grid"))
    _swept_arguments(p.add_argument_group("what is swept (default: the learning rate)"))
    _run_arguments(p.add_argument_group("each run"))
    _analysis_arguments(p.add_argument_group("analysis"))
    _execution_arguments(p.add_argument_group("execution"))
    p.set_defaults(handler=run_transfer_command)


def _configuration_arguments(g: Group) -> None:
    """The configurations to sweep: --configs, --config."""
    g.add_argument(
        "--configs",
        metavar="NAMES",
        help=f"comma-separated built-in configurations (default {','.join(DEFAULT_CONFIGS)}): {CONFIG_HELP}",
    )
    g.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=MODEL:PARAM",
        help="add one (repeatable) to --configs; without --configs only these run. MODEL sp or mup (embedding, "
        "hidden, readout, gains, attention); PARAM an mHC generator preset, a rule set such as "
        "'slow: from=mup, lr_fn=1/(n_s*d)', or control (no mHC); e.g. "
        "--config mine=mup:C --config ctl=sp:control",
    )


def _grid_arguments(g: Group) -> None:
    """The grid: widths, seeds and learning rates."""
    d = DEFAULTS
    add_widths(g, "model widths d, multiples of --heads", d.widths)
    g.add_argument(
        "--lrs",
        type=_lr_list,
        metavar="LR,LR,...",
        help="explicit base learning rates, increasing (1e-3 or 2^-10 forms); at least 3",
    )
    lo, hi = (f"2^{math.log2(x):g}" for x in DEFAULT_GRID[:2])
    g.add_argument("--lr-min", type=_learning_rate, metavar="LR", help=f"smallest LR (default {lo})")
    g.add_argument("--lr-max", type=_learning_rate, metavar="LR", help=f"largest LR (default {hi})")
    g.add_argument("--lr-points", type=int_at_least("LR points", 3), metavar="N",
                   help=f"LRs evenly spaced in log2 from --lr-min to --lr-max (default {DEFAULT_GRID[2]})")  # fmt: skip
    add_seeds(g, d.seeds, "point")
    add_quick(g, "configs mup,control-mup, widths 32,64,128, LRs 2^-9…2^-3 (5), 2 seeds, 20 steps of 8×64 "
              "bytes: about a minute on a CPU")  # fmt: skip


def _swept_arguments(g: Group) -> None:
    """What is swept: --sweep and its grid."""
    g.add_argument("--sweep", type=_hyper, metavar="NAME",
                   help="the hyperparameter swept across width: lr (default: the base learning rate η of every "
                        "group) or a multiplier on the width rule's own value for one part, at a fixed base "
                        "LR: " + "; ".join(f"{h.name}: {h.what}" for h in HYPERPARAMETERS.values() if h.name != "lr")
                        + ". Under a rule that is right for that part the optimal multiplier stays put across "
                          "width")  # fmt: skip
    g.add_argument("--grid", type=_grid, metavar="V,V,...",
                   help="the swept values, increasing, at least 3 (1e-3 or 2^-2 forms): multiples of the rule's "
                        "value for a multiplier (1 = the rule; default 2^-4 … 2^4, 9 points, or 5 with --quick), "
                        "learning rates for --sweep lr (the same as --lrs)")  # fmt: skip
    g.add_argument("--base-lr", type=_base_lr, metavar="LR | D:LR,...",
                   help="a multiplier sweep's base learning rate, held fixed (e.g. the optimum of an lr sweep): "
                        "one for every width, or each width's own as WIDTH:LR pairs (128:2^-6.24,256:2^-6.41,...; "
                        "part of the folder's settings, so give the same pairs to every command into it)")  # fmt: skip
    g.add_argument("--base-from", type=Path, metavar="DIR",
                   help="take the base learning rate from an earlier lr sweep's folder: its optimum at its "
                        "smallest width (the mean of the per-seed optima there), or with --base-at each, each "
                        "width's optimum (refused when the swept "
                        "configurations' optima differ: sweep them one at a time)")  # fmt: skip
    g.add_argument("--base-at", choices=("smallest", "each"), default="smallest",
                   help="with --base-from: the smallest width's optimum at every width (µTransfer's use, default), "
                        "or each width's own, where the body's optimum drifts and the swept part should be "
                        "measured at it")  # fmt: skip


def _run_arguments(g: Group) -> None:
    """What each run trains, and how."""
    d = DEFAULTS
    add_steps(g, d.steps)
    add_optimizer(g)
    g.add_argument("--warmup", type=positive_float("warmup", allow_zero=True), metavar="F",
                   help=f"linear warmup over this fraction of the steps, then cosine to 0.1× "
                        f"(default {d.warmup:g})")  # fmt: skip
    add_batch(g, d.batch_size, d.seq_len)
    g.add_argument("--eval-every", type=int_at_least("eval every", 0), metavar="N",
                   help=f"validation loss every N steps, 0: only at the end (default {d.eval_every})")  # fmt: skip
    g.add_argument("--eval-batches", type=int_at_least("eval batches", 1), metavar="N",
                   help=f"fixed validation batches (default {d.eval_batches})")  # fmt: skip
    g.add_argument("--diverge-factor", type=positive_float("divergence factor"), metavar="F",
                   help=f"a run diverged when a loss is NaN/inf or above F × its first-step loss "
                        f"(default {d.divergence_factor:g})")  # fmt: skip
    add_model_shape(g, d.depth, d.heads, d.n_s, d.K)
    g.add_argument("--qk-norm", action="store_true", default=None,
                   help="RMS-normalise each attention head's queries and keys (learned gains, learning rate as the "
                        "norms' gains) before q·kᵀ, as OLMo 2 and Qwen 3 do: it bounds the attention logits, "
                        "whose growth at large learning rates is the usual limit on a Transformer's stable "
                        "learning rate (issue 20's µP control drifts at 1000 steps with it as without it: "
                        "experiments/anchor_qknorm1000). Off by default, as in every sweep recorded so far. Part of "
                        "the sweep folder's settings")  # fmt: skip
    add_base_width(g)
    add_corpus(g)
    g.add_argument("--corpus-mb", type=positive_float("--corpus-mb"), metavar="MB",
                   help="read the corpus in path order until the training split holds MB MiB (default 16); "
                        "validation keeps the held-out files of the same range (at most MB MiB), so both splits "
                        "come from the same part of a large corpus. A run that reads more tokens than its "
                        "training split holds repeats it, and its validation loss then measures memorising too "
                        "(the plan says when)")  # fmt: skip
    g.add_argument("--stream-dtype", choices=STREAM_DTYPES,
                   help="storage of the n_s residual streams (default float32); bfloat16 stores them as V4 does "
                        "(the mHC math stays fp32): V4's numerics, and half the fused ops' stream traffic")  # fmt: skip
    g.add_argument("--kernels", choices=KERNEL_CHOICES,
                   help="the mHC ops: auto (default) runs the fused Triton kernels on CUDA and the reference ops "
                        "elsewhere; reference always the reference ops; triton insists on the fused kernels (an "
                        "error where they cannot run). Each run records which ran (mhc_kernels)")  # fmt: skip
    g.add_argument("--cuda-graphs", choices=CUDA_GRAPH_CHOICES,
                   help="auto (default): on CUDA each training step is one CUDA graph replay (forward, backward and "
                        "the optimizer, batches and LR schedule on the GPU), several times faster for small "
                        "models; off: eager steps; on: insist (an error without CUDA). A step that cannot be "
                        "captured runs eagerly and its run records why (cuda_graph_fallback). Part of the sweep "
                        "folder's settings")  # fmt: skip
    g.add_argument("--compile", dest="torch_compile", action="store_true", default=None,
                   help="run torch.compile(model) inside each captured step (CUDA graphs on): on an H100, "
                        "steps of 32x256 bytes 1.36-1.46x faster for the mHC model, for about 6 s of compiling per "
                        "configuration and width in each process. Pays for long sweeps (about 1000 steps of one "
                        "width at d=2048, 14000 at d=256); a 300-step sweep of 16x128 bytes took twice as long. "
                        "Same function to bf16 round-off, not bit for bit between runs. Part of the sweep "
                        "folder's settings")  # fmt: skip
    g.add_argument("--attention", choices=ATTENTION_CHOICES,
                   help="which kernels may run the attention (F.scaled_dot_product_attention): auto (default) "
                        "leaves the choice to PyTorch, which on H100-class GPUs with a recent cuDNN picks cuDNN's "
                        "kernel first; no-cudnn leaves cuDNN's out, so FlashAttention, the memory-efficient or "
                        "the math kernel runs. The same function, other kernels (round-off apart). For a check or "
                        "workaround where runs at large head dimensions (width/heads: 256 at d=1024 with 4 heads) "
                        "go NaN or stall: cuDNN's attention is a suspect there, not a confirmed cause. Applies to "
                        "every stage of each run, the CUDA graph's capture and --compile's tracing included. Part "
                        "of the sweep folder's settings")  # fmt: skip


def _analysis_arguments(g: Group) -> None:
    """How the runs are read."""
    d = DEFAULTS
    add_tolerance(g, d.tolerance, reads="a configuration transfers when its drift exponent's")
    g.add_argument("--joint-halfwidth", type=int_at_least("joint halfwidth", 1), metavar="N",
                   help=f"the joint drift fit uses each width's argmin of the seed-mean loss and up to N grid "
                        f"points on each side (default {d.joint_halfwidth}); a note says when the curve misfits "
                        f"that window")  # fmt: skip
    add_bootstrap(g, d.n_boot)
    g.add_argument("--loss", choices=tuple(LOSSES), default=None,
                   help="the loss every fit reads: val (default), each run's final validation loss over "
                        "--eval-batches fixed batches; train, its mean training loss over the last 10%% of steps, "
                        "bytes it has not seen before where it reads its training split at most once (12×+ the "
                        "tokens of 16 validation batches): a second reading of the same runs")  # fmt: skip
    g.add_argument("--degrade-by", type=positive_float("degrade by"), metavar="NATS", dest="degrade_nats",
                   help=f"the degraded edge (edges.csv): the swept value above the best where the seed-mean loss "
                        f"has risen NATS over it, interpolated between grid values; where training degrades, "
                        f"beside the band's edges within the seeds' noise (default {d.degrade_nats:g})")  # fmt: skip
    g.add_argument("--partial", action="store_true", default=None,
                   help="read a partly run width over the values every one of its seeds has run, each left-out "
                        "value named in the notes (default: a width enters the fits once every seed has run every "
                        "value, so extending a grid leaves its widths out until the new runs are done)")  # fmt: skip
    g.add_argument("--report-only", action="store_true",
                   help="train nothing: write the tables, figure and report from the runs stored in --out, with "
                        "the settings and grids its sweep.json records (any machine can read a folder a GPU "
                        "filled); only the analysis flags above apply")  # fmt: skip


def _execution_arguments(g: Group) -> None:
    """Where and how the runs execute, and where they are stored."""
    add_device(g, "; CUDA runs in bf16 autocast", auto=True)
    g.add_argument("--workers", type=int_at_least("workers", 1), metavar="N",
                   help="local backend: parallel runs (default: one per GPU on CUDA, 1 on CPU)")  # fmt: skip
    g.add_argument("--runs-per-gpu", type=int_at_least("runs per GPU", 1), metavar="N", default=1,
                   help="runs sharing each GPU at once, for small widths where one run leaves the GPU idle "
                        "(default 1; 4 trained 1.56x the runs per GPU-hour at widths 128-1024 on an H100). On one "
                        "GPU they take turns from one process, each on its own CUDA stream, so their steps overlap; "
                        "with several GPUs (N pool workers per GPU) or Ray (tasks of 1/N GPU) they are separate "
                        "processes, which the GPU time-slices")  # fmt: skip
    g.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (default) or ray: each run a Ray task with one GPU "
                        "(pip install mhc-mup[ray])")  # fmt: skip
    g.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS or a local one)")
    g.add_argument("--dry-run", action="store_true",
                   help="print what the sweep would train (runs, steps, tokens) and an estimate of its GPU time "
                        "from recorded runs, then stop; nothing is written (with --device cuda this works on a "
                        "machine without CUDA too: price a GPU sweep from a laptop, even on a --corpus only the GPU "
                        "machine has)")  # fmt: skip
    g.add_argument("--time-budget", type=positive_float("time budget"), metavar="SECONDS",
                   help="start no run after this many seconds, nor one that the folder's finished runs of its "
                        "configuration and width say would end after it; write the tables from the finished runs "
                        "(the same command again continues)")  # fmt: skip
    add_outputs(g, "mhc-mup-transfer", "the runs, tables and report, and reused to resume")


def transfer_config(args: argparse.Namespace) -> TransferConfig:
    """A validated :class:`TransferConfig`: defaults, then ``--quick``, then explicit flags."""
    changes: dict = {}
    quick: dict[str, Any] = dict(QUICK) if args.quick else {}
    grid = quick.pop("grid", DEFAULT_GRID)
    names = quick.pop("configs", DEFAULT_CONFIGS)
    changes.update(quick)
    if args.configs is not None:
        names = tuple(n.strip() for n in args.configs.split(",") if n.strip())
        if not names and not args.config:
            raise UsageError(f"--configs names no configuration: {args.configs!r}")
    if args.config and args.configs is None:
        names = ()  # --config alone: only those
    try:
        changes["configs"] = tuple(parse_configuration(n) for n in names) + tuple(
            parse_configuration(c) for c in args.config
        )
    except TransferError as exc:
        raise UsageError(str(exc)) from None
    if args.widths:
        changes["widths"] = tuple(w for group in args.widths for w in group)
    changes |= _swept(args, grid, [c.name for c in changes["configs"]])
    if args.diverge_factor is not None:
        changes["divergence_factor"] = args.diverge_factor
    if args.base_width is not None:
        changes["base_d"] = args.base_width
    if args.corpus is not None:
        changes["corpus"] = str(args.corpus.expanduser().resolve())
    if args.corpus_mb is not None:
        changes["corpus_bytes"] = max(1, round(args.corpus_mb * 2**20))
    for name in ("seeds", "steps", "optimizer", "warmup", "batch_size", "seq_len", "eval_every", "eval_batches",
                 "depth", "heads", "n_s", "K", "device", "stream_dtype", "kernels", "cuda_graphs",
                 "torch_compile", "attention", "qk_norm"):  # fmt: skip
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return DEFAULTS.with_leaves(**(changes | _analysis_flags(args)), plan_only=args.dry_run).validate()


def _analysis_flags(args: argparse.Namespace) -> dict:
    """The analysis leaves the flags set: ``tolerance``, ``joint_halfwidth``, ``n_boot`` (``--bootstrap``),
    ``loss``, ``degrade_nats`` (``--degrade-by``) and ``partial``."""
    given = {"tolerance": args.tolerance, "joint_halfwidth": args.joint_halfwidth, "n_boot": args.bootstrap,
             "loss": args.loss, "degrade_nats": args.degrade_nats, "partial": args.partial}  # fmt: skip
    return {k: v for k, v in given.items() if v is not None}


def _swept(args: argparse.Namespace, grid: tuple, names: list[str]) -> dict:
    """The grid's values (``lrs``) and, for a multiplier sweep, the swept name and the base learning rate."""
    hyper = args.sweep or "lr"
    lr_flags = args.lrs is not None or any(x is not None for x in (args.lr_min, args.lr_max, args.lr_points))
    if hyper == "lr":
        if args.base_lr is not None or args.base_from is not None or args.base_at != "smallest":
            raise UsageError("--base-lr, --base-from and --base-at are for a multiplier sweep (--sweep lr_fn ...); "
                             "--sweep lr sweeps the base learning rate itself")  # fmt: skip
        if args.grid is not None:
            if lr_flags:
                raise UsageError("give either --grid or --lrs/--lr-min/--lr-max/--lr-points, not both")
            return {"lrs": tuple(args.grid)}
        return {"lrs": _lr_values(args, grid)}
    if lr_flags:
        raise UsageError(f"--sweep {hyper} takes its values from --grid (multiples of the rule's value), "
                         "not from --lrs/--lr-min/--lr-max/--lr-points")  # fmt: skip
    if args.base_lr is not None and args.base_from is not None:
        raise UsageError("give either --base-lr or --base-from, not both")
    if args.base_at == "each" and args.base_from is None:
        raise UsageError("--base-at takes the optima of --base-from DIR (give each width's own with --base-lr "
                         "D:LR,...)")  # fmt: skip
    if args.base_from is None:
        base = args.base_lr
    else:
        base = base_lrs_from(args.base_from, names) if args.base_at == "each" else base_lr_from(args.base_from, names)
    lo, hi, n = MULTIPLIER_GRID[0], MULTIPLIER_GRID[1], 5 if args.quick else MULTIPLIER_GRID[2]
    values = _checked_grid(args.grid) if args.grid is not None else lr_grid(lo, hi, n)
    key = "base_lr_by_width" if isinstance(base, tuple) else "base_lr"
    return {"lrs": values, "hyper": hyper, key: base}


def _checked_grid(values: list[float]) -> tuple[float, ...]:
    """A multiplier grid: at least 3 values, increasing, distinct in log2 to 1e-4 (:class:`UsageError` naming
    the values otherwise)."""
    shown = ",".join(f"2^{math.log2(v):g}" for v in values)
    if len(values) < 3:
        raise UsageError(f"--grid needs at least 3 values for a parabola fit, got {shown}")
    if any(round(math.log2(b) - math.log2(a), 4) <= 0 for a, b in itertools.pairwise(values)):
        raise UsageError(f"--grid values must increase (and differ), got {shown}")
    return tuple(values)


def _lr_values(args: argparse.Namespace, grid: tuple) -> tuple[float, ...]:
    """The learning rates of an lr sweep: ``--lrs``, or ``--lr-min/--lr-max/--lr-points`` over ``grid``'s."""
    if args.lrs is not None:
        if any(x is not None for x in (args.lr_min, args.lr_max, args.lr_points)):
            raise UsageError("give either --lrs or --lr-min/--lr-max/--lr-points, not both")
        return tuple(args.lrs)
    lo = args.lr_min if args.lr_min is not None else grid[0]
    hi = args.lr_max if args.lr_max is not None else grid[1]
    return lr_grid(lo, hi, args.lr_points if args.lr_points is not None else grid[2])


def run_transfer_command(args: argparse.Namespace) -> int:
    """The ``transfer`` handler: validate everything (and the resume folder), run the pending runs, write."""
    check_out_dir(args.out)
    if args.report_only:
        return _report_only(args)
    cfg = transfer_config(args)
    console, err, show_progress = consoles(args.quiet)
    n_total = len(cfg.runs())
    kwargs = {"backend": args.backend, "workers": args.workers, "time_budget": args.time_budget,
              "ray_address": args.ray_address, "runs_per_gpu": args.runs_per_gpu}  # fmt: skip
    if args.dry_run or not args.quiet:  # after every check the sweep itself makes
        cost = transfer_cost(cfg, args.out, backend=args.backend, workers=args.workers, runs_per_gpu=args.runs_per_gpu)
        (console if args.dry_run else err).print(cost.describe(), soft_wrap=True)
        if args.dry_run:
            return 0
    try:
        if show_progress:
            with progress_bar(err) as bar:
                task = bar.add_task("transfer", total=n_total)

                def on_run(record: dict, done: int, total: int) -> None:
                    what = f"{record['config']} d={record['width']} seed {record['seed']} η=2^{record['log2_lr']:.2f}"
                    bar.update(task, description=what, completed=done, total=total)

                result = run_transfer(cfg, args.out, on_run=on_run, **kwargs)
        else:
            result = run_transfer(cfg, args.out, **kwargs)
    except OSError as exc:
        raise write_failure(args.out, exc) from None
    if not args.quiet:
        print_transfer(result, console)
        console.print(f"wrote {args.out}/: transfer.csv, optima.csv, drift.csv, transfer.png, transfer_report.md")
    return 0


def _report_only(args: argparse.Namespace) -> int:
    """``--report-only``: analyse the runs stored in ``--out`` and write the outputs, training nothing."""
    console, _, _ = consoles(args.quiet)
    try:
        result = analyse_folder(args.out, _analysis_flags(args))
    except OSError as exc:
        raise write_failure(args.out, exc) from None
    if not args.quiet:
        print_transfer(result, console, left="planned by the folder's grids not stored")
        console.print(f"wrote {args.out}/: transfer.csv, optima.csv, drift.csv, transfer.png, transfer_report.md")
    return 0


def _drift_cells(beta: float, low: float, high: float, verdict: str, direction: str) -> tuple[str, str, str]:
    """β, its interval and the coloured verdict, as a drift table prints them (— where there is none)."""
    colour = {"transfers": "green", "drifts": "red"}.get(verdict, "yellow")
    text = verdict + (f" ({direction})" if direction else "")
    interval = fmt_interval(low, high, whole=True, cap=EXPONENT_PRINT_BOUND)
    return fmt_number(beta, "+.3f"), interval, f"[{colour}]{text}[/{colour}]"


def _print_anchors(result: TransferResult, console: Console) -> None:
    """The sanity anchors (does each control read as theory says?) and the drift against them (anchors.csv,
    relative_drift.csv)."""
    tol = result.config.tolerance
    for r in result.anchors.to_dict("records"):
        colour = {"holds": "green", "fails": "red"}.get(r["status"], "yellow")
        sentence = anchor_sentence(r, tol, not result.relative.empty)
        console.print(f"  [{colour}]anchor {r['status']}[/{colour}]: {sentence}", soft_wrap=True)
    if result.relative.empty:
        return
    title = (f"Drift against the control of the same body: β − β_control of the joint fits, within ±{tol:g}: "
             "moves no more with width than the control (relative_drift.csv; paired: the interval that keeps the "
             "noise the two share, narrower, not the verdict's, see docs/transfer.md)")  # fmt: skip
    console.print(_relative_table(title, "β − β_control", result.relative))


def _relative_table(title: str, delta: str, frame: pd.DataFrame) -> Table:
    """A relative-drift table (relative_drift.csv, rule_drift.csv) under ``title``, δ's column headed ``delta``."""
    t = table(title)
    for col in ("config", "against", delta, "interval", "verdict", "paired", "note"):
        t.add_column(col, justify="right" if col in (delta, "interval", "paired") else "left",
                     no_wrap=col != "note")  # fmt: skip
    for r in frame.to_dict("records"):
        t.add_row(r["config"], r["anchor"],
                  *_drift_cells(r["exponent"], r["ci_low"], r["ci_high"], r["verdict"], r["direction"]),
                  fmt_interval(r["paired_low"], r["paired_high"], whole=True, cap=EXPONENT_PRINT_BOUND),
                  r["note"])  # fmt: skip
    return t


def _print_rule_drift(result: TransferResult, console: Console) -> None:
    """Two mHC rules of one body against each other (rule_drift.csv); nothing where the sweep has no such pair."""
    if result.rules.empty:
        return
    title = (f"Between the mHC rules of one body: β − β_other of the joint fits, within ±{result.config.tolerance:g}: "
             "their optima move alike (rule_drift.csv; paired: not the verdict's, as against the control)")
    console.print(_relative_table(title, "β − β_other", result.rules))


def _print_routing(result: TransferResult, console: Console) -> None:
    """Is the mHC routing alive? Start → end of training at each width's best grid value (mHC runs only)."""
    if result.routing.empty:
        return
    t = table("mHC routing, start → end of training (at each width's best grid value, mean over seeds)")
    stats = ("comb_rms", "pre_rms", "post_rms", "comb_to_uniform", "comb_to_identity")
    for col in ("config", "width", "comb logits RMS", "pre logits RMS", "post logits RMS", "comb−uniform",
                "comb−identity"):  # fmt: skip
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=True)
    for r in result.routing.to_dict("records"):
        t.add_row(r["config"], str(r["width"]), *(f"{r[k + '_init']:.3g} → {r[k]:.3g}" for k in stats))
    console.print(t)


def _print_logits(result: TransferResult, console: Console) -> None:
    """Do the logits stay bounded? Start → end of training at each width's best grid value and an octave above."""
    if result.logits.empty:
        return
    t = table("Logits, start → end of training (at each width's best grid value and an octave above it, mean over "
              "seeds; logits.csv)")  # fmt: skip
    for col in ("config", "width", "at", "attention max", "attention RMS", "output RMS"):
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=True)
    for r in result.logits.to_dict("records"):
        at = "best" if r["at"] == "best" else "above"
        t.add_row(r["config"], str(r["width"]), f"{at} 2^{math.log2(r['value']):.2f}",
                  *(f"{r[k + '_init']:.3g} → {r[k]:.3g}" for k in LOGIT_STATS))  # fmt: skip
    console.print(t)


def _print_penalty(result: TransferResult, console: Console) -> None:
    """What transferring costs: the loss each width gives up at the base width's optimum (transfer_penalty.csv)."""
    if result.penalty.empty or result.penalty.penalty.isna().all():
        return
    sym = result.config.sweep.symbol
    t = table(f"What transferring {sym} costs: the loss given up at the base width's optimum instead of the width's "
              "own, mean over seeds (nats/byte; transfer_penalty.csv)")  # fmt: skip
    for col in ("config", "width", f"base log2 {sym}", f"own log2 {sym}", "penalty", "interval", "note"):
        t.add_column(col, justify="left" if col in ("config", "note") else "right", no_wrap=col != "note")
    for r in result.penalty.to_dict("records"):
        t.add_row(r["config"], str(r["width"]), f"{r['base_log2']:+.2f}", f"{r['own_log2']:+.2f}",
                  fmt_number(r["penalty"], "+.4f"), fmt_interval(r["ci_low"], r["ci_high"], "+.4f", whole=True),
                  r["note"])  # fmt: skip
    console.print(t)


def _print_rule_penalty(result: TransferResult, console: Console) -> None:
    """A multiplier sweep's rule as it stands: the loss each width gives up at the multiplier 1 (rule_penalty.csv)."""
    if result.rule_penalty.empty or result.rule_penalty.penalty.isna().all():
        return
    sym = result.config.sweep.symbol
    t = table(f"What the rule's own {sym.removesuffix('*')} costs: the loss given up at the multiplier 1 instead of "
              "the width's own optimum, mean over seeds (nats/byte; rule_penalty.csv)")  # fmt: skip
    for col in ("config", "width", f"own log2 {sym}", "penalty at 1", "interval", "note"):
        t.add_column(col, justify="left" if col in ("config", "note") else "right", no_wrap=col != "note")
    for r in result.rule_penalty.to_dict("records"):
        t.add_row(r["config"], str(r["width"]), f"{r['own_log2']:+.2f}", fmt_number(r["penalty"], "+.4f"),
                  fmt_interval(r["ci_low"], r["ci_high"], "+.4f", whole=True), r["note"])  # fmt: skip
    console.print(t)


def _print_edges(result: TransferResult, console: Console) -> None:
    """Where the loss is flat: each configuration's band edges' drift with width, and the sweep's noise."""
    if result.edge_drift.empty or result.edge_drift.exponent.isna().all():
        return
    delta = result.config.analysis.degrade_nats
    t = table("Edges of the band within the seeds' noise of the best, and where the loss has risen "
              f"+{delta:g} over it (degraded) (edges.csv): 2^edge ∝ d^β, the band's intervals widened for the "
              "grid's spacing, the degraded edge's interpolated")  # fmt: skip
    for col in ("config", "edge", "β", "interval", "verdict", "widths"):
        t.add_column(col, justify="left" if col in ("config", "edge", "verdict") else "right", no_wrap=True)
    for r in result.edge_drift.to_dict("records"):
        t.add_row(r["config"], r["edge"].replace("_", " "),
                  *_drift_cells(r["exponent"], r["ci_low"], r["ci_high"], r["verdict"], r["direction"]),
                  str(r["n_widths"]))  # fmt: skip
    console.print(t)


def _noise_line(result: TransferResult) -> str:
    """The sweep's noise in one line (noise.csv): medians over configurations and widths."""
    noise = result.noise
    parts = [f"{label} {noise[col].median():.4f}" for col, label in
             (("seed_sigma", "seeds' σ"), ("val_batch_se", "one run's validation-batch SE"),
              ("val_pair_se", "neighbours' paired SE")) if noise[col].notna().any()]  # fmt: skip
    return f"noise (nats/byte, medians; noise.csv): {', '.join(parts)}" if parts else ""


def print_transfer(result: TransferResult, console: Console, left: str = "of this command's grid left") -> None:
    """Optima per configuration and width, the drift fits with their verdicts, and the sweep's cost (``left``:
    what ``result.missing`` counts)."""
    cfg = result.config
    sym = cfg.sweep.symbol
    what = "learning rate" if cfg.sweep.hyper == "lr" else cfg.sweep.hyper
    t = table(f"Optimal {what} per width: parabola in log2 {sym[:-1]} around the argmin "
              f"({cfg.describe(result.ragged)})")  # fmt: skip
    for col in ("config", "width", f"log2 {sym}", f"{cfg.confidence:.0%} interval", sym, f"loss at {sym}", "seeds"):
        t.add_column(col, justify="left" if col == "config" else "right", no_wrap=True)
    t.add_column("note", overflow="fold")
    for r in result.optima.to_dict("records"):
        ok = math.isfinite(r["log2_lr_opt"])
        t.add_row(r["config"], str(r["width"]), f"{r['log2_lr_opt']:+.2f}" if ok else "—",
                  fmt_interval(r["ci_low"], r["ci_high"], "+.2f", whole=True),
                  f"{r['lr_opt']:.3g}" if ok else "—", f"{r['loss_at_opt']:.4f}" if ok else "—",
                  f"{r['n_seeds_fit']}/{r['n_seeds']}", r["note"])  # fmt: skip
    console.print(t)
    t = table(f"Drift of the optimum: {sym} ∝ d^β, transfers when the interval lies in ±{cfg.tolerance:g}")
    for col in ("config", "β", f"{cfg.confidence:.0%} interval", "verdict", "joint β", "interval", "joint verdict"):
        t.add_column(col, justify="left" if col in ("config", "verdict", "joint verdict") else "right", no_wrap=True)
    for r in result.drift.to_dict("records"):
        t.add_row(r["config"], *_drift_cells(r["exponent"], r["ci_low"], r["ci_high"], r["verdict"], r["direction"]),
                  *_drift_cells(r["joint_exponent"], r["joint_low"], r["joint_high"], r["joint_verdict"],
                                r["joint_direction"]))  # fmt: skip
    console.print(t)
    for r in result.drift.to_dict("records"):
        console.print(f"  joint fit: {joint_sentence(r, cfg.confidence, sym)}", soft_wrap=True)
        console.print(f"  per-seed optima: {drift_sentence(r, cfg.confidence, sym, cfg.sweep.noun)}", soft_wrap=True)
    _print_anchors(result, console)
    _print_rule_drift(result, console)
    _print_penalty(result, console)
    _print_rule_penalty(result, console)
    _print_routing(result, console)
    _print_logits(result, console)
    _print_edges(result, console)
    if line := _noise_line(result):
        console.print(line, soft_wrap=True)
    runs = result.runs
    if len(runs):
        console.print(
            f"{len(runs)} runs stored in the folder ({result.executed} by this call, {result.missing} {left}), "
            f"{int(runs.diverged.astype(bool).sum())} diverged; {runs.seconds.sum():.1f} s of run time in all, "
            f"median {runs.seconds.median():.2f} s and {runs.tokens_per_s.median():,.0f} tokens/s per run",
            soft_wrap=True,
        )
    for note in result.notes:
        console.print(f"  {note}", soft_wrap=True)
    if result.missing:
        console.print(f"[yellow]sweep incomplete: {result.missing} run(s) left; the same command continues it[/yellow]")
