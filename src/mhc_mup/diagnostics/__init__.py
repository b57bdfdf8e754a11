"""The width sweep: the six diagnostics, their scaling fits, the corrections table and the Theorem D checklist.

``measures`` (the six diagnostics, one function each, on tensors), ``sweep`` (every diagnostic at every
width, then the fits), ``compare`` (one sweep per parameterization), ``verdict`` (the Theorem D
checklist), ``results`` (the files a sweep writes and reads back), ``report`` and ``figures``.
"""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.diagnostics.measures": (
            "DIAGNOSTICS", "SUMMARY_KEYS", "chain_decomposition", "dynamic_sensitivity", "gate_stats", "logit_update",
            "logit_updates", "quotient_jacobian", "quotient_spectrum", "sensitivity_and_chain", "sinkhorn_error",
            "spectral_stats", "summarize",
        ),
        "mhc_mup.diagnostics.sweep": ("SamplingSettings", "SweepConfig", "SweepResult", "run_sweep"),
        "mhc_mup.diagnostics.compare": ("corrections_rows", "run_compare"),
        "mhc_mup.diagnostics.verdict": ("Status", "Verdict", "VerdictConfig", "theorem_d"),
        "mhc_mup.diagnostics.results": ("load_results_folder", "write_comparison", "write_results"),
        "mhc_mup.diagnostics.report": ("build_report", "write_report"),
    },
    submodules=("measures", "sweep", "compare", "verdict", "results", "report", "figures"),
)
