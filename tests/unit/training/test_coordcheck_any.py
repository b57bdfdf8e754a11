"""The coordinate check of any model: on a user model equivalent to MHCLM it reproduces our own coordinate check
number for number; on the README's nanoGPT-style example it separates the baseline mHC generator from the µP one
as ours does; it writes the same mup-compatible table; bad input is one line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from mhc_mup.errors import ConfigError
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
from mhc_mup.stats.fitting import FitSettings
from mhc_mup.training.config import ModelShape, TrainingRecipe
from mhc_mup.training.coordcheck import (
    COORD_COLUMNS,
    CoordCheckConfig,
    ModelCoordCheckConfig,
    coord_check,
    run_coord_check,
    write_coord_check,
)
from mhc_mup.training.data import load_corpus, sample_batch
from mhc_mup.training.plan import WidthRule
from tests.helpers import UserLM

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(max_bytes=2**20)


def _batches(corpus, steps: int, batch_size: int, seq_len: int, seed: int = 0):
    """The batches run_coord_check draws for a recipe with ``data_seed=seed``."""
    gen = torch.Generator().manual_seed(seed)
    return [sample_batch(corpus.train, batch_size, seq_len, gen) for _ in range(steps)]


def test_a_user_model_equivalent_to_mhclm_reproduces_our_coord_check(corpus):
    """Same draws, same batches, same optimizer groups: the same losses and the same gate-logit sizes, exactly."""
    recipe = TrainingRecipe(steps=3, batch_size=2, seq_len=16)
    ours = CoordCheckConfig(
        widths=(16, 32), seeds=2, model=ModelShape(depth=1), recipe=recipe, fit=FitSettings(n_boot=50)
    )
    reference = run_coord_check(ours, corpus)
    config = ModelCoordCheckConfig(widths=(16, 32), seeds=2, lr=ours.lr, rule=WidthRule("mup", ours.hc_param),
                                   fit=FitSettings(n_boot=50))  # fmt: skip
    models = {d: (lambda d=d: UserLM(d, depth=1, base_d=16)) for d in (16, 32)}
    result = coord_check(models, _batches(corpus, 3, 2, 16), config)
    pd.testing.assert_frame_equal(result.losses, reference.losses, check_exact=True)
    names = {"layers.0.0.hc": "blocks.0.attn.hc", "layers.0.1.hc": "blocks.0.mlp.hc", "collapse": "head",
             "wte": "embed", "lm_head": "readout"}  # fmt: skip
    mine = result.coords.assign(module=result.coords.module.replace(names, regex=True))
    merged = reference.coords.merge(mine, on=["width", "module", "t", "seed"], suffixes=("", "_any"))
    gates = merged[merged.kind.str.endswith("logits") | merged.module.isin(["embed", "readout"])]
    assert len(gates) == 2 * 2 * 3 * (2 * 3 + 1 + 2)  # widths × seeds × steps × (gate taps + head + embed, readout)
    assert (gates.l1 == gates.l1_any).all() and (gates.l2 == gates.l2_any).all()
    assert (gates.kind == gates.kind_any)[gates.module != "readout"].all()  # any model: its output is "output logits"
    for kind in ("comb logits", "pre logits", "post logits"):
        for t in (1, 3):
            assert result.exponent(kind, t).exponent == pytest.approx(reference.exponent(kind, t).exponent, abs=1e-9)


def _example_gpt():
    """The model classes of docs/your-model.md's ``# example: your own model`` block, as written there."""
    text = (ROOT / "docs" / "your-model.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(# example: your own model\n.*?)```", text, flags=re.S).group(1)
    namespace: dict = {"__name__": "example"}
    exec(compile(block.split("# 1. the width plan")[0], "docs/your-model.md", "exec"), namespace)
    return namespace["GPT"]


@pytest.fixture(scope="module")
def separation(corpus):
    """The example's GPT, widths 32–128, 2 seeds, 5 Adam steps of 8×64 bytes at η = 1e-2 (our SEPARATION check)."""
    gpt = _example_gpt()
    batches = _batches(corpus, 5, 8, 64)
    models = {d: (lambda d=d: gpt(d)) for d in (32, 64, 128)}
    return {
        name: coord_check(models, batches, ModelCoordCheckConfig(
            widths=(32, 64, 128), seeds=2, lr=1e-2, rule=WidthRule("mup", PARAMETERIZATIONS[name]),
            fit=FitSettings(n_boot=200)))
        for name in ("baseline", "mup")
    }  # fmt: skip


@pytest.mark.slow
def test_the_example_separates_the_baseline_generator_from_mup(separation):
    """As tests/unit/training/test_coordcheck.py's check of MHCLM (the reasons for each bound are there): the comb
    logits start at d^+1/2 (baseline, σ_W = 0.02) and d^-1/2 (mup, σ_W = 1/(n_s·d)); under baseline they rise once
    training starts, under mup (fn's LR η/d) they never grow, and the gap at the last step exceeds 1."""
    comb = {name: [r.exponent("comb logits", t).exponent for t in range(1, 6)] for name, r in separation.items()}
    base, mup = comb["baseline"], comb["mup"]
    assert base[0] == pytest.approx(0.5, abs=0.15) and mup[0] == pytest.approx(-0.5, abs=0.15), comb
    assert base[-1] > 0.65 and base[-1] > base[0] + 0.15, comb
    assert max(mup) < 0.1, comb
    assert base[-1] - mup[-1] > 1.0, comb


@pytest.mark.slow
def test_the_examples_mup_body_stays_flat(separation):
    for name, r in separation.items():
        for kind in ("residual stream", "attention", "MLP", "embedding"):
            for t in range(1, 6):
                assert abs(r.exponent(kind, t).exponent) < 0.15, (name, kind, t)


def test_any_models_table_figure_and_files(corpus, tmp_path):
    models = {d: (lambda d=d: UserLM(d, depth=1, base_d=8)) for d in (8, 16)}
    result = coord_check(
        models, _batches(corpus, 2, 2, 8), ModelCoordCheckConfig(widths=(8, 16), fit=FitSettings(n_boot=20))
    )
    assert list(result.coords.columns) == list(COORD_COLUMNS)
    assert {"comb logits", "pre logits", "post logits", "residual stream", "embedding", "output logits"} <= set(
        result.coords.kind
    )
    written = write_coord_check(result, tmp_path)
    assert sorted(p.name for p in written) == ["coord.csv", "coord.png", "exponents.csv"]
    assert "your model; body mup, mHC generator mup" in result.config.describe()


def test_bad_input_is_one_line_naming_the_value(corpus):
    models = {d: (lambda d=d: UserLM(d, depth=1, base_d=8)) for d in (8, 16)}
    batches = _batches(corpus, 1, 2, 8)
    with pytest.raises(ConfigError, match=r"at least 2 distinct widths, got \[8\]"):
        ModelCoordCheckConfig(widths=(8,))
    with pytest.raises(ConfigError, match="optimizer must be one of adam, adamw, sgd, got 'lion'"):
        ModelCoordCheckConfig(widths=(8, 16), optimizer="lion")
    with pytest.raises(ConfigError, match=r"base width 12 is not one of the widths \[8, 16\]"):
        ModelCoordCheckConfig(widths=(8, 16), base_width=12)
    with pytest.raises(ConfigError, match=r"the config's widths \[8, 32\] are not the models' \[8, 16\]"):
        coord_check(models, batches, ModelCoordCheckConfig(widths=(8, 32)))
    with pytest.raises(ConfigError, match="at least one batch"):
        coord_check(models, [], ModelCoordCheckConfig(widths=(8, 16)))
