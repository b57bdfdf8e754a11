"""Transfer sweeps on the parallel backends give the serial results: a spawn process pool on the CPU, runs taking
turns in one thread, Ray (when installed), and CUDA (one run per GPU or several sharing it, bf16 autocast, the
fused kernels)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.training.transfer import (
    BUILTIN_CONFIGS,
    executors,
    run_transfer,
)
from mhc_mup.training.transfer.executors import RunClock
from mhc_mup.training.transfer.store import RunStore, load_records, write_sweep_file
from tests.helpers import read_run, run_files
from tests.helpers import tiny_transfer_config as tiny_cfg


@pytest.fixture(scope="module")
def serial_runs(small_corpus_file, tmp_path_factory) -> pd.DataFrame:
    return run_transfer(tiny_cfg(small_corpus_file), tmp_path_factory.mktemp("serial")).runs


@pytest.fixture(scope="module")
def serial(serial_runs) -> pd.Series:
    return _losses(serial_runs)


def _losses(runs: pd.DataFrame) -> pd.Series:
    return runs.set_index(["config", "width", "seed", "lr"]).final_val_loss.sort_index()


def test_serial_runs_record_that_they_ran_alone(serial_runs):
    assert (serial_runs.runs_per_device == 1).all()


def test_process_pool_gives_the_serial_results(small_corpus_file, tmp_path, serial):
    """... and each run records that its device held 2 runs at once."""
    pooled = run_transfer(tiny_cfg(small_corpus_file), tmp_path / "pool", workers=2).runs
    pd.testing.assert_series_equal(_losses(pooled), serial, rtol=1e-5)
    assert (pooled.runs_per_device == 2).all()


def _in_turns(cfg, out, slots):
    """``cfg``'s grid run by :func:`executors._run_in_turns` with ``slots`` runs at once on the CPU: (runs left,
    the stored records)."""
    out.mkdir()
    write_sweep_file(cfg, out)
    specs = [cfg.run_spec(k) for k in cfg.runs()]
    left = executors._run_in_turns(specs, "cpu", slots, RunStore(out, 0, len(specs), None), RunClock(math.inf))
    return left, load_records(cfg, out)


def test_runs_taking_turns_give_the_serial_results(small_corpus_file, tmp_path, serial):
    left, records = _in_turns(tiny_cfg(small_corpus_file), tmp_path / "turns", slots=3)
    got = pd.Series({(r["config"], r["width"], r["seed"], r["lr"]): r["final_val_loss"] for r in records})
    assert left == 0 and len(got) == len(serial) and {r["runs_per_device"] for r in records} == {3}
    pd.testing.assert_series_equal(got.sort_index(), serial, rtol=1e-5, check_names=False)


def test_a_failed_run_stops_the_runs_taking_turns_and_releases_their_claims(small_corpus_file, tmp_path, monkeypatch):
    real, started = executors.run_stages, []

    def second_fails(spec, device):
        started.append(spec.key)
        stages = real(spec, device)
        if len(started) == 2:
            yield
            raise RuntimeError("CUDA out of memory")
        return (yield from stages)

    monkeypatch.setattr(executors, "run_stages", second_fails)
    cfg = tiny_cfg(small_corpus_file)
    with pytest.raises(RuntimeError, match="out of memory"):
        _in_turns(cfg, tmp_path / "turns", slots=2)
    assert len(started) == 2 and not list((tmp_path / "turns").rglob("*.claim"))
    assert [p.name for p in (tmp_path / "turns").rglob("*.json")] == ["sweep.json"]  # neither run finished


def test_ray_backend_gives_the_local_results(small_corpus_file, tmp_path, serial):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_transfer(tiny_cfg(small_corpus_file), tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    pd.testing.assert_series_equal(_losses(result.runs), serial, rtol=1e-5)
    assert len(run_files(tmp_path / "ray")) == len(serial)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: one run per GPU, bf16 autocast")
def test_cuda_sweep_runs_one_run_per_gpu_and_records_the_device(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, device="auto", configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]))
    result = run_transfer(cfg, tmp_path / "gpu")
    assert len(result.runs) == len(cfg.runs()) and result.runs.device.str.startswith("cuda:").all()
    assert np.isfinite(result.runs.final_val_loss).all() and (result.runs.tokens_per_s > 0).all()
    rec = read_run(run_files(tmp_path / "gpu")[0])
    assert rec["settings"]["precision"] == "bf16-autocast"
    kernels = dict(zip(result.runs.config, result.runs.mhc_kernels, strict=True))
    assert kernels == {"mup": "triton", "control-mup": "none"}  # CUDA runs take the fused kernels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the fused kernels on bf16 streams")
def test_cuda_sweep_on_bf16_streams_through_the_fused_kernels(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, device="cuda", configs=(BUILTIN_CONFIGS["mup"],), stream_dtype="bfloat16",
                   kernels="triton", steps=20)  # fmt: skip
    result = run_transfer(cfg, tmp_path / "gpu")
    assert (result.runs.mhc_kernels == "triton").all() and np.isfinite(result.runs.final_val_loss).all()
    assert (result.runs.final_val_loss < result.runs.initial_loss).any()  # it trains
    rec = read_run(run_files(tmp_path / "gpu")[0])
    assert rec["settings"]["stream_dtype"] == "bfloat16" and rec["settings"]["kernels"] == "triton"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: runs sharing it on their own streams")
def test_runs_sharing_a_gpu_give_the_one_at_a_time_results(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, device="cuda", configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]),
                   stream_dtype="bfloat16", steps=30)  # fmt: skip
    alone = run_transfer(cfg, tmp_path / "alone").runs
    shared = run_transfer(cfg, tmp_path / "shared", runs_per_gpu=3).runs
    pd.testing.assert_series_equal(_losses(shared), _losses(alone), rtol=1e-5)
    assert (shared.runs_per_device == 3).all() and (alone.runs_per_device == 1).all()
    steps = {read_run(f)["step"] for f in tmp_path.glob("*/runs/*/*/*/*.json.gz")}
    assert steps == {"cuda-graph"}  # every run of both sweeps captured its step


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: runs sharing it at a sweep's shapes")
def test_runs_sharing_a_gpu_at_a_sweeps_shapes_stay_finite_and_match_one_at_a_time(small_corpus_file, tmp_path,
                                                                                  capsys):  # fmt: skip
    """Issue 20's d = 1024 runs, shortened to 100 steps: 4 heads, 32 × 256 bytes a step, 4 runs sharing the GPU,
    against the same runs one at a time. When every run captured its step on PyTorch's one capture stream, the
    runs shared that stream's cuBLAS workspace and, sharing the GPU at this shape, went NaN within 80 steps or
    hung (torch 2.11, H100), where one at a time they trained."""
    cfg = tiny_cfg(small_corpus_file, device="cuda", configs=(BUILTIN_CONFIGS["mup"],), widths=(1024,), depth=2,
                   heads=4, lrs=tuple(2.0**k for k in range(-10, -6)), steps=100, batch_size=32, seq_len=256,
                   eval_every=0, eval_batches=2, base_d=128, stream_dtype="bfloat16")  # fmt: skip
    alone = _losses(run_transfer(cfg, tmp_path / "alone").runs)
    shared = _losses(run_transfer(cfg, tmp_path / "shared", runs_per_gpu=4).runs)
    with capsys.disabled():
        print(f"\nd=1024, 100 steps: one at a time {alone.round(4).tolist()}, sharing {shared.round(4).tolist()}")
    assert np.isfinite(alone).all() and np.isfinite(shared).all()
    pd.testing.assert_series_equal(shared, alone, rtol=1e-2)
