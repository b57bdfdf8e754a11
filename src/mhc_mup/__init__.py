"""mhc-mup: does a dynamic mHC parameterization transfer across width?

The layers, bottom up: :mod:`~mhc_mup.ops` (V4's mHC, exactly), :mod:`~mhc_mup.gauge` (the
Sinkhorn gauge and the Birkhoff tangent space), :mod:`~mhc_mup.jacobians` (batched closed-form
Jacobians), :mod:`~mhc_mup.diagnostics` (the six diagnostics), :mod:`~mhc_mup.fitting`
(power laws with confidence intervals), :mod:`~mhc_mup.expressions` and
:mod:`~mhc_mup.parameterizations` (init and LR rules as functions of n_s and d),
:mod:`~mhc_mup.sweep` (the width sweep), :mod:`~mhc_mup.compare` (one sweep per
parameterization, the corrections table), :mod:`~mhc_mup.verdict` (O(1) readings, the Theorem D
checklist), :mod:`~mhc_mup.results_io` and :mod:`~mhc_mup.cli`.
"""

__version__ = "0.1.0"

from .compare import corrections_rows, run_compare
from .config import PRESETS, MHCConfig, preset
from .expressions import Expr, ExpressionError
from .fitting import PowerLawFit, fit_power_law
from .ops import collapse, hc_head, hc_mixes, hc_post, hc_pre, hc_weights, sinkhorn_knopp, split_mixes
from .parameterizations import (
    PARAMETERIZATIONS,
    SEED_INIT,
    GeneratorInit,
    Parameterization,
    ParameterizationError,
    get_parameterization,
    parameterization,
    parse_spec,
)
from .sweep import ConfigError, SweepConfig, SweepResult, run_sweep
from .verdict import Verdict, VerdictConfig, classify, theorem_d

__all__ = [
    "PARAMETERIZATIONS",
    "PRESETS",
    "SEED_INIT",
    "ConfigError",
    "Expr",
    "ExpressionError",
    "GeneratorInit",
    "MHCConfig",
    "Parameterization",
    "ParameterizationError",
    "PowerLawFit",
    "SweepConfig",
    "SweepResult",
    "Verdict",
    "VerdictConfig",
    "__version__",
    "classify",
    "collapse",
    "corrections_rows",
    "fit_power_law",
    "get_parameterization",
    "hc_head",
    "hc_mixes",
    "hc_post",
    "hc_pre",
    "hc_weights",
    "parameterization",
    "parse_spec",
    "preset",
    "run_compare",
    "run_sweep",
    "sinkhorn_knopp",
    "split_mixes",
    "theorem_d",
]
