"""mhc-mup: does a dynamic mHC parameterization transfer across width?

The layers, bottom up: :mod:`~mhc_mup.ops` (V4's mHC, exactly), :mod:`~mhc_mup.gauge` (the
Sinkhorn gauge and the Birkhoff tangent space), :mod:`~mhc_mup.jacobians` (batched closed-form
Jacobians), :mod:`~mhc_mup.diagnostics` (the six diagnostics), :mod:`~mhc_mup.fitting`
(power laws with confidence intervals), :mod:`~mhc_mup.sweep` (the width sweep),
:mod:`~mhc_mup.results_io` and :mod:`~mhc_mup.cli`.
"""

__version__ = "0.1.0"

from .config import PRESETS, MHCConfig, preset
from .fitting import PowerLawFit, fit_power_law
from .ops import collapse, hc_head, hc_mixes, hc_post, hc_pre, hc_weights, sinkhorn_knopp, split_mixes
from .parameterizations import SEED_INIT, GeneratorInit
from .sweep import ConfigError, SweepConfig, SweepResult, run_sweep

__all__ = [
    "PRESETS",
    "SEED_INIT",
    "ConfigError",
    "GeneratorInit",
    "MHCConfig",
    "PowerLawFit",
    "SweepConfig",
    "SweepResult",
    "__version__",
    "collapse",
    "fit_power_law",
    "hc_head",
    "hc_mixes",
    "hc_post",
    "hc_pre",
    "hc_weights",
    "preset",
    "run_sweep",
    "sinkhorn_knopp",
    "split_mixes",
]
