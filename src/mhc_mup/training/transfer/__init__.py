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

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.errors import TransferError
    from mhc_mup.training.transfer.analysis import (
        CURVE_COLUMNS,
        DRIFT_COLUMNS,
        JOINT_COLUMNS,
        LOGIT_COLUMNS,
        LOGIT_TABLE_COLUMNS,
        OPTIMA_COLUMNS,
        SEED_OPTIMA_COLUMNS,
        TRANSFER_COLUMNS,
        ParabolaFit,
        TransferResult,
        Verdict,
        analyse,
        drift_sentence,
        fit_parabola,
        joint_sentence,
    )
    from mhc_mup.training.transfer.anchors import (
        ANCHOR_COLUMNS,
        RELATIVE_COLUMNS,
        anchor_sentence,
        anchor_table,
        relative_drift,
        rule_pairs,
    )
    from mhc_mup.training.transfer.config import (
        Numerics,
        RunKey,
        RunRecipe,
        RunSettings,
        RunSpec,
        SweepGrid,
        TransferAnalysis,
        TransferConfig,
        log2_key,
        lr_grid,
    )
    from mhc_mup.training.transfer.configurations import (
        BUILTIN_CONFIGS,
        DEFAULT_CONFIGS,
        Configuration,
        parse_configuration,
    )
    from mhc_mup.training.transfer.edges import EDGE_COLUMNS, EDGE_DRIFT_COLUMNS, edge_drift, edges_table
    from mhc_mup.training.transfer.executors import worker_devices
    from mhc_mup.training.transfer.figures import (
        ROUTING_GATES,
        logits_figure,
        optima_figure,
        routing_figure,
        transfer_figure,
    )
    from mhc_mup.training.transfer.hyper import HYPERPARAMETERS, Hyper, SweptValue
    from mhc_mup.training.transfer.logits import LOGIT_STATS, logit_stats
    from mhc_mup.training.transfer.noise import NOISE_COLUMNS, noise_table
    from mhc_mup.training.transfer.penalty import (
        PENALTY_COLUMNS,
        RULE_PENALTY_COLUMNS,
        penalty_table,
        quadratic_reading,
        rule_penalty_table,
    )
    from mhc_mup.training.transfer.report import build_transfer_report, write_outputs
    from mhc_mup.training.transfer.routing import ROUTING_STATS, routing_stats
    from mhc_mup.training.transfer.run import RUN_FORMAT, execute_run, lr_factor
    from mhc_mup.training.transfer.store import SWEEP_FORMAT, base_lr_from, load_records, plan, stored_config
    from mhc_mup.training.transfer.sweep import analyse_folder, run_transfer

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=(
        "configurations", "hyper", "config", "routing", "logits", "run", "store", "executors", "analysis", "joint",
        "noise", "edges", "anchors", "penalty", "figures", "report", "sweep",
    ),
)
