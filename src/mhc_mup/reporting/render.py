"""One way to turn a figure into PNG bytes: Agg, at the shared resolution."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

from mhc_mup.reporting.style import DPI

matplotlib.use("Agg")  # headless: never opens a window, works without a display

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["png_bytes"]


def png_bytes(fig: Figure, dpi: float = DPI) -> bytes:
    """The figure as PNG bytes, drawn by Agg. A figure made through pyplot is closed afterwards (pyplot keeps
    every figure it made until then); a plain :class:`~matplotlib.figure.Figure` needs no closing."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        if fig.canvas.manager is not None:  # only pyplot gives a figure a manager
            import matplotlib.pyplot as plt

            plt.close(fig)
    return buf.getvalue()
