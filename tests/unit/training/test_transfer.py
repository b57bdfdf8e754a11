"""Learning-rate transfer sweeps: the parabola and drift fits on synthetic curves, divergence handling,
kill-and-restart without loss or duplicates, resume checks, the CLI's errors, and the parallel backends."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.cli import main
from mhc_mup.training.transfer.core import (
    BUILTIN_CONFIGS,
    DRIFT_COLUMNS,
    OPTIMA_COLUMNS,
    TRANSFER_COLUMNS,
    TransferConfig,
    TransferError,
    analyse,
    drift_sentence,
    fit_parabola,
    lr_factor,
    lr_grid,
    parse_configuration,
    plan,
    run_transfer,
)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "def", "return", "(x)", "\n"]
    path.write_text(" ".join(rng.choice(words, 20000)))
    return path


def tiny_cfg(corpus: Path, **changes) -> TransferConfig:
    """Control models (fast): 2 widths × 3 LRs × 1 seed × 3 steps."""
    base = TransferConfig(
        configs=(BUILTIN_CONFIGS["control-mup"],), widths=(16, 32), lrs=lr_grid(2**-8, 2**-4, 3), seeds=1, steps=3,
        batch_size=2, seq_len=16, depth=1, eval_every=2, eval_batches=1, corpus=str(corpus), n_boot=50, device="cpu",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def stored_runs(out: Path) -> list[Path]:
    return sorted((out / "runs").rglob("*.json"))


# ── fits on synthetic curves ────────────────────────────────────────────────────────────────────
def test_parabola_recovers_a_known_optimum_from_a_non_parabolic_curve():
    x = np.arange(-12, -3.5, 0.5)
    for x0 in (-9.3, -7.0, -6.55):
        loss = 3.0 + 0.4 * np.log(np.cosh(1.3 * (x - x0)))  # smooth, asymmetric-free but not a parabola
        fit = fit_parabola(x, loss)
        assert abs(fit.log2_opt - x0) < 0.05, (x0, fit)
        assert fit.edge == "" and fit.note == "" and fit.curvature > 0
    exact = fit_parabola(x, 2.0 + 0.1 * (x + 7.3) ** 2, halfwidth=2)
    assert exact.log2_opt == pytest.approx(-7.3, abs=1e-9) and exact.loss_opt == pytest.approx(2.0, abs=1e-9)


def test_parabola_at_the_grid_edge_or_next_to_divergence_is_no_optimum():
    x = np.arange(-10.0, -4.0)
    low = fit_parabola(x, 3 + (x + 11) ** 2)
    assert math.isnan(low.log2_opt) and low.edge == "low" and "smallest learning rate 2^-10.00" in low.note
    high = fit_parabola(x, 3 + (x + 2) ** 2)
    assert math.isnan(high.log2_opt) and high.edge == "high" and "extend the grid up" in high.note
    loss = 3 + (x + 7) ** 2
    loss[4] = np.nan  # the next larger LR after the argmin (-7) diverged... move the argmin next to it
    loss[3] = 2.5
    nxt = fit_parabola(x, loss)
    assert math.isnan(nxt.log2_opt) and nxt.edge == "high" and "next to a diverged run" in nxt.note


def _record(config: str, width: int, seed: int, lr: float, val: float, diverged: bool = False) -> dict:
    return {
        "config": config, "width": width, "seed": seed, "lr": lr, "log2_lr": math.log2(lr),
        "final_train_loss": val, "final_val_loss": math.nan if diverged else val, "initial_loss": 5.5,
        "diverged": diverged, "diverged_reason": "training loss nan" if diverged else "", "steps_done": 1,
        "tokens_per_s": 1.0, "seconds": 1.0, "device": "cpu", "train_loss": [val], "val_curve": [[1, val]],
    }  # fmt: skip


def synthetic(beta: float, noise: float, seeds: int = 3, widths=(64, 128, 256, 512, 1024)):
    """Loss curves with optimum log2 η*(d, seed) = −6 + β·log2(d/64) + noise."""
    cfg = TransferConfig(configs=(BUILTIN_CONFIGS["mup"],), widths=tuple(widths), lrs=lr_grid(2**-12, 2**-1, 23),
                         seeds=seeds, n_boot=400, device="cpu")  # fmt: skip
    rng = np.random.default_rng(1)
    records = []
    for w in widths:
        for s in range(seeds):
            x0 = -6 + beta * math.log2(w / 64) + noise * rng.standard_normal()
            records += [_record("mup", w, s, lr, 3 + 0.2 * (math.log2(lr) - x0) ** 2) for lr in cfg.lrs]
    return cfg, records


@pytest.mark.parametrize(("beta", "verdict"), [(-0.5, "drifts"), (0.0, "transfers"), (0.3, "drifts")])
def test_drift_slope_recovers_the_exponent_of_synthetic_optima(beta, verdict):
    cfg, records = synthetic(beta, noise=0.02)
    result = analyse(cfg, records)
    row = result.drift.iloc[0]
    assert row.exponent == pytest.approx(beta, abs=0.02)
    assert row.ci_low <= beta <= row.ci_high
    assert row.verdict == verdict
    if beta < 0:
        assert row.direction == "η* shrinks with width"
    opt = result.optima.set_index("width")
    assert opt.loc[64, "log2_lr_opt"] == pytest.approx(-6, abs=0.05)
    assert (opt.n_seeds_fit == 3).all()


def test_two_widths_and_one_seed_give_no_verdict():
    cfg, records = synthetic(0.0, noise=0.0, seeds=1, widths=(64, 128))
    row = analyse(cfg, records).drift.iloc[0]
    assert row.exponent == pytest.approx(0.0, abs=1e-6) and row.verdict == "unclear"
    assert "no interval, no verdict" in row.note and math.isnan(row.ci_low) and math.isnan(row.ci_high)
    assert "without an interval" in drift_sentence(row.to_dict())


def test_diverged_runs_are_kept_and_left_out_of_the_fit_with_a_note():
    cfg, records = synthetic(0.0, noise=0.0, seeds=1, widths=(64, 128, 256))
    high = [r for r in records if r["width"] == 128 and r["log2_lr"] > -3]
    for r in high:
        r.update(diverged=True, final_val_loss=math.nan)
    result = analyse(cfg, records)
    runs = result.runs
    assert len(runs) == len(records) and int(runs.diverged.sum()) == len(high)
    seed = result.seed_optima.query("width == 128").iloc[0]
    assert seed.log2_lr_opt == pytest.approx(-6, abs=1e-6)  # the fit ignored the diverged runs
    assert "diverged, left out of the fit" in seed.note and "2^-2.50" in seed.note
    assert any(f"{len(high)} of {len(records)} runs diverged" in n for n in result.notes)


# ── real runs: divergence, kill and restart, resume checks ─────────────────────────────────────────
def test_a_real_diverging_run_is_recorded_not_dropped(small_corpus, tmp_path):
    cfg = tiny_cfg(small_corpus, widths=(16,), lrs=(2**-6, 2**-4, 2**-2, 1e3), steps=4)
    result = run_transfer(cfg, tmp_path / "out")
    rec = json.loads((tmp_path / "out/runs/control-mup/d16/seed0/log2lr+9.9658.json").read_text())
    assert rec["diverged"] is True and rec["final_val_loss"] is None and rec["diverged_reason"]
    row = result.runs[result.runs.lr == 1e3].iloc[0]
    assert bool(row.diverged) and math.isnan(row.final_val_loss)
    csv = pd.read_csv(tmp_path / "out/transfer.csv")
    assert list(csv.columns) == list(TRANSFER_COLUMNS) and len(csv) == 4 and csv.diverged.sum() == 1
    assert "diverged, left out of the fit: η = 2^9.97" in result.seed_optima.iloc[0].note
    assert rec["mhc_kernels"] == "none" and (csv.mhc_kernels == "none").all()  # the control has no mHC


def test_killed_and_restarted_sweep_has_every_run_exactly_once(small_corpus, tmp_path):
    cfg = tiny_cfg(small_corpus, seeds=2)
    out = tmp_path / "out"
    total = len(cfg.runs())

    def kill_after_5(record, done, n):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_transfer(cfg, out, on_run=kill_after_5)
    first = stored_runs(out)
    assert len(first) == 5
    before = {p: p.read_bytes() for p in first}
    assert not (out / "transfer.csv").exists()
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no partial file

    result = run_transfer(cfg, out)
    assert result.executed == total - 5 and result.missing == 0
    after = stored_runs(out)
    assert len(after) == total == len({p.name + str(p.parent) for p in after})
    assert all(p.read_bytes() == before[p] for p in first)  # the finished runs were not redone
    csv = pd.read_csv(out / "transfer.csv")
    assert len(csv) == total and not csv.duplicated(["config", "width", "seed", "lr"]).any()
    again = run_transfer(cfg, out)
    assert again.executed == 0 and len(stored_runs(out)) == total


def test_time_budget_stops_scheduling_and_the_grid_may_grow(small_corpus, tmp_path):
    cfg = tiny_cfg(small_corpus)
    out = tmp_path / "out"
    partial = run_transfer(cfg, out, time_budget=1e-9)
    assert partial.executed == 0 and partial.missing == len(cfg.runs())
    assert (out / "optima.csv").exists()
    grown = dataclasses.replace(cfg, seeds=2)
    assert run_transfer(grown, out).executed == len(grown.runs())


def test_resume_with_other_settings_is_refused(small_corpus, tmp_path):
    out = tmp_path / "out"
    run_transfer(tiny_cfg(small_corpus, widths=(16,)), out)
    with pytest.raises(TransferError, match=r"other settings \(steps: 3 there, 4 now\)"):
        plan(tiny_cfg(small_corpus, widths=(16,), steps=4), out)
    other = parse_configuration("control-mup=sp:control")
    with pytest.raises(TransferError, match="defines configuration 'control-mup' differently"):
        plan(tiny_cfg(small_corpus, widths=(16,), configs=(other,)), out)


# ── the command line ────────────────────────────────────────────────────────────────────────────
FAST = ["--configs", "control-mup", "--widths", "16,32", "--lrs", "2^-8,2^-6,2^-4", "--seeds", "1", "--steps", "2",
        "--batch-size", "2", "--seq-len", "16", "--depth", "1", "--eval-batches", "1", "--bootstrap", "50",
        "--device", "cpu"]  # fmt: skip


def test_cli_writes_every_output(small_corpus, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"transfer.csv", "curves.csv", "optima.csv", "optima_seeds.csv", "drift.csv", "transfer.png",
            "transfer_report.md", "transfer_report.html", "sweep.json", "runs"} <= names  # fmt: skip
    assert list(pd.read_csv(out / "optima.csv").columns) == list(OPTIMA_COLUMNS)
    assert list(pd.read_csv(out / "drift.csv").columns) == list(DRIFT_COLUMNS)
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
def test_cli_bad_input_is_one_line_exit_2_nothing_written(args, message, small_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    base = [a for a in FAST if a != "--lrs" and not a.startswith("2^")] if "--lrs" in args or "--lr-min" in args \
        or "--lr-points" in args else FAST  # fmt: skip
    if "--configs" in args or "--config" in args:
        i = base.index("--configs")
        base = base[:i] + base[i + 2 :]
    if "--backend" in args:
        pytest.importorskip("ray")
    assert main(["transfer", *base, *args, "--corpus", str(small_corpus), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_cli_fused_kernels_where_they_cannot_run_is_one_line_exit_2_nothing_written(
    small_corpus, tmp_path, capsys, monkeypatch
):
    """``--kernels triton`` on the CPU outside Triton's interpreter: refused before any run, with the reason; a
    control-only sweep has no mHC op to run and is not refused."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    out = tmp_path / "out"
    mhc = [a if a != "control-mup" else "mup" for a in FAST]
    assert main(["transfer", *mhc, "--kernels", "triton", "--corpus", str(small_corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mhc-mup: error: kernels='triton' cannot run: the fused kernels run on CUDA devices, not on cpu"]
    assert not out.exists()
    args = ["transfer", *FAST, "--kernels", "triton", "--corpus", str(small_corpus), "--out", str(out), "--quiet"]
    assert main(args) == 0


def test_cli_mismatched_resume_is_one_line_exit_2_nothing_written(small_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transfer", *FAST, "--corpus", str(small_corpus), "--out", str(out), "--quiet"]) == 0
    listing = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["transfer", *FAST, "--steps", "3", "--corpus", str(small_corpus), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a sweep made with other settings (steps: 2 there, 3 now)" in err[0], err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == listing


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    steps = 100
    f = [lr_factor(k, steps, 0.1) for k in range(steps)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.1) and all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert lr_factor(0, 5, 0.0) == 1.0


# ── parallel backends give the serial results ───────────────────────────────────────────────────
def _losses(result) -> pd.Series:
    return result.runs.set_index(["config", "width", "seed", "lr"]).final_val_loss.sort_index()


@pytest.fixture(scope="module")
def serial(small_corpus, tmp_path_factory):
    return _losses(run_transfer(tiny_cfg(small_corpus), tmp_path_factory.mktemp("serial")))


def test_process_pool_gives_the_serial_results(small_corpus, tmp_path, serial):
    pooled = run_transfer(tiny_cfg(small_corpus), tmp_path / "pool", workers=2)
    pd.testing.assert_series_equal(_losses(pooled), serial, rtol=1e-5)


def test_ray_backend_gives_the_local_results(small_corpus, tmp_path, serial):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_transfer(tiny_cfg(small_corpus), tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    pd.testing.assert_series_equal(_losses(result), serial, rtol=1e-5)
    assert len(stored_runs(tmp_path / "ray")) == len(serial)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: one run per GPU, bf16 autocast")
def test_cuda_sweep_runs_one_run_per_gpu_and_records_the_device(small_corpus, tmp_path):
    cfg = tiny_cfg(small_corpus, device="auto", configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]))
    result = run_transfer(cfg, tmp_path / "gpu")
    assert len(result.runs) == len(cfg.runs()) and result.runs.device.str.startswith("cuda:").all()
    assert np.isfinite(result.runs.final_val_loss).all() and (result.runs.tokens_per_s > 0).all()
    rec = json.loads(next((tmp_path / "gpu/runs").rglob("*.json")).read_text())
    assert rec["settings"]["precision"] == "bf16-autocast"
    kernels = dict(zip(result.runs.config, result.runs.mhc_kernels, strict=True))
    assert kernels == {"mup": "triton", "control-mup": "none"}  # CUDA runs take the fused kernels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the fused kernels on bf16 streams")
def test_cuda_sweep_on_bf16_streams_through_the_fused_kernels(small_corpus, tmp_path):
    cfg = tiny_cfg(small_corpus, device="cuda", configs=(BUILTIN_CONFIGS["mup"],), stream_dtype="bfloat16",
                   kernels="triton", steps=20)  # fmt: skip
    result = run_transfer(cfg, tmp_path / "gpu")
    assert (result.runs.mhc_kernels == "triton").all() and np.isfinite(result.runs.final_val_loss).all()
    assert (result.runs.final_val_loss < result.runs.initial_loss).any()  # it trains
    rec = json.loads(next((tmp_path / "gpu/runs").rglob("*.json")).read_text())
    assert rec["settings"]["stream_dtype"] == "bfloat16" and rec["settings"]["kernels"] == "triton"


def test_ray_backend_without_ray_is_one_line_with_the_install_hint(small_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    assert main(["transfer", *FAST, "--backend", "ray", "--corpus", str(small_corpus), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mhc-mup: error: --backend ray needs Ray: pip install mhc-mup[ray]"]
    assert not out.exists()


def test_quick_and_explicit_flags_build_the_grid():
    from mhc_mup.cli.app import build_parser
    from mhc_mup.cli.transfer import transfer_config

    quick = transfer_config(build_parser().parse_args(["transfer", "--quick"]))
    assert [c.name for c in quick.configs] == ["mup", "control-mup"] and quick.widths == (32, 64, 128)
    assert [math.log2(x) for x in quick.lrs] == pytest.approx([-9, -7.5, -6, -4.5, -3])
    assert len(quick.runs()) == 60 and quick.steps == 20
    mine = transfer_config(build_parser().parse_args(
        ["transfer", "--quick", "--steps", "7", "--config", "slow=mup:slow: from=mup, lr_fn=1/(n_s*d)",
         "--config", "ctl=sp:control", "--lrs", "1e-3,2^-8,0.01"]))  # fmt: skip
    assert [c.name for c in mine.configs] == ["slow", "ctl"] and mine.steps == 7
    assert mine.configs[0].hc_param.rules["lr_fn_adam"].text == "1/(n_s*d)" and mine.configs[1].hc_param is None
    assert mine.lrs == pytest.approx((1e-3, 2**-8, 0.01))


def test_bf16_streams_reach_the_model_and_are_recorded(small_corpus, tmp_path):
    """``stream_dtype='bfloat16'`` trains the mHC model with bf16 residual streams: its losses differ from the
    fp32-stream run's at the same grid point by bf16 round-off (not at all if the setting were dropped), and
    the setting is stored with the run, so that a resume with the other storage is refused."""
    cfg = tiny_cfg(small_corpus, configs=(BUILTIN_CONFIGS["mup"],), widths=(16,), steps=3)
    fp32 = run_transfer(cfg, tmp_path / "fp32").runs.sort_values("lr")
    bf16_cfg = dataclasses.replace(cfg, stream_dtype="bfloat16")
    bf16 = run_transfer(bf16_cfg, tmp_path / "bf16").runs.sort_values("lr")
    a, b = np.array(fp32.final_val_loss), np.array(bf16.final_val_loss)
    assert np.isfinite(b).all() and (a != b).all() and np.allclose(a, b, rtol=2e-2), (a, b)
    rec = json.loads(stored_runs(tmp_path / "bf16")[0].read_text())
    assert rec["settings"]["stream_dtype"] == "bfloat16" and rec["settings"]["kernels"] == "auto"
    with pytest.raises(TransferError, match=r"other settings \(stream_dtype: 'bfloat16' there, 'float32' now\)"):
        plan(cfg, tmp_path / "bf16")


def test_sweeps_stored_before_the_stream_and_kernel_settings_still_resume(small_corpus, tmp_path):
    """Folders written before ``stream_dtype`` and ``kernels`` were settings hold fp32-stream runs on the
    default kernels: they resume under those settings and are refused under others."""
    out = tmp_path / "out"
    cfg = tiny_cfg(small_corpus, widths=(16,))
    run_transfer(cfg, out)
    for path in [out / "sweep.json", *stored_runs(out)]:
        doc = json.loads(path.read_text())
        assert {"stream_dtype", "kernels"} <= set(doc["settings"])
        for key in ("stream_dtype", "kernels"):
            del doc["settings"][key]
        path.write_text(json.dumps(doc))
    finished, pending = plan(cfg, out)
    assert len(finished) == len(cfg.runs()) and not pending
    with pytest.raises(TransferError, match=r"stream_dtype: 'float32' there, 'bfloat16' now"):
        plan(dataclasses.replace(cfg, stream_dtype="bfloat16"), out)


def test_each_run_records_which_mhc_kernels_ran(small_corpus, tmp_path):
    """On the CPU the mHC model runs the reference ops (the fused kernels are CUDA-only; the GPU test checks
    'triton'); the control has no mHC at all."""
    cfg = tiny_cfg(small_corpus, configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]), steps=1)
    result = run_transfer(cfg, tmp_path / "out")
    kernels = dict(zip(result.runs.config, result.runs.mhc_kernels, strict=False))
    assert kernels == {"mup": "reference", "control-mup": "none"}
