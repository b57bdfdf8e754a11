"""``mhc-mup report``: rebuilds the report of a run folder; a damaged or missing folder is one line, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest

from mhc_mup.cli import main

SMALL = ["--widths", "32,64,128", "--samples", "6", "--quotient-samples", "10", "--quotient-K", "1,5,20"]
SMALL += ["--state-tokens", "4", "--bootstrap", "100", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", *SMALL, "--out", str(out)]) == 0
    return out


def test_report_command_rebuilds_the_same_report(run_dir, capsys):
    before = (run_dir / "report.md").read_text()
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").read_text() == before
    assert capsys.readouterr().out == (
        f"wrote {run_dir / 'report.md'}, {run_dir / 'report.html'} and 5 figures under {run_dir}/figures\n"
    )


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


@pytest.mark.slow
def test_figures_drawn_by_workers_are_the_same_bytes(run_dir, tmp_path, monkeypatch):
    """``MHC_MUP_FIGURE_WORKERS=2`` (what a two-core machine gets by default) changes where the figures are drawn,
    not what they are."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "figures")
    monkeypatch.setenv("MHC_MUP_FIGURE_WORKERS", "2")
    assert main(["report", str(copy), "--quiet"]) == 0
    for png in sorted((run_dir / "figures").glob("*.png")):
        assert (copy / "figures" / png.name).read_bytes() == png.read_bytes(), png.name
    assert (copy / "report.html").read_bytes() == (run_dir / "report.html").read_bytes()


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_figure_worker_count_is_one_line(run_dir, value, monkeypatch, capsys):
    monkeypatch.setenv("MHC_MUP_FIGURE_WORKERS", value)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    expected = f"MHC_MUP_FIGURE_WORKERS must be an integer >= 0 (0: draw in this process), got {value!r}"
    assert err.strip().splitlines() == [f"mhc-mup: error: {expected}"]


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("results.json", lambda d: d["results"]["32"]["dynamic_sensitivity"].update(dc_x_mean="abc"),
         "results.32.dynamic_sensitivity.dc_x_mean must be a number, got 'abc'"),
        ("results.json", lambda d: d["config"].update(widths="xyz"), "config.widths must be a list, got 'xyz'"),
        ("results.json", lambda d: d["fits"]["logit_update.proj_perp_norm_mean"].update(n_boot=1.5),
         "fits.logit_update.proj_perp_norm_mean.n_boot must be an integer, got 1.5"),
        ("verdict.json", lambda d: next(iter(d["verdicts"].values()))["conditions"][1]["checks"][0].update(
            estimate=[1]), "conditions.1.checks.0.estimate must be a number, got [1]"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_one_line_naming_file_and_key(run_dir, tmp_path, file, edit, message, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    doc = json.loads((copy / file).read_text())
    edit(doc)
    (copy / file).write_text(json.dumps(doc))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{copy / file}'" in err and err.endswith(message), err
