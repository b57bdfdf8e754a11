"""``mhc-mup transfer``: every output written, bad input as one line with exit code 2 and nothing written, a
mismatched resume refused, ``--quick`` and explicit flags building the configuration."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from mhc_mup.cli import main
from mhc_mup.training.transfer import (
    CURVE_COLUMNS,
    DRIFT_COLUMNS,
    LOGIT_COLUMNS,
    LOGIT_TABLE_COLUMNS,
    NOISE_COLUMNS,
    OPTIMA_COLUMNS,
    RELATIVE_COLUMNS,
    RULE_PENALTY_COLUMNS,
)
from tests.helpers import read_run, run_files, without_cuda

FAST = ["--configs", "control-mup", "--widths", "16,32", "--lrs", "2^-8,2^-6,2^-4", "--seeds", "1", "--steps", "2",
        "--batch-size", "2", "--seq-len", "16", "--depth", "1", "--eval-batches", "2", "--bootstrap", "50",
        "--device", "cpu"]  # fmt: skip


def test_cli_writes_every_output(small_corpus_file, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"transfer.csv", "curves.csv.gz", "optima.csv", "optima_seeds.csv", "drift.csv", "routing.csv",
            "transfer.png", "transfer_report.md", "transfer_report.html", "sweep.json", "runs"} <= names  # fmt: skip
    assert "rule_penalty.csv" not in names  # a multiplier sweep's: an lr sweep has no rule's own value
    assert list(pd.read_csv(out / "rule_drift.csv").columns) == list(RELATIVE_COLUMNS)  # one rule: no pair, a header
    assert list(pd.read_csv(out / "optima.csv").columns) == list(OPTIMA_COLUMNS)
    curves = pd.read_csv(out / "curves.csv.gz")  # gzip, read as it is
    assert list(curves.columns) == list(CURVE_COLUMNS) and set(curves.lr) == {2.0**-8, 2.0**-6, 2.0**-4}
    drift = pd.read_csv(out / "drift.csv")
    assert list(drift.columns) == list(DRIFT_COLUMNS) and set(drift.verdict) <= {"transfers", "drifts", "unclear"}
    assert (out / "transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(out / "routing.csv").empty and not (out / "routing.png").exists()  # a control has no routing
    placed = pd.read_csv(out / "optima.csv")[["log2_lr_opt", "joint_log2_opt"]].notna().any().any()
    assert (out / "optima.png").exists() == placed  # drawn where some width has an optimum
    runs = pd.read_csv(out / "transfer.csv")
    assert (runs[list(LOGIT_COLUMNS)] > 0).all().all()  # every run probed its logits at its start and end
    logits = pd.read_csv(out / "logits.csv")
    assert list(logits.columns) == list(LOGIT_TABLE_COLUMNS) and set(logits["at"]) <= {"best", "octave_above"}
    assert set(logits.width) == {16, 32} and (logits.attn_logit_max > 0).all()
    assert (out / "logits.png").read_bytes()[:4] == b"\x89PNG"
    noise = pd.read_csv(out / "noise.csv")
    assert list(noise.columns) == list(NOISE_COLUMNS) and (noise.val_pair_se > 0).all()
    report = (out / "transfer_report.md").read_text()
    assert "](transfer.png)" in report and "control-mup: " in report
    assert "Each run reads 64 tokens: 0.00071 passes over the training split." in report
    assert "Caveat:" not in report  # one pass: nothing to warn of
    sha = read_run(run_files(out)[0])["settings"]["corpus_sha256"]
    assert f"Data: {small_corpus_file}: 1 file(s), " in report and f"sha256 {sha[:12]}." in report  # which data
    printed = " ".join(capsys.readouterr().out.split())
    assert "Drift of the optimum" in printed
    assert "Do the logits stay bounded?" in report and "Logits, start → end of training" in printed
    assert "](logits.png)" in report and "](transfer.png)" in report and "](figures/" not in report
    assert ("](optima.png)" in report) == placed
    assert "6 runs stored in the folder (6 by this call, 0 of this command's grid left)" in printed
    se = pd.read_csv(out / "noise.csv").val_batch_se.median()
    assert f"noise (nats/byte, medians; noise.csv): one run's validation-batch SE {se:.4f}" in printed  # 1 seed: no σ
    assert "Edges of the band" not in printed  # 1 seed: no band, no edges
    anchors = pd.read_csv(out / "anchors.csv")
    assert anchors.config.tolist() == ["control-mup"] and anchors.expected.tolist() == ["transfers"]
    status = anchors.status[0]
    assert f"anchor {status}: control-mup (plain residual, µP body) should transfer; it " in printed
    assert "## Sanity anchors" in report and "control-mup (plain residual, µP body) should transfer" in report
    assert pd.read_csv(out / "relative_drift.csv").empty  # no mHC configuration to hold against the control
    # the same runs give the same compressed bytes (no timestamp in the gzip header); the old name is removed
    first = (out / "curves.csv.gz").read_bytes()
    (out / "curves.csv").write_text("stale, from an earlier version")
    assert main(["transfer", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert (out / "curves.csv.gz").read_bytes() == first and not (out / "curves.csv").exists()


def test_cli_prints_the_edges_with_two_seeds(small_corpus_file, tmp_path, capsys):
    args = [*FAST]
    args[args.index("--seeds") + 1] = "2"
    assert main(["transfer", *args, "--corpus", str(small_corpus_file), "--out", str(tmp_path / "t")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Edges of the band within the seeds' noise of the best, and where" in printed
    assert "control-mup high edge" in printed and "seeds' σ" in printed
    drift = pd.read_csv(tmp_path / "t" / "edge_drift.csv")
    assert list(drift.edge) == ["high_edge", "low_edge", "degraded", "first_diverged"]
    assert "where the loss has risen +0.1 over it (degraded)" in printed


def test_cli_degrade_by_moves_the_degraded_edge_in_a_report_only_reading(small_corpus_file, tmp_path, capsys):
    """--degrade-by is an analysis flag: --report-only re-reads the same runs at another threshold."""
    out = tmp_path / "t"
    args = [*FAST]
    args[args.index("--seeds") + 1] = "2"
    assert main(["transfer", *args, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 0
    edges = pd.read_csv(out / "edges.csv")
    curves = pd.read_csv(out / "transfer.csv").groupby(["width", "log2_lr"]).final_val_loss.mean()
    for delta in ("0.001", "0.01"):
        assert main(["transfer", "--report-only", "--out", str(out), "--quiet", "--degrade-by", delta]) == 0
        again = pd.read_csv(out / "edges.csv")
        for r in again.dropna(subset=["degraded_log2"]).to_dict("records"):  # where the curve first rose delta
            m = curves.loc[r["width"]]
            assert m.min() + float(delta) <= m[m.index > r["degraded_log2"]].iloc[0] + 1e-12
            assert (m[(m.index > m.idxmin()) & (m.index < r["degraded_log2"])] < m.min() + float(delta)).all()
    assert list(edges.columns) == list(again.columns)
    capsys.readouterr()
    assert main(["transfer", "--report-only", "--out", str(out), "--degrade-by", "0"]) == 2
    assert "degrade by must be a positive" in capsys.readouterr().err


def test_cli_partial_reads_a_width_some_seed_has_not_finished(small_corpus_file, tmp_path, capsys):
    """A run moved out of a 2-seed folder leaves its width out of the fits; --partial reads it over the values both
    seeds have and says which it left out, in the drift note and at the top of the report."""
    out = tmp_path / "t"
    args = [*FAST]
    args[args.index("--seeds") + 1] = "2"
    args[args.index("--lrs") + 1] = "2^-8,2^-7,2^-6,2^-4"  # 3 left to read a parabola through
    assert main(["transfer", *args, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 0
    next(p for p in run_files(out) if "d32/seed1/log2lr-4.0000" in p.as_posix()).unlink()
    assert main(["transfer", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert "not finished yet, left out: d = 32" in pd.read_csv(out / "drift.csv").joint_note[0]
    assert main(["transfer", "--report-only", "--out", str(out), "--partial"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    note = "read partly, left out the values not every seed has run yet (d = 32: 2^-4.00)"
    assert pd.read_csv(out / "drift.csv").joint_note[0].endswith(note) and note in printed
    report = (out / "transfer_report.md").read_text()
    assert "Read partly (--partial): each width over the values every one of its seeds has run" in report
    assert pd.read_csv(out / "edges.csv").width.tolist() == [16, 32]


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
        (["--runs-per-gpu", "2"], "--runs-per-gpu 2 shares a GPU, and cpu is not one; use --workers N"),
        (["--compile"], "--compile compiles the captured CUDA step; this sweep runs on cpu"),
        (["--stream-dtype", "float16"], "argument --stream-dtype: invalid choice: 'float16'"),
        (["--kernels", "cuda"], "argument --kernels: invalid choice: 'cuda'"),
        (["--attention", "flash"], "argument --attention: invalid choice: 'flash'"),
        (["--corpus-mb", "0"], "--corpus-mb must be a positive finite number, got '0'"),
        (["--corpus-mb", "1e-9"], "train bytes; seq_len 16 needs 17"),
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
            "--corpus-mb", "2^-2", "--qk-norm",
            "--stream-dtype", "bfloat16", "--kernels", "reference", "--attention", "no-cudnn", "--tolerance", "0.2",
            "--bootstrap", "11",
            "--device", "cpu", "--lr-min", "1e-4", "--lr-max", "1e-2", "--lr-points", "4",
            "--widths", "8,16"]  # fmt: skip
    cfg = transfer_config(build_parser().parse_args(args))
    r, t, m = cfg.recipe, cfg.recipe.train, cfg.model
    assert (t.steps, t.optimizer, t.batch_size, t.seq_len) == (9, "sgd", 4, 32)
    assert (r.warmup, r.eval_every, r.eval_batches, r.divergence_factor) == (0.2, 3, 5, 3.0)
    assert r.corpus == str(tmp_path.resolve()) and r.corpus_bytes == 2**18
    assert (m.depth, m.heads, m.mhc.n_s, m.mhc.K, cfg.base_d, m.qk_norm) == (3, 2, 3, 7, 8, True)
    assert (cfg.numerics.stream_dtype, cfg.numerics.kernels, cfg.device) == ("bfloat16", "reference", "cpu")
    assert cfg.numerics.attention == "no-cudnn"
    assert (cfg.analysis.tolerance, cfg.analysis.fit.n_boot, cfg.grid.seeds, cfg.grid.widths) == (0.2, 11, 3, (8, 16))
    assert [math.log2(x) for x in cfg.grid.lrs] == pytest.approx(np.linspace(math.log2(1e-4), math.log2(1e-2), 4))


# ── sweeps of a multiplier (--sweep) ──────────────────────────────────────────────────────────────
def _fn_sweep(*extra: str) -> list[str]:
    """FAST as a sweep of the mHC generator's fn LR multiplier on ``mup`` (no --lrs: --grid)."""
    base = [a for a in FAST if a not in ("--lrs", "2^-8,2^-6,2^-4")]
    base[base.index("control-mup")] = "mup"
    return ["transfer", *base, "--sweep", "lr_fn", "--grid", "2^-2,2^0,2^2", *extra]


def test_a_sweep_of_the_fn_lr_multiplier_runs_resumes_and_names_what_it_swept(small_corpus_file, tmp_path, capsys):
    out = tmp_path / "fn"
    args = [*_fn_sweep("--base-lr", "2^-6"), "--corpus", str(small_corpus_file), "--out", str(out)]
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Optimal lr_fn per width" in printed
    assert "6 runs stored in the folder (6 by this call, 0 of this command's grid left)" in printed
    settings = json.loads((out / "sweep.json").read_text())["settings"]
    assert (settings["hyper"], settings["base_lr"]) == ("lr_fn", 2**-6)
    runs = run_files(out)
    assert [p.name for p in runs[:3]] == ["log2lr_fn+0.0000.json.gz", "log2lr_fn+2.0000.json.gz",
                                          "log2lr_fn-2.0000.json.gz"]  # fmt: skip
    record = read_run(runs[0])
    assert (record["hyper"], record["value"], record["lr"]) == ("lr_fn", 1.0, 2**-6)
    table = pd.read_csv(out / "transfer.csv")
    assert set(table.hyper) == {"lr_fn"} and sorted(set(table.value)) == [0.25, 1.0, 4.0] and set(table.lr) == {2**-6}
    report = (out / "transfer_report.md").read_text()
    assert report.startswith("# lr_fn (LR multiplier of the mHC generator's fn) transfer across width")
    rule = pd.read_csv(out / "rule_penalty.csv")  # the rule's own multiplier against each width's optimum
    assert list(rule.columns) == list(RULE_PENALTY_COLUMNS) and list(rule.width) == [16, 32]
    # the routing at each run's start and end, against width (issue 19 item 3)
    assert table[["comb_rms", "comb_rms_init", "comb_to_identity", "pre_rms_init"]].notna().all().all()
    routing = pd.read_csv(out / "routing.csv")
    assert list(routing.width) == [16, 32] and (routing.n_seeds == 1).all()
    assert "Is the mHC routing alive?" in report and "mHC routing, start → end of training" in printed
    assert (out / "routing.png").read_bytes()[:4] == b"\x89PNG" and "](routing.png)" in report
    assert main([*args, "--quiet"]) == 0  # resumed: nothing left to run
    assert run_files(out) == runs
    assert main([*_fn_sweep("--base-lr", "2^-5"), "--corpus", str(small_corpus_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (base_lr: 0.015625 there, 0.03125 now)" in err[0], err


def _finished_lr_sweep(folder, optima: dict[str, float]) -> None:
    """A folder as an lr sweep leaves it: sweep.json and optima.csv (log2 η* per configuration at d = 16, 32)."""
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"format": "mhc-mup-transfer-sweep/1", "settings": {}}))
    rows = [{"config": c, "width": w, "log2_lr_opt": x + 0.3, "joint_log2_opt": x + (w == 32)}
            for c, x in optima.items() for w in (16, 32)]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "optima.csv", index=False)


def test_the_base_lr_is_taken_from_an_earlier_sweep_or_refused_when_ambiguous(small_corpus_file, tmp_path, capsys):
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.transfer import transfer_config

    one, two = tmp_path / "one", tmp_path / "two"
    _finished_lr_sweep(one, {"mup": -7.25})
    _finished_lr_sweep(two, {"mup": -7.25, "baseline": -7.5})
    cfg = transfer_config(build_parser().parse_args(_fn_sweep("--base-from", str(one))))
    assert cfg.sweep.base_lr == 2**-6.95  # the smallest width's own optimum (per-seed mean), not the joint line's
    three = tmp_path / "three"  # no per-seed optimum there (a seed's minimum at the grid's edge): the joint fit's
    _finished_lr_sweep(three, {"mup": -7.25})
    optima = pd.read_csv(three / "optima.csv")
    optima.loc[optima.width == 16, "log2_lr_opt"] = math.nan
    optima.to_csv(three / "optima.csv", index=False)
    assert transfer_config(build_parser().parse_args(_fn_sweep("--base-from", str(three)))).sweep.base_lr == 2**-7.25
    assert cfg.grid.lrs == (0.25, 1.0, 4.0) and cfg.runs()[0].hyper == "lr_fn"
    out = tmp_path / "out"
    for extra, message in [
        (["--base-from", str(two), "--configs", "mup,baseline"],
         "is ambiguous: the configurations' optimal learning rates differ (mup 2^-6.95, baseline 2^-7.20)"),
        ([], "sweeping lr_fn needs the base learning rate it holds fixed: give --base-lr LR or --base-from DIR"),
        (["--base-lr", "2^-6", "--base-from", str(one)], "give either --base-lr or --base-from, not both"),
        (["--base-from", str(one), "--configs", "baseline"], "has no configuration 'baseline'"),
    ]:  # fmt: skip
        args = [*_fn_sweep(*extra), "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]
        if "--configs" in extra:
            i = args.index("--configs")
            args = args[:i] + args[i + 2 :] + extra[-2:]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
        assert not out.exists()


def test_a_multiplier_sweep_at_each_widths_own_base_lr_runs_resumes_and_refuses_other_pairs(
    small_corpus_file, tmp_path, capsys
):
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.transfer import transfer_config

    out = tmp_path / "fn"
    args = [*_fn_sweep("--base-lr", "32:2^-5,16:2^-7"), "--corpus", str(small_corpus_file), "--out", str(out),
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    table = pd.read_csv(out / "transfer.csv")
    assert dict(zip(table.width, table.lr, strict=True)) == {16: 2**-7, 32: 2**-5}
    settings = json.loads((out / "sweep.json").read_text())["settings"]
    assert settings["base_lr_by_width"] == [[16, 2**-7], [32, 2**-5]] and "base_lr" not in settings
    assert "at each width's own η (2^-7.00 at d = 16, 2^-5.00 at d = 32)" in (out / "transfer_report.md").read_text()
    runs = run_files(out)
    assert main(args) == 0 and run_files(out) == runs  # resumed: nothing left to run
    assert main([*_fn_sweep("--base-lr", "16:2^-7,32:2^-6"), "--corpus", str(small_corpus_file), "--out",
                 str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (base_lr_by_width:" in err[0], err
    # each width's optimum of an earlier lr sweep: the per-seed optima's mean (here x + 0.3), not the joint line
    one = tmp_path / "one"
    _finished_lr_sweep(one, {"mup": -7.25})
    cfg = transfer_config(build_parser().parse_args(_fn_sweep("--base-from", str(one), "--base-at", "each")))
    assert cfg.sweep.base_lr_by_width == ((16, 2**-6.95), (32, 2**-6.95)) and cfg.sweep.base_lr is None
    two = tmp_path / "two"
    _finished_lr_sweep(two, {"mup": -7.25, "baseline": -7.5})
    args = [a for a in _fn_sweep("--base-from", str(two), "--base-at", "each") if a not in ("--configs", "mup")]
    assert main([*args, "--configs", "mup,baseline", "--corpus", str(small_corpus_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ (mup 2^-6.95/2^-6.95, baseline 2^-7.20/2^-7.20)" in err[0], err


FN_GRID = ["--sweep", "lr_fn", "--grid", "1,2,4"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "lr_nope", "--grid", "1,2,4", "--base-lr", "1e-3"], "unknown hyperparameter 'lr_nope'"),
        (["--sweep", "lr_fn", "--grid", "1,2", "--base-lr", "1e-3"], "--grid needs at least 3 values"),
        (["--sweep", "lr_fn", "--grid", "4,2,1", "--base-lr", "1e-3"], "--grid values must increase"),
        (["--sweep", "lr_fn", "--grid", "1,1,2", "--base-lr", "1e-3"], "--grid values must increase"),
        (["--sweep", "lr_fn", "--grid", "1,x,2", "--base-lr", "1e-3"], "grid value 'x' is not a number"),
        (["--sweep", "lr_fn", "--grid", "0,1,2", "--base-lr", "1e-3"], "grid value must be a positive finite"),
        (["--sweep", "lr_fn", "--lrs", "1,2,4", "--base-lr", "1e-3"], "--sweep lr_fn takes its values from --grid"),
        (["--base-lr", "1e-3"], "--sweep lr sweeps the base learning rate itself"),
        (["--sweep", "lr_fn", "--base-lr", "1e-3", "--configs", "control-mup"], "'control-mup' has none"),
        ([*FN_GRID, "--base-lr", "16:2^-7"], "no base learning rate for width 32: given for widths 16"),
        ([*FN_GRID, "--base-lr", "16:x,32:2^-6"], "base learning rate at width 16 'x' is not a number"),
        ([*FN_GRID, "--base-lr", "a:2^-7"], "base learning rate 'a:2^-7' is not WIDTH:LR"),
        ([*FN_GRID, "--base-lr", "16:2^-7,16:2^-6,32:2^-6"], "width 16 is given twice"),
        ([*FN_GRID, "--base-lr", "2^-6", "--base-at", "each"], "--base-at takes the optima of --base-from DIR"),
    ],
)
def test_cli_bad_hyperparameters_and_grids_are_one_line_exit_2(args, message, small_corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    base = [a for a in FAST if a not in ("--lrs", "2^-8,2^-6,2^-4", "--configs", "control-mup")]
    configs = [] if "--configs" in args else ["--configs", "mup"]
    argv = ["transfer", *base, *configs, *args, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_dry_run_prints_the_plan_after_every_check_and_writes_nothing(small_corpus_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--dry-run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "of" in printed and "runs to train:" in printed and "no GPU time estimate on the CPU" in printed
    assert not out.exists()


@without_cuda
def test_a_dry_run_prices_a_gpu_sweep_on_a_machine_without_one(small_corpus_file, tmp_path, capsys):
    """A laptop plans a GPU sweep: ``--device cuda --compile --dry-run`` prints the H100 estimate and writes
    nothing; the same command without ``--dry-run`` is refused in one line."""
    out = tmp_path / "out"
    args = ["transfer", *FAST, "--device", "cuda", "--compile", "--corpus", str(small_corpus_file), "--out", str(out)]
    assert main([*args, "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "runs to train:" in printed and "of one H100" in printed and not out.exists()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0] and not out.exists()


@without_cuda
def test_a_dry_run_prices_a_sweep_whose_corpus_is_on_the_gpu_machine_only(small_corpus_file, tmp_path, capsys):
    """``--corpus`` naming a folder only the GPU machine has: the dry run prices the sweep unread and says so (and
    prices it against a folder of that corpus, whose hash it cannot compare); a real run is refused in one line."""
    out, elsewhere = tmp_path / "out", tmp_path / "on-the-gpu-machine"
    args = ["transfer", *FAST, "--device", "cuda", "--compile", "--corpus", str(elsewhere), "--out", str(out)]
    assert main([*args, "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "runs to train:" in printed and "of one H100" in printed and not out.exists()
    assert f"The corpus '{elsewhere}' is not on this machine: the sweep is priced without reading it" in printed
    on_cpu = ["transfer", *FAST, "--corpus", str(elsewhere), "--out", str(out)]
    assert main(on_cpu) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"corpus '{elsewhere}' does not exist" in err[0] and not out.exists()
    # a folder made where that corpus was: priced from here (its runs' hash is not compared), not joined
    elsewhere.mkdir()
    (elsewhere / "a.py").write_bytes(small_corpus_file.read_bytes())
    assert main(on_cpu) == 0
    (elsewhere / "a.py").unlink()
    elsewhere.rmdir()
    capsys.readouterr()
    assert main([*on_cpu, "--widths", "16,32,64", "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 of 9 runs to train:" in printed and "is not on this machine" in printed


def test_attention_without_cudnn_trains_is_stored_and_said_and_a_resume_must_repeat_it(
    small_corpus_file, tmp_path, capsys
):
    """``--attention no-cudnn``: the dry run plans it and writes nothing; the sweep trains, stores the setting in
    sweep.json, says it in the report's settings line (read back by --report-only too); a resume without the flag
    is refused in one line."""
    out = tmp_path / "t"
    args = ["transfer", *FAST, "--attention", "no-cudnn", "--corpus", str(small_corpus_file), "--out", str(out)]
    assert main([*args, "--dry-run"]) == 0 and "runs to train:" in capsys.readouterr().out and not out.exists()
    assert main([*args, "--quiet"]) == 0
    assert json.loads((out / "sweep.json").read_text())["settings"]["attention"] == "no-cudnn"
    assert "; attention without cuDNN's kernel" in (out / "transfer_report.md").read_text()
    (out / "transfer_report.md").unlink()
    assert main(["transfer", "--report-only", "--out", str(out), "--quiet"]) == 0
    assert "; attention without cuDNN's kernel" in (out / "transfer_report.md").read_text()
    capsys.readouterr()
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (attention: 'no-cudnn' there, 'auto' now)" in err[0], err


def test_report_only_rewrites_the_outputs_from_the_stored_runs_and_trains_nothing(small_corpus_file, tmp_path, capsys):
    """``--report-only`` reads the folder's settings and grids from sweep.json (no --corpus or grid flags needed),
    rewrites the tables with the analysis flags given, and refuses a folder without a sweep in one line."""
    out = tmp_path / "t"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus_file), "--out", str(out), "--quiet"]) == 0
    optima = pd.read_csv(out / "optima.csv")
    stored = sorted(p.stat().st_mtime_ns for p in run_files(out))
    (out / "drift.csv").unlink()
    capsys.readouterr()
    assert main(["transfer", "--report-only", "--out", str(out), "--bootstrap", "50", "--tolerance", "0.3"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "6 runs stored in the folder (0 by this call, 0 planned by the folder's grids not stored)" in printed
    pd.testing.assert_frame_equal(pd.read_csv(out / "optima.csv"), optima)
    assert (pd.read_csv(out / "drift.csv").tolerance == 0.3).all()
    assert sorted(p.stat().st_mtime_ns for p in run_files(out)) == stored
    assert "Runs per device at once: 1 for 6 runs." in (out / "transfer_report.md").read_text()
    assert "were not read" not in printed
    # the same runs read from their training loss: said, and the report's method names it
    assert main(["transfer", "--report-only", "--out", str(out), "--bootstrap", "50", "--loss", "train"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Every fit here reads each run's training loss of the last 10% of steps (--loss train)" in printed
    assert "argmin of the seed-mean training loss of the last 10% of steps" in (out / "transfer_report.md").read_text()
    # a sweep.json that lists only d = 16, as one copied from a machine that lacked the d = 32 runs would: the
    # d = 32 files are left out, and said so
    sweep = json.loads((out / "sweep.json").read_text())
    sweep["grid"]["widths"] = [16]
    sweep["grids"] = [g | {"widths": [16]} for g in sweep["grids"]]
    (out / "sweep.json").write_text(json.dumps(sweep))
    assert main(["transfer", "--report-only", "--out", str(out), "--bootstrap", "50"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 runs stored in the folder" in printed
    note = ("3 run file(s) under runs/ lie outside the grids of sweep.json and were not read (the first: "
            "runs/control-mup/d32/seed0/log2lr-4.0000.json.gz)")  # fmt: skip
    assert note in printed and note in " ".join((out / "transfer_report.md").read_text().split())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["transfer", "--report-only", "--out", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "holds no transfer sweep (no sweep.json)" in err
    assert list(empty.iterdir()) == []
