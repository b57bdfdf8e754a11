"""The corrections table: per parameterization, the exponent (with its interval) and the verdict of each gate's
dynamic sensitivity (diagnostic 4: comb, pre, post) and of the generated-logit update under the
parameterization's own learning-rate rule (diagnostic 5, one SGD and one Adam step). The report's table is its
comb column. It reads fitted runs, fresh or from disk, and needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import classify

if TYPE_CHECKING:
    from mhc_mup.diagnostics.config import SweepConfig

__all__ = ["CORRECTIONS_CSV_COLUMNS", "CORRECTION_QUANTITIES", "FittedRun", "corrections_rows"]

CORRECTION_QUANTITIES: tuple[tuple[str, str, str, str], ...] = (
    # (quantity, diagnostic, metric, label)
    ("comb", "dynamic_sensitivity", "dc_x_mean", "‖DC(x)‖·‖x‖"),
    ("pre", "dynamic_sensitivity", "dp_x_mean", "‖Dpre(x)‖·‖x‖"),
    ("post", "dynamic_sensitivity", "dq_x_mean", "‖Dpost(x)‖·‖x‖"),
    ("update_sgd", "logit_update", "proj_perp_norm_mean", "‖Π⊥ΔZ‖ SGD"),
    ("update_adam", "logit_update", "adam_proj_perp_norm_mean", "‖Π⊥ΔZ‖ Adam"),
)
CORRECTIONS_CSV_COLUMNS = (
    "parameterization",
    "description",
    "quantity",
    "metric",
    "exponent",
    "ci_low",
    "ci_high",
    "r2",
    "verdict",
    "tolerance",
    "confidence",
)


class FittedRun(Protocol):
    """What the tables need of a run: a fresh :class:`~mhc_mup.diagnostics.sweep.SweepResult` or one read back
    from disk (:class:`~mhc_mup.diagnostics.results.LoadedRun`)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def widths(self) -> list[int]: ...
    @property
    def config(self) -> SweepConfig | dict: ...
    def fit(self, diagnostic: str, key: str) -> PowerLawFit: ...
    def summary(self, width: int) -> dict[str, dict]: ...


def corrections_rows(results: Mapping[str, FittedRun], tolerance: float = 0.1) -> list[dict]:
    """The corrections table, one row per parameterization × quantity (see :data:`CORRECTION_QUANTITIES`)."""
    rows = []
    for name, result in results.items():
        for quantity, diag, key, _ in CORRECTION_QUANTITIES:
            fit = result.fit(diag, key)
            rows.append(
                {
                    "parameterization": name,
                    "description": result.description,
                    "quantity": quantity,
                    "metric": f"{diag}.{key}",
                    "exponent": fit.exponent,
                    "ci_low": fit.ci_low,
                    "ci_high": fit.ci_high,
                    "r2": fit.r2,
                    "verdict": classify(fit, tolerance),
                    "tolerance": tolerance,
                    "confidence": fit.confidence,
                }
            )
    return rows
