"""How reports and tables print a number (by a format spec, with ``—`` where there is none) and a list of widths."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["fmt_interval", "fmt_number", "fmt_widths"]


def fmt_number(v: float | None, spec: str = ".3f") -> str:
    """``v`` formatted by ``spec``; ``—`` for None or a value that is not finite."""
    return "—" if v is None or not math.isfinite(v) else format(v, spec)


def fmt_interval(
    low: float | None, high: float | None, spec: str = "+.3f", *, whole: bool = False, cap: float | None = None
) -> str:
    """``[low, high]``, each end formatted by ``spec`` (``—`` for a missing end; with ``whole``, one ``—`` for the
    whole interval where its low end is missing, as a table cell prints an interval there is none of). With
    ``cap``, an end beyond ``±cap`` prints as ``< -cap`` or ``> +cap``: a bound too far out to be read as a number."""
    if whole and (low is None or not math.isfinite(low)):
        return "—"
    return f"[{_bound(low, spec, cap)}, {_bound(high, spec, cap)}]"


def _bound(v: float | None, spec: str, cap: float | None) -> str:
    if cap is None or v is None or not math.isfinite(v) or abs(v) <= cap:
        return fmt_number(v, spec)
    return f"{'<' if v < 0 else '>'} {math.copysign(cap, v):+g}"


def fmt_widths(widths: Iterable[int]) -> str:
    """``d = 128, 256, 1024`` for a note naming widths, in the order given."""
    return f"d = {', '.join(map(str, widths))}"
