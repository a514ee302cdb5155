"""Output columns an older event file may lack, derived as the detector derives them.

Older shards and final files were written before some output columns existed. Those
that follow from the others (EVENTS.md §6) are derived here, exactly as
:mod:`detector.pipeline` derives them for new events; a file lacking any other
column cannot be imported, and the one line says which.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from detector.config import DetectorConfig
from detector.features import session_label
from detector.schema import EVENT_SCHEMA, NY, derived_columns

# What each derivable column is made from.
DERIVABLE: dict[str, tuple[str, ...]] = {
    "timestamp_et": ("timestamp",),
    "date": ("timestamp",),
    "session": ("timestamp",),
    "event_bias": ("direction",),
    "close_vs_open": ("close", "open"),
    "tier": (),
}


def missing_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """(derivable, not derivable) output columns absent from ``columns``."""
    absent = [c for c in EVENT_SCHEMA if c not in columns]
    derivable = [c for c in absent if c in DERIVABLE and all(s in columns for s in DERIVABLE[c])]
    return derivable, [c for c in absent if c not in derivable]


def derive(
    frame: pl.DataFrame,
    columns: list[str],
    utc: pl.Expr,
    detector: Callable[[], DetectorConfig],
) -> pl.DataFrame:
    """``frame`` with the derivable ``columns`` added; ``utc`` is its UTC timestamp.

    ``detector`` gives the session bounds, read only when ``session`` is derived.
    """
    if not columns:
        return frame
    et = utc.dt.convert_time_zone(NY)
    exprs: dict[str, pl.Expr] = {
        "timestamp_et": et,
        "date": et.dt.date(),
        **derived_columns(),
    }
    out = frame.with_columns(exprs[c].alias(c) for c in columns if c != "session")
    if "session" in columns:
        minute = (et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute().cast(pl.Int32)).alias("minute")
        out = (
            out.with_columns(minute)
            .with_columns(session_label(detector()).alias("session"))
            .drop("minute")
        )
    return out
