"""The seed's output keys (``dc_x_mean`` …): which reduction of which per-sample values each one is.

:data:`SUMMARY_KEYS` names them per diagnostic, :func:`summarize` computes them; the width sweep bootstraps the
same reductions for its fits. Plain numpy: reading a results file back needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mhc_mup.stats.fitting import mean

__all__ = ["DIAGNOSTICS", "REDUCERS", "SUMMARY_KEYS", "Reducer", "SummaryKey", "summarize"]

Reducer = Callable[[np.ndarray], np.ndarray]


def _std(a: np.ndarray) -> np.ndarray:
    return a.std(axis=-1)  # population std (ddof 0), as the seed's np.std


def _max(a: np.ndarray) -> np.ndarray:
    return a.max(axis=-1)


def _median(a: np.ndarray) -> np.ndarray:
    return np.median(a, axis=-1)


REDUCERS: dict[str, Reducer] = {"mean": mean, "std": _std, "max": _max, "median": _median}


@dataclass(frozen=True)
class SummaryKey:
    """Output key ``key`` of a diagnostic = ``reducer`` applied over samples of ``sample``."""

    key: str
    sample: str
    reducer: str


SUMMARY_KEYS: dict[str, tuple[SummaryKey, ...]] = {
    "sinkhorn_error": (SummaryKey("eps_K_mean", "eps_K", "mean"), SummaryKey("eps_K_max", "eps_K", "max")),
    "spectral_norm": (
        SummaryKey("spectral_norm_mean", "sigma_max", "mean"),
        SummaryKey("spectral_norm_max", "sigma_max", "max"),
        SummaryKey("condition_number_mean", "kappa", "mean"),
        SummaryKey("condition_number_median", "kappa", "median"),
    ),
    "quotient_jacobian": (
        SummaryKey("sigma_max_mean", "sigma_max", "mean"),
        SummaryKey("sigma_min_mean", "sigma_min", "mean"),
        SummaryKey("kappa_mean", "kappa", "mean"),
        SummaryKey("kappa_median", "kappa", "median"),
        SummaryKey("gauge_leakage_mean", "gauge_leakage", "mean"),
        SummaryKey("gauge_leakage_median", "gauge_leakage", "median"),  # the mean is ruled by a few slow Z
    ),
    "dynamic_sensitivity": (
        SummaryKey("dc_x_mean", "dc_x", "mean"),
        SummaryKey("dc_x_std", "dc_x", "std"),
        SummaryKey("dp_x_mean", "dp_x", "mean"),
        SummaryKey("dp_x_std", "dp_x", "std"),
        SummaryKey("dq_x_mean", "dq_x", "mean"),
        SummaryKey("dq_x_std", "dq_x", "std"),
        # typical cases next to the worst case: random unit directions, gradient-step directions
        SummaryKey("dc_x_random_mean", "dc_x_random", "mean"),
        SummaryKey("dp_x_random_mean", "dp_x_random", "mean"),
        SummaryKey("dq_x_random_mean", "dq_x_random", "mean"),
        SummaryKey("dc_x_grad_mean", "dc_x_grad", "mean"),
        SummaryKey("dp_x_grad_mean", "dp_x_grad", "mean"),
        SummaryKey("dq_x_grad_mean", "dq_x_grad", "mean"),
    ),
    "chain_decomposition": (
        SummaryKey("rms_jacobian_mean", "rms_jacobian", "mean"),
        SummaryKey("scale_comb_mean", "scale_comb", "mean"),
        SummaryKey("w_comb_mean", "w_comb", "mean"),
        SummaryKey("sinkhorn_jacobian_mean", "sinkhorn_jacobian", "mean"),
        SummaryKey("x_norm_mean", "x_norm", "mean"),
        SummaryKey("bound_mean", "bound", "mean"),
        SummaryKey("measured_mean", "measured", "mean"),
        SummaryKey("tightness_mean", "tightness", "mean"),
    ),
    "logit_update": (
        SummaryKey("proj_perp_norm_mean", "proj_perp_norm", "mean"),
        SummaryKey("total_norm_mean", "total_norm", "mean"),
        SummaryKey("perp_ratio_mean", "perp_ratio", "mean"),
        # one step of Adam from fresh state, under the same parameterization's Adam LR rule
        SummaryKey("adam_proj_perp_norm_mean", "adam_proj_perp_norm", "mean"),
        SummaryKey("adam_total_norm_mean", "adam_total_norm", "mean"),
        SummaryKey("adam_perp_ratio_mean", "adam_perp_ratio", "mean"),
    ),
    "gate_stats": (
        SummaryKey("pre_mean", "pre_mean", "mean"),
        SummaryKey("pre_l1_mean", "pre_l1", "mean"),
        SummaryKey("post_mean", "post_mean", "mean"),
        SummaryKey("post_linf_mean", "post_linf", "mean"),
    ),
}


def _float64(values: object) -> np.ndarray:
    """Flat float64 copy of an array, or of a tensor on any device in any float dtype."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def summarize(diagnostic: str, samples: NamedTuple | Mapping[str, object]) -> dict[str, float]:
    """Reduce one diagnostic's per-sample values to the seed's keys, e.g. ``{"dc_x_mean": …}``.

    Values (arrays, or tensors on any device) of any shape are pooled: a ``(4, 16)`` batch of combs counts as 64
    samples, as in the seed. Keys whose samples are absent are left out (an adapter measures only the worst-case
    sensitivity)."""
    values = samples._asdict() if hasattr(samples, "_asdict") else dict(samples)
    arrays = {k: _float64(v) for k, v in values.items()}
    return {s.key: float(REDUCERS[s.reducer](arrays[s.sample])) for s in SUMMARY_KEYS[diagnostic] if s.sample in arrays}


DIAGNOSTICS: Sequence[str] = tuple(SUMMARY_KEYS)
