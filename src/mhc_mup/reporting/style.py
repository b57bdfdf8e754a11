"""The look every figure shares: one palette, one marker cycle, one resolution.

Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies); every
series also gets its own marker, so a figure still reads in grey. Plain constants: the terminal tables use
the reading styles without importing matplotlib.
"""

from __future__ import annotations

__all__ = ["DPI", "MARKERS", "OKABE_ITO", "READING_COLOURS", "READING_RICH_STYLES"]

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DPI = 120

# A reading of an exponent (mhc_mup.stats.readings) → its colour, in figures and in the terminal.
READING_COLOURS = {"O(1)": OKABE_ITO[2], "grows": OKABE_ITO[1], "decays": OKABE_ITO[0], "unclear": OKABE_ITO[3]}
READING_RICH_STYLES = {"O(1)": "green", "grows": "red", "decays": "cyan", "unclear": "yellow"}
