"""The output table (EVENTS.md §6): one row per event."""

from __future__ import annotations

import polars as pl

NY = "America/New_York"

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "event_type": pl.String(),
    "timestamp": pl.Datetime("ms", "UTC"),
    "timestamp_et": pl.Datetime("ms", NY),
    "date": pl.Date(),
    "direction": pl.String(),
    "session": pl.String(),
    "spike_x": pl.Float64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Int64(),
    "dollar_volume": pl.Float64(),
    "score": pl.Float64(),
    "event_bias": pl.String(),
    "close_vs_open": pl.String(),
    "tier": pl.Int32(),
}
EVENT_KEY = ("symbol", "timestamp", "event_type", "direction")


def derived_columns() -> dict[str, pl.Expr]:
    """The output columns that follow from the others of an event row: its bias from the
    direction, its candle colour, its tier. (Also how older event files lacking them are
    completed on import.)"""
    return {
        "event_bias": pl.when(pl.col("direction") == "up")
        .then(pl.lit("bullish"))
        .otherwise(pl.lit("bearish")),
        "close_vs_open": pl.when(pl.col("close") > pl.col("open"))
        .then(pl.lit("green"))
        .otherwise(pl.lit("red")),
        "tier": pl.lit(1, pl.Int32),
    }


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_SCHEMA)


def to_event_schema(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast the output columns, sorted by the event key."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items()).sort(
        EVENT_KEY
    )
