"""Transfer sweeps on the parallel backends give the serial results: a spawn process pool on the CPU, Ray
(when installed), and CUDA (one run per GPU, bf16 autocast, the fused kernels)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.training.transfer import (
    BUILTIN_CONFIGS,
    run_transfer,
)
from tests.helpers import tiny_transfer_config as tiny_cfg


def _losses(result) -> pd.Series:
    return result.runs.set_index(["config", "width", "seed", "lr"]).final_val_loss.sort_index()


@pytest.fixture(scope="module")
def serial(small_corpus_file, tmp_path_factory):
    return _losses(run_transfer(tiny_cfg(small_corpus_file), tmp_path_factory.mktemp("serial")))


def test_process_pool_gives_the_serial_results(small_corpus_file, tmp_path, serial):
    pooled = run_transfer(tiny_cfg(small_corpus_file), tmp_path / "pool", workers=2)
    pd.testing.assert_series_equal(_losses(pooled), serial, rtol=1e-5)


def test_ray_backend_gives_the_local_results(small_corpus_file, tmp_path, serial):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_transfer(tiny_cfg(small_corpus_file), tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    pd.testing.assert_series_equal(_losses(result), serial, rtol=1e-5)
    assert len(sorted((tmp_path / "ray" / "runs").rglob("*.json"))) == len(serial)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: one run per GPU, bf16 autocast")
def test_cuda_sweep_runs_one_run_per_gpu_and_records_the_device(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, device="auto", configs=(BUILTIN_CONFIGS["mup"], BUILTIN_CONFIGS["control-mup"]))
    result = run_transfer(cfg, tmp_path / "gpu")
    assert len(result.runs) == len(cfg.runs()) and result.runs.device.str.startswith("cuda:").all()
    assert np.isfinite(result.runs.final_val_loss).all() and (result.runs.tokens_per_s > 0).all()
    rec = json.loads(next((tmp_path / "gpu/runs").rglob("*.json")).read_text())
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
    rec = json.loads(next((tmp_path / "gpu/runs").rglob("*.json")).read_text())
    assert rec["settings"]["stream_dtype"] == "bfloat16" and rec["settings"]["kernels"] == "triton"
