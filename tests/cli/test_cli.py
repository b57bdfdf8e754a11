"""The command line: the subcommand table, the shared argument types, a small run end to end, the files it writes,
and one test per bad input."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mhc_mup.cli import app, common, main
from mhc_mup.diagnostics.summaries import DIAGNOSTICS, SUMMARY_KEYS

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
    (["--widths", "-64,128"], "width '-64' must be >= 1"),
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


# ── the subcommand table and the shared argument types ────────────────────────────────────────
def test_the_table_registers_every_command_with_a_handler():
    names = [c.name for c in app.COMMANDS]
    assert names == ["run", "compare", "report", "inspect", "adapter", "coordcheck", "transfer"]
    top = app.build_parser().format_help()
    for command in app.COMMANDS:
        assert re.search(rf"^\s+{command.name}\s", top, re.M), command.name
        parser = app.Parser(prog=f"mhc-mup {command.name}")
        command.build(parser)
        assert parser.description and callable(parser.get_default("handler")), command.name


def test_a_subcommand_is_built_only_when_chosen():
    parser = app.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, app.Subcommands))
    assert set(sub.unbuilt) == {c.name for c in app.COMMANDS}
    args = parser.parse_args(["report", "somewhere"])
    assert args.folder == Path("somewhere") and set(sub.unbuilt) == {c.name for c in app.COMMANDS} - {"report"}


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after ``main(argv)`` (its output silenced)."""
    probe = (
        "import contextlib, io, sys\n"
        "from mhc_mup.cli import app\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    app.main({argv!r})\n"
        "print(' '.join(sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


def test_top_level_help_imports_neither_torch_nor_a_subcommand():
    modules = _modules_after(["--help"])
    assert "mhc_mup.cli.app" in modules
    assert not modules & {"torch", "numpy", "rich", "mhc_mup.cli.diagnose", "mhc_mup.cli.transfer"}


def test_run_imports_no_other_subcommand():
    modules = _modules_after(["run", "--help"])
    assert "mhc_mup.cli.diagnose" in modules
    assert "torch" not in modules and "matplotlib" not in modules  # parsing `run` needs neither
    others = {"mhc_mup.cli.transfer", "mhc_mup.cli.coordcheck", "mhc_mup.cli.interop", "mhc_mup.training", "pandas"}
    assert not modules & others, modules & others


SHARED_FLAGS = ("--widths", "--n-s", "--sinkhorn-iters", "--hc-eps", "--norm-eps", "--samples", "--seed", "--lr",
                "--device", "--bootstrap", "--tolerance", "--quick", "--steps", "--seeds", "--optimizer",
                "--batch-size", "--seq-len", "--depth", "--heads", "--base-width", "--corpus", "--out", "--quiet",
                "--param")  # fmt: skip


def test_each_shared_flag_is_declared_once_in_common():
    cli = Path(app.__file__).parent
    for path in cli.glob("*.py"):
        text = path.read_text()
        declared = {f for f in SHARED_FLAGS if re.search(rf"add_argument\(\s*(\"-\w\", )?\"{f}\"", text)}
        assert declared == (set(SHARED_FLAGS) if path.name == "common.py" else set()), path.name


TYPE_ERRORS = [
    (common.int_list("width", 1), "64,0", "width '0' must be >= 1"),
    (common.int_list("width", 1), "-64,128", "width '-64' must be >= 1"),
    (common.int_list("width", 1), "64,x", "width 'x' is not an integer"),
    (common.int_list("width", 1), ",", "no width given in ','"),
    (common.int_at_least("steps", 1), "0", "steps must be >= 1, got 0"),
    (common.int_at_least("steps", 1), "1.5", "steps '1.5' is not an integer"),
    (common.positive_float("lr"), "0", "lr must be a positive finite number, got '0'"),
    (common.positive_float("lr"), "nan", "lr must be a positive finite number, got 'nan'"),
    (common.positive_float("lr"), "fast", "lr 'fast' is not a number (e.g. 1e-3 or 2^-10)"),
    (common.positive_float("lr"), "2^x", "lr '2^x' is not a number"),
    (common.positive_float("lr"), "2^5000", "lr '2^5000' is not a number"),
    (common.positive_float("hc_eps", allow_zero=True), "-1e-6", "hc_eps must be a non-negative finite number"),
    (common.parameterization, "Z", "unknown parameterization 'Z'"),
]


@pytest.mark.parametrize(("parse", "text", "message"), TYPE_ERRORS, ids=[f"{t}:{m}" for _, t, m in TYPE_ERRORS])
def test_argument_types_name_the_bad_value(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse(text)


def test_argument_types_parse_good_values():
    assert common.int_list("width", 1)(" 64, 128 ,") == [64, 128]
    assert common.int_at_least("seed", 0)("0") == 0
    assert common.positive_float("eps", allow_zero=True)("0") == 0.0
    # every learning rate takes the transfer sweep's forms, coordcheck's --lr too
    assert [common.positive_float("lr")(t) for t in ("2^-5", "2**-10", " 2 ^ 0.5 ", "1e-3")] == [
        2.0**-5, 2.0**-10, 2.0**0.5, 1e-3]
    assert app.build_parser().parse_args(["coordcheck", "--lr", "2^-5"]).lr == 2.0**-5
    assert common.flat([[16, 32], [64]]) == (16, 32, 64)


OTHER_COMMANDS_BAD = [
    (["coordcheck", "--steps", "0"], "argument --steps: steps must be >= 1, got 0"),
    (["coordcheck", "--widths", "-32,64"], "argument --widths: width '-32' must be >= 1"),
    (["transfer", "--seeds", "x"], "argument --seeds: seeds 'x' is not an integer"),
    (["transfer", "--n-s", "1"], "argument --n-s: n_s must be >= 2, got 1"),
    (["inspect", "ckpt", "--samples", "1"], "argument --samples: samples must be >= 2, got 1"),
    (["adapter", "transformers", "-K", "0"], "argument -K/--sinkhorn-iters: K must be >= 1, got 0"),
    (["adapter", "transformers", "--widths", "-16,32"], "argument --widths: width '-16' must be >= 1"),
    (["report"], "the following arguments are required: DIR"),
    (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
]


@pytest.mark.parametrize(("args", "message"), OTHER_COMMANDS_BAD, ids=[" ".join(a) for a, _ in OTHER_COMMANDS_BAD])
def test_every_command_bad_flag_is_one_line_exit_2(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)] if args[0] not in ("report", "bogus") else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mhc-mup: error: ") and message in err, err
    assert not out.exists()


def test_no_command_prints_the_table_and_exits_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(c.name in out for c in app.COMMANDS)


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--widths", "64,1000000000", "--samples", "4"], "width 1000000000 needs about"),
        (["--widths", "32,64", "--samples", "99999999999999999999"], "99999999999999999999 samples need about"),
    ],
)
def test_a_sweep_that_cannot_fit_is_refused_before_it_starts(args, start, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mhc-mup: error: {start}") and len(err.splitlines()) == 1 and "available" in err
    assert not out.exists()


def test_a_folder_another_command_is_writing_is_refused_naming_it(tmp_path, capsys):
    from mhc_mup._locks import exclusive_folder

    out = tmp_path / "o"
    with exclusive_folder(out):
        assert main(["run", *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mhc-mup: error: '{out}' is being written by process ") and len(err.splitlines()) == 1
    assert main(["run", *FAST, "--out", str(out), "--quiet"]) == 0  # free again
