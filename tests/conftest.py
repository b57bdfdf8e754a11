"""Shared fixtures: the seed's runnable script as an oracle, a seeded generator, and small text corpora."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Without a GPU, Triton's interpreter runs the fused kernels on the CPU (tests/unit/kernels/test_fused.py).
# Triton reads this when its kernels are defined, so it is set before any test module imports
# mhc_mup.kernels.triton_kernels (with pytest-xdist every worker imports this file first, so each worker has it).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist (.ci/run: -n 2) each worker takes its share of the cores for torch's intra-op threads, as
# the transfer sweep's pool workers do: two workers of two threads each on two cores would contend.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))

# The commands draw their report's figures in-process in the tests: a run or compare per test would otherwise
# start two figure workers each. tests/unit/reporting/test_figure_pool.py and tests/cli/test_figure_workers.py
# test the workers themselves.
os.environ.setdefault("MHC_MUP_FIGURE_WORKERS", "0")

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


@pytest.fixture(scope="session")
def small_corpus_file(tmp_path_factory) -> Path:
    """One text file of 20,000 words drawn (seed 0) from a small code-like vocabulary."""
    path = tmp_path_factory.mktemp("corpus_file") / "text.txt"
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "def", "return", "(x)", "\n"]
    path.write_text(" ".join(rng.choice(words, 20000)))
    return path


@pytest.fixture(scope="session")
def small_corpus_folder(tmp_path_factory) -> Path:
    """A folder of six text files, 300 words each, drawn (seed 0) from four words."""
    folder = tmp_path_factory.mktemp("corpus_folder")
    rng = np.random.default_rng(0)
    for i in range(6):
        (folder / f"f{i}.txt").write_text(" ".join(rng.choice(["alpha", "beta", "gamma", "delta"], 300)))
    return folder
