"""The generated report: every number from the data files, valid figures, clean errors."""

from __future__ import annotations

import json
import re
import struct

import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.diagnostics.report import fmt_exponent, fmt_value

SMALL = ["--widths", "32,64,128", "--samples", "6", "--quotient-samples", "10", "--quotient-K", "1,5,20"]
SMALL += ["--state-tokens", "4", "--bootstrap", "100", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "cmp"
    assert main(["compare", *SMALL, "--params", "baseline,C,mup", "--out", str(out)]) == 0
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


def test_report_command_rebuilds_the_same_report(compare_dir, tmp_path, capsys):
    before = (compare_dir / "report.md").read_text()
    (compare_dir / "report.md").unlink()
    assert main(["report", str(compare_dir)]) == 0
    assert (compare_dir / "report.md").read_text() == before
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "results.json").unlink(), "results.json' not found"),
        (lambda d: (d / "results.json").write_text("{not json"), "results.json' is not valid JSON (line 1)"),
        (lambda d: (d / "verdict.json").write_text('{"format": "other"}'), "has format 'other'"),
        (lambda d: (d / "verdict.json").unlink(), "verdict.json' not found"),
        (
            lambda d: (d / "results.json").write_text(
                json.dumps({**json.loads((d / "results.json").read_text()), "fits": {}})
            ),
            "is missing 'dynamic_sensitivity.dc_x_mean'",
        ),
    ],
    ids=["missing results", "corrupt results", "wrong format", "missing verdict", "missing fits"],
)
def test_report_on_a_damaged_folder_is_one_line_exit_2(run_dir, tmp_path, capsys, damage, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(run_dir, folder)
    (folder / "report.md").unlink()
    damage(folder)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mhc-mup: error: ") and message in err
    assert not (folder / "report.md").exists()


def test_report_on_a_missing_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"mhc-mup: error: '{tmp_path / 'nope'}' not found\n"
