"""A transfer sweep's folder: ``sweep.json`` (the settings, fixed for the folder, and the union of every grid
swept into it) and one record per finished run, ``runs/<config>/d<width>/seed<seed>/log2lr<x>.json.gz``
(gzip-compressed JSON; ``.json``, as records were written before, is read alike), written atomically as soon as the
run ends (its float32 losses as float32's shortest decimals, :func:`mhc_mup._io.shortest_float32`). A restart with
the same settings skips the stored runs; a run stored with other settings is an error, never reused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mhc_mup._io import atomic_write_bytes, atomic_write_text, gzip_text, json_safe, software_versions
from mhc_mup._locks import claim, one_at_a_time
from mhc_mup._nested import flat_fields
from mhc_mup._schema import ListOf, Optional, first_problem
from mhc_mup.errors import TransferError
from mhc_mup.training.transfer.config import IMPLICIT_SETTINGS, RunKey, SweepGrid, TransferConfig, distinct_values
from mhc_mup.training.transfer.configurations import Configuration
from mhc_mup.training.transfer.run import RUN_FORMAT

__all__ = ["PRICED_ANYWHERE", "RUN_SHAPE", "SETTINGS_ADDED", "SWEEP_FORMAT", "SWEEP_SHAPE", "OnRun", "RunStore",
           "base_lr_from", "base_lrs_from", "folder_config", "folder_grids", "load_records", "plan", "read_json",
           "record_bytes", "stored_config", "unread_records", "write_sweep_file"]  # fmt: skip

SWEEP_FORMAT = "mhc-mup-transfer-sweep/1"
SETTINGS_ADDED = {"stream_dtype": "float32", "kernels": "auto", "cuda_graphs": "off", "corpus_sha256": "unrecorded"}
"""Settings added after the first format: what runs stored before them were made with."""

OnRun = Callable[[dict, int, int], None]
"""Called in the parent after each run is stored: ``(record, runs finished so far, runs in the grid)``."""


RUN_SHAPE = {
    "format": str, "config": str, "width": int, "seed": int, "lr": float, "settings": {}, "configuration": {},
    "train_loss": ListOf(float), "val_curve": ListOf(ListOf(float)), "initial_loss": float,
    "final_train_loss": float, "final_val_loss": float, "diverged": bool, "diverged_reason": str,
    "steps_done": int, "seconds": float, "tokens_per_s": Optional(float), "value": Optional(float),
    "hyper": Optional(str),
}  # fmt: skip
"""What the readers of a stored run use, by type (:func:`mhc_mup._schema.first_problem`)."""
SWEEP_SHAPE = {"format": str, "settings": {}, "grid": {"configs": ListOf({"name": str}), "widths": ListOf(int),
                                                      "seeds": int, "lrs": ListOf(float)},
               "grids": Optional(ListOf({"configs": ListOf(str), "widths": ListOf(int), "seeds": int,
                                         "lrs": ListOf(float)}))}  # fmt: skip
"""What the readers of sweep.json use, by type: ``grid`` is the union of every grid swept into the folder,
``grids`` each of them (configuration names, widths, seeds, values), earliest first; folders written before
``grids`` was recorded have only the union."""


def read_json(path: Path, shape: dict | None = None) -> dict:
    """The JSON document at ``path`` (gzip-compressed where its name ends in ``.gz``), or :class:`TransferError`
    naming the file (and the key whose value does not have ``shape``'s type)."""
    try:
        data = path.read_bytes()
        doc = json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransferError(f"cannot read '{path}': {exc}") from None
    if shape is not None and (problem := first_problem(doc, shape)):
        raise TransferError(f"'{path}': {problem}")
    return doc


def _complete(settings: Mapping) -> dict:
    """Settings with the values the first format left implicit or had not yet added filled in."""
    return {**SETTINGS_ADDED, **IMPLICIT_SETTINGS, **settings}


PRICED_ANYWHERE = ("corpus_sha256",)
"""Settings a dry run (``plan_only``) does not compare with a folder's: a laptop may price the sweep a GPU machine
keeps in a folder although its own default corpus differs (it could not add runs there)."""


def _first_difference(stored: Mapping, now: Mapping, ignore: tuple[str, ...] = ()) -> str:
    a, b = _complete(stored), _complete(now)
    for k in sorted((set(a) | set(b)) - set(ignore)):
        if a.get(k) != b.get(k):
            return f"{k}: {a.get(k)!r} there, {b.get(k)!r} now"
    return ""


def plan(cfg: TransferConfig, out: Path) -> tuple[list[RunKey], list[RunKey]]:
    """``(finished, pending)`` grid points of ``cfg`` in ``out``, reading nothing but ``out``, writing nothing.

    :class:`TransferError` when ``out`` holds a sweep made with other settings (``sweep.json``, or any stored
    run of this grid whose settings or configuration differ from ``cfg``'s; a ``plan_only`` config's corpus may
    differ, :data:`PRICED_ANYWHERE`). The grid itself (configurations, widths, seeds, learning rates) may grow
    between calls.
    """
    out = Path(out)
    settings = cfg.settings()
    ignore = PRICED_ANYWHERE if cfg.plan_only else ()
    _check_sweep_file(cfg, out, settings, ignore)
    configs = {c.name: c.to_dict() for c in cfg.grid.configs}
    finished, pending = [], []
    for key in cfg.runs():
        path = key.stored_path(out)
        if path is None:
            pending.append(key)
            continue
        record = read_json(path, RUN_SHAPE)
        diff = _first_difference(record.get("settings", {}), settings, ignore)
        if record.get("format") != RUN_FORMAT or diff or record.get("configuration") != configs[key.config]:
            why = diff or "its configuration differs"
            raise TransferError(f"stored run '{path}' was made with other settings ({why}); use another --out")
        finished.append(key)
    return finished, pending


def _check_sweep_file(cfg: TransferConfig, out: Path, settings: Mapping, ignore: tuple[str, ...] = ()) -> None:
    """:class:`TransferError` when ``out/sweep.json`` was written with other settings (but ``ignore``) or defines
    one of ``cfg``'s configurations differently."""
    sweep_file = out / "sweep.json"
    if not sweep_file.exists():
        return
    stored = read_json(sweep_file)
    if not isinstance(stored, dict) or stored.get("format") != SWEEP_FORMAT:
        got = stored.get("format") if isinstance(stored, dict) else type(stored).__name__
        raise TransferError(f"'{sweep_file}' is not a transfer sweep's (format {got!r})")
    if problem := first_problem(stored, SWEEP_SHAPE):
        raise TransferError(f"'{sweep_file}': {problem}")
    diff = _first_difference(stored.get("settings", {}), settings, ignore)
    if diff:
        raise TransferError(f"'{out}' holds a sweep made with other settings ({diff}); use another --out")
    for c in stored.get("grid", {}).get("configs", []):
        mine = next((m for m in cfg.grid.configs if m.name == c["name"]), None)
        if mine is not None and mine.to_dict() != c:
            raise TransferError(
                f"'{out}' defines configuration {c['name']!r} differently; rename it or use another --out"
            )


def write_sweep_file(cfg: TransferConfig, out: Path) -> None:
    """``sweep.json``: the settings (fixed for the folder), the union of every grid swept into it (``grid``,
    :func:`_union_grid`) and each of those grids (``grids``, this command's appended unless already there); one
    process at a time: several may share the folder."""
    path = Path(out) / "sweep.json"
    with one_at_a_time(path.with_name(".sweep.json.lock")):
        grid, mine = cfg.grid, _grid_entry(cfg.grid.to_dict())
        grids = [mine]
        if path.exists():
            stored = read_json(path, SWEEP_SHAPE)
            grid = _union_grid(cfg.grid, stored["grid"])
            grids = stored.get("grids") or [_grid_entry(stored["grid"])]
            grids += [mine] if mine not in grids else []
        doc = {"format": SWEEP_FORMAT, "settings": cfg.settings(), "grid": grid.to_dict(), "grids": grids,
               "versions": software_versions()}  # fmt: skip
        atomic_write_text(path, json.dumps(json_safe(doc), indent=1) + "\n")


def _union_grid(mine: SweepGrid, old: Mapping) -> SweepGrid:
    """``mine`` joined with a stored grid ``old`` (as :meth:`SweepGrid.to_dict` writes it): ``mine``'s
    configurations, then the earlier ones; every width, increasing, or ``mine``'s in its order when ``old`` has no
    other; the most seeds; every value (one float per key, the earliest)."""
    names = {c.name for c in mine.configs}
    configs = mine.configs + tuple(Configuration.from_dict(c) for c in old["configs"] if c["name"] not in names)
    widths = mine.widths if set(old["widths"]) <= set(mine.widths) else tuple(sorted({*mine.widths, *old["widths"]}))
    return SweepGrid(configs, widths, distinct_values(old["lrs"], mine.lrs), max(mine.seeds, old["seeds"]))


def _grid_entry(grid: Mapping) -> dict:
    """One grid of ``sweep.json``'s ``grids``: ``grid`` (as :meth:`SweepGrid.to_dict` writes it) with its
    configurations by name (``grid`` defines them)."""
    return {"configs": [c["name"] for c in grid["configs"]], "widths": list(grid["widths"]), "seeds": grid["seeds"],
            "lrs": list(grid["lrs"])}  # fmt: skip


def folder_config(cfg: TransferConfig, out: str | Path) -> TransferConfig:
    """What analyses every run stored in ``out``: ``cfg`` with the union of the grids swept into the folder
    (:func:`_union_grid` with ``sweep.json``'s ``grid``) and ``cfg``'s base width made explicit, since the folder's
    settings fix it (the union's smallest width must not replace it). ``cfg`` itself when ``out`` holds no
    ``sweep.json``."""
    path = Path(out) / "sweep.json"
    if not path.exists():
        return cfg
    grid = _union_grid(cfg.grid, read_json(path, SWEEP_SHAPE)["grid"])
    return dataclasses.replace(cfg, grid=grid, base_d=cfg.base_width)


def folder_grids(cfg: TransferConfig, out: str | Path) -> tuple[SweepGrid, ...]:
    """Every grid swept into ``out``, earliest first (``sweep.json``'s ``grids``; a folder written before they
    were recorded has only its union, which stands for them all), then ``cfg``'s unless already there: what each
    configuration × width was planned to run (:func:`~mhc_mup.training.transfer.config.grid_values`)."""
    path = Path(out) / "sweep.json"
    if not path.exists():
        return (cfg.grid,)
    stored = read_json(path, SWEEP_SHAPE)
    grids = _recorded_grids(path, stored, _union_grid(cfg.grid, stored["grid"]).configs)
    return (*grids, cfg.grid) if cfg.grid not in grids else grids


def _recorded_grids(path: Path, stored: Mapping, configurations: tuple[Configuration, ...]) -> tuple[SweepGrid, ...]:
    """The grids ``sweep.json`` (``stored``, read from ``path``) records, their configurations taken from
    ``configurations`` by name; its union grid alone for a folder written before ``grids`` was recorded."""
    configs = {c.name: c for c in configurations}
    grids = []
    for g in stored.get("grids") or [_grid_entry(stored["grid"])]:
        if unknown := [n for n in g["configs"] if n not in configs]:
            raise TransferError(f"'{path}': grids name configuration {unknown[0]!r}, which its grid does not define")
        grids.append(SweepGrid(tuple(configs[n] for n in g["configs"]), tuple(g["widths"]),
                               distinct_values(g["lrs"]), g["seeds"]))  # fmt: skip
    return tuple(grids)


def stored_config(
    out: str | Path, analysis: Mapping[str, object] | None = None
) -> tuple[TransferConfig, tuple[SweepGrid, ...]]:
    """The sweep stored in ``out``, read from its ``sweep.json`` alone: its configuration (the union grid, the
    folder's settings, ``analysis`` leaves such as ``tolerance``, ``joint_halfwidth`` or ``n_boot`` on top; the
    CPU as device, since nothing is trained) and the grids swept into it. What analyses a folder on any machine,
    e.g. a GPU sweep read on a laptop. :class:`TransferError` naming the file when there is none or it does not
    hold a transfer sweep's settings."""
    path = Path(out) / "sweep.json"
    if not path.exists():
        raise TransferError(f"'{out}' holds no transfer sweep (no sweep.json)")
    stored = read_json(path, SWEEP_SHAPE)
    if stored.get("format") != SWEEP_FORMAT:
        raise TransferError(f"'{path}' is not a transfer sweep's (format {stored.get('format')!r})")
    g = stored["grid"]
    try:
        configs = tuple(Configuration.from_dict(c) for c in g["configs"])
        grid = SweepGrid(configs, tuple(sorted(g["widths"])), distinct_values(g["lrs"]), g["seeds"])
        leaves = set(flat_fields(TransferConfig()))
        changes = {k: v for k, v in _complete(stored["settings"]).items() if k in leaves and k != "device"}
        cfg = TransferConfig(grid=grid, device="cpu").with_leaves(**changes, **(analysis or {}))
    except (KeyError, TypeError, ValueError) as exc:  # the package's configuration errors are ValueErrors
        raise TransferError(f"'{path}': {exc}") from None
    return cfg, _recorded_grids(path, stored, configs)


class RunStore:
    """Writes each finished run as it arrives and counts them; claims a run for this process before it starts."""

    def __init__(self, out: Path, done: int, total: int, on_run: OnRun | None) -> None:
        self.out, self.done, self.total, self.on_run = Path(out), done, total, on_run
        self.claims: dict[RunKey, contextlib.ExitStack] = {}

    def claim(self, key: RunKey) -> bool:
        """Claim ``key`` for this process: false when another process is training it or has stored it since this
        one planned. Several processes (or commands) can share one folder this way; a claim is released by
        :meth:`release` (or :meth:`__call__`) or, whatever happens, when this process ends."""
        stack = contextlib.ExitStack()
        if not stack.enter_context(claim(key.path(self.out))) or key.stored_path(self.out) is not None:
            stack.close()
            return False
        self.claims[key] = stack
        return True

    def release(self, key: RunKey) -> None:
        """Give up the claim on ``key`` (a run not started, or failed)."""
        stack = self.claims.pop(key, None)
        if stack is not None:
            stack.close()

    def __call__(self, key: RunKey, record: dict) -> None:
        path = key.path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, record_bytes(record))
        self.release(key)
        self.done += 1
        if self.on_run:
            self.on_run(record, self.done, self.total)


def record_bytes(record: Mapping) -> bytes:
    """A run record as stored: its JSON line, gzip-compressed with no timestamp (the same record, the same bytes)."""
    return gzip_text(json.dumps(record) + "\n")


def load_records(cfg: TransferConfig, out: str | Path) -> list[dict]:
    """The stored records of ``cfg``'s grid points present in ``out`` (grid order)."""
    stored = (k.stored_path(Path(out)) for k in cfg.runs())
    return [read_json(path, RUN_SHAPE) for path in stored if path is not None]


def unread_records(cfg: TransferConfig, out: str | Path) -> list[Path]:
    """The run files under ``out/runs`` (``.json.gz``, or ``.json`` as written before) that no grid point of
    ``cfg`` names, sorted: :func:`load_records` leaves them out (a ``sweep.json`` copied from a machine that
    lacked them lists only that machine's grids)."""
    named = {p for k in cfg.runs() for p in k.record_paths(Path(out))}
    files = [*Path(out, "runs").glob("*/d*/seed*/*.json"), *Path(out, "runs").glob("*/d*/seed*/*.json.gz")]
    return sorted(p for p in files if p not in named)


def base_lr_from(folder: str | Path, names: list[str]) -> float:
    """The optimal learning rate an earlier lr sweep in ``folder`` found for configurations ``names``, at its
    smallest width (the proxy model µTransfer tunes): that width's own reading, the mean of its per-seed optima,
    else the joint fit's optimum there (a line through every width: where the optima's path bends, or the curves'
    skew changes with width, it can sit well off the proxy's own, 0.67 octave for ``transfer_onepass2000``'s
    ``baseline``). :class:`TransferError` when ``folder`` holds no finished lr sweep, lacks a configuration or its
    optimum, or when the configurations' optima differ: one base learning rate serves every configuration of a
    sweep, so that is ambiguous."""
    import math

    found: dict[str, tuple[tuple[int, float], ...]] = {}
    for name, rows in _lr_optima(folder, names).items():
        row = rows.iloc[0]
        x = row.log2_lr_opt
        x = row.get("joint_log2_opt", math.nan) if not math.isfinite(x) else x
        if not math.isfinite(x):
            raise TransferError(f"--base-from '{folder}': {name!r} has no optimal learning rate at d = {row.width}")
        found[name] = ((int(row.width), float(x)),)
    return 2.0 ** _the_same(folder, found)[0][1]


def base_lrs_from(folder: str | Path, names: list[str]) -> tuple[tuple[int, float], ...]:
    """Each width's optimal learning rate, ``((d, η*), ...)``, an earlier lr sweep in ``folder`` found for
    configurations ``names``: the mean of the per-seed optima (the width's own, where one power law through the
    widths can miss a bent path), at every width that has one. :class:`TransferError` as for
    :func:`base_lr_from`, and when the configurations' optima differ at a width."""
    import math

    found = {name: tuple((int(r.width), float(r.log2_lr_opt)) for r in rows.itertuples()
                         if math.isfinite(r.log2_lr_opt))
             for name, rows in _lr_optima(folder, names).items()}  # fmt: skip
    return tuple((w, 2.0**x) for w, x in _the_same(folder, found))


def _lr_optima(folder: str | Path, names: list[str]) -> dict:
    """``name → rows of optima.csv`` (by width) of a finished lr sweep in ``folder``, for each of ``names``."""
    import pandas as pd

    folder = Path(folder)
    sweep = read_json(folder / "sweep.json")
    hyper = sweep.get("settings", {}).get("hyper", "lr")
    if hyper != "lr":
        raise TransferError(f"--base-from '{folder}' is a sweep of {hyper}, not of the learning rate")
    if not (folder / "optima.csv").exists():
        raise TransferError(f"--base-from '{folder}' has no optima.csv: finish that sweep first")
    optima = pd.read_csv(folder / "optima.csv")
    found = {}
    for name in names:
        rows = optima[optima.config == name].sort_values("width")
        if rows.empty:
            raise TransferError(f"--base-from '{folder}' has no configuration {name!r}")
        found[name] = rows
    return found


def _the_same(folder: str | Path, found: dict[str, tuple[tuple[int, float], ...]]) -> tuple[tuple[int, float], ...]:
    """The configurations' ``((d, log2 η*), ...)``, or :class:`TransferError` where they differ (in a width or an
    optimum): one base learning rate per width serves every configuration of a sweep."""
    distinct = {tuple((w, round(x, 9)) for w, x in v) for v in found.values()}
    if len(distinct) > 1:
        each = ", ".join(f"{n} " + "/".join(f"2^{x:.2f}" for _, x in v) for n, v in found.items())
        raise TransferError(
            f"--base-from '{folder}' is ambiguous: the configurations' optimal learning rates differ ({each}); "
            "sweep one configuration at a time (--configs NAME) or give --base-lr"
        )
    return next(iter(found.values()))
