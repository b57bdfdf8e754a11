"""The look every figure shares: one palette, one marker cycle, one resolution, one way to render a PNG.

Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies); every
series also gets its own marker, so a figure still reads in grey.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: never opens a window, works without a display

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DPI", "MARKERS", "OKABE_ITO", "READING_COLOURS", "READING_RICH_STYLES", "png_bytes"]

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DPI = 120

# A reading of an exponent (mhc_mup.stats.readings) → its colour, in figures and in the terminal.
READING_COLOURS = {"O(1)": OKABE_ITO[2], "grows": OKABE_ITO[1], "decays": OKABE_ITO[0], "unclear": OKABE_ITO[3]}
READING_RICH_STYLES = {"O(1)": "green", "grows": "red", "decays": "cyan", "unclear": "yellow"}


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
