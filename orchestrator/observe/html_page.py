"""One self-contained HTML page: plotly's JavaScript written once, then each figure's
div, tables and text; no network fetch of any kind, so it opens offline."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from orchestrator.run.atomic_io import write_text_atomic

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
td.l, th.l { text-align: left; }
pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; font-weight: bold; }
code { background: #f3f3f3; padding: 0 3px; }
"""


# plotly's "plotly_white" look, set key by key: naming a template costs about 10 ms a
# figure (plotly validates and copies the whole template each time), a report has 15.
_GRID = "#ebf0f8"
_COLORS = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
           "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52"]  # fmt: skip


def light(fig: go.Figure) -> go.Figure:
    """``fig`` in the report's light look (white, light grid, plotly's colours)."""
    fig.update_layout(
        template="none",
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=_COLORS,
        font={"color": "#2a3f5f"},
    )
    axes = {"gridcolor": _GRID, "zerolinecolor": _GRID, "linecolor": _GRID, "showgrid": True}
    fig.update_xaxes(**axes)
    fig.update_yaxes(**axes)
    return fig


@dataclass(frozen=True)
class Section:
    """A heading, then raw HTML (already escaped) and/or a figure."""

    title: str
    body: str = ""
    figure: go.Figure | None = None


def figure_div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned."""

    def cell(tag: str, i: int, value: object) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{value if isinstance(value, Raw) else html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


class Raw(str):
    """A table cell that is already HTML."""


def page(title: str, sections: Sequence[Section], *, banner: str | None = None) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        # plotly.js once for every figure of the page (about 4.6 MB, no CDN).
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if banner:
        parts.append(f'<p class="banner">{html.escape(banner)}</p>')
    for i, section in enumerate(sections):
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.body:
            parts.append(section.body)
        if section.figure is not None:
            parts.append(figure_div(section.figure, f"fig{i}"))
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_count(sections: Sequence[Section]) -> int:
    return sum(1 for s in sections if s.figure is not None)


def write_page(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text, durable=False)
