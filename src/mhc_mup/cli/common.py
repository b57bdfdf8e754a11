"""What the subcommands share: argument types that name the bad value, each flag declared once, and the
console, progress bar, table and output-folder helpers.

Every ``add_*`` function adds one flag (or a few that always travel together) to an argument group; its
parameters are what legitimately differs between commands (the default shown in the help, a help suffix).
Importing this module imports neither torch nor rich (the helpers import rich when called).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mhc_mup.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from mhc_mup.mhc.parameterizations import Parameterization
    from mhc_mup.reporting.figure_pool import FigurePool

__all__ = [
    "PARAM_HELP",
    "Group",
    "add_base_width",
    "add_batch",
    "add_bootstrap",
    "add_corpus",
    "add_device",
    "add_eps",
    "add_lr",
    "add_model_shape",
    "add_n_s",
    "add_optimizer",
    "add_outputs",
    "add_param",
    "add_quick",
    "add_quiet",
    "add_samples",
    "add_seed",
    "add_seeds",
    "add_sinkhorn_iters",
    "add_steps",
    "add_tolerance",
    "add_widths",
    "check_out_dir",
    "consoles",
    "figure_pool",
    "flat",
    "int_at_least",
    "int_list",
    "parameterization",
    "positive_float",
    "positive_number",
    "progress_bar",
    "table",
    "write_failure",
]

Group = argparse.ArgumentParser | argparse._ArgumentGroup  # what add_argument is called on


# ── argument types: each names the bad value ───────────────────────────────────────────────────
def int_list(what: str, minimum: int) -> Callable[[str], list[int]]:
    """A type for ``"64,128,256"``: integers ``>= minimum``; the error names the bad entry."""

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


def int_at_least(what: str, minimum: int) -> Callable[[str], int]:
    """A type for one integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {value}")
        return value

    return parse


def positive_number(text: str, what: str, allow_zero: bool = False) -> float:
    """``1e-3``, ``0.001``, ``2^-10`` or ``2**-10`` as one finite number ``> 0`` (``>= 0`` with ``allow_zero``);
    an :class:`argparse.ArgumentTypeError` naming ``what`` and the text otherwise."""
    power = re.fullmatch(r"\s*2\s*(?:\^|\*\*)\s*([-+]?\d+(?:\.\d+)?)\s*", text)
    try:
        value = 2.0 ** float(power.group(1)) if power else float(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number (e.g. 1e-3 or 2^-10)") from None
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"{what} must be a {'non-negative' if allow_zero else 'positive'} finite number, got {text!r}"
        )
    return value


def positive_float(what: str, allow_zero: bool = False) -> Callable[[str], float]:
    """A type for one finite number ``> 0`` (``>= 0`` with ``allow_zero``), :func:`positive_number`'s forms."""

    def parse(text: str) -> float:
        return positive_number(text, what, allow_zero)

    return parse


def parameterization(text: str) -> Parameterization:
    """A type for ``--param``: a preset name or a rule set (:func:`~mhc_mup.mhc.parameterizations.parse_spec`)."""
    from mhc_mup.errors import ParameterizationError
    from mhc_mup.mhc.parameterizations import parse_spec

    try:
        return parse_spec(text)
    except ParameterizationError as exc:  # argparse prefixes the flag: "argument --param: <message>"
        raise argparse.ArgumentTypeError(str(exc)) from None


def flat(groups: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """``--widths 16,32 64`` arrives as ``[[16, 32], [64]]``; this is ``(16, 32, 64)``."""
    return tuple(w for group in groups for w in group)


# ── flags: each declared once ──────────────────────────────────────────────────────────────────
PARAM_HELP = (
    "a preset ({presets}) or a rule set 'NAME: rule=expr, ...' starting from the baseline (or from "
    "a preset with from=PRESET). Rules: sigma_w / sigma_{{pre,post,comb}} (std of fn's rows per gate), "
    "scale / scale_{{pre,post,comb}}, base / base_{{pre,post,comb}}, lr_fn / lr_scale / lr_base "
    "(LR multipliers, both optimizers) or lr_{{fn,scale,base}}_{{sgd,adam}}. Expressions use n_s, d, "
    "numbers, + - * / **, pi, e, sqrt, log, exp, min, max, abs; e.g. 'mine: sigma_w=1/(n_s*d), lr_fn=1/d'"
)


def add_param(g: Group, presets: str, *, before: str = "", repeatable: bool = False) -> None:
    """``--param SPEC``: the mHC generator's parameterization; ``repeatable`` collects a list."""
    help_text = before + PARAM_HELP.format(presets=presets)
    if repeatable:
        g.add_argument("--param", action="append", type=parameterization, default=[], metavar="SPEC", help=help_text)
    else:
        g.add_argument("--param", type=parameterization, metavar="SPEC", help=help_text)


def add_widths(
    g: Group, what: str, default: Sequence[int], *, fill: bool = False, note: str = "", spaced: bool = True
) -> None:
    """``--widths D [D ...]``, each ``D`` a width or a comma-separated list of them; read them with :func:`flat`.
    ``spaced=False`` takes one comma-separated list (for a command whose positional argument may follow).

    ``default`` is the default the help names; ``fill`` makes argparse fill it in (else the flag is None and
    the command's config supplies it). The same ``fill``/``note`` pair recurs in the functions below."""
    widths = int_list("width", 1)
    g.add_argument(
        "--widths",
        nargs="+" if spaced else None,
        type=widths if spaced else lambda text: [widths(text)],  # either way a list of lists
        default=[list(default)] if fill else None,
        metavar="D" if spaced else "D,D,...",
        help=f"{what}, {'space- or ' if spaced else ''}comma-separated (default {','.join(map(str, default))}{note})",
    )


def add_n_s(g: Group, default: int, *, fill: bool = False, note: str = "") -> None:
    """``--n-s N``: the number of residual streams."""
    g.add_argument("--n-s", type=int_at_least("n_s", 2), default=default if fill else None, metavar="N",
                   help=f"number of residual streams n_s (default {default}{note})")  # fmt: skip


def add_sinkhorn_iters(g: Group, default: int | str, *, fill: bool = False, note: str = "") -> None:
    """``-K/--sinkhorn-iters K``: Sinkhorn iterations of the realised comb."""
    g.add_argument("-K", "--sinkhorn-iters", dest="K", type=int_at_least("K", 1), default=default if fill else None,
                   metavar="K", help=f"Sinkhorn iterations of the realised comb (default {default}{note})")  # fmt: skip


def add_eps(g: Group, hc_eps: str, norm_eps: str) -> None:
    """``--hc-eps`` and ``--norm-eps``; the arguments are the defaults as the help names them."""
    g.add_argument("--hc-eps", type=positive_float("hc_eps", allow_zero=True), metavar="EPS",
                   help=f"eps added in the gates and Sinkhorn (default {hc_eps})")  # fmt: skip
    g.add_argument("--norm-eps", type=positive_float("norm_eps", allow_zero=True), metavar="EPS",
                   help=f"eps inside the RMS rsqrt (default {norm_eps})")  # fmt: skip


def add_samples(g: Group, what: str, default: int | str, *, fill: bool = False) -> None:
    """``--samples N`` (at least 2); what a sample is differs per command."""
    g.add_argument("--samples", type=int_at_least("samples", 2), default=default if fill else None, metavar="N",
                   help=f"{what} (default {default})")  # fmt: skip


def add_seed(g: Group, what: str, default: int = 0, *, fill: bool = False) -> None:
    """``--seed S``: the random seed of ``what``."""
    g.add_argument("--seed", type=int_at_least("seed", 0), default=default if fill else None, metavar="S",
                   help=f"random seed of {what}; the same seed gives the same numbers (default {default})")  # fmt: skip


def add_lr(g: Group, what: str, default: str) -> None:
    """``--lr LR``: a base learning rate η."""
    g.add_argument("--lr", type=positive_float("lr"), metavar="LR",
                   help=f"base learning rate η (e.g. 1e-2 or 2^-7){what} (default {default})")  # fmt: skip


def add_device(g: Group, note: str = "", *, auto: bool = False) -> None:
    """``--device``: one device (cpu, cuda, cuda:N; checked when the run starts), or with ``auto`` a choice of
    auto (every CUDA GPU if there is one), cpu or cuda."""
    if auto:
        g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help=f"auto (default): every CUDA GPU if there is one, else the CPU{note}")  # fmt: skip
    else:
        g.add_argument("--device", metavar="DEV", help=f"cpu, cuda or cuda:N (default cpu{note})")


def add_bootstrap(g: Group, default: int) -> None:
    """``--bootstrap B``: resamples for the fits' intervals."""
    g.add_argument("--bootstrap", type=int_at_least("bootstrap", 1), metavar="B",
                   help=f"bootstrap resamples for the fits' intervals (default {default})")  # fmt: skip


def add_tolerance(g: Group, default: float, reads: str = "an exponent reads O(1) when its") -> None:
    """``--tolerance T``: the band [-T, +T] an exponent's interval must lie in."""
    g.add_argument("--tolerance", type=positive_float("tolerance"), metavar="T",
                   help=f"{reads} whole interval lies in [-T, +T] (default {default:g})")  # fmt: skip


def add_quick(g: Group, what: str) -> None:
    """``--quick``: a smaller grid that explicit flags still override."""
    g.add_argument("--quick", action="store_true", help=f"{what} (flags given explicitly still win)")


def add_steps(g: Group, default: int) -> None:
    g.add_argument("--steps", type=int_at_least("steps", 1), metavar="N", help=f"optimizer steps (default {default})")


def add_seeds(g: Group, default: int, per: str) -> None:
    g.add_argument("--seeds", type=int_at_least("seeds", 1), metavar="N", help=f"seeds per {per} (default {default})")


def add_optimizer(g: Group) -> None:
    g.add_argument("--optimizer", choices=("adam", "sgd"), help="default adam")


def add_batch(g: Group, batch_size: int, seq_len: int) -> None:
    """``--batch-size B`` and ``--seq-len T``: each step's batch of byte sequences."""
    g.add_argument("--batch-size", type=int_at_least("batch size", 1), metavar="B",
                   help=f"sequences per batch (default {batch_size})")  # fmt: skip
    g.add_argument("--seq-len", type=int_at_least("sequence length", 1), metavar="T",
                   help=f"bytes per sequence (default {seq_len})")  # fmt: skip


def add_model_shape(g: Group, depth: int, heads: int, n_s: int, K: int) -> None:
    """The language model's shape: ``--depth``, ``--heads``, ``--n-s`` and ``-K``."""
    g.add_argument("--depth", type=int_at_least("depth", 1), metavar="L", help=f"blocks (default {depth})")
    g.add_argument("--heads", type=int_at_least("heads", 1), metavar="H", help=f"attention heads (default {heads})")
    add_n_s(g, n_s)
    add_sinkhorn_iters(g, K)


def add_base_width(g: Group) -> None:
    g.add_argument("--base-width", type=int_at_least("base width", 1), metavar="D",
                   help="width at which µP and SP coincide (default: the smallest width)")  # fmt: skip


def add_corpus(g: Group) -> None:
    g.add_argument("--corpus", type=Path, metavar="PATH",
                   help="a text file or a folder of text files (default: the Python standard library's .py "
                        "sources)")  # fmt: skip


def add_outputs(g: Group, default_dir: str, writes: str, *, quiet: str = "no progress bar and no tables") -> None:
    """``--out DIR`` (the folder for ``writes``) and ``-q/--quiet`` (``quiet``; errors are always printed)."""
    g.add_argument("--out", type=Path, default=Path(default_dir), metavar="DIR",
                   help=f"directory for {writes} (default ./{default_dir})")  # fmt: skip
    add_quiet(g, quiet)


def add_quiet(g: Group, what: str = "no progress bar and no tables") -> None:
    g.add_argument("--quiet", "-q", action="store_true", help=f"{what}; errors only")


# ── helpers ────────────────────────────────────────────────────────────────────────────────────
def check_out_dir(out: Path) -> None:
    """Refuse an output path that is a file or lies inside one, before anything is computed."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path '{out}' is a file, not a directory")
    parent = next((p for p in (out, *out.parents) if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"output path '{out}' is inside '{parent}', which is a file")


def write_failure(out: Path, exc: OSError, what: str = "results to") -> UsageError:
    """The one-line error for an output folder that cannot be written: "cannot write <what> '<out>': <why>"."""
    return UsageError(f"cannot write {what} '{out}': {exc.strerror or exc}")


FIGURE_WORKERS_ENV = "MHC_MUP_FIGURE_WORKERS"


def figure_pool(preload: Sequence[str] = ()) -> FigurePool:
    """Where a command draws its report's figures: ``$MHC_MUP_FIGURE_WORKERS`` worker processes (0: in this
    process), by default two where this process may use two cores or more. Enter it before the computation, so
    that the workers import matplotlib (and ``preload``) meanwhile."""
    from mhc_mup.reporting.figure_pool import FigurePool, default_workers

    raw = os.environ.get(FIGURE_WORKERS_ENV, "").strip()
    if not raw:
        return FigurePool(default_workers(), preload)
    try:
        workers = int(raw)
    except ValueError:
        workers = -1
    if workers < 0:
        raise UsageError(f"{FIGURE_WORKERS_ENV} must be an integer >= 0 (0: draw in this process), got {raw!r}")
    return FigurePool(workers, preload)


def consoles(quiet: bool) -> tuple[Console, Console, bool]:
    """(stdout console, stderr console, whether to show progress): stdout 140 columns wide when piped."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)  # piped: do not squeeze tables into 80 columns
    err = Console(stderr=True)
    return console, err, not quiet and err.is_terminal


def progress_bar(err: Console) -> Progress:
    """A transient progress bar on ``err``: description, bar, done/total, elapsed time."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def table(title: str, columns: Sequence[str] = ()) -> Table:
    """A rich table in the package's style, with ``columns`` right-aligned (add others yourself)."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, title_style="bold")
    for c in columns:
        t.add_column(c, justify="right", no_wrap=True)
    return t
