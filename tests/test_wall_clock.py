"""Naive wall-clock timestamps to UTC by a lookup per local hour (detector.et_clock)
give exactly polars' per-row conversion, including the hours a zone skips or repeats."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from detector.cleaning import normalize_types
from detector.et_clock import wall_clock_to_utc

ZONES = [
    "America/New_York",  # the users' zone: 02:00-02:59 skipped in March, 01:00 twice in November
    "Europe/London",
    "Asia/Kolkata",  # +05:30
    "America/St_Johns",  # -03:30 and daylight saving
    "Australia/Lord_Howe",  # a half-hour daylight-saving shift: the per-row path
    "Asia/Tokyo",
]


def per_row(ts: pl.Series, zone: str) -> pl.Series:
    return ts.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")


def wall_clock_minutes(unit: str) -> pl.Series:
    """Every minute around both 2026 transitions of most zones, a spread of the year,
    sub-millisecond parts, a null, out of order."""
    spans = [
        (dt.datetime(2026, 3, 7), dt.datetime(2026, 3, 9)),
        (dt.datetime(2026, 3, 28), dt.datetime(2026, 3, 30)),
        (dt.datetime(2026, 4, 4), dt.datetime(2026, 4, 6)),
        (dt.datetime(2026, 10, 3), dt.datetime(2026, 10, 5)),
        (dt.datetime(2026, 10, 24), dt.datetime(2026, 10, 26)),
        (dt.datetime(2026, 10, 31), dt.datetime(2026, 11, 2)),
    ]
    parts = [pl.datetime_range(a, b, "1m", eager=True, time_unit=unit) for a, b in spans]
    spread = pl.datetime_range(
        dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31), "7h13m", eager=True, time_unit=unit
    )
    odd = pl.Series([dt.datetime(2026, 11, 1, 1, 30, 0, 123456), None], dtype=pl.Datetime(unit))
    return pl.concat([*parts, spread, odd]).shuffle(seed=3).alias("timestamp")


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
@pytest.mark.parametrize("zone", ZONES)
def test_equals_the_per_row_conversion(zone: str, unit: str) -> None:
    ts = wall_clock_minutes(unit)
    got = wall_clock_to_utc(ts, zone)
    expected = per_row(ts, zone).dt.convert_time_zone("UTC")
    assert got.dtype == pl.Datetime(unit, "UTC")
    assert got.equals(expected), zone
    assert got.null_count() > 1 or zone in ("Asia/Kolkata", "Asia/Tokyo")  # skipped hours


def test_sparse_or_empty_timestamps_take_the_per_row_path() -> None:
    far = pl.Series("timestamp", [dt.datetime(1990, 1, 1), dt.datetime(2026, 1, 1)])
    assert wall_clock_to_utc(far, "America/New_York").equals(
        per_row(far, "America/New_York").dt.convert_time_zone("UTC")
    )
    nothing = pl.Series("timestamp", [None, None], dtype=pl.Datetime("ms"))
    assert wall_clock_to_utc(nothing, "America/New_York").null_count() == 2


def test_normalize_types_reads_naive_bars_in_the_configured_zone() -> None:
    ts = wall_clock_minutes("us")
    frame = pl.DataFrame(
        {
            "timestamp": ts,
            **{c: pl.repeat(10.0, len(ts), eager=True) for c in ("open", "high", "low", "close")},
            "volume": pl.repeat(100, len(ts), eager=True),
        }
    )
    got = normalize_types(frame, "America/New_York").get_column("timestamp")
    expected = per_row(ts, "America/New_York").dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    assert got.equals(expected)
