"""The run report's figures, each from one small aggregated table (pure)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from orchestrator.observe.html_page import light
from orchestrator.observe.run_data import RunEvents, Timeline

_LAYOUT = {
    "height": 380,
    "margin": {"l": 50, "r": 20, "t": 30, "b": 40},
}


def _stacked(frame: pl.DataFrame, x: str, series: str, *, y: str = "n") -> go.Figure:
    """One bar trace per value of ``series``, stacked (its caller gives it the look)."""
    fig = go.Figure()
    for (name,), part in frame.group_by(series, maintain_order=True):
        fig.add_bar(x=part.get_column(x).to_list(), y=part.get_column(y).to_list(), name=str(name))
    fig.update_layout(barmode="stack", **_LAYOUT)
    return fig


def per_day(ev: RunEvents) -> go.Figure:
    fig = _stacked(ev.per_day.sort("event_type", "date"), "date", "event_type")
    fig.update_layout(xaxis_title="trading day (New York)", yaxis_title="events")
    return light(fig)


def per_minute(ev: RunEvents) -> go.Figure:
    """On a linear minute axis, so that quiet minutes keep their width."""
    fig = _stacked(ev.per_minute.sort("event_type", "minute"), "minute", "event_type")
    ticks = list(range(4 * 60, 20 * 60 + 1, 30))
    fig.update_layout(
        xaxis={
            "title": "minute of the New York session (ET clock)",
            "tickvals": ticks,
            "ticktext": [f"{t // 60:02d}:{t % 60:02d}" for t in ticks],
        },
        yaxis_title="events",
        bargap=0,
    )
    return light(fig)


def score_distribution(ev: RunEvents) -> go.Figure:
    fig = go.Figure()
    for (name,), part in ev.score_hist.group_by("event_type", maintain_order=True):
        mid = ((part.get_column("lo") + part.get_column("hi")) / 2).to_list()
        fig.add_scatter(
            x=mid,
            y=part.get_column("n").to_list(),
            name=str(name),
            mode="lines+markers",
            line_shape="hvh",
        )
    fig.update_layout(
        xaxis_title="score (last bin: up to the highest)", yaxis_title="events", **_LAYOUT
    )
    return light(fig)


def per_symbol_day(ev: RunEvents) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(
        x=ev.per_symbol_day.get_column("events").to_list(),
        y=ev.per_symbol_day.get_column("symbol_days").to_list(),
        name="symbol-days",
    )
    fig.update_layout(
        xaxis_title="events in one symbol-day (days with at least one)",
        yaxis_title="symbol-days",
        **_LAYOUT,
    )
    return light(fig)


def top_symbols(ev: RunEvents) -> go.Figure:
    order = ev.top_symbols.get_column("symbol").unique(maintain_order=True).to_list()
    fig = _stacked(ev.top_symbols.sort("event_type"), "symbol", "event_type")
    fig.update_layout(
        xaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": order,
            "title": "symbol",
        },
        yaxis_title="events",
    )
    return light(fig)


def split(frame: pl.DataFrame, column: str) -> go.Figure:
    frame = frame.with_columns(pl.col(column).fill_null("none"))
    fig = _stacked(frame.sort(column, "event_type"), "event_type", column)
    fig.update_layout(xaxis_title="event type", yaxis_title="events", legend_title=column)
    return light(fig)


def commits(tl: Timeline) -> go.Figure:
    return _per_worker(tl.commits, "symbols", "symbols committed (cumulative)", "hv")


def memory(tl: Timeline) -> go.Figure:
    return _per_worker(tl.memory, "rss_gb", "worker RSS (GB)", "linear")


def _per_worker(frame: pl.DataFrame, y: str, title: str, shape: str) -> go.Figure:
    fig = go.Figure()
    for (worker,), part in frame.sort("worker", maintain_order=True).group_by(
        "worker", maintain_order=True
    ):
        name = "driver" if worker == -1 else f"worker {worker}"
        fig.add_scatter(
            x=[t.isoformat(sep=" ") for t in part.get_column("at").to_list()],
            y=part.get_column(y).to_list(),
            name=name,
            mode="lines+markers",
            line_shape=shape,
        )
    fig.update_layout(
        xaxis_title="time (local, as the logs write it)", yaxis_title=title, **_LAYOUT
    )
    return light(fig)
