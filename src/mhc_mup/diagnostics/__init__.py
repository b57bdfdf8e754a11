"""The width sweep: the six diagnostics, their scaling fits, the corrections table and the Theorem D checklist.

``config`` (what determines a sweep's numbers), ``measures`` (the six diagnostics, one function each, on
tensors), ``summaries`` (the seed's output keys as reductions of per-sample values), ``sweep`` (every
diagnostic at every width, then the fits), ``compare`` (one sweep per parameterization), ``corrections``
(their table), ``verdict`` (the Theorem D checklist), ``results`` (the files a sweep writes and reads back),
``report`` and ``figures``. Everything after ``sweep`` and ``compare`` reads results without torch.
"""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.diagnostics.measures": (
            "chain_decomposition", "dynamic_sensitivity", "gate_stats", "logit_update", "logit_updates",
            "quotient_jacobian", "quotient_spectrum", "sensitivity_and_chain", "sinkhorn_error", "spectral_stats",
        ),
        "mhc_mup.diagnostics.summaries": ("DIAGNOSTICS", "SUMMARY_KEYS", "summarize"),
        "mhc_mup.diagnostics.config": ("SamplingSettings", "SweepConfig"),
        "mhc_mup.diagnostics.sweep": ("SweepResult", "run_sweep"),
        "mhc_mup.diagnostics.compare": ("run_compare",),
        "mhc_mup.diagnostics.corrections": ("corrections_rows",),
        "mhc_mup.diagnostics.verdict": ("Status", "Verdict", "VerdictConfig", "theorem_d"),
        "mhc_mup.diagnostics.results": ("load_results_folder", "write_comparison", "write_results"),
        "mhc_mup.diagnostics.report": ("build_report", "write_report"),
    },
    submodules=(
        "config", "budget", "measures", "summaries", "sweep", "compare", "corrections", "verdict", "results",
        "report", "figures",
    ),
)
