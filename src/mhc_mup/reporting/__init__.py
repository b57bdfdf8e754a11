"""What every report and figure shares: the block model and its Markdown/HTML renderers, one way to print a
number, one plotting style, one way to render a PNG, and worker processes that draw a report's figures side by side."""

from typing import TYPE_CHECKING

from mhc_mup._lazy import lazy_exports

if TYPE_CHECKING:  # the public names, read by type checkers and editors and by lazy_exports
    from mhc_mup.reporting.blocks import (
        Block,
        FigureBlock,
        Heading,
        Paragraph,
        Report,
        Table,
        render_html,
        render_markdown,
    )
    from mhc_mup.reporting.figure_pool import FigurePool, default_workers, render_figures
    from mhc_mup.reporting.numbers import fmt_interval, fmt_number, fmt_widths
    from mhc_mup.reporting.render import png_bytes
    from mhc_mup.reporting.style import DPI, MARKERS, OKABE_ITO

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    __file__,
    submodules=("blocks", "numbers", "style", "render", "figure_pool"),
)
