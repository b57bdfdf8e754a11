"""Comparing parameterizations: one width sweep each (their corrections table is in
:mod:`mhc_mup.diagnostics.corrections`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from mhc_mup.diagnostics.config import SweepConfig
from mhc_mup.diagnostics.sweep import SweepResult, run_sweep
from mhc_mup.mhc.parameterizations import Parameterization

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
