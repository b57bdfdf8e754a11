"""The transfer sweep: train every configuration × width × seed × swept value (the learning rate, or a
multiplier on one part of the model), find each width's optimum and fit how it drifts with width.

``configurations`` (the lines of the comparison), ``hyper`` (what is swept), ``config`` (the sweep's nested
configuration and a run's frozen spec), ``run`` (one run), ``store`` (the output folder: settings, resume
checks, stored runs), ``executors`` (in-process, spawn pool, Ray), ``analysis`` (parabola, optima, drift),
``joint`` (the joint drift fit of every width and seed, flat widths), ``noise`` (seed and validation-batch
noise per width), ``edges`` (where the loss is flat: the band's edges and their drift), ``anchors`` (whether the
controls read as theory says; each mHC configuration's drift against its control), ``penalty`` (what running
each width at the base width's optimum costs), ``report`` (figures, report, files) and ``sweep``
(:func:`run_transfer`, all of it in order); ``routing`` (what a run's mHC routing does) and ``logits`` (how
large a run's attention and output logits are).
"""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.errors": ("TransferError",),
        "mhc_mup.training.transfer.configurations": (
            "BUILTIN_CONFIGS", "DEFAULT_CONFIGS", "Configuration", "parse_configuration",
        ),
        "mhc_mup.training.transfer.config": (
            "Numerics", "RunKey", "RunRecipe", "RunSettings", "RunSpec", "SweepGrid", "TransferAnalysis",
            "TransferConfig", "log2_key", "lr_grid",
        ),
        "mhc_mup.training.transfer.hyper": ("HYPERPARAMETERS", "Hyper", "SweptValue"),
        "mhc_mup.training.transfer.routing": ("ROUTING_STATS", "routing_stats"),
        "mhc_mup.training.transfer.logits": ("LOGIT_STATS", "logit_stats"),
        "mhc_mup.training.transfer.run": ("RUN_FORMAT", "execute_run", "lr_factor"),
        "mhc_mup.training.transfer.store": ("SWEEP_FORMAT", "base_lr_from", "load_records", "plan", "stored_config"),
        "mhc_mup.training.transfer.executors": ("worker_devices",),
        "mhc_mup.training.transfer.analysis": (
            "CURVE_COLUMNS", "DRIFT_COLUMNS", "LOGIT_COLUMNS", "LOGIT_TABLE_COLUMNS", "OPTIMA_COLUMNS",
            "SEED_OPTIMA_COLUMNS",
            "TRANSFER_COLUMNS", "JOINT_COLUMNS", "ParabolaFit", "TransferResult", "Verdict", "analyse",
            "drift_sentence", "fit_parabola", "joint_sentence",
        ),
        "mhc_mup.training.transfer.noise": ("NOISE_COLUMNS", "noise_table"),
        "mhc_mup.training.transfer.edges": ("EDGE_COLUMNS", "EDGE_DRIFT_COLUMNS", "edge_drift", "edges_table"),
        "mhc_mup.training.transfer.anchors": (
            "ANCHOR_COLUMNS", "RELATIVE_COLUMNS", "anchor_sentence", "anchor_table", "relative_drift", "rule_pairs",
        ),
        "mhc_mup.training.transfer.penalty": ("PENALTY_COLUMNS", "RULE_PENALTY_COLUMNS", "penalty_table",
                                              "quadratic_reading", "rule_penalty_table"),
        "mhc_mup.training.transfer.figures": (
            "ROUTING_GATES", "logits_figure", "optima_figure", "routing_figure", "transfer_figure",
        ),
        "mhc_mup.training.transfer.report": ("build_transfer_report", "write_outputs"),
        "mhc_mup.training.transfer.sweep": ("analyse_folder", "run_transfer"),
    },
    submodules=(
        "configurations", "hyper", "config", "routing", "logits", "run", "store", "executors", "analysis", "joint",
        "noise", "edges", "anchors", "penalty", "figures", "report", "sweep",
    ),
)  # fmt: skip
