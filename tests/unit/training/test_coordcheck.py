"""Coordinate checks: mup-compatible data, exponents that recover known scalings, the theory's
separation of the baseline mHC generator from the µP one, and the ``coordcheck`` command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.cli import main
from mhc_mup.mhc.parameterizations import PARAMETERIZATIONS
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


TINY = dict(widths=(16, 32), steps=2, seeds=1, depth=1, batch_size=2, seq_len=16, n_boot=50)
TINY_LR = CoordCheckConfig().lr


@pytest.fixture(scope="module")
def tiny(corpus):
    return run_coord_check(CoordCheckConfig(**TINY), corpus)


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

    cfg = CoordCheckConfig(**{**TINY, "steps": 1})
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
    e = fit_exponents(coords, CoordCheckConfig(widths=widths, n_boot=200))
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
    result = run_coord_check(CoordCheckConfig(**{**TINY, "steps": 1}, control=True), corpus)
    kinds = set(result.coords.kind)
    assert not kinds & {"comb logits", "pre logits", "post logits"}
    assert not any(".hc" in m or m.startswith("head") for m in result.coords.module)
    assert "residual stream" in kinds


# ── the theory's prediction ─────────────────────────────────────────────────────────────────────
SEPARATION = dict(widths=(32, 64, 128), steps=5, seeds=2, depth=2, batch_size=8, seq_len=64, lr=1e-2, n_boot=200)


@pytest.fixture(scope="module")
def separation(corpus):
    return {
        name: run_coord_check(CoordCheckConfig(**SEPARATION, hc_param=PARAMETERIZATIONS[name]), corpus)
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
        name: [r.exponent("comb logits", t).exponent for t in range(1, SEPARATION["steps"] + 1)]
        for name, r in separation.items()
    }
    base, mup = comb["baseline"], comb["mup"]
    assert base[0] == pytest.approx(0.5, abs=0.15) and mup[0] == pytest.approx(-0.5, abs=0.15), comb
    assert base[-1] > 0.65 and base[-1] > base[0] + 0.15, comb
    assert max(mup) < 0.1, comb
    assert base[-1] - mup[-1] > 1.0, comb
    final = separation["baseline"].exponent("comb logits", SEPARATION["steps"])
    assert final.reading == "grows", final  # its interval is wide: 3 widths leave the regression 1 dof


def test_mup_body_stays_flat_under_both_generators(separation):
    """With the model's body in µP, the residual streams, attention and MLP outputs keep their size (|α| < 0.15
    at every step), whichever mHC generator rule is used: the generator affects only the gates."""
    for name, r in separation.items():
        for kind in ("residual stream", "attention", "MLP", "embedding"):
            for t in range(1, SEPARATION["steps"] + 1):
                assert abs(r.exponent(kind, t).exponent) < 0.15, (name, kind, t)


# ── the command ─────────────────────────────────────────────────────────────────────────────────
FAST = ["--widths", "16,32", "--steps", "2", "--seeds", "1", "--depth", "1", "--batch-size", "2",
        "--seq-len", "16", "--bootstrap", "20"]  # fmt: skip


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(6):
        (folder / f"f{i}.txt").write_text(" ".join(rng.choice(["alpha", "beta", "gamma", "delta"], 300)))
    return folder


def test_cli_writes_the_three_files(small_corpus, tmp_path, capsys):
    out = tmp_path / "cc"
    assert main(["coordcheck", *FAST, "--corpus", str(small_corpus), "--param", "baseline", "--sp",
                 "--out", str(out)]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["coord.csv", "coord.png", "exponents.csv"]
    coords = pd.read_csv(out / "coord.csv")
    assert list(coords.columns) == list(COORD_COLUMNS) and set(coords.width) == {16, 32}
    exps = pd.read_csv(out / "exponents.csv")
    assert {"comb logits", "residual stream"} <= set(exps.query("level == 'kind'").name)
    assert (out / "coord.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = " ".join(capsys.readouterr().out.split())  # tables wrap long titles
    assert "comb logits" in printed and "model sp, mHC generator baseline" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "/no/such/corpus"], "corpus '/no/such/corpus' does not exist"),
        (["--corpus", "EMPTY_DIR"], "has no text files"),
        (["--corpus", "EMPTY_FILE"], "is empty"),
        (["--widths", "16,30"], "width 30 must be a positive multiple of heads=4"),
        (["--widths", "16"], "at least 2 distinct widths"),
        (["--lr", "-1"], "lr must be a positive finite number, got '-1'"),
        (["--param", "nope"], "unknown parameterization 'nope'"),
        (["--model-param", "xp"], "invalid choice: 'xp'"),
        (["--sp", "--mup"], "not allowed with argument"),
        (["--seq-len", "20000"], "needs at least 20001"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(args, message, small_corpus, tmp_path, capsys):
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    (tmp_path / "empty.txt").write_text("")
    args = [{"EMPTY_DIR": str(empty_dir), "EMPTY_FILE": str(tmp_path / "empty.txt")}.get(a, a) for a in args]
    if "--corpus" not in args:
        args += ["--corpus", str(small_corpus)]
    out = tmp_path / "out"
    assert main(["coordcheck", *FAST, *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: bf16 autocast branches, fp32 mHC")
def test_cuda_coord_check_matches_cpu_at_init(corpus):
    """On CUDA the branches run in bf16 and the mHC math in fp32: at init (t=1) every module's size agrees
    with the fp32 CPU run to bf16 accuracy, and the comb logits (fp32 math on bf16-fed streams) closely."""
    cfg = CoordCheckConfig(**{**TINY, "steps": 2})
    cpu = run_coord_check(cfg, corpus).coords
    gpu = run_coord_check(CoordCheckConfig(**{**TINY, "steps": 2}, device="cuda"), corpus).coords
    merged = cpu.merge(gpu, on=["width", "module", "t", "seed"], suffixes=("_cpu", "_gpu"))
    assert len(merged) == len(cpu) == len(gpu)
    init = merged[merged.t == 1]
    np.testing.assert_allclose(init.l2_gpu, init.l2_cpu, rtol=0.05, atol=1e-4)
    assert np.isfinite(merged.l2_gpu).all()
