"""Which device a command runs on, and how a run record names it."""

from __future__ import annotations

import pytest
import torch

from mhc_mup._device import device_label, resolve_device
from mhc_mup.errors import ConfigError


def test_a_run_record_names_the_gpu_by_its_model(monkeypatch: pytest.MonkeyPatch):
    """``cuda:0 (NVIDIA H200)`` where CUDA is here: the cost estimate reads the model back from it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: f"GPU of {dev}")
    assert device_label(torch.device("cuda:1")) == "cuda:1 (GPU of cuda:1)"
    assert device_label(torch.device("cpu")) == "cpu"


def test_a_cuda_device_planned_for_without_cuda_here_is_named_alone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_label(resolve_device("cuda", absent_ok=True)) == "cuda"
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="unsupported device 'meta'"):
        resolve_device("meta")
