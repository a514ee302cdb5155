"""The ET trading day and clock minute of UTC bars, without a time-zone lookup per row.

``.dt.date()`` / ``.dt.hour()`` on an America/New_York column resolve the zone for
every row, which cost more than everything else in cleaning. New York's UTC offset
only ever changes on a whole UTC hour (DST at 06:00/07:00 UTC, and the 1883 switch
from local mean time at 17:00 UTC), so the offset is looked up once per UTC hour of
the symbol's span and gathered per row. The result is exactly that of the per-row
conversion: an hour whose offset differs at its first and last millisecond, or a
span of hours much larger than the rows, falls back to the per-row conversion.
"""

from __future__ import annotations

import functools

import polars as pl

NY = "America/New_York"
MS_PER_MINUTE = 60_000
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR
# The hour table is built for every hour between the first and last bar; beyond this
# many hours per row (sparse or outlying timestamps) the per-row conversion is cheaper.
_MAX_HOURS_PER_ROW = 8
_MIN_HOUR_TABLE = 100_000
_HOURS_PER_BLOCK = 32 * 24


def with_et_clock(frame: pl.DataFrame, zone: str = NY) -> pl.DataFrame:
    """Add ``ts_et`` (``zone``), ``date`` (its calendar date) and ``minute`` (Int32 minutes
    after its midnight) to ``frame``, whose ``timestamp`` is Datetime(ms, UTC) without nulls.
    """
    # Converting the zone only relabels the column: the instants stay as they are.
    frame = frame.with_columns(ts_et=pl.col("timestamp").dt.convert_time_zone(zone))
    local_ms = _local_ms(frame["timestamp"], zone)
    if local_ms is None:
        et = pl.col("ts_et")
        return frame.with_columns(
            date=et.dt.date(),
            minute=et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute(),
        )
    return frame.with_columns(
        date=(local_ms // MS_PER_DAY).cast(pl.Int32).cast(pl.Date),
        minute=((local_ms % MS_PER_DAY) // MS_PER_MINUTE).cast(pl.Int32),
    )


def _local_ms(timestamp: pl.Series, zone: str) -> pl.Series | None:
    """Wall-clock milliseconds in ``zone`` of each UTC instant, or None to convert per row."""
    if timestamp.is_empty():
        return None
    epoch_ms = timestamp.dt.cast_time_unit("ms").to_physical()
    hour = epoch_ms // MS_PER_HOUR
    blocks = _hour_blocks(hour)
    if blocks is None:
        return None
    first, last = blocks
    at_start = _hour_offsets(zone, first, last)
    if at_start is None:
        return None
    return epoch_ms + at_start.gather(hour - first)


def _hour_blocks(hour: pl.Series) -> tuple[int, int] | None:
    """The first and last hour of the whole blocks of hours that span ``hour``, or None
    where a table of them would not pay (no value, or far more hours than rows).
    Whole blocks, so that symbols of one run share the table whatever the hour of their
    first and last bar."""
    first, last = hour.min(), hour.max()
    if first is None or last is None:
        return None
    assert isinstance(first, int) and isinstance(last, int)
    if last - first + 1 > max(_MAX_HOURS_PER_ROW * len(hour), _MIN_HOUR_TABLE):
        return None
    first -= first % _HOURS_PER_BLOCK
    last += _HOURS_PER_BLOCK - 1 - last % _HOURS_PER_BLOCK
    return first, last


@functools.lru_cache(maxsize=8)
def _hour_offsets(zone: str, first: int, last: int) -> pl.Series | None:
    """The offset at the start of each UTC hour ``first``..``last`` (hours since the epoch),
    or None if it changes inside one of them. Cached: the symbols of a run mostly cover
    the same blocks of hours, so this is computed about once per run."""
    # One hour past the last, so that every hour of the span has a successor.
    starts = pl.int_range(first, last + 2, dtype=pl.Int64, eager=True) * MS_PER_HOUR
    at_start = _offset_ms(starts, zone)
    # Only where the offset differs from the next hour's can it change inside the hour:
    # there it must still hold at the hour's last millisecond.
    changes = starts.filter(at_start != at_start.shift(-1))
    if (
        changes.len()
        and (_offset_ms(changes, zone) != _offset_ms(changes + (MS_PER_HOUR - 1), zone)).any()
    ):
        return None  # an offset change inside an hour: not New York's rules
    return at_start


def _offset_ms(epoch_ms: pl.Series, zone: str) -> pl.Series:
    """UTC offset of ``zone`` at each instant, in milliseconds."""
    wall = (
        epoch_ms.cast(pl.Datetime("ms", "UTC"))
        .dt.convert_time_zone(zone)
        .dt.replace_time_zone(None)
        .to_physical()
    )
    return wall - epoch_ms


_UNITS_PER_SECOND = {"ms": 10**3, "us": 10**6, "ns": 10**9}


def wall_clock_to_utc(timestamp: pl.Series, zone: str) -> pl.Series:
    """Naive wall-clock times of ``zone`` as the instants they name, Datetime(unit, UTC):
    exactly ``replace_time_zone(zone, ambiguous="earliest", non_existent="null")``.

    That conversion looks the zone up for every row (about 12 ms for 750 days of
    minute bars, a sixth of the detection); here it is looked up for every local hour of
    the span and gathered per row, as :func:`with_et_clock` does the other way. It holds
    where a zone's offset changes only on whole local hours (New York's, every zone's
    but a few): an hour whose first and last instant differ (offset, or one missing)
    sends the whole frame through the per-row conversion.
    """
    dtype = timestamp.dtype
    assert isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    unit = dtype.time_unit or "us"
    utc = _by_local_hour(timestamp.to_physical(), zone, unit)
    if utc is None:
        aware = timestamp.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        return aware.dt.convert_time_zone("UTC")
    return utc.cast(pl.Datetime(unit, "UTC")).alias(timestamp.name)


def _by_local_hour(wall: pl.Series, zone: str, unit: str) -> pl.Series | None:
    per_hour = 3600 * _UNITS_PER_SECOND[unit]
    hour = wall // per_hour
    blocks = _hour_blocks(hour)
    if blocks is None:
        return None
    first, last = blocks
    offsets = _local_hour_offsets(zone, unit, first, last)
    if offsets is None:
        return None
    return wall + offsets.gather(hour - first)


@functools.lru_cache(maxsize=8)
def _local_hour_offsets(zone: str, unit: str, first: int, last: int) -> pl.Series | None:
    """UTC minus wall clock for each local hour ``first``..``last`` (null: the hour does
    not exist), or None where an hour's first and last instant disagree."""
    per_hour = 3600 * _UNITS_PER_SECOND[unit]
    starts = pl.int_range(first, last + 1, dtype=pl.Int64, eager=True) * per_hour
    ends = starts + (per_hour - 1)
    at_start = _instant(starts, zone, unit) - starts
    at_end = _instant(ends, zone, unit) - ends
    if not at_start.eq_missing(at_end).all():
        return None
    return at_start


def _instant(wall: pl.Series, zone: str, unit: str) -> pl.Series:
    naive = wall.cast(pl.Datetime(unit))  # type: ignore[arg-type]
    aware = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    return aware.to_physical()
