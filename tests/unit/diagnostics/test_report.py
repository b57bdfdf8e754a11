"""The generated report: every number from the data files, valid figures, rebuilt byte for byte."""

from __future__ import annotations

import json
import re
import struct

import pandas as pd
import pytest

from mhc_mup.diagnostics.compare import run_compare
from mhc_mup.diagnostics.config import SamplingSettings, SweepConfig
from mhc_mup.diagnostics.report import fmt_exponent, fmt_value, write_report
from mhc_mup.diagnostics.results import write_comparison, write_results
from mhc_mup.diagnostics.sweep import run_sweep
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.stats.fitting import FitSettings

SMALL = SweepConfig(
    widths=(32, 64, 128),
    sampling=SamplingSettings(
        state_tokens=4, quotient_samples=10, quotient_K=(1, 5, 20), sensitivity_samples=6, update_samples=6
    ),
    fit=FitSettings(n_boot=100),
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    write_results(run_sweep(SMALL), out)
    write_report(out)
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "cmp"
    write_comparison(run_compare(SMALL, [PARAMETERIZATIONS[n] for n in ("baseline", "C", "mup")]), out)
    write_report(out)
    return out


def _numbers_in(tree, out: set[str]) -> set[str]:
    """Every number of a JSON tree in each of the report's formats."""
    if isinstance(tree, dict):
        for v in tree.values():
            _numbers_in(v, out)
    elif isinstance(tree, list):
        for v in tree:
            _numbers_in(v, out)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        out |= {fmt_value(float(tree)), fmt_exponent(float(tree)), str(tree)}
    return out


def _tables(markdown: str) -> list[list[list[str]]]:
    """The Markdown tables of the report: a list of rows (header first) of cells."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            current.append(cells)
        elif current:
            tables.append([r for r in current if not set("".join(r)) <= set("- ")])
            current = []
    return tables


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]\d+)?")
MEASURED_CELL = re.compile(r"^(?:d\^)?[-+]?\d[\d.e+-]*(?: \[[^\]]+\])?(?: (?:O\(1\)|grows|decays|unclear))?$")


def _check_report_numbers(folder, data_files):
    data: set[str] = set()
    for f in data_files:
        _numbers_in(json.loads(f.read_text()), data)
    markdown = (folder / "report.md").read_text()
    checked = 0
    for table in _tables(markdown):
        header = table[0]
        if header[0] in ("parameter", "setting", "package"):  # formulas, settings and versions, not measurements
            continue
        for row in table[1:]:
            for column, cell in zip(header, row, strict=True):
                if column in ("threshold", "rule") or not MEASURED_CELL.match(cell):
                    continue
                for number in NUMBER.findall(cell):
                    assert number in data, f"{number!r} (cell {cell!r}, column {column!r}) is not in the data files"
                    checked += 1
    return checked


def test_run_report_numbers_all_come_from_the_data(run_dir):
    checked = _check_report_numbers(run_dir, [run_dir / "results.json", run_dir / "verdict.json"])
    assert checked > 150  # the tables really were checked


def test_compare_report_numbers_all_come_from_the_data(compare_dir):
    files = [compare_dir / "verdict.json", *(compare_dir / n / "results.json" for n in ("baseline", "C", "mup"))]
    checked = _check_report_numbers(compare_dir, files)
    assert checked > 200


def test_statements_follow_the_fits(compare_dir):
    markdown = (compare_dir / "report.md").read_text()
    fits = pd.read_csv(compare_dir / "baseline" / "fits.csv").set_index(["diagnostic", "metric"])
    dc = fits.loc[("dynamic_sensitivity", "dc_x_mean")]
    headline = next(line for line in markdown.splitlines() if line.startswith("**Headline.**"))
    assert f"d^{dc.exponent:.3f} (95% interval {dc.ci_low:.3f} – {dc.ci_high:.3f})" in headline
    update = fits.loc[("logit_update", "proj_perp_norm_mean")]
    assert f"‖Π⊥ΔZ‖ grows as d^{update.exponent:.3f}" in markdown
    assert "√d" not in markdown  # the seed's unsupported claim never appears
    assert "**Recommended: mup**" in markdown  # the only one of the three meeting every measured condition
    corrections = pd.read_csv(compare_dir / "corrections.csv")
    row = corrections[(corrections.parameterization == "C") & (corrections.quantity == "update_sgd")].iloc[0]
    assert f"{row.exponent:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] {row.verdict}" in markdown


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("folder_fixture", ["run_dir", "compare_dir"])
def test_figures_are_valid_pngs_and_the_html_is_self_contained(folder_fixture, request):
    folder = request.getfixturevalue(folder_fixture)
    names = sorted(p.name for p in (folder / "figures").iterdir())
    expected = ["chain_baseline.png", "corrections.png", "gates.png", "quotient_jacobian.png", "sensitivity.png"]
    if folder_fixture == "compare_dir":
        expected = sorted([*expected, "chain_mup.png"])
    assert names == expected
    for name in names:
        w, h = _png_size((folder / "figures" / name).read_bytes())
        assert 600 <= w <= 2400 and 300 <= h <= 1600, (name, w, h)
    page = (folder / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == len(names)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    markdown = (folder / "report.md").read_text()
    for name in names:
        assert f"](figures/{name})" in markdown
    for section in ("Executive summary", "Corrections", "Chain decomposition", "The µP rule table",
                    "Theorem D checklist", "Configuration and software"):  # fmt: skip
        assert f"## {section}" in markdown and f"<h2>{section}</h2>" in page


def test_write_report_rebuilds_the_same_files(compare_dir):
    names = ["report.md", "report.html", *(f"figures/{p.name}" for p in (compare_dir / "figures").iterdir())]
    before = {name: (compare_dir / name).read_bytes() for name in names}
    for name in names:
        (compare_dir / name).unlink()
    paths = write_report(compare_dir)
    assert sorted(str(p.relative_to(compare_dir)) for p in paths) == sorted(names)
    assert [p.name for p in paths[-2:]] == ["report.md", "report.html"]
    assert {name: (compare_dir / name).read_bytes() for name in names} == before

