"""Scaling fits with intervals, and their readings.

``fitting``: ``metric ≈ c·d^α`` by least squares on log-log means, with an interval that covers both a
bootstrap over samples and the regression's t-interval across widths. ``readings``: an exponent read as
O(1), grows, decays or unclear against a tolerance band. ``optimum``: the drift of a loss surface's optimum
across width from one joint fit of every width and seed.
"""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.stats.fitting import (
        ONE_SEED_NOTE,
        TWO_WIDTHS_NOTE,
        Estimate,
        FitSettings,
        PowerLawFit,
        bootstrap_estimate,
        fit_power_law,
        fit_power_laws,
        mean,
        mean_t_interval,
        t_quantile,
        two_width_interval,
        welch_slope_interval,
    )
    from mhc_mup.stats.optimum import (
        JointOptimumFit,
        PairedDifference,
        fit_joint_optimum,
        paired_difference,
        paired_lack_of_fit,
        seed_bootstrap,
    )
    from mhc_mup.stats.readings import DECAYS, GROWS, O1, UNCLEAR, Reading, classify, classify_interval

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__, submodules=("fitting", "readings", "optimum"))
