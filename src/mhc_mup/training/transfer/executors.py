"""Executing a sweep's pending runs: in this process (one at a time, or several sharing one GPU, taking turns from
one thread, each on its own CUDA stream), in a spawn-context process pool with one worker per device, or as Ray
tasks. Each gets :class:`~mhc_mup.training.transfer.config.RunSpec` values (frozen, picklable), claims each run
before starting it (another process sharing the folder may have it) and hands each record to a
:class:`~mhc_mup.training.transfer.store.RunStore` as it arrives; none starts a run that its
:class:`RunClock` says would end after the deadline. Each returns how many runs it left pending.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from mhc_mup.errors import TransferError
from mhc_mup.training.transfer.config import RunKey, RunSpec, TransferConfig
from mhc_mup.training.transfer.run import execute_run, resume, run_stages
from mhc_mup.training.transfer.store import RunStore

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from types import ModuleType

__all__ = ["RunClock", "import_ray", "run_local", "run_ray", "runs_in_turns", "worker_devices"]

_WORKER_DEVICE = "cpu"


def worker_devices(cfg: TransferConfig, workers: int | None, runs_per_gpu: int = 1) -> list[str]:
    """The device of each worker: every CUDA device ``runs_per_gpu`` times (``--workers`` GPUs at most), or
    ``workers`` CPU workers (default 1: serial). A ``plan_only`` config's absent GPUs are ``workers`` (default 1)."""
    if isinstance(runs_per_gpu, bool) or not isinstance(runs_per_gpu, int) or runs_per_gpu < 1:
        raise TransferError(f"runs per GPU must be an integer >= 1, got {runs_per_gpu!r}")
    dev = cfg.resolved_device()
    if dev.type == "cuda":
        if dev.index is not None:
            return [str(dev)] * runs_per_gpu
        n = torch.cuda.device_count() if torch.cuda.is_available() else (workers or 1)
        if workers is not None and workers > n:
            raise TransferError(f"--workers {workers}: only {n} CUDA device(s); --runs-per-gpu shares one GPU")
        return [f"cuda:{i}" for i in range(workers or n) for _ in range(runs_per_gpu)]
    if runs_per_gpu > 1:
        raise TransferError(f"--runs-per-gpu {runs_per_gpu} shares a GPU, and {dev} is not one; use --workers N")
    return ["cpu"] * (workers or 1)


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`TransferError` with the install line."""
    try:
        import ray
    except ImportError:
        raise TransferError("--backend ray needs Ray: pip install mhc-mup[ray]") from None
    return ray


@dataclass
class RunClock:
    """When a run may start: while ``time.monotonic()`` is before ``deadline``, and, for a run whose configuration
    and width have a known duration when that many runs share its device (``seconds[(config, width, sharing)]``:
    the folder's finished runs, then this call's), only if that much time is left, so that a time budget ends
    with no run in flight (a run of an unknown duration starts while time is left)."""

    deadline: float
    seconds: dict[tuple[str, int, int], float] = field(default_factory=dict)

    @classmethod
    def from_records(cls, deadline: float, records: Iterable[Mapping]) -> RunClock:
        """The median wall time of the finished ``records`` (stored runs) per configuration, width and
        ``runs_per_device``."""
        times: dict[tuple[str, int, int], list[float]] = defaultdict(list)
        for r in records:
            if not r.get("diverged") and r.get("seconds"):
                times[(r["config"], int(r["width"]), int(r.get("runs_per_device", 1)))].append(float(r["seconds"]))
        return cls(deadline, {k: statistics.median(v) for k, v in times.items()})

    def starts(self, key: RunKey, sharing: int, now: float | None = None) -> bool:
        """Whether the run of ``key`` may start now, ``sharing`` runs at once on its device."""
        now = time.monotonic() if now is None else now
        return now + self.seconds.get((key.config, key.width, sharing), 0.0) < self.deadline

    def ended(self, key: RunKey, sharing: int, seconds: float) -> None:
        """Learn a run's duration from one that just ended (its wall ``seconds``)."""
        self.seconds[(key.config, key.width, sharing)] = seconds


def run_local(specs: list[RunSpec], devices: list[str], store: RunStore, clock: RunClock) -> int:
    """In this process (one device, or one GPU shared by several runs: they take turns from this thread, each on
    its own CUDA stream, where separate processes would time-slice the GPU), or a spawn-context process pool with
    one worker per device. Each record is stored with ``runs_per_device`` (as :func:`run_ray` does): how many runs
    its device was set to hold at once (1: alone), since a shared device's wall times are not one run's."""
    if (slots := runs_in_turns(devices)) or len(devices) == 1:
        return _run_in_turns(specs, devices[0], slots or 1, store, clock)
    return _run_pool(specs, devices, store, clock)


def runs_in_turns(devices: list[str]) -> int:
    """How many runs :func:`run_local` has take turns on one GPU for these workers' devices (0: none, it runs them
    one at a time or in a process pool)."""
    return len(devices) if len(set(devices)) == 1 and devices[0].startswith("cuda") else 0


def _next_claimed(todo: list[RunSpec], store: RunStore, clock: RunClock, sharing: int) -> RunSpec | None:
    """Take from ``todo`` the first run that ``clock`` lets start (``sharing`` runs at once on its device) and this
    process can claim; runs another process holds or has stored are dropped (they are that process's), runs that
    would end too late stay."""
    for spec in list(todo):
        if not clock.starts(spec.key, sharing):
            continue
        todo.remove(spec)
        if store.claim(spec.key):
            return spec
    return None


@dataclass
class _Turn:
    """A run in progress: its spec, its paused stages (:func:`run_stages`) and the stream it queues work on."""

    spec: RunSpec
    stages: Generator[None, None, dict]
    stream: torch.cuda.Stream | None


def _run_in_turns(specs: list[RunSpec], device: str, slots: int, store: RunStore, clock: RunClock) -> int:
    """Up to ``slots`` runs at once on ``device``, resumed in turn (one run: serial). A run's record is stored as
    it ends and the next pending run takes its stream; on an error every run in progress gives up its claim."""
    todo = list(specs)
    cuda = torch.device(device).type == "cuda"
    free = [torch.cuda.Stream(torch.device(device)) if cuda else None for _ in range(slots)]
    turns: list[_Turn] = []
    blocked = False  # nothing left fits the time left: so it stays until a run ends and the clock learns
    try:
        while todo or turns:
            while free and todo and not blocked:
                if (spec := _next_claimed(todo, store, clock, slots)) is None:
                    blocked = True
                    break
                turns.append(_Turn(spec, run_stages(spec, device), free.pop()))
            if not turns:
                break
            for turn in list(turns):
                if (record := _resume(turn)) is not None:
                    turns.remove(turn)
                    free.append(turn.stream)
                    clock.ended(turn.spec.key, slots, record["seconds"])
                    blocked = False
                    store(turn.spec.key, record | {"runs_per_device": slots})
    finally:
        for turn in turns:
            turn.stages.close()
            store.release(turn.spec.key)
    return len(todo)


def _resume(turn: _Turn) -> dict | None:
    """Run ``turn`` to its next pause on its stream; its record once it has finished."""
    with torch.cuda.stream(turn.stream) if turn.stream is not None else contextlib.nullcontext():
        return resume(turn.stages)


def _init_worker(devices: Queue[str], threads: int) -> None:
    """Pool initializer: take one device from the shared queue (one GPU per worker) and pin to it."""
    global _WORKER_DEVICE
    _WORKER_DEVICE = devices.get()
    if _WORKER_DEVICE.startswith("cuda"):
        torch.cuda.set_device(torch.device(_WORKER_DEVICE))
    torch.set_num_threads(threads)


def _pool_run(spec: RunSpec) -> dict:
    return execute_run(spec, _WORKER_DEVICE)


def _run_pool(specs: list[RunSpec], devices: list[str], store: RunStore, clock: RunClock) -> int:
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    todo = list(specs)
    pool = cf.ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker, initargs=(queue, threads))
    running: dict[cf.Future, RunSpec] = {}
    per_device = len(devices) // len(set(devices))
    try:
        while todo or running:
            while todo and len(running) < len(devices):
                if (spec := _next_claimed(todo, store, clock, per_device)) is None:
                    break
                running[pool.submit(_pool_run, spec)] = spec
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                key, record = running.pop(fut).key, fut.result()
                clock.ended(key, per_device, record["seconds"])
                store(key, record | {"runs_per_device": per_device})
    finally:
        pool.shutdown(wait=not running, cancel_futures=True)
        for spec in running.values():
            store.release(spec.key)
    return len(todo)


def run_ray(
    specs: list[RunSpec], cuda: bool, store: RunStore, clock: RunClock, address: str | None, runs_per_gpu: int = 1
) -> int:
    """Each run a Ray task with ``1/runs_per_gpu`` of a GPU (``cuda``) or one CPU; results are stored as they
    complete."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    task = ray.remote(num_gpus=1 / runs_per_gpu if cuda else 0, num_cpus=1)(execute_run)
    device = "cuda" if cuda else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES: the task's GPU is cuda:0 there
    slots = max(1, int(ray.cluster_resources().get("GPU" if cuda else "CPU", 1) * (runs_per_gpu if cuda else 1)))
    todo = list(specs)
    running: dict = {}
    sharing = runs_per_gpu if cuda else 1
    try:
        while todo or running:
            while todo and len(running) < slots:
                if (spec := _next_claimed(todo, store, clock, sharing)) is None:
                    break
                running[task.remote(spec, device)] = spec
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                key, record = running.pop(ref).key, ray.get(ref)
                clock.ended(key, sharing, record["seconds"])
                store(key, record | {"runs_per_device": sharing})
    finally:
        for ref, spec in running.items():
            ray.cancel(ref, force=True)
            store.release(spec.key)
        if started:
            ray.shutdown()
    return len(todo)
