"""Learning-rate transfer of any model: each run is the plan's init and optimizer on the given batches, the drift
fit reads a planted η* ∝ d^β correctly, and bad input is one line."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.errors import ConfigError
from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.coordcheck import lm_cross_entropy
from mhc_mup.training.model_transfer import ModelTransferConfig, _drift, run_model_transfer
from mhc_mup.training.plan import WidthRule, width_plan
from tests.helpers import UserLM

LRS = (2.0**-9, 2.0**-7, 2.0**-5, 2.0**-3)


def _batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    tokens = torch.randint(0, 256, (n, 2, 9), generator=torch.Generator().manual_seed(seed))
    return [(t[:, :-1], t[:, 1:]) for t in tokens]


def _models():
    return {d: (lambda d=d: UserLM(d, depth=1, base_d=8)) for d in (8, 16)}


@pytest.fixture(scope="module")
def sweep():
    config = ModelTransferConfig(widths=(8, 16), lrs=LRS, seeds=1, fit=FitSettings(n_boot=20))
    return run_model_transfer(_models(), _batches(3, 0), _batches(2, 1), config)


def test_every_grid_point_is_the_plans_training_run(sweep):
    assert len(sweep.runs) == 2 * 1 * len(LRS) and len(sweep.optima) == 2
    row = sweep.runs.query("width == 16 and lr == @LRS[1]").iloc[0]
    model = UserLM(16, depth=1, base_d=8)
    plan = width_plan(model, UserLM(8, depth=1, base_d=8))
    plan.initialise(model, WidthRule(), torch.Generator().manual_seed(0))
    opt = plan.make_optimizer(model, WidthRule(), "adam", LRS[1])
    for batch in _batches(3, 0):
        loss = lm_cross_entropy(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        expected = float(np.mean([float(lm_cross_entropy(model, b)) for b in _batches(2, 1)]))
    assert row.final_loss == pytest.approx(expected, rel=1e-6) and not row.diverged
    assert set(sweep.drift) >= {"exponent", "ci_low", "ci_high", "verdict"}


@pytest.mark.parametrize(("beta", "verdict"), [(0.0, "transfers"), (-1.0, "drifts")])
def test_the_drift_fit_reads_a_planted_exponent(beta, verdict):
    widths, jitter = (64, 128, 256, 512), (-0.02, 0.0, 0.02)
    optima = pd.DataFrame(
        [(w, s, -6 + beta * math.log2(w / 64) + j, 1.0, "") for w in widths for s, j in enumerate(jitter)],
        columns=["width", "seed", "log2_opt", "loss_opt", "note"],
    )
    config = ModelTransferConfig(widths=widths, lrs=LRS, seeds=3, fit=FitSettings(n_boot=200))
    drift = _drift(optima, config)
    assert drift["exponent"] == pytest.approx(beta, abs=1e-9) and drift["verdict"] == verdict


def test_bad_input_is_one_line_naming_the_value():
    with pytest.raises(ConfigError, match=r"at least 3 distinct ascending learning rates, got \[0.1, 0.01, 0.001\]"):
        ModelTransferConfig(widths=(8, 16), lrs=(0.1, 0.01, 0.001))
    with pytest.raises(ConfigError, match=r"at least 2 distinct widths, got \[8\]"):
        ModelTransferConfig(widths=(8,), lrs=LRS)
    with pytest.raises(ConfigError, match=r"divergence_factor must be a finite number > 1, got 0\.5"):
        ModelTransferConfig(widths=(8, 16), lrs=LRS, divergence_factor=0.5)
    with pytest.raises(ConfigError, match=r"the config's widths \[8, 32\] are not the models' \[8, 16\]"):
        run_model_transfer(_models(), _batches(1, 0), _batches(1, 1), ModelTransferConfig(widths=(8, 32), lrs=LRS))
    with pytest.raises(ConfigError, match="at least one training and one validation batch"):
        run_model_transfer(_models(), [], _batches(1, 1), ModelTransferConfig(widths=(8, 16), lrs=LRS))
