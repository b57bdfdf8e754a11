"""Time each of the report's figures, and check the pictures against a saved set.

Reads a results folder (written by ``mhc-mup run`` or ``mhc-mup compare``) and draws the figures its report
draws (``mhc_mup.diagnostics.figures``, rendered by ``mhc_mup.reporting.render.png_bytes``): the quotient
Jacobian, sensitivity, gates and corrections figures and the chain figure of the reference parameterization
(and, for a comparison, of the recommended one). Each figure is timed in two parts: *build* (the matplotlib
calls of the figure function) and *render* (``png_bytes``: layout, drawing and PNG encoding). The first
round is reported on its own (it pays matplotlib's one-time costs: fonts, the mathtext parser), then the
median of ``--repeats`` further rounds. With ``--golden DIR`` each PNG is compared with ``DIR/NAME.png``:
identical bytes, or the share of pixels that differ.

Usage::

    mhc-mup run --out /tmp/run
    python benchmarks/bench_figures.py /tmp/run --golden /tmp/run/figures --repeats 5 --json /tmp/bench_figures.json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from mhc_mup.diagnostics import figures
from mhc_mup.diagnostics.report import recommend
from mhc_mup.diagnostics.results import load_results_folder
from mhc_mup.errors import MhcMupError
from mhc_mup.reporting.render import png_bytes


def figure_makers(folder: Path) -> dict[str, Callable]:
    """File name → a function that builds that figure, in the order the report draws them."""
    runs, verdicts, comparison = load_results_folder(folder)
    tolerance = float(next(iter(verdicts.values()))["thresholds"]["tolerance"])
    reference = next(iter(runs))
    detail = recommend(runs, verdicts, tolerance)[0] if comparison else reference
    makers = {
        "quotient_jacobian.png": lambda: figures.quotient_figure(runs[reference]),
        "sensitivity.png": lambda: figures.sensitivity_figure(runs),
        "gates.png": lambda: figures.gates_figure(runs),
        "corrections.png": lambda: figures.corrections_figure(runs, tolerance),
    }
    for name in dict.fromkeys([reference, detail]):
        makers[f"chain_{name}.png"] = lambda name=name: figures.chain_figure(runs[name])
    return makers


def time_once(make: Callable) -> tuple[float, float, bytes]:
    """(build seconds, render seconds, PNG bytes) of one figure."""
    start = time.perf_counter()
    fig = make()
    built = time.perf_counter()
    png = png_bytes(fig)
    return built - start, time.perf_counter() - built, png


def compare_png(png: bytes, golden: Path) -> str:
    """'identical', 'same pixels' (bytes differ), 'N% of pixels differ', or why there is no comparison."""
    if not golden.is_file():
        return f"no {golden.name} in the golden folder"
    expected = golden.read_bytes()
    if png == expected:
        return "identical"
    ours = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    theirs = np.asarray(Image.open(golden).convert("RGB"), dtype=np.int16)
    if ours.shape != theirs.shape:
        return f"size {ours.shape[1]}x{ours.shape[0]} != {theirs.shape[1]}x{theirs.shape[0]}"
    share = float((np.abs(ours - theirs).max(axis=-1) > 0).mean())
    return "same pixels (bytes differ)" if share == 0 else f"{share:.4%} of pixels differ"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a results folder of mhc-mup run or mhc-mup compare")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the first (default 5)")
    parser.add_argument("--golden", type=Path, help="a folder of PNGs to compare each figure with")
    parser.add_argument("--json", type=Path, help="write the timings (and comparisons) here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: must be at least 1")

    try:
        makers = figure_makers(args.folder)
    except MhcMupError as error:  # not a results folder: one line, no traceback
        parser.error(str(error))
    first = {name: time_once(make) for name, make in makers.items()}
    rounds = [{name: time_once(make)[:2] for name, make in makers.items()} for _ in range(args.repeats)]

    rows = {}
    for name, (build, render, png) in first.items():
        builds, renders = [r[name][0] for r in rounds], [r[name][1] for r in rounds]
        rows[name] = {
            "first_build_s": build,
            "first_render_s": render,
            "build_median_s": statistics.median(builds),
            "render_median_s": statistics.median(renders),
            "total_min_s": min(b + r for b, r in zip(builds, renders, strict=True)),
            "png_bytes": len(png),
            "golden": compare_png(png, args.golden / name) if args.golden else None,
        }

    width = max(len(name) for name in rows)
    print(f"{'figure':<{width}}  {'first: build + render':>21}  {'median: build + render':>22}  golden")
    for name, row in rows.items():
        first_cell = f"{row['first_build_s']:.3f} + {row['first_render_s']:.3f}"
        median_cell = f"{row['build_median_s']:.3f} + {row['render_median_s']:.3f}"
        print(f"{name:<{width}}  {first_cell:>21}  {median_cell:>22}  {row['golden'] or '-'}")
    first_total = sum(r["first_build_s"] + r["first_render_s"] for r in rows.values())
    median_total = sum(r["build_median_s"] + r["render_median_s"] for r in rows.values())
    print(f"{'all figures':<{width}}  {first_total:>20.3f}s  {median_total:>21.3f}s")
    if args.json:
        record = {"folder": str(args.folder), "repeats": args.repeats, "figures": rows}
        record["first_round_total_s"], record["median_round_total_s"] = first_total, median_total
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
