"""What every report and figure shares: the block model and its Markdown/HTML renderers, one plotting style."""

from mhc_mup._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mhc_mup.reporting.blocks": (
            "Block", "FigureBlock", "Heading", "Paragraph", "Report", "Table", "render_html", "render_markdown",
        ),
        "mhc_mup.reporting.style": ("DPI", "MARKERS", "OKABE_ITO", "png_bytes"),
    },
    submodules=("blocks", "style"),
)
