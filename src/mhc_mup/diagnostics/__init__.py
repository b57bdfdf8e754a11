"""The width sweep: the six diagnostics, their scaling fits, the corrections table and the Theorem D checklist.

``config`` (what determines a sweep's numbers), ``measures`` (the six diagnostics, one function each, on
tensors), ``summaries`` (the seed's output keys as reductions of per-sample values), ``sweep`` (every
diagnostic at every width, then the fits), ``compare`` (one sweep per parameterization), ``corrections``
(their table), ``verdict`` (the Theorem D checklist), ``results`` (the files a sweep writes and reads back),
``report`` and ``figures``. Everything after ``sweep`` and ``compare`` reads results without torch.
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.diagnostics.compare import run_compare
    from mhc_mup.diagnostics.config import SamplingSettings, SweepConfig
    from mhc_mup.diagnostics.corrections import corrections_rows
    from mhc_mup.diagnostics.measures import (
        chain_decomposition,
        dynamic_sensitivity,
        gate_stats,
        logit_update,
        logit_updates,
        quotient_jacobian,
        quotient_spectrum,
        sensitivity_and_chain,
        sinkhorn_error,
        spectral_stats,
    )
    from mhc_mup.diagnostics.report import build_report, write_report
    from mhc_mup.diagnostics.results import load_results_folder, write_comparison, write_results
    from mhc_mup.diagnostics.summaries import DIAGNOSTICS, SUMMARY_KEYS, summarize
    from mhc_mup.diagnostics.sweep import SweepResult, run_sweep
    from mhc_mup.diagnostics.verdict import Status, Verdict, VerdictConfig, theorem_d

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=(
        "config", "budget", "measures", "summaries", "sweep", "compare", "corrections", "verdict", "results",
        "report", "figures",
    ),
)
