"""The command line: a small run end to end, the files it writes, and one test per bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.diagnostics.measures import DIAGNOSTICS, SUMMARY_KEYS

FAST = [
    "--widths",
    "16,32",
    "64",
    "--samples",
    "4",
    "--quotient-samples",
    "5",
    "--quotient-K",
    "1,20",
    "--state-tokens",
    "4",
    "--bootstrap",
    "50",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", *FAST, "--out", str(out), "--quiet"]) == 0
    return out


def test_writes_the_results_and_the_report_and_nothing_else(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "chain.csv",
        "figures",
        "fits.csv",
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
        "verdict.json",
    ]


def test_results_json_has_the_seeds_nested_layout(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["config"]["widths"] == [16, 32, 64] and doc["config"]["sensitivity_samples"] == 4
    assert set(doc["results"]) == {"16", "32", "64"}
    for per_width in doc["results"].values():
        assert list(per_width) == list(DIAGNOSTICS)
        for diag in DIAGNOSTICS:
            keys = {sk.key for sk in SUMMARY_KEYS[diag]}
            if diag == "quotient_jacobian":
                assert set(per_width[diag]) == {"K=1", "K=20"}
                assert all(set(v) == keys for v in per_width[diag].values())
            else:
                assert set(per_width[diag]) == keys
    assert doc["fits"]["dynamic_sensitivity.dc_x_mean"]["exponent"] > 0.5
    assert doc["software"]["torch"]


def test_results_csv_is_tidy_and_matches_the_json(run_dir):
    df = pd.read_csv(run_dir / "results.csv")
    assert list(df.columns) == ["width", "diagnostic", "metric", "value", "n_samples"]
    doc = json.loads((run_dir / "results.json").read_text())
    per_width = df.dropna(subset=["width"])
    assert len(per_width) == 3 * sum(len(SUMMARY_KEYS[d]) for d in DIAGNOSTICS if d != "quotient_jacobian")
    for row in per_width.itertuples():
        assert doc["results"][str(int(row.width))][row.diagnostic][row.metric] == pytest.approx(row.value, rel=1e-12)
    quotient = df[df.diagnostic == "quotient_jacobian"]
    assert quotient.width.isna().all() and len(quotient) == 2 * len(SUMMARY_KEYS["quotient_jacobian"])
    k20 = quotient.set_index("metric").loc["K=20/gauge_leakage_mean", "value"]
    assert k20 == pytest.approx(doc["results"]["16"]["quotient_jacobian"]["K=20"]["gauge_leakage_mean"])
    assert set(df.n_samples[df.diagnostic == "dynamic_sensitivity"]) == {4}


def test_fits_csv(run_dir):
    fits = pd.read_csv(run_dir / "fits.csv")
    assert list(fits.columns[:7]) == ["diagnostic", "metric", "exponent", "ci_low", "ci_high", "prefactor", "r2"]
    dc = fits.set_index("metric").loc["dc_x_mean"]
    assert dc.ci_low <= dc.exponent <= dc.ci_high


def test_prints_tables_and_the_headline(tmp_path, capsys):
    assert main(["run", *FAST, "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "‖DC(x)‖·‖x‖ scales as d^" in out and "gauge leakage" in out and "dc_x_mean" in out


def test_help_explains_every_flag():
    proc = subprocess.run([sys.executable, "-m", "mhc_mup", "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in (
        "--widths",
        "--samples",
        "--out",
        "--seed",
        "--device",
        "--dtype",
        "-K",
        "--n-s",
        "--sigma-w",
        "--quotient-K",
        "--bootstrap",
        "--quiet",
    ):
        assert flag in proc.stdout


BAD_INPUTS = [
    (["--n-s", "1"], "n_s must be >= 2, got 1"),
    (["-K", "0"], "K must be >= 1, got 0"),
    (["--widths", "0,64"], "width '0' must be >= 1"),
    (["--widths", "-64", "128"], "width '-64' must be >= 1"),
    (["--widths", "64.5,128"], "width '64.5' is not an integer"),
    (["--widths", "sixty-four"], "width 'sixty-four' is not an integer"),
    (["--widths", "64"], "a scaling fit needs at least 2 widths, got 1: [64]"),
    (["--samples", "1"], "samples must be >= 2, got 1"),
    (["--quotient-samples", "0"], "quotient samples must be >= 2, got 0"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--device", "banana"], "unknown device 'banana'"),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--sigma-w", "-0.02"], "sigma_pre = '-0.02' gives -0.02 at d=16 (n_s=4); need a positive std"),
    (["--scale", "0.1,0.2"], "--scale takes one expression or three (pre,post,comb), got '0.1,0.2'"),
    (["--param", "Z"], "unknown parameterization 'Z'; presets: baseline, A, B, C, D, E, mup, hf-v4, mhc-paper"),
    (["--param", "mine: sigma_w=__import__('os')"], "call to '__import__' is not allowed"),
    (["--param", "mine: sigma_w=d.real"], "expression 'd.real': Attribute is not allowed"),
    (["--param", "mine: sigma_w=1/(d-16)"], "expression '1/(d-16)' fails at n_s=4, d=16: float division by zero"),
    (["--param", "mine: sigma_w=1-d/64"], "sigma_pre = '1-d/64' gives 0.0 at d=64 (n_s=4); need a positive std"),
    (["--param", "mine: lr_fn=log(d-16)"], "expression 'log(d-16)' fails at n_s=4, d=16: math domain error"),
    (["--param", "mine: sigma_w"], "parameterization 'mine': 'sigma_w' is not rule=expr"),
    (["--param", "mine: speed=2"], "parameterization 'mine': unknown rule 'speed'"),
    (["--param", "a/b: sigma_w=1"], "parameterization name 'a/b' must be 1–40 letters"),
    (["--tolerance", "0"], "tolerance must be a positive finite number, got '0'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


RUN_ONLY = {"--sigma-w", "--scale"}
COMPARE_BAD_INPUTS = [
    (["--params", "baseline,Z"], "unknown parameterization 'Z'"),
    (["--params", ","], "--params names no parameterization"),
    (["--params", "C", "--param", "C"], "parameterization 'C' is given more than once"),
    (["--sigma-w", "0.1"], "unrecognized arguments: --sigma-w"),
]
CASES = [("run", a, m) for a, m in BAD_INPUTS] + [
    ("compare", a, m) for a, m in BAD_INPUTS + COMPARE_BAD_INPUTS if not (RUN_ONLY & set(a)) or "unrec" in m
]


@pytest.mark.parametrize(("command", "args", "message"), CASES, ids=[f"{c} {' '.join(a)}" for c, a, _ in CASES])
def test_bad_input_one_line_exit_2_nothing_written(command, args, message, tmp_path, capsys):
    """``run`` and ``compare`` share the sweep flags and ``--param``; each names the bad value."""
    out = tmp_path / "out"
    assert main([command, *FAST, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mhc-mup: error: ")
    assert message in err
    assert not out.exists()


def test_cuda_requested_without_cuda(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", *FAST, "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(["run", *FAST, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"mhc-mup: error: output path '{target}' is a file, not a directory\n"
    assert target.read_text() == "keep me"


def test_entry_point_bad_input_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "mhc_mup", "run", "--widths", "64"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
