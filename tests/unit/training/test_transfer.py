"""Learning-rate transfer sweeps: the parabola and drift fits on synthetic curves, divergence handling,
kill-and-restart without loss or duplicates, resume checks (also of folders written before the settings were
derived from the configuration's dataclasses), a run's picklable spec. The command line is tested in
tests/cli/test_transfer.py, the process pool, Ray and CUDA in tests/integration/test_transfer_backends.py."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mhc_mup.errors import ConfigError, TransferError
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.stats.fitting import FitSettings, welch_slope_interval
from mhc_mup.training.config import ModelShape, TrainingRecipe
from mhc_mup.training.data import cached_corpus
from mhc_mup.training.transfer import (
    BUILTIN_CONFIGS,
    TRANSFER_COLUMNS,
    RunRecipe,
    SweepGrid,
    TransferAnalysis,
    TransferConfig,
    Verdict,
    analyse,
    drift_sentence,
    execute_run,
    fit_parabola,
    joint_sentence,
    lr_factor,
    lr_grid,
    parse_configuration,
    plan,
    run_transfer,
)
from mhc_mup.training.transfer.analysis import LOGIT_COLUMNS, LOGIT_TABLE_COLUMNS, drift_row, logits_table
from mhc_mup.training.transfer.config import RunKey
from mhc_mup.training.transfer.executors import RunClock
from mhc_mup.training.transfer.run import resume, run_stages
from tests.helpers import read_run, run_files, transfer_record, write_run
from tests.helpers import tiny_transfer_config as tiny_cfg


def stored_runs(out: Path) -> list[Path]:
    return run_files(out)


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
    assert low.off_grid and high.off_grid and not nxt.off_grid
    # a wider window leaves the grid one point in from its end: the note says where the minimum is
    near = fit_parabola(x, 3 + (x + 9) ** 2, halfwidth=2)
    assert near.off_grid and near.edge == "low" and near.argmin == -9.0
    assert near.note == "minimum at 2^-9.00, 1 point in from the smallest learning rate: extend the grid down"


def test_the_notes_name_the_swept_value():
    """A multiplier sweep's notes name the multiplier, not the learning rate."""
    x = np.arange(-12.0, -3.0)
    low = fit_parabola(x, 3 + (x + 13) ** 2, noun="mHC generator's LR multiplier", symbol="lr_fn")
    assert low.note == "minimum at the smallest mHC generator's LR multiplier 2^-12.00: extend the grid down"
    loss = 3 + (x + 6) ** 2
    loss[7] = np.nan
    nxt = fit_parabola(x, loss, noun="mHC generator's LR multiplier", symbol="lr_fn")
    assert "next to a diverged run (higher lr_fn)" in nxt.note


def synthetic(beta: float, noise: float, seeds: int = 3, widths=(64, 128, 256, 512, 1024)):
    """Loss curves with optimum log2 η*(d, seed) = −6 + β·log2(d/64) + noise."""
    grid = SweepGrid(configs=(BUILTIN_CONFIGS["mup"],), widths=tuple(widths), lrs=lr_grid(2**-12, 2**-1, 23),
                     seeds=seeds)  # fmt: skip
    cfg = TransferConfig(grid=grid, analysis=TransferAnalysis(fit=FitSettings(n_boot=400)), device="cpu")
    rng = np.random.default_rng(1)
    records = []
    for w in widths:
        for s in range(seeds):
            x0 = -6 + beta * math.log2(w / 64) + noise * rng.standard_normal()
            records += [transfer_record("mup", w, s, lr, 3 + 0.2 * (math.log2(lr) - x0) ** 2) for lr in cfg.grid.lrs]
    return cfg, records


def test_each_widths_optimum_interval_holds_the_seeds_t_interval():
    """Over three seeds a bootstrap spans about their range: each width's interval is its union with the
    t-interval of the seeds' mean, about 2.5 times as wide."""
    cfg, records = synthetic(0.0, noise=0.1)
    result = analyse(cfg, records)
    for w, seeds in result.seed_optima.groupby("width"):
        x = seeds.log2_lr_opt.to_numpy()
        half = 4.302652729911275 * x.std(ddof=1) / math.sqrt(3)  # t(2, 0.975)
        row = result.optima.set_index("width").loc[w]
        assert row.ci_low <= x.mean() - half + 1e-9 and row.ci_high >= x.mean() + half - 1e-9
        assert row.ci_high - row.ci_low > np.ptp(x)  # wider than the seeds' range


def test_a_two_width_drift_fit_reads_the_seeds_welch_interval_too():
    """Across two widths the per-seed fit has no regression interval: three seeds whose bootstrap alone reads
    "drifts" ([−0.29, −0.10]) are read with the seeds' Welch t-interval of the slope joined to it, which reaches
    past 0: "unclear"."""
    cfg, _ = synthetic(0.0, noise=0.0)
    x = {64: np.array([-6.314, -6.295, -6.442]), 512: np.array([-6.691, -7.227, -6.736])}
    row = drift_row(cfg, "mup", {w: list(2.0**v) for w, v in x.items()})
    low, high = welch_slope_interval(x[64], x[512], 3.0, 0.95)
    assert row["boot_high"] < -0.1 and high > 0  # the case: the bootstrap alone would have read "drifts"
    assert (row["ci_low"], row["ci_high"]) == (min(row["boot_low"], low), max(row["boot_high"], high))
    assert row["verdict"] == "unclear" and row["note"].endswith("the bootstrap's united with the seeds' Welch "
                                                                  "t-interval")  # fmt: skip


def test_a_drift_fit_names_the_widths_without_an_optimum_as_the_other_notes_do():
    cfg, _ = synthetic(0.0, noise=0.0)
    optima = {64: [2**-6.0, 2**-6.1, 2**-5.9], 128: [2**-6.0, 2**-6.2, 2**-5.8]}
    row = drift_row(cfg, "mup", optima, analysed=[64, 128, 256, 512, 1024], unfinished=[1024])
    assert row["note"].startswith("no optimum at d = 256, 512; not finished yet, left out: d = 1024;")


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
        # the same optima read as a multiplier's: both fits name the multiplier, not the learning rate
        swept = analyse(cfg.with_leaves(hyper="lr_fn", base_lr=2**-7), records).drift.iloc[0]
        assert swept.direction == swept.joint_direction == "lr_fn* shrinks with width"
    opt = result.optima.set_index("width")
    assert opt.loc[64, "log2_lr_opt"] == pytest.approx(-6, abs=0.05)
    assert (opt.n_seeds_fit == 3).all()
    # the joint fit, on the same runs: the same exponent, a narrower interval, the same verdict
    assert row.joint_exponent == pytest.approx(beta, abs=0.02) and row.joint_low <= beta <= row.joint_high
    assert row.joint_high - row.joint_low < row.ci_high - row.ci_low
    assert row.joint_verdict == verdict and row.joint_widths == 5 and not opt.flat.any()
    assert opt.loc[64, "joint_log2_opt"] == pytest.approx(-6, abs=0.05)


def test_a_width_where_the_loss_is_flat_within_the_noise_has_no_optimum():
    """At d = 256 the loss does not depend on η beyond the seeds' noise: no optimum there, in either table,
    and the joint fit of the other widths still finds β = 0."""
    cfg, records = synthetic(0.0, noise=0.0, seeds=3, widths=(64, 128, 256, 512))
    rng = np.random.default_rng(0)  # a flat width passes the F-test at 95% in 95% of draws: not this one (p = 0.17)
    for r in records:
        x = r["log2_lr"] - (-6.0)
        level = 3.0 if r["width"] == 256 else 3 + 0.2 * x * x
        r["final_val_loss"] = level + 0.01 * rng.standard_normal()
    result = analyse(cfg, records)
    opt = result.optima.set_index("width")
    assert list(opt.flat) == [False, False, True, False]
    assert math.isnan(opt.loc[256, "log2_lr_opt"]) and "flat within the seeds' noise" in opt.loc[256, "note"]
    row = result.drift.iloc[0]
    assert row.flat_widths == 1 and row.joint_widths == 3 and "d = 256 (F = " in row.joint_note
    assert row.n_widths == 3 and abs(row.joint_exponent) < 0.05


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
def test_a_real_diverging_run_is_recorded_not_dropped(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, widths=(16,), lrs=(2**-6, 2**-4, 2**-2, 1e3), steps=4)
    result = run_transfer(cfg, tmp_path / "out")
    rec = read_run(tmp_path / "out/runs/control-mup/d16/seed0/log2lr+9.9658.json.gz")
    assert rec["diverged"] is True and rec["final_val_loss"] is None and rec["diverged_reason"]
    row = result.runs[result.runs.lr == 1e3].iloc[0]
    assert bool(row.diverged) and math.isnan(row.final_val_loss)
    csv = pd.read_csv(tmp_path / "out/transfer.csv")
    assert list(csv.columns) == list(TRANSFER_COLUMNS) and len(csv) == 4 and csv.diverged.sum() == 1
    assert "diverged, left out of the fit: η = 2^9.97" in result.seed_optima.iloc[0].note
    assert rec["mhc_kernels"] == "none" and (csv.mhc_kernels == "none").all()  # the control has no mHC


def test_killed_and_restarted_sweep_has_every_run_exactly_once(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, seeds=2)
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


def test_a_run_claimed_by_another_process_is_left_to_it(small_corpus_file, tmp_path):
    """Two processes on one folder: a run the other holds is skipped (not trained twice) and counted missing until
    stored; once the claim is gone, the same command trains it and only it."""
    from mhc_mup._locks import claim

    cfg = tiny_cfg(small_corpus_file)
    out = tmp_path / "out"
    held = cfg.runs()[2]
    with claim(held.path(out)):
        first = run_transfer(cfg, out)
    assert first.executed == len(cfg.runs()) - 1 and first.missing == 1
    assert not held.path(out).exists() and not list(out.rglob("*.claim"))
    second = run_transfer(cfg, out)
    assert second.executed == 1 and second.missing == 0 and held.path(out).exists()


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("run", lambda d: d.update(final_val_loss="abc"), "final_val_loss must be a number, got 'abc'"),
        ("run", lambda d: d.update(train_loss=[1.0, "x"]), "train_loss.1 must be a number, got 'x'"),
        ("sweep", lambda d: d["grid"].update(widths="xyz"), "grid.widths must be a list, got 'xyz'"),
    ],
)
def test_a_stored_value_of_the_wrong_type_is_named_with_its_file(small_corpus_file, tmp_path, file, edit, message):
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    out = tmp_path / "out"
    run_transfer(cfg, out)
    path = cfg.runs()[0].path(out) if file == "run" else out / "sweep.json"
    doc = read_run(path)
    edit(doc)
    write_run(path, doc)
    with pytest.raises(TransferError, match=rf"^'{path}': {re.escape(message)}$"):
        run_transfer(cfg, out)


def test_time_budget_stops_scheduling_and_the_grid_may_grow(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file)
    out = tmp_path / "out"
    partial = run_transfer(cfg, out, time_budget=1e-9)
    assert partial.executed == 0 and partial.missing == len(cfg.runs())
    assert (out / "optima.csv").exists()
    grown = cfg.with_leaves(seeds=2)
    assert run_transfer(grown, out).executed == len(grown.runs())


def test_the_run_clock_starts_a_run_only_where_its_known_duration_fits():
    """Durations are the medians of the finished runs per configuration, width and runs sharing the device
    (diverged runs left out); a run starts only if its known duration fits before the deadline, a run of an
    unknown duration while any time is left; a run that ends teaches the clock its duration."""
    records = [{"config": "mup", "width": 64, "runs_per_device": 4, "seconds": s, "diverged": False}
               for s in (80.0, 90.0, 100.0)]  # fmt: skip
    records += [{"config": "mup", "width": 64, "runs_per_device": 4, "seconds": 5.0, "diverged": True},
                {"config": "mup", "width": 64, "runs_per_device": 1, "seconds": 30.0}]  # fmt: skip
    clock = RunClock.from_records(1000.0, records)
    assert clock.seconds == {("mup", 64, 4): 90.0, ("mup", 64, 1): 30.0}
    key = RunKey("mup", 64, 0, 2.0**-7)
    assert clock.starts(key, 4, now=909.0) and not clock.starts(key, 4, now=911.0)
    assert clock.starts(key, 1, now=969.0) and not clock.starts(key, 1, now=971.0)
    assert clock.starts(RunKey("mup", 128, 0, 2.0**-7), 4, now=999.0)  # unknown: any time left
    assert not clock.starts(RunKey("mup", 128, 0, 2.0**-7), 4, now=1000.0)
    clock.ended(RunKey("mup", 128, 1, 2.0**-6), 4, 50.0)
    assert not clock.starts(RunKey("mup", 128, 0, 2.0**-7), 4, now=951.0)


def test_a_time_budget_starts_no_run_the_folders_runs_say_would_end_after_it(small_corpus_file, tmp_path):
    """The folder's d = 16 runs are recorded as taking a day: with an hour's budget the second seed's d = 16 runs
    do not start, its d = 32 runs (no duration known yet) all do, and the same command without a budget finishes
    the rest."""
    out = tmp_path / "out"
    run_transfer(tiny_cfg(small_corpus_file, widths=(16,)), out)
    for path in run_files(out):
        write_run(path, read_run(path) | {"seconds": 86400.0})
    cfg = tiny_cfg(small_corpus_file, seeds=2)
    budgeted = run_transfer(cfg, out, time_budget=3600.0)
    assert budgeted.executed == 6 and budgeted.missing == 3
    assert {k.width for k in cfg.runs() if k.stored_path(out) is None} == {16}
    assert run_transfer(cfg, out).executed == 3


def test_records_are_stored_gzip_compressed_and_plain_json_records_still_count(small_corpus_file, tmp_path):
    """A run record is its JSON line, gzip-compressed without a timestamp (the same record, the same bytes); a
    folder whose records were written as plain ``.json`` (before) resumes and reads them alongside new ones, and
    a record no grid names is reported in either form."""
    import gzip

    from mhc_mup.training.transfer.store import load_records, record_bytes, unread_records

    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    out = tmp_path / "out"
    run_transfer(cfg, out)
    first = cfg.runs()[0].path(out)
    assert first.name.endswith(".json.gz") and gzip.decompress(first.read_bytes()).endswith(b"}\n")
    record = read_run(first)
    assert record_bytes(record) == first.read_bytes()  # deterministic: no mtime in the gzip header
    legacy = first.with_suffix("")  # as stored before: log2lr....json
    legacy.write_text(json.dumps(record) + "\n")
    first.unlink()
    assert cfg.runs()[0].stored_path(out) == legacy
    again = run_transfer(cfg, out)
    assert again.executed == 0 and again.missing == 0 and not first.exists()  # resumed: nothing re-run
    assert load_records(cfg, out)[0] == record and len(load_records(cfg, out)) == len(cfg.runs())
    stray = out / "runs" / "control-mup" / "d16" / "seed0"
    write_run(stray / "log2lr+5.0000.json.gz", record)
    (stray / "log2lr+6.0000.json").write_text(json.dumps(record))
    assert [p.name for p in unread_records(cfg, out)] == ["log2lr+5.0000.json.gz", "log2lr+6.0000.json"]


def test_a_damaged_compressed_record_is_one_line_naming_its_file(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    out = tmp_path / "out"
    run_transfer(cfg, out)
    path = cfg.runs()[0].path(out)
    path.write_bytes(path.read_bytes()[:40])  # cut short
    with pytest.raises(TransferError, match=rf"^cannot read '{re.escape(str(path))}': "):
        run_transfer(cfg, out)


def test_resume_with_other_settings_is_refused(small_corpus_file, tmp_path):
    out = tmp_path / "out"
    run_transfer(tiny_cfg(small_corpus_file, widths=(16,)), out)
    with pytest.raises(TransferError, match=r"other settings \(steps: 3 there, 4 now\)"):
        plan(tiny_cfg(small_corpus_file, widths=(16,), steps=4), out)
    other = parse_configuration("control-mup=sp:control")
    with pytest.raises(TransferError, match="defines configuration 'control-mup' differently"):
        plan(tiny_cfg(small_corpus_file, widths=(16,), configs=(other,)), out)


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    steps = 100
    f = [lr_factor(k, steps, 0.1) for k in range(steps)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.1) and all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert lr_factor(0, 5, 0.0) == 1.0


def test_bf16_streams_reach_the_model_and_are_recorded(small_corpus_file, tmp_path):
    """``stream_dtype='bfloat16'`` trains the mHC model with bf16 residual streams: its losses differ from the
    fp32-stream run's at the same grid point by bf16 round-off (not at all if the setting were dropped), and
    the setting is stored with the run, so that a resume with the other storage is refused."""
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"],), widths=(16,), steps=3)
    fp32 = run_transfer(cfg, tmp_path / "fp32").runs.sort_values("lr")
    bf16_cfg = cfg.with_leaves(stream_dtype="bfloat16")
    bf16 = run_transfer(bf16_cfg, tmp_path / "bf16").runs.sort_values("lr")
    a, b = np.array(fp32.final_val_loss), np.array(bf16.final_val_loss)
    assert np.isfinite(b).all() and (a != b).all() and np.allclose(a, b, rtol=2e-2), (a, b)
    rec = read_run(stored_runs(tmp_path / "bf16")[0])
    assert rec["settings"]["stream_dtype"] == "bfloat16" and rec["settings"]["kernels"] == "auto"
    with pytest.raises(TransferError, match=r"other settings \(stream_dtype: 'bfloat16' there, 'float32' now\)"):
        plan(cfg, tmp_path / "bf16")


def test_sweeps_stored_before_the_stream_and_kernel_settings_still_resume(small_corpus_file, tmp_path):
    """Folders written before ``stream_dtype`` and ``kernels`` were settings hold fp32-stream runs on the
    default kernels: they resume under those settings and are refused under others."""
    out = tmp_path / "out"
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    run_transfer(cfg, out)
    for path in [out / "sweep.json", *stored_runs(out)]:
        doc = read_run(path)
        assert {"stream_dtype", "kernels"} <= set(doc["settings"])
        for key in ("stream_dtype", "kernels"):
            del doc["settings"][key]
        write_run(path, doc)
    finished, pending = plan(cfg, out)
    assert len(finished) == len(cfg.runs()) and not pending
    with pytest.raises(TransferError, match=r"stream_dtype: 'float32' there, 'bfloat16' now"):
        plan(cfg.with_leaves(stream_dtype="bfloat16"), out)


def test_each_run_records_which_mhc_kernels_ran(small_corpus_file, tmp_path):
    """On the CPU the mHC model runs the reference ops (the fused kernels are CUDA-only; the GPU test checks
    'triton'); the control has no mHC at all."""
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]), steps=1)
    result = run_transfer(cfg, tmp_path / "out")
    kernels = dict(zip(result.runs.config, result.runs.mhc_kernels, strict=False))
    assert kernels == {"mup": "reference", "control-mup": "none"}


# ── the configuration and a run's spec ──────────────────────────────────────────────────────────
def legacy_settings(cfg: TransferConfig) -> dict:
    """The settings as the version before the nested configuration listed them by hand (commit 0297a59)."""
    train, shape = cfg.recipe.train, cfg.model
    return {
        "steps": train.steps, "batch_size": train.batch_size, "seq_len": train.seq_len, "depth": shape.depth,
        "heads": shape.heads, "n_s": shape.mhc.n_s, "K": shape.mhc.K, "base_d": cfg.base_width,
        "optimizer": train.optimizer, "warmup": cfg.recipe.warmup, "eval_every": cfg.recipe.eval_every,
        "eval_batches": cfg.recipe.eval_batches, "divergence_factor": cfg.recipe.divergence_factor,
        "data_seed": train.data_seed, "corpus": cfg.recipe.corpus, "precision": "fp32",
        "stream_dtype": cfg.numerics.stream_dtype, "kernels": cfg.numerics.kernels,
    }  # fmt: skip


@pytest.mark.parametrize(
    "changes", [{}, {"steps": 7, "n_s": 3, "K": 5, "base_d": 8, "warmup": 0.0, "stream_dtype": "bfloat16"}]
)
def test_the_derived_settings_are_the_hand_listed_ones(small_corpus_file, changes):
    cfg = tiny_cfg(small_corpus_file, **changes)
    added = {"cuda_graphs": "off", "corpus_sha256": cached_corpus(str(small_corpus_file)).sha256}  # "auto": CPU → off
    assert cfg.settings() == legacy_settings(cfg) | added
    assert list(cfg.settings()) == list(cfg.run_settings().identity())


def test_eps_is_a_setting_only_away_from_v4s_value(small_corpus_file, tmp_path):
    """The first format did not store hc_eps / norm_eps (they were fixed at V4's 1e-6): a sweep at those values
    stores nothing new and resumes old folders; another value is stored and refused on an old folder."""
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    assert not {"hc_eps", "norm_eps"} & set(cfg.settings())
    run_transfer(cfg, tmp_path / "out")
    other = cfg.with_leaves(hc_eps=1e-5)
    assert other.settings()["hc_eps"] == 1e-5 and "norm_eps" not in other.settings()
    with pytest.raises(TransferError, match=r"hc_eps: 1e-06 there, 1e-05 now"):
        plan(other, tmp_path / "out")


def test_torch_compile_is_a_setting_only_when_on(small_corpus_file, tmp_path):
    """Folders from before ``--compile`` ran uncompiled and resume; a compiled sweep is another function of the
    seed (round-off) and is refused on them."""
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    assert "torch_compile" not in cfg.settings()
    run_transfer(cfg, tmp_path / "out")
    other = cfg.with_leaves(torch_compile=True)
    assert other.settings()["torch_compile"] is True
    with pytest.raises(TransferError, match=r"torch_compile: False there, True now"):
        plan(other, tmp_path / "out")
    with pytest.raises(TransferError, match=r"--compile compiles the captured CUDA step; this sweep runs on cpu"):
        other.validate()


def test_qk_norm_is_a_setting_only_when_on(small_corpus_file, tmp_path):
    """Folders from before ``--qk-norm`` had none and resume; on, it is stored with the folder, said in the settings
    line, refused on a folder without it, and every run trains the model with the q/k norms."""
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["control-mup"],), widths=(16,))
    assert "qk_norm" not in cfg.settings() and "q/k RMSNorm" not in cfg.describe()
    run_transfer(cfg, tmp_path / "plain")
    other = cfg.with_leaves(qk_norm=True)
    assert other.settings() == cfg.settings() | {"qk_norm": True}
    assert "4 heads with q/k RMSNorm, n_s" in other.describe()
    with pytest.raises(TransferError, match=r"other settings \(qk_norm: False there, True now\)"):
        plan(other, tmp_path / "plain")
    normed = run_transfer(other, tmp_path / "normed").runs
    plain = run_transfer(cfg, tmp_path / "plain").runs
    assert np.isfinite(normed.final_val_loss).all()
    assert not np.allclose(normed.sort_values("lr").final_val_loss, plain.sort_values("lr").final_val_loss)
    for path in [tmp_path / "normed" / "sweep.json", *stored_runs(tmp_path / "normed")]:
        assert read_run(path)["settings"]["qk_norm"] is True, path


def test_attention_is_a_setting_only_when_not_auto(small_corpus_file, tmp_path):
    """Folders from before ``--attention`` let PyTorch choose the kernel and resume; ``no-cudnn`` is stored with
    the folder and every run, said in the settings line, and refused on a folder of the other value (either way).
    It computes the same function: on the CPU, where PyTorch has no cuDNN kernel, the same losses."""
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"],), widths=(16,))
    assert "attention" not in cfg.settings() and "attention" not in cfg.describe()
    auto = run_transfer(cfg, tmp_path / "auto").runs.sort_values("lr")
    other = cfg.with_leaves(attention="no-cudnn")
    assert other.settings() == cfg.settings() | {"attention": "no-cudnn"}
    assert "; attention without cuDNN's kernel" in other.describe()
    with pytest.raises(TransferError, match=r"other settings \(attention: 'auto' there, 'no-cudnn' now\)"):
        plan(other, tmp_path / "auto")
    restricted = run_transfer(other, tmp_path / "no-cudnn").runs.sort_values("lr")
    assert np.isfinite(restricted.final_val_loss).all() and not restricted.diverged.any()
    np.testing.assert_allclose(restricted.final_val_loss, auto.final_val_loss, rtol=1e-5)
    for path in [tmp_path / "no-cudnn" / "sweep.json", *stored_runs(tmp_path / "no-cudnn")]:
        assert read_run(path)["settings"]["attention"] == "no-cudnn", path
    with pytest.raises(TransferError, match=r"other settings \(attention: 'no-cudnn' there, 'auto' now\)"):
        plan(cfg, tmp_path / "no-cudnn")
    assert run_transfer(other, tmp_path / "no-cudnn").executed == 0


def test_a_corpus_cap_is_a_setting_only_away_from_16_mib(small_corpus_file, tmp_path):
    """``corpus_bytes`` keeps at most that many bytes of the corpus (here of its one file, before the split by
    bytes): stored with the folder and every run only when it is not the 16 MiB of folders from before it, said
    in the settings line, and refused on a folder of the other value."""
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["control-mup"],), widths=(16,))
    assert "corpus_bytes" not in cfg.settings() and "corpus splits" not in cfg.describe()
    capped = cfg.with_leaves(corpus_bytes=50_000)
    corpus = cached_corpus(str(small_corpus_file), 50_000)
    assert corpus.train.numel() + corpus.val.numel() == 50_000 < small_corpus_file.stat().st_size
    assert capped.settings() == cfg.settings() | {"corpus_bytes": 50_000, "corpus_sha256": corpus.sha256}
    assert "; corpus splits of at most 0.0476837 MiB" in capped.describe()
    run_transfer(capped, tmp_path / "capped")
    for path in [tmp_path / "capped" / "sweep.json", *stored_runs(tmp_path / "capped")]:
        assert read_run(path)["settings"]["corpus_bytes"] == 50_000, path
    with pytest.raises(TransferError, match=r"other settings \(corpus_bytes: 50000 there, 16777216 now"):
        plan(cfg, tmp_path / "capped")
    with pytest.raises(ConfigError, match=r"corpus_bytes must be >= 1, got 0"):
        cfg.with_leaves(corpus_bytes=0)


def test_the_plan_says_when_a_run_repeats_its_training_split(small_corpus_file, tmp_path):
    """More tokens a run than the training split holds: the cost line says how many passes, of what; within one
    pass it says nothing."""
    from mhc_mup.training.transfer.sweep import transfer_cost

    train = cached_corpus(str(small_corpus_file)).train.numel()
    within = tiny_cfg(small_corpus_file, steps=train // 32)  # 2 × 16 bytes a step
    assert transfer_cost(within, tmp_path / "a").note == ""
    over = tiny_cfg(small_corpus_file, steps=3 * train // 32 + 1)
    note = transfer_cost(over, tmp_path / "b").note
    tokens = (3 * train // 32 + 1) * 32
    assert note.startswith(f"Each run reads its training split {tokens / train:.1f} times ({tokens / 1e6:,.1f} M "
                           f"tokens of {train / 1e6:,.1f} M bytes)"), note  # fmt: skip
    # the report says it too, from the corpus line the runs keep: 20 steps of 32 bytes on 360 training bytes
    small = tiny_cfg(small_corpus_file, steps=20, widths=(16,), corpus_bytes=400)
    report = (tmp_path / "c" / "transfer_report.md")
    run_transfer(small, tmp_path / "c")
    assert "Each run reads 640 tokens: 1.8 passes over the training split, so it repeats the data" in (
        report.read_text())
    text = report.read_text()  # the caveat opens the report, before the anchors and the verdicts
    assert text.index("Caveat: each run reads its training split 1.8 times") < text.index("## Sanity anchors")


def test_each_turn_of_a_run_runs_under_its_own_attention_setting(small_corpus_file, monkeypatch):
    """Runs taking turns from one thread (as on one GPU) enter their attention setting at each resumption and
    leave it at each pause: every attention call of the ``no-cudnn`` run (steps, routing probes, validations)
    finds cuDNN's kernel left out, every one of the ``auto`` run PyTorch's own choice, and between turns the
    flags are as they were. A run that fails inside a turn restores them too."""
    seen: list[tuple[str, bool]] = []
    turn = ["none"]
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append((turn[0], torch.backends.cuda.cudnn_sdp_enabled()))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"],), widths=(16,), steps=3)
    specs = {name: cfg.with_leaves(attention=name).run_spec(cfg.runs()[0]) for name in ("no-cudnn", "auto")}
    runs = {name: run_stages(spec, "cpu") for name, spec in specs.items()}
    records: dict[str, dict] = {}
    while len(records) < len(runs):
        for name in runs.keys() - records.keys():
            turn[0] = name
            if (record := resume(runs[name])) is not None:
                records[name] = record
            assert torch.backends.cuda.cudnn_sdp_enabled()  # as found, between turns
    assert {name for name, _ in seen} == {"no-cudnn", "auto"}
    assert all(cudnn == (name == "auto") for name, cudnn in seen), seen
    assert records["no-cudnn"]["settings"]["attention"] == "no-cudnn" and "attention" not in records["auto"]["settings"]
    assert records["no-cudnn"]["train_loss"] == pytest.approx(records["auto"]["train_loss"], rel=1e-5)
    spec = specs["no-cudnn"]
    elsewhere = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, corpus_sha256="0" * 64))
    with pytest.raises(TransferError, match="runs on other data cannot join this sweep"):
        execute_run(elsewhere, "cpu")
    assert torch.backends.cuda.cudnn_sdp_enabled()


def test_folders_written_with_the_hand_listed_settings_resume(small_corpus_file, tmp_path):
    """A folder as the previous version wrote it (settings in its key order) resumes with nothing re-run once it
    names its corpus's hash; without one (written before hashes were recorded) it is refused: its data is unknown."""
    cfg = tiny_cfg(small_corpus_file, widths=(16,))
    out = tmp_path / "out"
    run_transfer(cfg, out)
    for corpus_hash in ({}, {"corpus_sha256": cfg.settings()["corpus_sha256"]}):
        for path in [out / "sweep.json", *stored_runs(out)]:
            doc = read_run(path)
            doc["settings"] = legacy_settings(cfg) | corpus_hash
            write_run(path, doc)
        if not corpus_hash:
            unrecorded = r"other settings \(corpus_sha256: 'unrecorded' there, '[0-9a-f]{64}' now\)"
            with pytest.raises(TransferError, match=unrecorded):
                plan(cfg, out)
    assert run_transfer(cfg, out).executed == 0
    with pytest.raises(TransferError, match=r"other settings \(warmup: 0.1 there, 0.2 now\)"):
        plan(cfg.with_leaves(warmup=0.2), out)


def test_runs_on_other_data_are_refused(small_corpus_file, tmp_path):
    """The folder names its corpus by content: the same path with other bytes is refused on resume, and a run on a
    machine whose corpus differs from the sweep's (another default corpus) stops before training."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(small_corpus_file.read_bytes())
    cfg = tiny_cfg(corpus, widths=(16,))
    run_transfer(cfg, tmp_path / "out")
    spec = cfg.run_spec(cfg.runs()[0])
    with pytest.raises(TransferError, match=r"has sha256 [0-9a-f]{12}, the sweep's is 000000000000: runs on other"):
        other = dataclasses.replace(spec.settings, corpus_sha256="0" * 64)
        execute_run(dataclasses.replace(spec, settings=other), "cpu")
    corpus.write_bytes(corpus.read_bytes().replace(b"e", b"E", 1))
    cached_corpus.cache_clear()
    try:
        with pytest.raises(TransferError, match=r"other settings \(corpus_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}"):
            plan(cfg, tmp_path / "out")
    finally:
        cached_corpus.cache_clear()


def test_a_run_spec_pickles_and_runs(small_corpus_file):
    """The spec the pool and Ray send: equal after a pickle round trip (a rule-set generator included), and
    enough on its own for a run."""
    mine = parse_configuration("slow=mup:slow: from=mup, lr_fn=1/(n_s*d)")
    cfg = tiny_cfg(small_corpus_file, configs=(mine,), widths=(16,), steps=2)
    spec = cfg.run_spec(cfg.runs()[1])
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert (spec.configuration, spec.width, spec.seed, spec.lr) == (mine, 16, 0, cfg.grid.lrs[1])
    record = execute_run(pickle.loads(pickle.dumps(spec)), "cpu")
    assert record["configuration"] == mine.to_dict() and record["settings"] == cfg.settings()
    assert record["steps_done"] == 2 and len(record["train_loss"]) == 2 and record["val_curve"][-1][0] == 2
    stored_losses = record["train_loss"] + record["final_val_batch_losses"]
    assert all(v == float(str(np.float32(v))) for v in stored_losses)  # float32's shortest decimals (_io)
    assert math.isfinite(record["final_val_loss"]) and record["mhc_kernels"] == "reference"


def test_a_runs_seconds_are_split_into_its_stages(small_corpus_file):
    """``stage_seconds`` partitions the run's wall time: every stage non-negative, summing to ``seconds``, the
    training steps to ``train_seconds``; no capture on the CPU."""
    cfg = tiny_cfg(small_corpus_file, widths=(16,), steps=3).with_leaves(eval_every=2)
    record = execute_run(cfg.run_spec(cfg.runs()[0]), "cpu")
    stages = record["stage_seconds"]
    assert set(stages) == {"build", "prepare", "routing", "first_step", "capture", "steps", "eval", "rest"}
    assert all(v >= 0 for v in stages.values()) and stages["capture"] == 0 and stages["eval"] > 0
    assert sum(stages.values()) == pytest.approx(record["seconds"], rel=1e-9)
    assert stages["first_step"] + stages["steps"] == pytest.approx(record["train_seconds"], rel=1e-9)


def test_each_part_of_the_configuration_checks_its_own_values():
    with pytest.raises(ConfigError, match="steps must be >= 1, got 0"):
        TrainingRecipe(steps=0)
    with pytest.raises(ConfigError, match="optimizer must be one of sgd, adam, got 'lion'"):
        TrainingRecipe(optimizer="lion")
    with pytest.raises(ConfigError, match="heads must be >= 1, got 0"):
        ModelShape(heads=0)
    with pytest.raises(ConfigError, match="n_s must be an integer >= 2"):
        ModelShape(mhc=MHCShape(n_s=1))
    with pytest.raises(TransferError, match="warmup is a fraction of the steps"):
        RunRecipe(warmup=1.0)
    with pytest.raises(TransferError, match="attention must be one of auto, no-cudnn, got 'flash'"):
        TransferConfig().with_leaves(attention="flash")
    with pytest.raises(TransferError, match="configuration names must differ"):
        SweepGrid(configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["mup"]))
    with pytest.raises(ConfigError, match="n_boot must be an integer >= 1"):
        TransferConfig().with_leaves(n_boot=0)
    with pytest.raises(TransferError, match="width 30 must be a positive multiple of heads=4"):
        TransferConfig().with_leaves(widths=(16, 30)).validate()
    with pytest.raises(TransferError, match="a parabola fit needs at least 5 learning rates, got 3"):
        TransferConfig().with_leaves(lrs=(1e-3, 2e-3, 4e-3), fit_halfwidth=2).validate()


def test_verdicts_are_bare_words_in_the_tables():
    cfg, records = synthetic(0.0, noise=0.02)
    drift = analyse(cfg, records).drift
    assert drift.verdict.iloc[0] == Verdict.TRANSFERS and f"{drift.verdict.iloc[0]}" == "transfers"
    assert "transfers" in drift.to_csv(index=False).splitlines()[1].split(",")


# ── what a sweep sweeps ───────────────────────────────────────────────────────────────────────────
def test_each_multiplier_acts_on_its_own_part_and_only_there(small_corpus_file):
    """The run's model and optimizer with each multiplier in place, against the rule's (multiplier 1): an LR
    multiplier scales its group's LR alone, init_fn the fn matrices alone, output_mult the logits."""
    from mhc_mup.training.transfer.run import _build_model, _EagerSteps

    def _build(spec, dev):
        model = _build_model(spec, dev)
        steps = _EagerSteps(model, spec, cached_corpus(spec.settings.recipe.corpus), dev)
        return model, steps.opt, steps.sched

    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"],), widths=(16,))
    ref_model, ref_opt, _ = _build(cfg.run_spec(cfg.runs()[0]), torch.device("cpu"))
    ref_lrs = {g["kind"]: g["lr"] for g in ref_opt.param_groups}
    tokens = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(0))
    for hyper, kind in [("lr_fn", "hc_fn"), ("lr_scale", "hc_scale"), ("lr_base", "hc_base"),
                        ("lr_readout", "readout"), ("lr_embedding", "embedding"), ("lr_hidden", "hidden"),
                        ("lr_gain", "gain")]:  # fmt: skip
        swept = cfg.with_leaves(hyper=hyper, base_lr=cfg.grid.lrs[0], lrs=(0.5, 1.0, 4.0))
        _, opt, _ = _build(swept.run_spec(swept.runs()[-1]), torch.device("cpu"))  # multiplier 4
        lrs = {g["kind"]: g["lr"] for g in opt.param_groups}
        assert kind in lrs and lrs == {k: v * (4.0 if k == kind else 1.0) for k, v in ref_lrs.items()}, hyper
        assert [g["initial_lr"] for g in opt.param_groups] == list(lrs.values())  # the schedule starts from them
    init = cfg.with_leaves(hyper="init_fn", base_lr=cfg.grid.lrs[0], lrs=(0.5, 1.0, 3.0))
    model, _, _ = _build(init.run_spec(init.runs()[-1]), torch.device("cpu"))
    ref = dict(ref_model.named_parameters())
    for name, p in model.named_parameters():
        assert torch.equal(p, ref[name] * (3.0 if name.endswith(".fn") else 1.0)), name
    out = cfg.with_leaves(hyper="output_mult", base_lr=cfg.grid.lrs[0], lrs=(0.5, 1.0, 3.0))
    model, _, _ = _build(out.run_spec(out.runs()[-1]), torch.device("cpu"))
    torch.testing.assert_close(model(tokens), 3.0 * ref_model(tokens))


def test_each_width_trains_at_its_own_base_lr_and_the_folder_settings_read_back(small_corpus_file, tmp_path):
    """A multiplier sweep with a base LR per width: each width's optimizer starts at its own, the settings store
    the pairs as JSON lists and read back into the same sweep, and a width without one is refused."""
    from mhc_mup.training.transfer import stored_config
    from mhc_mup.training.transfer.run import _build_model, _EagerSteps
    from mhc_mup.training.transfer.store import write_sweep_file

    cfg = tiny_cfg(small_corpus_file, configs=(BUILTIN_CONFIGS["mup"],), widths=(16, 32))
    swept = cfg.with_leaves(hyper="lr_fn", base_lr_by_width=[[32, 2**-5], [16, 2**-7]], lrs=(0.5, 1.0, 4.0))
    assert swept.sweep.base_lr_by_width == ((16, 2**-7), (32, 2**-5))  # JSON's lists, sorted by width
    for key in swept.runs():
        spec = swept.run_spec(key)
        steps = _EagerSteps(_build_model(spec, torch.device("cpu")), spec, cached_corpus(spec.settings.recipe.corpus),
                            torch.device("cpu"))  # fmt: skip
        rule = {g["kind"]: g["lr"] for g in steps.opt.param_groups}
        assert spec.settings.sweep.run_lr(key.lr, key.width) == {16: 2**-7, 32: 2**-5}[key.width]
        assert rule["embedding"] == pytest.approx({16: 2**-7, 32: 2**-5}[key.width]), key  # µP: the embedding's η
    assert swept.settings()["base_lr_by_width"] == [[16, 2**-7], [32, 2**-5]]
    write_sweep_file(swept, tmp_path)
    back, _ = stored_config(tmp_path)
    assert back.sweep == swept.sweep and back.settings() == swept.settings()
    assert "at each width's own η (2^-7.00 at d = 16, 2^-5.00 at d = 32)" in swept.describe()
    with pytest.raises(TransferError, match="no base learning rate for width 32: given for widths 16"):
        cfg.with_leaves(hyper="lr_fn", base_lr_by_width=((16, 1e-3),), lrs=(0.5, 1.0, 4.0)).validate()
    with pytest.raises(TransferError, match="give one base learning rate, or one per width, not both"):
        cfg.with_leaves(hyper="lr_fn", base_lr=1e-3, base_lr_by_width=((16, 1e-3),))
    with pytest.raises(TransferError, match="width 16 is given twice"):
        cfg.with_leaves(hyper="lr_fn", base_lr_by_width=((16, 1e-3), (16, 2e-3)))
    with pytest.raises(TransferError, match=r"must be a positive finite number, got -0\.001"):
        cfg.with_leaves(hyper="lr_fn", base_lr_by_width=((16, -1e-3),))
    with pytest.raises(TransferError, match="a base learning rate is for sweeps of a multiplier"):
        cfg.with_leaves(base_lr_by_width=((16, 1e-3),))


def test_a_curve_that_misfits_its_window_says_so():
    """A V-shaped loss (|t|, no parabola near its minimum) over a wide window: the fit's residuals exceed the
    seeds' noise and the note says to narrow the window; a window of 1 follows it within the noise."""
    from mhc_mup.training.transfer.joint import WidthCurves, joint_drift

    rng = np.random.default_rng(0)
    x = np.arange(-12.0, -1.0)
    curves = [WidthCurves(w, x, 3 + 0.1 * np.abs(x + 6.5) + 0.002 * rng.standard_normal((2, len(x))), (0, 1))
              for w in (64, 128, 256, 512)]  # fmt: skip
    cfg = TransferConfig(analysis=TransferAnalysis(fit=FitSettings(n_boot=50), joint_halfwidth=4))
    wide, _, _ = joint_drift(cfg, curves)
    assert "the curve misfits its window" in wide["joint_note"]
    narrow, _, _ = joint_drift(cfg.with_leaves(joint_halfwidth=1), curves)
    assert "misfits" not in narrow["joint_note"] and narrow["joint_low"] <= 0 <= narrow["joint_high"]


@pytest.mark.parametrize(("hc", "qk_norm"), [(True, False), (False, False), (False, True)])
def test_logit_statistics_match_the_attention_the_model_computes(monkeypatch, hc, qk_norm):
    """The probe recomputes q·kᵀ·scale from each attention layer's input (after the q/k norms, where the model has
    them); here the model's own scaled_dot_product_attention calls are intercepted for their q, k and scale,
    causal entries only, and the output logits are the model's, centred per position. The hooks are gone
    afterwards."""
    import torch.nn.functional as F

    from mhc_mup.training.model import MHCLM
    from mhc_mup.training.transfer.logits import LOGIT_STATS, logit_stats

    model = MHCLM(ModelShape(depth=2, qk_norm=qk_norm).model_config(16, hc=hc), seed=0)
    if qk_norm:  # gains away from 1, so that a probe skipping them would read other logits
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "_norm." in name:
                    p.mul_(torch.linspace(0.5, 2.0, p.numel()))
    tokens = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    seen, sdpa = [], F.scaled_dot_product_attention

    def spy(q, k, v, *, is_causal, scale):
        s = q.float() @ k.float().transpose(-1, -2) * scale
        seen.append(s[..., torch.ones(8, 8, dtype=torch.bool).tril()])
        return sdpa(q, k, v, is_causal=is_causal, scale=scale)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        out = model(tokens).float()
    direct = torch.cat([s.flatten() for s in seen])
    seen.clear()
    stats = logit_stats(model, tokens)
    assert len(seen) == 2 and tuple(stats) == LOGIT_STATS  # the probe's own forward pass went through both layers
    assert stats["attn_logit_max"] == pytest.approx(float(direct.abs().max()), rel=1e-6)
    assert stats["attn_logit_rms"] == pytest.approx(float(direct.square().mean().sqrt()), rel=1e-6)
    centred = out - out.mean(-1, keepdim=True)
    assert stats["output_logit_rms"] == pytest.approx(float(centred.square().mean().sqrt()), rel=1e-6)
    assert stats["attn_logit_max"] > stats["attn_logit_rms"] > 0
    assert all(not m._forward_hooks for m in model.modules())


def test_the_logits_table_reads_the_best_value_and_an_octave_above_it():
    """Per width: the grid value with the lowest seed-mean loss over every finished run, and the smallest finished
    one at least twice it; each the mean over the runs there that recorded their logits. Runs stored before the
    probe still decide which value is best; a width whose best is the grid's top has no row above it."""
    rows = []
    for width, losses in ((16, {1: 2.0, 2: 1.5, 3: 1.7, 8: 1.9}), (32, {1: 2.0, 2: 1.9, 8: 1.2})):
        for value, loss in losses.items():
            for seed in (0, 1):
                probed = not (width == 16 and value == 2 and seed == 1)  # stored before the probe
                peak = 10.0 * value + width + seed if probed else math.nan
                rows.append({"config": "c", "width": width, "value": float(value), "final_val_loss": loss + 0.01 * seed,
                             "diverged": value == 8 and width == 16} | {k: peak for k in LOGIT_COLUMNS})  # fmt: skip
    rows.append(rows[0] | {"width": 64, "attn_logit_max": math.nan, "attn_logit_max_init": math.nan})  # no probe
    table = logits_table(pd.DataFrame(rows))
    assert list(table.columns) == list(LOGIT_TABLE_COLUMNS)
    got = [(r["width"], r["at"], r["value"], r["n_seeds"], r["attn_logit_max"]) for r in table.to_dict("records")]
    # d = 16: best 2 (one probed seed), above it 8 diverged, so 3 is not ≥ 2·2 and there is no row above;
    # d = 32: best 8, the grid's top
    assert got == [(16, "best", 2.0, 1, 36.0), (32, "best", 8.0, 2, 112.5)]
    wider = logits_table(pd.DataFrame([r | {"diverged": False} for r in rows]))
    assert [(r["width"], r["at"], r["value"]) for r in wider.to_dict("records")][:2] == [
        (16, "best", 2.0), (16, "octave_above", 8.0)]


def test_routing_statistics_of_a_known_generator():
    """fn = 0 and comb's base 0: every comb logit is 0, every pre / post logit its base, and Sinkhorn of a constant
    matrix is uniform: 0 from uniform, ‖11ᵀ/n − I‖_F = √(n − 1) from the identity; a control has none."""
    from mhc_mup.training.model import MHCLM, HyperConnection
    from mhc_mup.training.transfer.routing import routing_stats

    cfg = ModelShape(depth=2).model_config(16, hc=True)
    model = MHCLM(cfg, seed=0)
    bases = []
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, HyperConnection):
                m.fn.zero_()
                m.base.zero_()
                m.base[: 2 * cfg.n_s] = torch.linspace(-1.0, 1.0, 2 * cfg.n_s)
                bases.append(m.base[: 2 * cfg.n_s].clone())
    tokens = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    stats = routing_stats(model, tokens)
    pre = torch.cat([b[: cfg.n_s] for b in bases])
    post = torch.cat([b[cfg.n_s :] for b in bases])
    assert stats["comb_rms"] == pytest.approx(0.0, abs=1e-7)
    assert stats["pre_rms"] == pytest.approx(float(pre.pow(2).mean().sqrt()), rel=1e-6)
    assert stats["post_rms"] == pytest.approx(float(post.pow(2).mean().sqrt()), rel=1e-6)
    assert stats["comb_to_uniform"] == pytest.approx(0.0, abs=1e-5)
    assert stats["comb_to_identity"] == pytest.approx(math.sqrt(cfg.n_s - 1), rel=1e-5)
    assert routing_stats(MHCLM(ModelShape(depth=1).model_config(16, hc=False), seed=0), tokens) == {}


def test_the_report_counts_runs_alone_sharing_a_device_and_unrecorded():
    from mhc_mup.training.transfer.report import _sharing_text

    runs = pd.DataFrame({"runs_per_device": [4.0, 1.0, 4.0, math.nan, 4.0]})
    expected = "Runs per device at once: 1 for 1 run, 4 for 3 runs, not recorded for 1 (stored before it was)."
    assert _sharing_text(runs) == expected
    assert _sharing_text(runs.dropna()) == "Runs per device at once: 1 for 1 run, 4 for 3 runs."


def test_the_report_counts_each_device_where_a_folder_mixes_them():
    from mhc_mup.training.transfer.report import _devices_text

    h100, h200 = "cuda:0 (NVIDIA H100 80GB HBM3)", "cuda:0 (NVIDIA H200)"
    assert _devices_text(pd.DataFrame({"device": [h200, h200]})) == h200
    mixed = pd.DataFrame({"device": [h200, h100, h200]})
    assert _devices_text(mixed) == f"{h100} for 1 run, {h200} for 2 runs"


def test_a_legend_interval_caps_its_bounds_at_ten():
    """A two-width fit on a few seeds can give bounds of thousands of octaves: the legend says only how far past
    ±10 they lie."""
    from mhc_mup.training.transfer.figures import _estimate_label

    assert _estimate_label("mup", "β", -0.5, -3.49, 9865.6) == "mup: β -0.50 [-3.49, > +10]"
    assert _estimate_label("mup", "β", 0.011, -12.0, 10.0) == "mup: β +0.01 [< -10, +10.00]"
    assert _estimate_label("mup", "β", math.nan, -1.0, 1.0) == "mup"


def test_drift_sentences_and_tables_cap_an_exponents_bounds_as_the_figures_do():
    """The report's sentences and tables print a bound past ±10 as the figures do; the CSV keeps the number."""
    from mhc_mup.training.transfer.report import _exponent_estimate

    row = {"config": "mup", "tolerance": 0.1, "exponent": -0.628, "ci_low": -1.563, "ci_high": 0.307,
           "n_widths": 2, "verdict": "unclear", "direction": "", "note": "", "joint_exponent": -0.583,
           "joint_low": -3.494, "joint_high": 9865.598, "joint_widths": 2, "joint_verdict": "unclear",
           "joint_direction": "", "joint_note": ""}  # fmt: skip
    assert "(95% interval [-3.494, > +10], joint fit of 2 widths)" in joint_sentence(row)
    assert "(95% interval [-1.563, +0.307], 2 widths)" in drift_sentence(row)
    assert "(95% interval [< -10, +0.307], 2 widths)" in drift_sentence(row | {"ci_low": -12.5})
    assert _exponent_estimate(-0.583, -3.494, 9865.598) == "-0.583 [-3.494, > +10]"


def test_a_panel_title_caps_its_interval_as_the_legend_does():
    from mhc_mup.training.transfer.figures import _panel_title

    result = analyse(TransferConfig(device="cpu"), [])
    result.drift = pd.DataFrame([{"config": "mup", "joint_exponent": -0.58, "joint_low": -3.49, "joint_high": 9865.6,
                                  "joint_verdict": "unclear", "joint_widths": 2}])  # fmt: skip
    result.optima = pd.DataFrame({"config": ["mup"] * 4})
    assert _panel_title(result, "mup").endswith("d^-0.58 [-3.49, > +10]: unclear (2 of 4 widths)")
