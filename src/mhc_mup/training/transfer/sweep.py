"""A whole transfer sweep: check everything, run the pending grid points (each stored as it ends), analyse
every run stored in the folder (the union of every grid swept into it) and write the tables, the figure and the
report.

Does the optimal learning rate found at a small width hold at large width? A sweep trains the byte-level mHC
language model (:class:`~mhc_mup.training.model.MHCLM`) at every point of a grid: configuration × width ``d``
× seed × base learning rate ``η`` (log2-spaced). A configuration is the model rule (``sp`` or ``mup``), the mHC
generator preset, or the plain-residual control (:mod:`~mhc_mup.training.transfer.configurations`). The
analysis (:mod:`~mhc_mup.training.transfer.analysis`) finds each width's optimal ``η*`` and fits its drift
``η* ≈ c·d^β``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path

from mhc_mup._device import device_label
from mhc_mup.errors import CorpusError, TransferError
from mhc_mup.training.transfer.analysis import TransferResult, analyse
from mhc_mup.training.transfer.config import RunKey, TransferConfig
from mhc_mup.training.transfer.cost import SweepCost, calibration, estimate_cost
from mhc_mup.training.transfer.executors import (
    RunClock,
    import_ray,
    run_local,
    run_ray,
    runs_in_turns,
    worker_devices,
)
from mhc_mup.training.transfer.report import write_outputs
from mhc_mup.training.transfer.store import (
    OnRun,
    RunStore,
    folder_config,
    folder_grids,
    load_records,
    plan,
    read_json,
    stored_config,
    unread_records,
    write_sweep_file,
)

__all__ = ["analyse_folder", "run_transfer", "transfer_cost"]


def run_transfer(
    cfg: TransferConfig,
    out: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    time_budget: float | None = None,
    ray_address: str | None = None,
    runs_per_gpu: int = 1,
    on_run: OnRun | None = None,
) -> TransferResult:
    """Run every pending grid point of ``cfg`` (storing each as it ends), then analyse every run stored in
    ``out`` — the union of every grid swept into it (:func:`~.store.folder_config`), each configuration × width
    over its own values (:func:`~.store.folder_grids`) — and write ``transfer.csv``, ``curves.csv.gz``,
    ``optima_seeds.csv``, ``optima.csv``, ``drift.csv``, ``transfer.png`` and ``transfer_report.md`` / ``.html``
    into ``out``. So a folder's grid may grow adaptively: a later command adds values, widths, seeds or
    configurations where they are needed, and its analysis covers them with the earlier runs.

    ``runs_per_gpu`` runs share each GPU at once (local pool and Ray). Every check runs before anything is
    written. No new run starts after ``time_budget`` seconds, nor one that the folder's finished runs of its
    configuration and width (as many sharing the device) say would end after it (:class:`~.executors.RunClock`);
    the tables are then written from the finished runs and ``missing`` counts the rest of ``cfg``'s grid (run
    again to continue; points of earlier grids not stored are not counted). Several
    processes may share ``out``: each claims a run before training it, so each run is trained once.
    """
    out = Path(out)
    if cfg.plan_only:
        raise TransferError("this configuration only prices a sweep (plan_only); train with plan_only=False")
    devices, finished, pending = _check_everything(cfg, out, backend, workers, runs_per_gpu)
    out.mkdir(parents=True, exist_ok=True)
    write_sweep_file(cfg, out)
    store = RunStore(out, len(finished), len(finished) + len(pending), on_run)
    deadline = time.monotonic() + (time_budget if time_budget is not None else math.inf)
    # a budget stops before a run the folder's finished runs say would end after it
    stored = load_records(folder_config(cfg, out), out) if time_budget is not None else []
    clock = RunClock.from_records(deadline, stored)
    settings = cfg.run_settings()
    specs = [cfg.run_spec(key, settings) for key in pending]
    if backend == "ray":
        cuda = cfg.resolved_device().type == "cuda"
        run_ray(specs, cuda, store, clock, ray_address, runs_per_gpu)
    else:
        run_local(specs, devices, store, clock)
    # read again: other commands sharing the folder may have added their grids and runs meanwhile
    folder = folder_config(cfg, out)
    result = analyse(folder, load_records(folder, out), folder_grids(cfg, out))
    result.notes += _unread_note(folder, out)
    # what is on disk counts: other processes sharing the folder may have stored runs meanwhile
    result.missing = sum(key.stored_path(out) is None for key in cfg.runs())
    result.executed = store.done - len(finished)
    write_outputs(result, out)
    return result


def analyse_folder(out: str | Path, analysis: Mapping[str, object] | None = None) -> TransferResult:
    """Analyse every run stored in ``out`` and write the same tables, figure and report as :func:`run_transfer`,
    training nothing: the settings and grids come from ``out/sweep.json`` (:func:`~.store.stored_config`), so any
    machine can read a folder a GPU filled. ``analysis``: analysis leaves to change (``tolerance``,
    ``joint_halfwidth``, ``n_boot``, ...). ``missing`` counts the runs the folder's grids planned that are not
    stored."""
    out = Path(out)
    cfg, grids = stored_config(out, analysis)
    result = analyse(cfg, load_records(cfg, out), grids)
    result.notes += _unread_note(cfg, out)
    hyper = cfg.sweep.hyper
    planned = {RunKey(c.name, w, s, v, hyper) for g in grids for c in g.configs for w in g.widths
               for s in range(g.seeds) for v in g.lrs}  # fmt: skip
    result.missing = sum(key.stored_path(out) is None for key in planned)
    write_outputs(result, out)
    return result


def _unread_note(cfg: TransferConfig, out: Path) -> list[str]:
    """A sentence for the run files in ``out`` that the folder's grids do not name (:func:`~.store.unread_records`):
    the analysis left them out; none when there are none."""
    unread = unread_records(cfg, out)
    if not unread:
        return []
    return [f"{len(unread)} run file(s) under runs/ lie outside the grids of sweep.json and were not read (the "
            f"first: {unread[0].relative_to(out).as_posix()}); a sweep.json copied from a machine that lacked them "
            "lists only that machine's grids: add theirs to its grids to read them"]  # fmt: skip


def transfer_cost(
    cfg: TransferConfig, out: str | Path, *, backend: str = "local", workers: int | None = None, runs_per_gpu: int = 1
) -> SweepCost:
    """What :func:`run_transfer` with these arguments would train, and its estimated GPU time
    (:mod:`~mhc_mup.training.transfer.cost`), rescaled to the finished GPU runs ``out`` already holds
    (:func:`~mhc_mup.training.transfer.cost.calibration`); after the same checks, and nothing is written."""
    devices, _, pending = _check_everything(cfg, Path(out), backend, workers, runs_per_gpu)
    in_turns = runs_in_turns(devices) if backend == "local" else 0
    device = cfg.resolved_device()
    cuda = device.type == "cuda"
    # the folder's configurations, not only this command's: a configuration new to the folder is priced from the
    # runs of its model kind (mHC or control) that the folder already holds, on this GPU where some ran on it
    folder = folder_config(cfg, out)
    measured = calibration(folder, load_records(folder, out), device_label(device)) if cuda and pending else None
    cost = estimate_cost(cfg, pending, cuda, max(1, in_turns), measured)
    note = _corpus_elsewhere(cfg) or _other_corpus(cfg, Path(out)) or _repeats_note(cfg)
    return dataclasses.replace(cost, note=note)


def _corpus_elsewhere(cfg: TransferConfig) -> str:
    """For a dry run whose ``--corpus`` is not on this machine (:meth:`TransferConfig.corpus_here`): a sentence
    saying what went unchecked; else ``""``."""
    if cfg.corpus_here() is not None:
        return ""
    return (f"The corpus '{cfg.recipe.corpus}' is not on this machine: the sweep is priced without reading it (its "
            "size, hash and passes are checked where it runs)")  # fmt: skip


def _repeats_note(cfg: TransferConfig) -> str:
    """A sentence when a run reads more tokens than the corpus's training split holds (it repeats the data, and
    the validation loss then measures memorising as well as learning); else ``""``."""
    corpus = cfg.corpus_here()
    if corpus is None:
        return ""
    train, tokens = corpus.train.numel(), cfg.recipe.train.tokens
    if tokens <= train:
        return ""
    return (f"Each run reads its training split {tokens / train:.1f} times ({tokens / 1e6:,.1f} M tokens of "
            f"{train / 1e6:,.1f} M bytes): its validation loss then measures memorising as well as learning; a "
            "larger --corpus (and --corpus-mb) keeps a run within one pass")


def _other_corpus(cfg: TransferConfig, out: Path) -> str:
    """For a dry run against a folder made on another corpus (which :func:`plan` lets pass, to price it): a
    sentence saying so; else ``""``."""
    path = out / "sweep.json"
    if not (cfg.plan_only and path.exists()):
        return ""
    there = read_json(path).get("settings", {}).get("corpus_sha256", "unrecorded")
    here = cfg.settings()["corpus_sha256"]
    if there == here:
        return ""
    return (f"This machine's corpus (sha256 {here[:12]}) is not the folder's ({there[:12]}): the sweep is priced, "
            "but runs from here cannot join it")  # fmt: skip


def _check_everything(
    cfg: TransferConfig, out: Path, backend: str, workers: int | None, runs_per_gpu: int
) -> tuple[list[str], list[RunKey], list[RunKey]]:
    """Every check before anything is written: the configuration, the backend, the corpus and the folder (a
    resume with other settings is refused). The local workers' devices and the finished and pending runs."""
    cfg.validate()
    devices = _check_backend(cfg, backend, workers, runs_per_gpu)
    _check_corpus(cfg)
    finished, pending = plan(cfg, out)
    return devices, finished, pending


def _check_backend(cfg: TransferConfig, backend: str, workers: int | None, runs_per_gpu: int) -> list[str]:
    """The local workers' devices; :class:`TransferError` for an unknown backend, Ray missing or misused."""
    if backend not in ("local", "ray"):
        raise TransferError(f"unknown backend {backend!r} (use local or ray)")
    if backend == "ray":
        import_ray()
        if workers is not None:
            raise TransferError("--workers is for the local backend; Ray schedules by the cluster's resources")
    return worker_devices(cfg, workers, runs_per_gpu)


def _check_corpus(cfg: TransferConfig) -> None:
    """:class:`TransferError` for a corpus that cannot be read or is shorter than one sequence per split (a dry
    run's corpus that is not on this machine passes unread: :meth:`TransferConfig.corpus_here`)."""
    try:
        corpus = cfg.corpus_here()
    except CorpusError as exc:
        raise TransferError(str(exc)) from None
    if corpus is None:
        return
    seq_len = cfg.recipe.train.seq_len
    for split, data in (("train", corpus.train), ("validation", corpus.val)):
        if data.numel() < seq_len + 1:
            raise TransferError(
                f"corpus '{corpus.source}' has {data.numel()} {split} bytes; seq_len {seq_len} needs {seq_len + 1}"
            )
