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

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.diagnostics.compare import run_compare
    from mhc_mup.diagnostics.config import SweepConfig
    from mhc_mup.diagnostics.corrections import corrections_rows
    from mhc_mup.diagnostics.report import write_report
    from mhc_mup.diagnostics.results import write_results
    from mhc_mup.diagnostics.sweep import SweepResult, run_sweep
    from mhc_mup.diagnostics.verdict import Verdict, VerdictConfig, theorem_d
    from mhc_mup.errors import ConfigError, ExpressionError, MhcMupError, ParameterizationError
    from mhc_mup.interop.adapter_diagnostics import diagnose, sweep_adapter
    from mhc_mup.interop.adapters import FunctionAdapter, HyperConnectionsAdapter, TransformersV4Adapter, V4Params
    from mhc_mup.interop.inspection import inspect_checkpoint
    from mhc_mup.mhc.expressions import Expr
    from mhc_mup.mhc.ops import collapse, hc_head, hc_mixes, hc_post, hc_pre, hc_weights, sinkhorn_knopp, split_mixes
    from mhc_mup.mhc.parameterizations import (
        PARAMETERIZATIONS,
        SEED_INIT,
        GeneratorInit,
        Parameterization,
        get_parameterization,
        parameterization,
        parse_spec,
    )
    from mhc_mup.mhc.presets import PRESETS, MHCConfig, preset
    from mhc_mup.nn.modules import HeadCollapse, HyperConnection, MHCSublayer, expand_streams
    from mhc_mup.stats.fitting import PowerLawFit, fit_power_law
    from mhc_mup.stats.readings import classify
    from mhc_mup.training.coordcheck import (
        CoordCheckConfig,
        ModelCoordCheckConfig,
        coord_check,
        plot_coords,
        run_coord_check,
        write_coord_check,
    )
    from mhc_mup.training.model import MHCLM, ModelConfig
    from mhc_mup.training.model_transfer import ModelTransferConfig, run_model_transfer
    from mhc_mup.training.plan import WidthPlan, WidthRule, width_plan
    from mhc_mup.training.transfer.config import TransferConfig
    from mhc_mup.training.transfer.sweep import run_transfer
    from mhc_mup.training.width_rules import WidthParameterization, make_optimizer, param_groups

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=("mhc", "kernels", "nn", "stats", "reporting", "diagnostics", "training", "interop", "errors"),
)
__all__ = [*__all__, "__version__"]
