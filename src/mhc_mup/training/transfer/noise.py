"""How much of a transfer sweep's loss differences is noise, per configuration and width: what sizes the sweep.

Two sources, from the runs' final validation losses:

* **seeds** (``seed_sigma``, ``seed_dof``): one run's loss noise from the seeds' disagreement, with the seeds'
  shared offsets removed (:func:`~mhc_mup.training.transfer.joint.seed_noise` over the width's joint-fit
  window): what the optimum's and the drift's intervals rest on, and what more seeds shrink (as ``1/√seeds``).
* **validation batches** (``val_batch_se``): the standard error of one run's loss from its ``n`` validation
  batches, ``sd(ℓ_b)/√n``; and ``val_pair_se``, the same for the difference between neighbouring values of one
  seed, ``sd(ℓ_b − ℓ'_b)/√n`` (neighbours within the configuration × width's own values,
  :func:`~mhc_mup.training.transfer.joint.width_values`). Every run is validated on the same batches, so what
  matters for the curve's shape is the paired one, usually far smaller; both shrink as ``1/√eval_batches``.
  Medians over the width's runs (pairs); NaN where the runs did not record their batches' losses (stored before
  they did).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mhc_mup.training.transfer.config import TransferConfig, log2_key
from mhc_mup.training.transfer.joint import seed_noise, width_curves, width_values

__all__ = ["NOISE_COLUMNS", "batch_se", "noise_table", "paired_batch_se"]

NOISE_COLUMNS = (
    "config", "width", "n_seeds", "seed_sigma", "seed_dof", "val_batch_se", "val_pair_se", "n_runs_batches",
)  # fmt: skip


def batch_se(losses: Sequence[float] | np.ndarray) -> float:
    """``sd(ℓ_b)/√n`` (sample sd) of one run's ``n`` validation-batch losses; NaN for fewer than two."""
    values = np.asarray(losses, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) >= 2 else math.nan


def paired_batch_se(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """:func:`batch_se` of the per-batch differences ``a − b`` of two runs validated on the same batches."""
    return batch_se(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def noise_table(
    cfg: TransferConfig,
    runs: pd.DataFrame,
    records: list[dict],
    values: Mapping[tuple[str, int], tuple[float, ...]] | None = None,
) -> pd.DataFrame:
    """:data:`NOISE_COLUMNS` per configuration and width of ``cfg``'s grid that has runs (``runs``: rows of
    ``transfer.csv``; ``records``: the stored runs, for their ``final_val_batch_losses``; ``values``:
    ``(config, width) →`` its own values, increasing, as :func:`~.analysis.analyse` found them; default, or for a
    pair not in it: the values run there, :func:`~mhc_mup.training.transfer.joint.width_values`)."""
    batches = _batch_losses(records)
    rows = []
    for c in cfg.grid.configs:
        for w in cfg.grid.widths:
            sel = runs[(runs.config == c.name) & (runs.width == w)]
            if sel.empty:
                continue
            own = (values or {}).get((c.name, w)) or width_values(sel)
            curve = width_curves(cfg, sel, own)
            sigma, dof = seed_noise([curve], cfg.analysis.joint_halfwidth) if curve else (math.nan, 0)
            mine = {(s, x): v for (name, width, s, x), v in batches.items() if (name, width) == (c.name, w)}
            singles = [batch_se(v) for v in mine.values()]
            pairs = [paired_batch_se(mine[(s, a)], mine[(s, b)]) for (s, a), (_, b) in _neighbours(mine, own)]
            rows.append({
                "config": c.name, "width": w, "n_seeds": int(sel.seed.nunique()), "seed_sigma": sigma,
                "seed_dof": dof, "val_batch_se": _median(singles), "val_pair_se": _median(pairs),
                "n_runs_batches": len(mine),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(NOISE_COLUMNS))


def _batch_losses(records: list[dict]) -> dict[tuple[str, int, int, str], list[float]]:
    """``(config, width, seed, log2 key of the swept value) → final_val_batch_losses`` of the runs that have them
    (not diverged, stored after they were recorded)."""
    return {
        (r["config"], r["width"], r["seed"], log2_key(r.get("value", r["lr"]))): r["final_val_batch_losses"]
        for r in records
        if len(r.get("final_val_batch_losses") or []) >= 2 and not r.get("diverged")
    }


def _neighbours(
    mine: dict[tuple[int, str], list[float]], values: tuple[float, ...]
) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """``((seed, key), (seed, next key))`` for each seed's neighbouring values among its width's own ``values``
    (increasing) that both have batch losses."""
    keys = [log2_key(v) for v in values]
    seeds = sorted({s for s, _ in mine})
    return [((s, a), (s, b)) for s in seeds for a, b in itertools.pairwise(keys) if (s, a) in mine and (s, b) in mine]


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan
