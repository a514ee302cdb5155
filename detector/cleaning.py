"""Cleaning of raw bars (EVENTS.md §1): pure, counted step by step."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

NY = "America/New_York"
REQUIRED_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class CleaningStats:
    """What cleaning did to one symbol's bars; every dropped row is in exactly one count."""

    files_read: int = 0
    files_skipped: tuple[str, ...] = ()
    rows_read: int = 0
    dropped_bad_timestamp: int = 0
    dropped_bad_price: int = 0
    dropped_high_below_low: int = 0
    dropped_bad_volume: int = 0
    dropped_duplicate_timestamp: int = 0
    dropped_outside_hours: int = 0
    rows_kept: int = 0

    @property
    def rows_dropped(self) -> int:
        return self.rows_read - self.rows_kept


def normalize_types(frame: pl.DataFrame, naive_timezone: str) -> pl.DataFrame:
    """Bring one file's required columns to the canonical types.

    ``timestamp`` becomes Datetime(ms, UTC) (a naive one is read in ``naive_timezone``),
    prices Float64 with NaN as null, ``volume`` Int64. The caller has checked the
    columns exist and are of a usable kind.
    """
    ts = pl.col("timestamp")
    dtype = frame.schema["timestamp"]
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is None:
        ts = ts.dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
    ts = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    prices = [pl.col(c).cast(pl.Float64).fill_nan(None) for c in PRICE_COLUMNS]
    volume = pl.col("volume")
    if frame.schema["volume"].is_float():
        volume = volume.fill_nan(None).round(0)
    return frame.select(ts, *prices, volume.cast(pl.Int64, strict=False))


def clean_bars(
    frame: pl.DataFrame,
    *,
    day_start_minute: int,
    day_end_minute: int,
    stats: CleaningStats | None = None,
) -> tuple[pl.DataFrame, CleaningStats]:
    """Sort, drop bad rows, keep the last of repeated timestamps, keep [start, end) ET.

    ``frame`` has the canonical types of :func:`normalize_types`. Returns the clean
    bars with ``ts_et`` (America/New_York), ``date`` (ET trading day) and ``minute``
    (ET minutes after midnight) added, and the statistics.
    """
    base = stats or CleaningStats()
    rows_read = frame.height
    # Stable sort: among repeated timestamps the later file / later row stays last.
    frame = frame.sort("timestamp", maintain_order=True)

    price_ok = pl.all_horizontal([pl.col(c).is_not_null() & (pl.col(c) > 0) for c in PRICE_COLUMNS])
    flags = frame.select(
        bad_ts=pl.col("timestamp").is_null(),
        bad_price=~price_ok,
        high_low=pl.col("high") < pl.col("low"),
        bad_volume=pl.col("volume").is_null() | (pl.col("volume") < 0),
    )
    bad_ts = flags["bad_ts"]
    bad_price = ~bad_ts & flags["bad_price"]
    high_low = ~bad_ts & ~bad_price & flags["high_low"].fill_null(False)
    bad_volume = ~bad_ts & ~bad_price & ~high_low & flags["bad_volume"]
    keep = ~(bad_ts | bad_price | high_low | bad_volume)
    valid = frame.filter(keep)

    deduped = valid.unique("timestamp", keep="last", maintain_order=True)
    et = deduped.with_columns(ts_et=pl.col("timestamp").dt.convert_time_zone(NY))
    et = et.with_columns(
        date=pl.col("ts_et").dt.date(),
        minute=(pl.col("ts_et").dt.hour().cast(pl.Int32) * 60 + pl.col("ts_et").dt.minute()),
    )
    in_hours = et.filter(pl.col("minute").is_between(day_start_minute, day_end_minute, "left"))

    result = CleaningStats(
        files_read=base.files_read,
        files_skipped=base.files_skipped,
        rows_read=base.rows_read + rows_read,
        dropped_bad_timestamp=int(bad_ts.sum()),
        dropped_bad_price=int(bad_price.sum()),
        dropped_high_below_low=int(high_low.sum()),
        dropped_bad_volume=int(bad_volume.sum()),
        dropped_duplicate_timestamp=valid.height - deduped.height,
        dropped_outside_hours=et.height - in_hours.height,
        rows_kept=in_hours.height,
    )
    return in_hours, result
