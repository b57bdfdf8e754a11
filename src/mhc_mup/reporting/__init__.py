"""What every report and figure shares: the block model and its Markdown/HTML renderers, one way to print a
number, one plotting style, one way to render a PNG, and worker processes that draw a report's figures side by side."""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.reporting.blocks": (
            "Block", "FigureBlock", "Heading", "Paragraph", "Report", "Table", "render_html", "render_markdown",
        ),
        "mhc_mup.reporting.numbers": ("fmt_interval", "fmt_number", "fmt_widths"),
        "mhc_mup.reporting.style": ("DPI", "MARKERS", "OKABE_ITO"),
        "mhc_mup.reporting.render": ("png_bytes",),
        "mhc_mup.reporting.figure_pool": ("FigurePool", "default_workers", "render_figures"),
    },
    submodules=("blocks", "numbers", "style", "render", "figure_pool"),
)
