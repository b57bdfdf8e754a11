"""Figure functions the figure-pool tests send to worker processes (importable there by name)."""

from __future__ import annotations

import multiprocessing
import os

from matplotlib.figure import Figure


def small_figure(title: str = "small") -> Figure:
    """A log-log line with a title and a legend: fonts, mathtext tick labels and constrained layout."""
    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.add_subplot()
    ax.loglog([1, 10, 100], [2, 3, 50], marker="o", label="series")
    ax.set_title(title)
    ax.legend()
    return fig


def pid_figure() -> Figure:
    """A figure whose title is the process that drew it."""
    return small_figure(str(os.getpid()))


def dies_in_a_worker() -> Figure:
    """Kills the worker process that calls it; drawn in the main process it is an ordinary figure."""
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    return small_figure("survivor")
