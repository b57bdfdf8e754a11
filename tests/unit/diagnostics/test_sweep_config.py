"""The sweep's configuration: nested frozen parts, the flat ``config`` of results.json, and validation."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch

from mhc_mup.diagnostics.config import SamplingSettings, SweepConfig
from mhc_mup.diagnostics.sweep import run_sweep
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.stats.fitting import FitSettings

# results.json of `mhc-mup run` (defaults) written by the flat-config version (commit 0297a59)
OLD_RESULTS = Path(__file__).parent / "data" / "results_v1_0297a59.json"


def test_to_dict_is_the_flat_config_section_of_results_json():
    old = json.loads(OLD_RESULTS.read_text())["config"]
    assert json.dumps(SweepConfig().to_dict()) == json.dumps(old)  # same keys, same order, same values


def test_from_dict_rebuilds_the_config_written_by_the_flat_version():
    old = json.loads(OLD_RESULTS.read_text())
    cfg = SweepConfig.from_dict(old["config"])
    assert cfg == SweepConfig() and cfg.to_dict() == old["config"]


def test_from_dict_rebuilds_the_numbers_written_by_the_flat_version():
    """Same config, same torch build: the same numbers, to float32 round-off. Another CPU takes other vector paths
    and rounds differently: most summaries move in their sixth digit, the condition numbers of near-singular
    matrices in their fourth, and ε_K, which sits at round-off level (~1e-6), by up to 1.2e-7. A config rebuilt
    wrong (another seed, K, sample count) moves them by far more. (Another torch build may round differently
    still, so the comparison needs the build that wrote the file.)"""
    old = json.loads(OLD_RESULTS.read_text())
    if old["software"]["torch"] != torch.__version__:
        pytest.skip(f"the file was written with torch {old['software']['torch']}, this is {torch.__version__}")
    result = run_sweep(SweepConfig.from_dict(old["config"]))
    for w in result.config.widths:
        for diag, summary in result.summary(w).items():
            for key, value in summary.items():
                if isinstance(value, dict):
                    continue
                tolerance = {"abs": 2e-7} if diag == "sinkhorn_error" else {"rel": 1e-3}
                assert value == pytest.approx(old["results"][str(w)][diag][key], nan_ok=True, **tolerance), (
                    f"d = {w}, {diag}.{key}")
    fit = result.fit("dynamic_sensitivity", "dc_x_mean")
    assert fit.exponent == pytest.approx(old["fits"]["dynamic_sensitivity.dc_x_mean"]["exponent"], rel=1e-6)


def test_from_dict_takes_a_partial_config_and_ignores_unknown_keys():
    cfg = SweepConfig.from_dict({"widths": [8, 16], "K": 5, "update_samples": 3, "n_boot": 7, "future_key": 1})
    assert cfg.widths == (8, 16) and cfg.shape == MHCShape(K=5) and cfg.fit == FitSettings(n_boot=7)
    assert cfg.sampling == SamplingSettings(update_samples=3)


def test_flat_names_go_to_their_part_and_read_back():
    nested = SweepConfig(shape=MHCShape(n_s=8, K=5), sampling=SamplingSettings(state_tokens=3), fit=FitSettings(50))
    flat = SweepConfig(n_s=8, K=5, state_tokens=3, n_boot=50)
    assert nested == flat and hash(nested) == hash(flat)
    assert (flat.n_s, flat.K, flat.hc_eps, flat.norm_eps) == (8, 5, 1e-6, 1e-6)
    assert (flat.n_boot, flat.confidence, flat.state_tokens, flat.quotient_K) == (50, 0.95, 3, (1, 2, 5, 10, 20, 50))
    # a flat name given with its part overrides that part's value, as dataclasses.replace does
    assert SweepConfig(shape=MHCShape(n_s=8, K=5), K=7).shape == MHCShape(n_s=8, K=7)
    assert dataclasses.replace(flat, n_s=6).shape == MHCShape(n_s=6, K=5)
    assert dataclasses.replace(flat, fit=FitSettings(n_boot=9)).n_boot == 9
    assert SweepConfig().fit == FitSettings(n_boot=2000, confidence=0.95)  # the sweep's default, not FitSettings'


def test_the_config_is_frozen_and_pickles():
    cfg = SweepConfig(n_s=8, parameterization=PARAMETERIZATIONS["mup"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_s = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_streams'"):
        SweepConfig(n_streams=4)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SweepConfig(shape=MHCShape(n_s=1)), "n_s must be an integer >= 2, got 1"),
        (lambda: SweepConfig(K=0), "K must be an integer >= 1, got 0"),
        (lambda: SweepConfig(hc_eps=-1e-3), "hc_eps must be a finite number >= 0, got -0.001"),
        (lambda: SweepConfig(norm_eps=float("nan")), "norm_eps must be a finite number >= 0, got nan"),
        (lambda: SamplingSettings(quotient_K=()), "quotient K values must not be empty"),
        (lambda: SweepConfig(quotient_K=(1, 0)), "quotient K must be an integer >= 1, got 0"),
        (lambda: SweepConfig(state_tokens=1), "state tokens must be an integer >= 2, got 1"),
        (lambda: SamplingSettings(update_samples=2.5), "update samples must be an integer >= 2, got 2.5"),
        (lambda: SweepConfig(n_boot=0), "n_boot must be an integer >= 1, got 0"),
        (lambda: SweepConfig(fit=FitSettings(confidence=1.5)), "confidence must lie strictly between 0 and 1, got 1.5"),
        (lambda: SweepConfig(widths=(64,)).validate(), "at least 2 widths"),
        (lambda: SweepConfig(lr=0.0).validate(), "lr must be a positive number, got 0.0"),
        (lambda: SweepConfig(dtype="float16").validate(), "dtype must be one of float32, float64, got 'float16'"),
    ],
)
def test_validation_names_the_bad_value(build, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_validation_passes_a_good_config_through():
    cfg = SweepConfig(widths=(16, 32), n_s=2)
    assert cfg.validate() is cfg
