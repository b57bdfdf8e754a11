"""Shared fixtures: the seed's runnable script as an oracle, and fp64 defaults for exact checks."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

# Without a GPU, Triton's interpreter runs the fused kernels on the CPU (tests/test_fused.py). Triton reads
# this when its kernels are defined, so it is set before any test module imports mhc_mup.kernels.triton_kernels.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "mhc_diagnostics_reference.py"


@pytest.fixture(scope="session")
def reference():
    """The seed's script (``../shared/seeds/mhc_diagnostics_reference.py``) imported as a module."""
    if not REFERENCE.exists():
        pytest.skip(f"seed reference script not found at {REFERENCE} (it lives in the project's shared/ folder)")
    spec = importlib.util.spec_from_file_location("mhc_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
