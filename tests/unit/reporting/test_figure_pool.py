"""The figure pool draws the same PNG bytes in its workers as in this process, in the order asked, and falls back
to this process when a worker dies; render_figures fills in a report's figures."""

from __future__ import annotations

import os

import pytest

from mhc_mup.reporting.blocks import FigureBlock, Heading, Report, render_html, render_markdown
from mhc_mup.reporting.figure_pool import FigureCall, FigurePool, default_workers, render_figures
from mhc_mup.reporting.render import png_bytes
from tests.unit.reporting import figures_for_tests as ft

FIGURES = "tests.unit.reporting.figures_for_tests"


def test_figure_call_imports_by_name_and_checks_the_name():
    fig = FigureCall(f"{FIGURES}:small_figure", ("named",))()
    assert fig.axes[0].get_title() == "named"
    with pytest.raises(ValueError, match="module:name"):
        FigureCall("no_colon_here")


def test_in_process_pool_draws_what_png_bytes_draws():
    pngs = FigurePool(0).render([FigureCall(f"{FIGURES}:small_figure", (t,)) for t in ("a", "b")])
    assert pngs == [png_bytes(ft.small_figure("a")), png_bytes(ft.small_figure("b"))]
    assert pngs[0] != pngs[1] and pngs[0].startswith(b"\x89PNG")


@pytest.mark.slow
def test_workers_draw_the_same_bytes_in_order():
    jobs = [FigureCall(f"{FIGURES}:small_figure", (f"figure {i}",)) for i in range(5)]
    with FigurePool(2, preload=(FIGURES,)) as pool:
        assert pool.running
        drawn = pool.render(jobs)
        drawers = pool.render([FigureCall(f"{FIGURES}:pid_figure")] * 4)
    assert drawn == [png_bytes(job()) for job in jobs]
    assert png_bytes(ft.small_figure(str(os.getpid()))) not in drawers  # none was drawn in this process
    assert not pool.running


@pytest.mark.slow
def test_a_dead_worker_leaves_the_figures_to_this_process():
    with FigurePool(1) as pool:
        pngs = pool.render([FigureCall(f"{FIGURES}:dies_in_a_worker"), FigureCall(f"{FIGURES}:small_figure")])
        assert not pool.running  # closed after the failure: the rest is drawn here
    assert pngs == [png_bytes(ft.small_figure("survivor")), png_bytes(ft.small_figure())]


def test_worker_count_is_checked_and_defaults_to_the_cores():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an integer >= 0"):
            FigurePool(bad)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == (2 if cores >= 2 else 0)
    pool = FigurePool(0)
    pool.start()
    assert not pool.running


def test_render_figures_draws_pending_figures_and_keeps_the_rest():
    ready = FigureBlock("ready.png", "drawn before", b"\x89PNG-already")
    pending = FigureBlock("pending.png", "drawn now", draw=FigureCall(f"{FIGURES}:small_figure", ("p",)))
    report = Report("title", [Heading("h"), ready, pending])
    with pytest.raises(ValueError, match=r"pending\.png is not drawn yet"):
        render_html(report)
    drawn = render_figures(report)
    assert drawn.blocks[:2] == [Heading("h"), ready]
    assert drawn.blocks[2].png == png_bytes(ft.small_figure("p")) and drawn.blocks[2].draw is None
    assert pending.png == b""  # the report passed in is left as it was
    assert "figures/pending.png" in render_markdown(drawn) and "data:image/png;base64," in render_html(drawn)


def test_an_asterisk_in_a_caption_does_not_end_its_italics():
    from mhc_mup.reporting.blocks import Table

    md = render_markdown(Report("t", [Table(["a"], [["1"]], "Drift of log η* against log d")]))
    assert "*Drift of log η\\* against log d*" in md
