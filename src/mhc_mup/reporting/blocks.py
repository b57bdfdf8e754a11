"""A report as a list of blocks (headings, paragraphs, tables, figures), rendered to Markdown and to HTML.

Markdown links its figures as PNG files under ``figures/``; the HTML page embeds them as data URIs and
fetches nothing, so it opens offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Block", "FigureBlock", "Heading", "Paragraph", "Report", "Table", "render_html", "render_markdown"]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class FigureBlock:
    """A figure: its PNG bytes, or the job that draws it (``render_figures`` turns one into the other)."""

    name: str  # file name under figures/
    caption: str
    png: bytes = field(default=b"", repr=False)
    draw: Callable[[], Figure] | None = field(default=None, repr=False, compare=False)


Block = Heading | Paragraph | Table | FigureBlock


@dataclass
class Report:
    title: str
    blocks: list[Block]

    @property
    def figures(self) -> list[FigureBlock]:
        return [b for b in self.blocks if isinstance(b, FigureBlock)]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for b in report.blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            lines += [b.text, ""]
        elif isinstance(b, Table):
            if b.caption:
                lines += [_md_italic(b.caption), ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append("|" + "|".join(" --- " for _ in b.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        else:
            lines += [f"![{b.caption}](figures/{b.name})", "", _md_italic(b.caption), ""]
    return "\n".join(lines)


def _md_italic(text: str) -> str:
    """``text`` in italics, its own asterisks (``η*``) escaped so that they do not end the emphasis."""
    return "*" + text.replace("*", "\\*") + "*"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #0072B2;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f4f8}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;color:#555;padding-bottom:.3em}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-style:italic;color:#555}
"""


def _inline(text: str) -> str:
    """Escape, then the one inline markup the blocks use: **bold** and `code`."""
    out = html.escape(text)
    parts = out.split("**")
    out = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(report: Report) -> str:
    """One self-contained HTML page: inline CSS, figures as data URIs, nothing fetched."""
    body = [f"<h1>{html.escape(report.title)}</h1>"]
    for b in report.blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            caption = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            if not b.png:
                raise ValueError(f"figure {b.name} is not drawn yet: pass the report through render_figures first")
            data = base64.b64encode(b.png).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.caption)}">'
                f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
