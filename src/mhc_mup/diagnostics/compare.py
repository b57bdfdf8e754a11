"""Comparing parameterizations: one width sweep each, and the corrections table.

The corrections table gives, per parameterization, the exponent (with its interval) and the
verdict of each gate's dynamic sensitivity (diagnostic 4: comb, pre, post) and of the
generated-logit update under the parameterization's own learning-rate rule (diagnostic 5, one SGD
and one Adam step). The report's table is its comb column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from mhc_mup.diagnostics.sweep import SweepConfig, SweepResult, run_sweep
from mhc_mup.mhc.parameterizations import Parameterization
from mhc_mup.stats.fitting import PowerLawFit
from mhc_mup.stats.readings import classify

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

CompareProgress = Callable[[str, int, int, str, int, int], None]  # (name, i, n, what, done, total)


def run_compare(
    config: SweepConfig,
    parameterizations: Sequence[Parameterization],
    progress: CompareProgress | None = None,
) -> dict[str, SweepResult]:
    """One :func:`~mhc_mup.diagnostics.sweep.run_sweep` per parameterization, same seed and widths: ``{name: result}``.

    All configs are validated before the first sweep, so a bad rule fails fast."""
    names = [p.name for p in parameterizations]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"parameterization {dup!r} is given more than once")
    configs = [dataclasses.replace(config, parameterization=p).validate() for p in parameterizations]
    results: dict[str, SweepResult] = {}
    for i, cfg in enumerate(configs):
        name = cfg.parameterization.name

        def tick(what: str, done: int, total: int, name: str = name, i: int = i) -> None:
            if progress is not None:
                progress(name, i, len(configs), what, done, total)

        results[name] = run_sweep(cfg, tick)
    return results


class FittedRun(Protocol):
    """What the tables need of a run: a fresh :class:`~mhc_mup.diagnostics.sweep.SweepResult` or one read back
    from disk (:class:`~mhc_mup.diagnostics.results.LoadedRun`)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def widths(self) -> list[int]: ...
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
