"""Reading a fitted exponent: O(1), grows, decays or unclear.

A quantity is O(1) in width when the whole confidence interval of its exponent lies inside
``[-tolerance, +tolerance]``; it grows (decays) when the exponent lies above (below) the band and the
interval excludes 0; otherwise the data cannot tell. A reading is a ``str`` enum: JSON, CSV, pandas and
f-strings see its bare value (``"O(1)"``).
"""

from __future__ import annotations

import numpy as np

from mhc_mup._io import StrEnum
from mhc_mup.stats.fitting import PowerLawFit

__all__ = ["DECAYS", "GROWS", "O1", "UNCLEAR", "Reading", "classify", "classify_interval", "drift_verdict"]


class Reading(StrEnum):
    """How a fitted exponent reads against the O(1) band."""

    O1 = "O(1)"
    GROWS = "grows"
    DECAYS = "decays"
    UNCLEAR = "unclear"


O1, GROWS, DECAYS, UNCLEAR = Reading.O1, Reading.GROWS, Reading.DECAYS, Reading.UNCLEAR


def classify(fit: PowerLawFit, tolerance: float = 0.1) -> Reading:
    """``O(1)`` if the interval lies inside ``±tolerance``; ``grows`` / ``decays`` if the exponent lies
    outside the band and the interval excludes 0; ``unclear`` otherwise (the data cannot tell)."""
    return classify_interval(fit.exponent, fit.ci_low, fit.ci_high, tolerance)


def classify_interval(exponent: float, ci_low: float, ci_high: float, tolerance: float = 0.1) -> Reading:
    """:func:`classify` of an exponent and its interval ``[ci_low, ci_high]`` from any fit."""
    if not np.isfinite(exponent):
        return UNCLEAR
    if -tolerance <= ci_low and ci_high <= tolerance:
        return O1
    if exponent > tolerance and ci_low > 0:
        return GROWS
    if exponent < -tolerance and ci_high < 0:
        return DECAYS
    return UNCLEAR


def drift_verdict(reading: Reading, subject: str = "") -> tuple[str, str]:
    """A reading of an optimum's (or any optimal value's) drift exponent as a transfer verdict: ``("transfers",
    "")`` for O(1), ``("drifts", "<subject> grows with width")`` or ``"… shrinks with width"``, else
    ``("unclear", "")``."""
    verdict = {O1: "transfers", GROWS: "drifts", DECAYS: "drifts"}.get(reading, "unclear")
    direction = {GROWS: "grows with width", DECAYS: "shrinks with width"}.get(reading, "")
    return verdict, f"{subject} {direction}".strip() if direction else ""
