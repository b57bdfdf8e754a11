"""Drawing a report's figures in worker processes that start before the work the report is about.

A command that ends with figures pays for matplotlib on one core: its import, its fonts, then each figure in
turn. Workers started at the command's beginning import matplotlib (and the modules ``preload`` names) while
the command computes, on the cores it leaves idle; at the end they draw the figures side by side. A figure is
drawn by the same matplotlib calls whichever process draws it, so its bytes are the same.

Jobs cross to the workers by pickle: a :class:`FigureCall` (which names its function, so the process that
builds the report never imports the figure module, nor matplotlib), a module-level function or a
:func:`functools.partial` of one, with picklable arguments. Workers are spawned (not forked): the parent may
hold threads, torch's among them.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mhc_mup.reporting.blocks import FigureBlock, Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FigureCall", "FigureJob", "FigurePool", "default_workers", "render_figures"]

FigureJob = Callable[[], "Figure"]


@dataclass(frozen=True)
class FigureCall:
    """``function(*args)``, with the function named ``"module:name"`` and imported only when called."""

    function: str
    args: tuple = ()

    def __post_init__(self) -> None:
        if self.function.count(":") != 1:
            raise ValueError(f"function must be named 'module:name', got {self.function!r}")

    def __call__(self) -> Figure:
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)(*self.args)


def default_workers() -> int:
    """Two workers where this process may use two or more cores; none (draw in-process) on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 2 if cores >= 2 else 0


class FigurePool:
    """Renders figure jobs to PNG bytes, in ``workers`` processes started ahead of time, or in-process with 0.

    Use it as a context manager around the work whose figures it will draw::

        with FigurePool(2, preload=("mhc_mup.diagnostics.figures",)) as pool:
            result = compute()                # the workers import matplotlib meanwhile
            pngs = pool.render(jobs)          # list of PNG bytes, in the order of jobs

    If the workers cannot be started, or one dies, the figures are drawn in this process instead.
    """

    def __init__(self, workers: int = 0, preload: Sequence[str] = ()) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
        self.workers = workers
        self.preload = tuple(preload)
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> FigurePool:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(wait=exc_type is None)

    @property
    def running(self) -> bool:
        """Whether jobs go to worker processes (else they are drawn in this one)."""
        return self._executor is not None

    def start(self) -> None:
        """Start the workers now (they start on demand otherwise); each imports matplotlib and ``preload`` and
        draws a small warm-up figure. A no-op with 0 workers or when already started."""
        if self.workers == 0 or self._executor is not None:
            return
        try:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up,
                initargs=(self.preload,),
            )
            for _ in range(self.workers):
                self._executor.submit(os.getpid)  # one task each: a spawning pool starts one worker per task
        except OSError:  # no processes to be had here (limits, sandbox): draw in-process
            self._executor = None

    def render(self, jobs: Sequence[FigureJob]) -> list[bytes]:
        """The PNG bytes of each job's figure, in the order of ``jobs``."""
        if self._executor is not None:
            try:
                return list(self._executor.map(_draw, jobs))
            except BrokenProcessPool:  # a worker died (killed, or could not bootstrap): the rest in-process
                self.close()
        return [_draw(job) for job in jobs]

    def close(self, wait: bool = True) -> None:
        """Stop the workers, waiting for them unless ``wait`` is false (pending jobs are cancelled); the pool
        draws in-process from then on."""
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None


def render_figures(report: Report, pool: FigurePool | None = None) -> Report:
    """``report`` with every figure that has a ``draw`` job and no PNG yet rendered, in ``pool`` (default: in
    this process)."""
    pending = [(b, b.draw) for b in report.blocks if isinstance(b, FigureBlock) and b.draw is not None and not b.png]
    pngs = (pool or FigurePool()).render([draw for _, draw in pending])
    rendered = {id(b): dataclasses.replace(b, png=png, draw=None) for (b, _), png in zip(pending, pngs, strict=True)}
    return dataclasses.replace(report, blocks=[rendered.get(id(b), b) for b in report.blocks])


def _draw(job: FigureJob) -> bytes:
    from mhc_mup.reporting.render import png_bytes

    return png_bytes(job())


def _warm_up(preload: Sequence[str]) -> None:
    """A worker's start: the imports and one-time costs (fonts, mathtext, constrained layout) a figure pays first."""
    from matplotlib.figure import Figure

    from mhc_mup.reporting.render import png_bytes

    for name in preload:
        importlib.import_module(name)
    fig = Figure(figsize=(2, 2), layout="constrained")
    ax = fig.add_subplot()
    ax.loglog([1, 100], [1, 10], marker="o", label="‖x‖")
    ax.set_title("warm-up")
    ax.legend()
    png_bytes(fig)
