"""The noise table: standard errors from the validation batches (closed forms), the seeds' noise as the joint fit
measures it, and the per-batch losses a run stores (their mean is the run's loss)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mhc_mup.training.transfer import NOISE_COLUMNS, log2_key, run_transfer
from mhc_mup.training.transfer.analysis import runs_table
from mhc_mup.training.transfer.joint import seed_noise, width_curves
from mhc_mup.training.transfer.noise import batch_se, noise_table, paired_batch_se
from tests.helpers import read_run, run_files
from tests.helpers import tiny_transfer_config as tiny_cfg


def test_batch_se_is_the_sample_sd_over_root_n():
    assert batch_se(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(batch_se(np.array([1.0])))


def test_paired_se_removes_what_the_batches_share():
    shared = np.array([2.0, 3.5, 1.0, 4.0, 2.5])  # the batches' own difficulty, common to both runs
    assert paired_batch_se(shared + 0.1, shared) == pytest.approx(0.0, abs=1e-12)
    assert paired_batch_se(shared + np.array([0.1, -0.1, 0.1, -0.1, 0.0]), shared) == pytest.approx(
        np.std([0.1, -0.1, 0.1, -0.1, 0.0], ddof=1) / math.sqrt(5)
    )
    assert batch_se(shared) > 0.5  # unpaired, the batches' spread dominates


def test_the_seeds_noise_stays_near_the_argmin_where_it_is_at_the_grids_edge():
    """An argmin at the grid's end (a flat low side) has no joint-fit window, but the noise is still read over
    the argmin and up to ``halfwidth`` points beside it: the seeds' large disagreement on a cliff far above it
    stays out (it once entered, and set a multiplier sweep's band 3× too wide)."""
    from mhc_mup.training.transfer.joint import WidthCurves

    x = np.arange(7.0)
    near = np.array([[0.00, 0.01, -0.01], [0.01, -0.01, 0.00], [-0.01, 0.00, 0.01]])  # seeds × 3 points, no offsets
    cliff = np.array([[0.5, 0.9, 1.5, 1.6], [0.2, 0.3, 1.0, 1.1], [0.4, 0.8, 1.9, 2.0]])
    loss = 2.0 + np.hstack([near + np.array([0.0, 0.005, 0.01]), cliff])  # the best at x = 0, the grid's edge
    curve = WidthCurves(256, x, loss, (0, 1, 2))
    sigma, dof = seed_noise([curve], 2)
    r = near - near.mean(axis=1, keepdims=True) - near.mean(axis=0, keepdims=True) + near.mean()
    assert dof == 4 and sigma == pytest.approx(math.sqrt((r * r).sum() / 4))
    assert seed_noise([curve], None)[0] > 10 * sigma  # every point: the cliff's disagreement


def records_of(cfg, seeds: int, rng: np.random.Generator) -> list[dict]:
    """Synthetic runs of ``cfg``'s one configuration: batch losses = a bowl in log2 η + a seed offset + each
    batch's difficulty (shared by every run) + a small per-run wobble."""
    difficulty = rng.normal(0, 0.3, 6)
    records = []
    for w in cfg.grid.widths:
        for s in range(seeds):
            offset = rng.normal(0, 0.05)
            for lr in cfg.grid.lrs:
                batches = 2.0 + 0.01 * (math.log2(lr) + 6) ** 2 + offset + difficulty + rng.normal(0, 0.01, 6)
                records.append({
                    "config": "control-mup", "width": w, "seed": s, "lr": lr, "value": lr, "diverged": False,
                    "final_val_loss": float(batches.mean()), "final_val_batch_losses": batches.tolist(),
                })  # fmt: skip
    return records


def test_noise_table_per_width(small_corpus_file):
    cfg = tiny_cfg(small_corpus_file, seeds=3, lrs=tuple(2.0**k for k in range(-9, -3)))
    records = records_of(cfg, 3, np.random.default_rng(0))
    runs = pd.DataFrame([{"diverged": False, **r} for r in records])
    table = noise_table(cfg, runs, records)
    assert list(table.columns) == list(NOISE_COLUMNS) and list(table.width) == list(cfg.grid.widths)
    for row in table.to_dict("records"):
        mine = [r for r in records if r["width"] == row["width"]]
        expected = seed_noise([width_curves(cfg, runs[runs.width == row["width"]])], cfg.analysis.joint_halfwidth)
        assert (row["seed_sigma"], row["seed_dof"]) == pytest.approx(expected)
        assert row["val_batch_se"] == pytest.approx(np.median([batch_se(r["final_val_batch_losses"]) for r in mine]))
        by = {(r["seed"], log2_key(r["lr"])): r["final_val_batch_losses"] for r in mine}
        keys = [log2_key(v) for v in cfg.grid.lrs]
        pairs = [paired_batch_se(by[(s, a)], by[(s, b)]) for s in range(3) for a, b in itertools.pairwise(keys)]
        assert row["val_pair_se"] == pytest.approx(np.median(pairs))
        assert row["val_pair_se"] < row["val_batch_se"] / 5  # the shared difficulty cancels in the pairs
        assert row["n_seeds"] == 3 and row["n_runs_batches"] == 3 * len(cfg.grid.lrs)


def test_runs_without_batch_losses_give_nan(small_corpus_file):
    cfg = tiny_cfg(small_corpus_file, seeds=2)
    records = [r | {"final_val_batch_losses": []} for r in records_of(cfg, 2, np.random.default_rng(1))]
    table = noise_table(cfg, pd.DataFrame(records), records)
    assert table.val_batch_se.isna().all() and table.val_pair_se.isna().all() and (table.n_runs_batches == 0).all()
    assert np.isfinite(table.seed_sigma).all()


def test_a_run_stores_its_batches_losses_whose_mean_is_its_loss(small_corpus_file, tmp_path):
    cfg = tiny_cfg(small_corpus_file, widths=(16,), eval_batches=3)
    result = run_transfer(cfg, tmp_path / "out")
    for path in run_files(tmp_path / "out"):
        rec = read_run(path)
        batches = rec["final_val_batch_losses"]
        assert len(batches) == 3 and len(set(batches)) == 3
        assert rec["final_val_loss"] == float(torch.tensor(batches, dtype=torch.float32).mean())
    assert (result.noise.n_runs_batches == 3).all() and (result.noise.val_batch_se > 0).all()
    assert len(runs_table([read_run(p) for p in run_files(tmp_path / "out")])) == 3
