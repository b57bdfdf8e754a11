"""mhc-mup: does a dynamic mHC parameterization transfer across width?

The package, bottom layer first (each imports only from the layers below it; ``lint-imports`` checks):

- :mod:`mhc_mup.mhc`: V4's mHC as pure functions on tensors, the gauge, Jacobians, parameterizations;
- :mod:`mhc_mup.kernels`: the fused Triton path behind ``torch.library`` custom ops;
- :mod:`mhc_mup.nn`: V4's mHC as drop-in modules for any model (a sublayer around any branch, the head);
- :mod:`mhc_mup.stats`: power-law fits with intervals and their O(1)/grows/decays readings;
- :mod:`mhc_mup.reporting`: the report block model, its renderers and the plotting style;
- :mod:`mhc_mup.diagnostics`: the width sweep of the six diagnostics, the comparison, Theorem D, its report;
- :mod:`mhc_mup.training`: the mHC language model, its width rules, the coordinate check and transfer;
- :mod:`mhc_mup.interop`: real implementations (adapters) and checkpoints;
- :mod:`mhc_mup.cli`: the ``mhc-mup`` command, which nothing imports.

Every name below is importable from here (``from mhc_mup import run_sweep``); it is loaded on first use,
so ``import mhc_mup`` itself costs nothing.
"""

__version__ = "0.1.0"

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.errors": ("ConfigError", "ExpressionError", "MhcMupError", "ParameterizationError"),
        # the mathematics
        "mhc_mup.mhc.ops": (
            "collapse", "hc_head", "hc_mixes", "hc_post", "hc_pre", "hc_weights", "sinkhorn_knopp", "split_mixes",
        ),
        "mhc_mup.mhc.expressions": ("Expr",),
        "mhc_mup.mhc.parameterizations": (
            "PARAMETERIZATIONS", "SEED_INIT", "GeneratorInit", "Parameterization", "get_parameterization",
            "parameterization", "parse_spec",
        ),
        "mhc_mup.mhc.presets": ("PRESETS", "MHCConfig", "preset"),
        # drop-in modules for your own model
        "mhc_mup.nn.modules": ("HeadCollapse", "HyperConnection", "MHCSublayer", "expand_streams"),
        # fits and readings
        "mhc_mup.stats.fitting": ("PowerLawFit", "fit_power_law"),
        "mhc_mup.stats.readings": ("classify",),
        # the width sweep
        "mhc_mup.diagnostics.config": ("SweepConfig",),
        "mhc_mup.diagnostics.sweep": ("SweepResult", "run_sweep"),
        "mhc_mup.diagnostics.compare": ("run_compare",),
        "mhc_mup.diagnostics.corrections": ("corrections_rows",),
        "mhc_mup.diagnostics.verdict": ("Verdict", "VerdictConfig", "theorem_d"),
        "mhc_mup.diagnostics.results": ("write_results",),
        "mhc_mup.diagnostics.report": ("write_report",),
        # training: the LM and its width rules, the coordinate check, transfer
        "mhc_mup.training.model": ("MHCLM", "ModelConfig"),
        "mhc_mup.training.width_rules": ("WidthParameterization", "make_optimizer", "param_groups"),
        "mhc_mup.training.plan": ("WidthPlan", "WidthRule", "width_plan"),
        "mhc_mup.training.coordcheck": (
            "CoordCheckConfig", "ModelCoordCheckConfig", "coord_check", "plot_coords", "run_coord_check",
            "write_coord_check",
        ),
        "mhc_mup.training.model_transfer": ("ModelTransferConfig", "run_model_transfer"),
        "mhc_mup.training.transfer.config": ("TransferConfig",),
        "mhc_mup.training.transfer.sweep": ("run_transfer",),
        # real implementations and checkpoints
        "mhc_mup.interop.adapters": ("FunctionAdapter", "HyperConnectionsAdapter", "TransformersV4Adapter", "V4Params"),
        "mhc_mup.interop.adapter_diagnostics": ("diagnose", "sweep_adapter"),
        "mhc_mup.interop.inspection": ("inspect_checkpoint",),
    },
    submodules=("mhc", "kernels", "nn", "stats", "reporting", "diagnostics", "training", "interop", "errors"),
)
__all__ = [*__all__, "__version__"]
