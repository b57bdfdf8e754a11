"""``mhc-mup transfer``: every output written, bad input as one line with exit code 2 and nothing written, a
mismatched resume refused, ``--quick`` and explicit flags building the configuration."""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.training.transfer import DRIFT_COLUMNS, OPTIMA_COLUMNS

FAST = ["--configs", "control-mup", "--widths", "16,32", "--lrs", "2^-8,2^-6,2^-4", "--seeds", "1", "--steps", "2",
        "--batch-size", "2", "--seq-len", "16", "--depth", "1", "--eval-batches", "1", "--bootstrap", "50",
        "--device", "cpu"]  # fmt: skip


def test_cli_writes_every_output(small_corpus_file, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"transfer.csv", "curves.csv", "optima.csv", "optima_seeds.csv", "drift.csv", "transfer.png",
            "transfer_report.md", "transfer_report.html", "sweep.json", "runs"} <= names  # fmt: skip
    assert list(pd.read_csv(out / "optima.csv").columns) == list(OPTIMA_COLUMNS)
    drift = pd.read_csv(out / "drift.csv")
    assert list(drift.columns) == list(DRIFT_COLUMNS) and set(drift.verdict) <= {"transfers", "drifts", "unclear"}
    assert (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "transfer_report.md").read_text()
    assert "](transfer.png)" in report and "control-mup: " in report
    printed = " ".join(capsys.readouterr().out.split())
    assert "Drift of the optimum" in printed and "6 runs in the grid stored (6 by this call, 0 left)" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lrs", "1e-3,1e-3,2e-3"], "learning rates must differ"),
        (["--lrs", "1e-3,2e-3"], "at least 3 learning rates"),
        (["--lrs", "3e-3,2e-3,1e-3"], "increasing order"),
        (["--lrs", "1e-3,abc,1e-2"], "learning rate 'abc' is not a number"),
        (["--lr-min", "1e-2", "--lr-max", "1e-3"], "need 0 < --lr-min < --lr-max"),
        (["--lr-points", "2"], "LR points must be >= 3"),
        (["--configs", "nope"], "unknown configuration 'nope'"),
        (["--config", "x=xp:mup"], "model must be sp or mup"),
        (["--config", "x=mup:nope"], "unknown parameterization 'nope'"),
        (["--widths", "16,30"], "width 30 must be a positive multiple of heads=4"),
        (["--diverge-factor", "1"], "divergence factor must be a finite number > 1"),
        (["--backend", "ray", "--workers", "2"], "--workers is for the local backend"),
        (["--stream-dtype", "float16"], "argument --stream-dtype: invalid choice: 'float16'"),
        (["--kernels", "cuda"], "argument --kernels: invalid choice: 'cuda'"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(args, message, small_corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    base = [a for a in FAST if a != "--lrs" and not a.startswith("2^")] if "--lrs" in args or "--lr-min" in args \
        or "--lr-points" in args else FAST  # fmt: skip
    if "--configs" in args or "--config" in args:
        i = base.index("--configs")
        base = base[:i] + base[i + 2 :]
    if "--backend" in args:
        pytest.importorskip("ray")
    assert main(["transfer", *base, *args, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_cli_fused_kernels_where_they_cannot_run_is_one_line_exit_2_nothing_written(
    small_corpus_file, tmp_path, capsys, monkeypatch
):
    """``--kernels triton`` on the CPU outside Triton's interpreter: refused before any run, with the reason; a
    control-only sweep has no mHC op to run and is not refused."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    out = tmp_path / "out"
    mhc = [a if a != "control-mup" else "mup" for a in FAST]
    assert main(["transfer", *mhc, "--kernels", "triton", "--corpus", str(small_corpus_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mhc-mup: error: kernels='triton' cannot run: the fused kernels run on CUDA devices, not on cpu"]
    assert not out.exists()
    args = ["transfer", *FAST, "--kernels", "triton", "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]
    assert main(args) == 0


def test_cli_mismatched_resume_is_one_line_exit_2_nothing_written(small_corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 0
    listing = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    args = ["transfer", *FAST, "--steps", "3", "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a sweep made with other settings (steps: 2 there, 3 now)" in err[0], err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == listing


def test_ray_backend_without_ray_is_one_line_with_the_install_hint(small_corpus_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    assert main(["transfer", *FAST, "--backend", "ray", "--corpus", str(small_corpus_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mhc-mup: error: --backend ray needs Ray: pip install mhc-mup[ray]"]
    assert not out.exists()


def test_quick_and_explicit_flags_build_the_grid():
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.transfer import transfer_config

    quick = transfer_config(build_parser().parse_args(["transfer", "--quick"]))
    assert [c.name for c in quick.grid.configs] == ["mup", "control-mup"] and quick.grid.widths == (32, 64, 128)
    assert [math.log2(x) for x in quick.grid.lrs] == pytest.approx([-9, -7.5, -6, -4.5, -3])
    assert len(quick.runs()) == 60 and quick.recipe.train.steps == 20
    assert (quick.recipe.train.batch_size, quick.recipe.train.seq_len) == (8, 64)
    assert (quick.recipe.eval_every, quick.recipe.eval_batches, quick.analysis.fit.n_boot) == (10, 2, 300)
    mine = transfer_config(build_parser().parse_args(
        ["transfer", "--quick", "--steps", "7", "--config", "slow=mup:slow: from=mup, lr_fn=1/(n_s*d)",
         "--config", "ctl=sp:control", "--lrs", "1e-3,2^-8,0.01"]))  # fmt: skip
    assert [c.name for c in mine.grid.configs] == ["slow", "ctl"] and mine.recipe.train.steps == 7
    assert mine.grid.configs[0].hc_param.rules["lr_fn_adam"].text == "1/(n_s*d)"
    assert mine.grid.configs[1].hc_param is None
    assert mine.grid.lrs == pytest.approx((1e-3, 2**-8, 0.01))


def test_every_flag_reaches_its_place_in_the_configuration(tmp_path):
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.transfer import transfer_config

    args = ["transfer", "--seeds", "3", "--steps", "9", "--optimizer", "sgd", "--warmup", "0.2", "--batch-size", "4",
            "--seq-len", "32", "--eval-every", "3", "--eval-batches", "5", "--diverge-factor", "3", "--depth", "3",
            "--heads", "2", "--n-s", "3", "-K", "7", "--base-width", "8", "--corpus", str(tmp_path),
            "--stream-dtype", "bfloat16", "--kernels", "reference", "--tolerance", "0.2", "--bootstrap", "11",
            "--device", "cpu", "--lr-min", "1e-4", "--lr-max", "1e-2", "--lr-points", "4",
            "--widths", "8,16"]  # fmt: skip
    cfg = transfer_config(build_parser().parse_args(args))
    r, t, m = cfg.recipe, cfg.recipe.train, cfg.model
    assert (t.steps, t.optimizer, t.batch_size, t.seq_len) == (9, "sgd", 4, 32)
    assert (r.warmup, r.eval_every, r.eval_batches, r.divergence_factor) == (0.2, 3, 5, 3.0)
    assert r.corpus == str(tmp_path.resolve())
    assert (m.depth, m.heads, m.mhc.n_s, m.mhc.K, cfg.base_d) == (3, 2, 3, 7, 8)
    assert (cfg.numerics.stream_dtype, cfg.numerics.kernels, cfg.device) == ("bfloat16", "reference", "cpu")
    assert (cfg.analysis.tolerance, cfg.analysis.fit.n_boot, cfg.grid.seeds, cfg.grid.widths) == (0.2, 11, 3, (8, 16))
    assert [math.log2(x) for x in cfg.grid.lrs] == pytest.approx(np.linspace(math.log2(1e-4), math.log2(1e-2), 4))
