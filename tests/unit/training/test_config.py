"""The configuration both training experiments share: the model's shape, the training recipe, and the
flat view of a nested configuration (its leaves by name) that derives a sweep's identity and sets flags."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass, field

import pytest

from mhc_mup._nested import LEAF, FlatView, flat_fields, replace_leaves
from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS, Parameterization
from mhc_mup.mhc.presets import MHCShape
from mhc_mup.training.config import ModelShape, TrainingRecipe


@dataclass(frozen=True)
class Outer(FlatView):
    shape: ModelShape = field(default_factory=ModelShape)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    param: Parameterization = field(default_factory=lambda: PARAMETERIZATIONS["mup"], metadata=LEAF)
    lr: float = 0.1


def test_flat_fields_lists_every_leaf_in_field_order_and_keeps_leaf_dataclasses_whole():
    flat = flat_fields(Outer())
    assert list(flat) == ["depth", "heads", "n_s", "K", "hc_eps", "norm_eps", "qk_norm", "steps", "batch_size",
                          "seq_len", "optimizer", "data_seed", "param", "lr"]  # fmt: skip
    assert flat["param"] is PARAMETERIZATIONS["mup"] and flat["n_s"] == 4 and flat["steps"] == 200


def test_flat_fields_refuses_a_name_that_appears_twice():
    @dataclass(frozen=True)
    class Clash:
        recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
        steps: int = 3

    with pytest.raises(ValueError, match=r"field name\(s\) \['steps'\] appear twice"):
        flat_fields(Clash())


def test_replace_leaves_rebuilds_only_the_parts_that_change():
    cfg = Outer()
    new = replace_leaves(cfg, {"K": 7, "lr": 0.5, "param": PARAMETERIZATIONS["baseline"]})
    assert (new.shape.mhc.K, new.lr, new.param.name) == (7, 0.5, "baseline")
    assert new.shape.mhc.n_s == 4 and new.recipe is cfg.recipe and cfg.shape.mhc.K == 20
    assert replace_leaves(cfg, {}) is cfg and cfg.with_leaves(steps=9).recipe.steps == 9
    with pytest.raises(ConfigError, match="K must be an integer >= 1, got 0"):
        replace_leaves(cfg, {"K": 0})  # the rebuilt part checks itself
    with pytest.raises(ValueError, match="Outer has no setting nope"):
        replace_leaves(cfg, {"nope": 1})


def test_the_flat_view_reads_leaves_and_nothing_else():
    cfg = Outer()
    assert (cfg.steps, cfg.n_s, cfg.heads) == (200, 4, 4)
    with pytest.raises(AttributeError, match="'Outer' object has no attribute 'nope'"):
        _ = cfg.nope
    assert pickle.loads(pickle.dumps(cfg)) == cfg and copy.deepcopy(cfg) == cfg


def test_model_shape_builds_the_model_config_and_checks_widths():
    shape = ModelShape(depth=3, heads=2, mhc=MHCShape(n_s=3, K=5, hc_eps=1e-5, norm_eps=1e-4))
    model = shape.model_config(16, hc=False, stream_dtype="bfloat16")
    assert (model.d, model.depth, model.heads, model.n_s, model.K) == (16, 3, 2, 3, 5)
    assert (model.hc_eps, model.norm_eps, model.hc, model.stream_dtype) == (1e-5, 1e-4, False, "bfloat16")
    shape.check_widths([2, 8, 16])
    for bad in (0, 7, True):
        with pytest.raises(ConfigError, match=f"width {bad} must be a positive multiple of heads=2"):
            shape.check_widths([8, bad])
    with pytest.raises(ConfigError, match="depth must be >= 1, got 0"):
        ModelShape(depth=0)


def test_training_recipe_checks_its_values():
    assert TrainingRecipe(steps=1, batch_size=1, seq_len=1, optimizer="sgd").optimizer == "sgd"
    bad = [
        ({"seq_len": 0}, "seq_len must be >= 1, got 0"),
        ({"data_seed": -1}, "data_seed must be >= 0, got -1"),
        ({"steps": 2.5}, "steps must be >= 1, got 2.5"),
    ]
    for changes, message in bad:
        with pytest.raises(ConfigError, match=message):
            TrainingRecipe(**changes)
