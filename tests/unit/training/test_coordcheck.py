"""Coordinate checks: mup-compatible data, exponents that recover known scalings, the theory's
separation of the baseline mHC generator from the µP one (the command: tests/cli/test_coordcheck.py)."""

from __future__ import annotations

import numpy as np
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
    fit_exponents,
    module_kind,
    plot_coords,
    run_coord_check,
)
from mhc_mup.training.data import load_corpus


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(max_bytes=2**20)


TINY = CoordCheckConfig(widths=(16, 32), seeds=1, model=ModelShape(depth=1),
                        recipe=TrainingRecipe(steps=2, batch_size=2, seq_len=16),
                        fit=FitSettings(n_boot=50))  # fmt: skip
TINY_LR = CoordCheckConfig().lr


@pytest.fixture(scope="module")
def tiny(corpus):
    return run_coord_check(TINY, corpus)


def test_records_every_module_the_streams_and_the_gate_logits(tiny):
    df = tiny.coords
    assert list(df.columns) == list(COORD_COLUMNS)
    modules = set(df.module)
    for name in ("embed", "blocks.0", "blocks.0.attn", "blocks.0.mlp", "head.logits", "readout", "norm_f"):
        assert name in modules
    for sub in ("attn", "mlp"):
        for gate in ("pre", "post", "comb"):
            assert f"blocks.0.{sub}.hc.{gate}_logits" in modules
        assert f"blocks.0.{sub}.hc:out[2]" in modules  # the comb matrix itself, mup's tuple naming
    assert set(df.t) == {1, 2} and set(df.width) == {16, 32} and set(df.seed) == {0}
    # one row per (width, seed, t, module): each module is called once per forward
    assert not df.duplicated(["width", "seed", "t", "module"]).any()
    assert (df.l2 >= df.l1 - 1e-7).all()  # RMS ≥ mean |x| (Cauchy–Schwarz)
    assert module_kind("blocks.3.mlp.hc.comb_logits") == "comb logits" and module_kind("blocks.0") == "residual stream"


def test_comb_logit_rows_are_the_sinkhorn_inputs(corpus):
    """The recorded comb-logit RMS equals that of gate_logits' Z recomputed from the model at init."""
    from mhc_mup.mhc.ops import gate_logits, hc_mixes
    from mhc_mup.training.model import MHCLM

    cfg = TINY.with_leaves(steps=1)
    result = run_coord_check(cfg, corpus)
    model = MHCLM(cfg.model_config(16), cfg.width_param, seed=0)
    from mhc_mup.training.coordcheck import _batches

    x, _ = _batches(cfg, corpus)[0]
    seen = {}
    model.blocks[0].attn.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    model(x)
    hc = model.blocks[0].attn.hc
    z = gate_logits(hc_mixes(seen["x"], hc.fn), hc.scale, hc.base, 4)[2]
    row = result.coords.query("width == 16 and module == 'blocks.0.attn.hc.comb_logits'")
    assert row.l2.item() == pytest.approx(z.square().mean().sqrt().item(), rel=1e-5)


def test_fit_exponents_recovers_known_scalings():
    widths, rows = (32, 64, 128, 256), []
    for w in widths:
        for seed in range(3):
            noise = 1 + 0.01 * (seed - 1)
            rows += [
                (w, "a", 1, 0.8 * 2.0 * w**0.5 * noise, 2.0 * w**0.5 * noise, "adam", 0.01, seed, "comb logits"),
                (w, "b", 1, 0.8 * 3.0 * noise, 3.0 * noise, "adam", 0.01, seed, "comb logits"),
            ]
    coords = pd.DataFrame(rows, columns=list(COORD_COLUMNS))
    e = fit_exponents(coords, CoordCheckConfig(widths=widths, fit=FitSettings(n_boot=200)))
    get = lambda level, name, metric: e.query(f"level == '{level}' and name == '{name}' and metric == '{metric}'")  # noqa: E731
    assert get("module", "a", "l2").exponent.item() == pytest.approx(0.5, abs=1e-9)
    assert get("module", "b", "l1").exponent.item() == pytest.approx(0.0, abs=1e-9)
    assert get("module", "b", "l2").reading.item() == "O(1)"
    kind = get("kind", "comb logits", "l2")  # geometric mean: the mean of the two exponents
    assert kind.exponent.item() == pytest.approx(0.25, abs=1e-9) and kind.reading.item() == "grows"
    assert (e.ci_low <= e.exponent + 1e-12).all() and (e.exponent <= e.ci_high + 1e-12).all()


def test_mup_plot_coord_data_reads_our_table(tiny, tmp_path):
    """microsoft/mup's own plotting function draws our coord table: same columns as its get_coord_data."""
    mup_cc = pytest.importorskip("mup.coord_check")
    import matplotlib

    matplotlib.use("Agg")
    # the columns mup's get_coord_data writes, from a real call on a toy model
    net = lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))  # noqa: E731
    loader = [(torch.randn(5, 4), torch.randint(0, 3, (5,)))]
    theirs = mup_cc.get_coord_data({8: net}, loader, optimizer="sgd", lr=0.1, mup=False, nsteps=2, cuda=False,
                                   output_fdict={"l1": "l1", "l2": "l2"}, show_progress=False)  # fmt: skip
    assert set(theirs.columns) <= set(tiny.coords.columns)
    assert (tiny.coords.optimizer == "adam").all() and (tiny.coords.lr == TINY_LR).all()
    for col in theirs.columns:
        assert pd.api.types.is_numeric_dtype(theirs[col]) == pd.api.types.is_numeric_dtype(tiny.coords[col]), col
    out = tmp_path / "mup.png"
    fig = mup_cc.plot_coord_data(tiny.coords, y="l2", save_to=str(out), name_contains="logits")
    assert out.stat().st_size > 0 and len(fig.axes) == tiny.coords.t.nunique()


def test_our_figure_has_one_log_log_panel_per_step(tiny):
    fig = plot_coords(tiny)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["t = 1 (init)", "t = 2"]
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
    assert len(axes[0].lines) == tiny.coords.query("t == 1").module.nunique()


def test_control_has_no_mhc_rows(corpus):
    result = run_coord_check(TINY.with_leaves(steps=1, control=True), corpus)
    kinds = set(result.coords.kind)
    assert not kinds & {"comb logits", "pre logits", "post logits"}
    assert not any(".hc" in m or m.startswith("head") for m in result.coords.module)
    assert "residual stream" in kinds


# ── the theory's prediction ─────────────────────────────────────────────────────────────────────
SEPARATION = CoordCheckConfig(widths=(32, 64, 128), seeds=2, model=ModelShape(depth=2),
                              recipe=TrainingRecipe(steps=5, batch_size=8, seq_len=64), lr=1e-2,
                              fit=FitSettings(n_boot=200))  # fmt: skip


@pytest.fixture(scope="module")
def separation(corpus):
    return {
        name: run_coord_check(SEPARATION.with_leaves(hc_param=PARAMETERIZATIONS[name]), corpus)
        for name in ("baseline", "mup")
    }


def test_coord_check_separates_baseline_from_mup(separation):
    """Comb logits Z = s_C·(fn·x̂) + b, with x̂ the RMS-normalised state (‖x̂‖ = √(n_s·d)), Adam, η = 1e-2,
    the rest of the model µP in both runs.

    At init fn is independent of x̂, so Z's RMS is s·σ_W·√(n_s·d): d^+1/2 under baseline (σ_W = 0.02) and
    d^-1/2 under mup (σ_W = 1/(n_s·d)). We require each init exponent within 0.15 of ±1/2 (two seeds'
    noise on three widths is a few hundredths). Training then adds fn's update: under baseline at LR η,
    growing with width faster than the init term, so the exponent must *rise* by more than 0.15 and end
    above +0.65 (halfway from the init's 1/2 to the aligned-update limit 1, less a margin; we measure
    about +0.8). Under mup the fn LR is η/d: the comb logits must never grow (every exponent below +0.1),
    and the last step's gap to baseline must exceed 1.0 (we measure about 1.3: the comb logits start
    from an exactly symmetric state, n_s copies of the embedding, so their update is slow to align and
    under mup they keep decaying over these 5 steps rather than turning flat; see the README).
    """
    comb = {
        name: [r.exponent("comb logits", t).exponent for t in range(1, SEPARATION.recipe.steps + 1)]
        for name, r in separation.items()
    }
    base, mup = comb["baseline"], comb["mup"]
    assert base[0] == pytest.approx(0.5, abs=0.15) and mup[0] == pytest.approx(-0.5, abs=0.15), comb
    assert base[-1] > 0.65 and base[-1] > base[0] + 0.15, comb
    assert max(mup) < 0.1, comb
    assert base[-1] - mup[-1] > 1.0, comb
    final = separation["baseline"].exponent("comb logits", SEPARATION.recipe.steps)
    assert final.reading == "grows", final  # its interval is wide: 3 widths leave the regression 1 dof


def test_mup_body_stays_flat_under_both_generators(separation):
    """With the model's body in µP, the residual streams, attention and MLP outputs keep their size (|α| < 0.15
    at every step), whichever mHC generator rule is used: the generator affects only the gates."""
    for name, r in separation.items():
        for kind in ("residual stream", "attention", "MLP", "embedding"):
            for t in range(1, SEPARATION.recipe.steps + 1):
                assert abs(r.exponent(kind, t).exponent) < 0.15, (name, kind, t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: bf16 autocast branches, fp32 mHC")
def test_cuda_coord_check_matches_cpu_at_init(corpus):
    """On CUDA the branches run in bf16 and the mHC math in fp32: at init (t=1) every module's size agrees
    with the fp32 CPU run to bf16 accuracy, and the comb logits (fp32 math on bf16-fed streams) closely."""
    cfg = TINY.with_leaves(steps=2)
    cpu = run_coord_check(cfg, corpus).coords
    gpu = run_coord_check(cfg.with_leaves(device="cuda"), corpus).coords
    merged = cpu.merge(gpu, on=["width", "module", "t", "seed"], suffixes=("_cpu", "_gpu"))
    assert len(merged) == len(cpu) == len(gpu)
    init = merged[merged.t == 1]
    np.testing.assert_allclose(init.l2_gpu, init.l2_cpu, rtol=0.05, atol=1e-4)
    assert np.isfinite(merged.l2_gpu).all()


def test_the_configuration_nests_the_shared_parts_and_checks_them():
    """The model's shape and the training recipe are the ones transfer uses; each part checks its values, the
    whole checks how they fit together."""
    cfg = CoordCheckConfig()
    assert (cfg.recipe.steps, cfg.recipe.batch_size, cfg.recipe.seq_len, cfg.recipe.optimizer) == (5, 8, 64, "adam")
    assert (cfg.steps, cfg.n_s, cfg.n_boot) == (5, 4, 1000)  # the flat view of the leaves
    model = cfg.with_leaves(n_s=3, K=7, hc_eps=1e-5, control=True).model_config(64)
    assert (model.d, model.n_s, model.K, model.hc_eps, model.hc) == (64, 3, 7, 1e-5, False)
    with pytest.raises(ConfigError, match="at least 2 distinct widths"):
        CoordCheckConfig(widths=(16, 16))
    with pytest.raises(ConfigError, match="batch_size must be >= 1, got 0"):
        cfg.with_leaves(batch_size=0)
    with pytest.raises(ConfigError, match="width 30 must be a positive multiple of heads=4"):
        cfg.with_leaves(widths=(16, 30)).validate()
    with pytest.raises(ValueError, match="CoordCheckConfig has no setting warmup"):
        cfg.with_leaves(warmup=0.1)
