"""The picture of one event in context (pure): candlesticks with VWAP, the opening range
and its break levels, the consolidation base and the running day high; volume with
its baselines below; every event of the window marked."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from orchestrator.observe.event_view import EventContext
from orchestrator.observe.html_page import Section, light, table

_UP, _DOWN = "#26a69a", "#ef5350"


def context_figure(ctx: EventContext) -> go.Figure:
    t = ctx.bars.get_column("t").to_list()
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.03
    )
    _add_candles(fig, ctx.bars, t)
    _add_levels(fig, ctx.bars, _level_lines(ctx), t)
    _add_volume(fig, ctx.bars, t)
    _mark_events(fig, ctx.events)
    fig.add_vline(x=ctx.at.replace(tzinfo=None), line={"color": "#888", "dash": "dot"})
    fig.update_layout(
        height=620,
        margin={"l": 50, "r": 20, "t": 40, "b": 30},
        title=f"{ctx.symbol} around {ctx.at:%Y-%m-%d %H:%M} ET (±{ctx.minutes} min)",
        xaxis_rangeslider_visible=False,
        legend={"orientation": "h", "y": -0.08},
    )
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    return light(fig)


# A line over the candles: its legend name, its values and its plotly line style.
_Line = tuple[str, pl.Expr, dict[str, Any]]


def _add_candles(fig: go.Figure, bars: pl.DataFrame, t: list[Any]) -> None:
    fig.add_candlestick(
        x=t,
        open=bars.get_column("open").to_list(),
        high=bars.get_column("high").to_list(),
        low=bars.get_column("low").to_list(),
        close=bars.get_column("close").to_list(),
        name="bars",
        increasing_line_color=_UP,
        decreasing_line_color=_DOWN,
        row=1,
        col=1,
    )


def _level_lines(ctx: EventContext) -> list[_Line]:
    """VWAP, the opening range and its break levels, the running day high and, when
    consolidation_break is enabled, its base."""
    k = ctx.breakout_pct / 100
    # The range is drawn from the minute it is complete, when breaks can fire.
    known = pl.col("minute") >= ctx.or_end_minute
    or_high, or_low = pl.when(known).then("or_high"), pl.when(known).then("or_low")
    lines: list[_Line] = [
        ("VWAP (RTH)", pl.col("vwap"), {"color": "#1f77b4", "width": 2}),
        ("opening range high", or_high, {"color": "#9467bd", "dash": "dot"}),
        ("opening range low", or_low, {"color": "#9467bd", "dash": "dot"}),
        ("OR break level up", or_high * (1 + k), {"color": "#9467bd", "dash": "dash"}),
        ("OR break level down", or_low * (1 - k), {"color": "#9467bd", "dash": "dash"}),
        ("running day high", pl.col("day_high_so_far"), {"color": "#ff7f0e", "shape": "hv"}),
    ]
    if "base_high" in ctx.bars.columns:  # consolidation_break enabled
        lines += [
            ("consolidation base high", pl.col("base_high"), {"color": "#8c564b", "width": 1}),
            ("consolidation base low", pl.col("base_low"), {"color": "#8c564b", "width": 1}),
        ]
    return lines


def _add_levels(fig: go.Figure, bars: pl.DataFrame, lines: list[_Line], t: list[Any]) -> None:
    values = bars.select(*(expr.alias(name) for name, expr, _ in lines))
    for name, _, line in lines:
        fig.add_scatter(
            x=t,
            y=values.get_column(name).to_list(),
            name=name,
            mode="lines",
            line=line,
            connectgaps=False,
            row=1,
            col=1,
        )


def _add_volume(fig: go.Figure, bars: pl.DataFrame, t: list[Any]) -> None:
    """The volume bars, coloured as their candles, with the baselines the rules use."""
    colors = [_UP if c >= o else _DOWN for o, c in zip(bars["open"], bars["close"], strict=True)]
    fig.add_bar(
        x=t, y=bars.get_column("volume").to_list(), name="volume", marker_color=colors, row=2, col=1
    )
    fig.add_scatter(
        x=t,
        y=bars.get_column("vol_avg20").to_list(),
        name="20-bar mean volume",
        mode="lines",
        line={"color": "#444", "dash": "dot"},
        row=2,
        col=1,
    )
    if "vol_ref" in bars.columns:  # volume_spike's baseline (rolling median or mean)
        fig.add_scatter(
            x=t,
            y=bars.get_column("vol_ref").to_list(),
            mode="lines",
            name="volume_spike baseline (vol_ref)",
            line={"color": "#d62728", "dash": "dash"},
            row=2,
            col=1,
        )


def _mark_events(fig: go.Figure, events: pl.DataFrame) -> None:
    for (kind,), part in events.group_by("event_type", maintain_order=True):
        up = part.get_column("direction") == "up"
        y = [
            h * 1.004 if u else lo * 0.996
            for h, lo, u in zip(part["high"], part["low"], up, strict=True)
        ]
        fig.add_scatter(
            x=part.get_column("t").to_list(),
            y=y,
            mode="markers",
            name=str(kind),
            marker={"size": 12, "symbol": ["triangle-up" if u else "triangle-down" for u in up]},
            hovertext=[
                f"{kind} {d} score {s:.3f}"
                for d, s in zip(part["direction"], part["score"], strict=True)
            ],
            row=1,
            col=1,
        )


def context_sections(contexts: Sequence[EventContext]) -> list[Section]:
    """One figure and a table of the window's events per context."""
    out = []
    for ctx in contexts:
        rows = [
            (
                r["t"].strftime("%Y-%m-%d %H:%M"),
                r["event_type"],
                r["direction"],
                r["session"] or "",
                f"{r['score']:.3f}",
                f"{r['close']:.4g}",
                f"{r['volume']:,}",
            )
            for r in ctx.events.sort("t", "event_type").iter_rows(named=True)
        ]
        events = (
            table(
                ["time (ET)", "type", "direction", "session", "score", "close", "volume"],
                rows,
                left=4,
            )
            if rows
            else "<p>No event in this window.</p>"
        )
        title = f"{ctx.symbol} {ctx.at:%Y-%m-%d %H:%M} ET"
        note = (
            "<p>Bars, features and events recomputed from the bar files by the detector's "
            f"own code; {html.escape(str(ctx.events.height))} events in the window.</p>"
        )
        out.append(Section(title, note, context_figure(ctx)))
        out.append(Section(f"Events of the window ({title})", events))
    return out
