"""Cleaning of raw bars (EVENTS.md §1): pure, counted step by step."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from detector.et_clock import wall_clock_to_utc, with_et_clock
from detector.zone_check import ZoneVerdict, auction_profile, zone_verdict

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
    # Whether the volume peaks sit on the auctions as read (detector.zone_check), judged
    # on every valid bar before the cut to [start, end), which would hide a shifted session.
    zone: ZoneVerdict | None = field(default=None, compare=False, repr=False)

    @property
    def rows_dropped(self) -> int:
        return self.rows_read - self.rows_kept


def normalize_exprs(schema: pl.Schema, naive_timezone: str) -> list[pl.Expr]:
    """Expressions bringing the required columns of ``schema`` to the canonical types.

    ``timestamp`` becomes Datetime(ms, UTC) (a naive one is read in ``naive_timezone``),
    prices Float64 with NaN and ±inf as null, ``volume`` Int64. The caller has checked the
    columns exist and are of a usable kind. Shared by the lazy scan of the bar files
    (so the data is materialised once, already converted) and :func:`normalize_types`.
    """
    ts = pl.col("timestamp")
    dtype = schema["timestamp"]
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is None:
        ts = ts.dt.replace_time_zone(naive_timezone, ambiguous="earliest", non_existent="null")
    ts = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    # NaN and ±inf become null, so cleaning drops them with the other bad prices (an
    # infinite high would otherwise pass and poison the day's VWAP and running high).
    prices = [_finite_or_null(pl.col(c).cast(pl.Float64)).alias(c) for c in PRICE_COLUMNS]
    volume = pl.col("volume")
    if schema["volume"].is_float():
        volume = volume.fill_nan(None).round(0)
    return [ts, *prices, volume.cast(pl.Int64, strict=False)]


def _finite_or_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_finite()).then(expr)


def normalize_types(frame: pl.DataFrame, naive_timezone: str) -> pl.DataFrame:
    """Bring one frame's required columns to the canonical types (see :func:`normalize_exprs`)."""
    dtype = frame.schema["timestamp"]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None and naive_timezone != "UTC":
        # The same instants as the expression's per-row zone lookup, a lookup per hour.
        frame = frame.with_columns(wall_clock_to_utc(frame.get_column("timestamp"), naive_timezone))
    return frame.select(normalize_exprs(frame.schema, naive_timezone))


def clean_bars(
    frame: pl.DataFrame,
    *,
    day_start_minute: int,
    day_end_minute: int,
    stats: CleaningStats | None = None,
    check_zone: bool = True,
) -> tuple[pl.DataFrame, CleaningStats]:
    """Sort, drop bad rows, keep the last of repeated timestamps, keep [start, end) ET.

    ``frame`` has the canonical types of :func:`normalize_types`. Returns the clean
    bars with ``ts_et`` (America/New_York), ``date`` (ET trading day) and ``minute``
    (ET minutes after midnight) added, and the statistics; with ``check_zone`` these
    hold the time-zone verdict of the bars (:mod:`detector.zone_check`, a few ms).

    Each step copies the rows only when it drops or moves some: real files are
    sorted and clean, so usually nothing is copied at all.
    """
    base = stats or CleaningStats()
    rows_read = frame.height
    checks = frame.select(_CHECKS).row(0, named=True)
    n_bad_ts = n_bad_price = n_high_low = n_bad_volume = 0
    if checks["nulls"] or checks["low_price"] or checks["high_low"] or checks["low_volume"]:
        n_bad_ts, n_bad_price, n_high_low, n_bad_volume, frame = _drop_bad_rows(frame)
    valid_rows = frame.height

    if checks["step"] is None or checks["step"] <= 0 or valid_rows < rows_read:
        frame = _sort_keep_last_repeat(frame)
    deduped_rows = frame.height

    frame = with_et_clock(frame)
    zone = zone_verdict(auction_profile(frame)) if check_zone else None
    outside, frame = _drop_outside_hours(frame, day_start_minute, day_end_minute)

    result = CleaningStats(
        files_read=base.files_read,
        files_skipped=base.files_skipped,
        rows_read=base.rows_read + rows_read,
        dropped_bad_timestamp=n_bad_ts,
        dropped_bad_price=n_bad_price,
        dropped_high_below_low=n_high_low,
        dropped_bad_volume=n_bad_volume,
        dropped_duplicate_timestamp=valid_rows - deduped_rows,
        dropped_outside_hours=outside,
        rows_kept=frame.height,
        zone=zone,
    )
    return frame, result


def _sort_keep_last_repeat(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by time with only the last row of each repeated timestamp."""
    ts = pl.col("timestamp")
    # Stable sort: among repeated timestamps the later file / later row stays last.
    if not frame["timestamp"].is_sorted():
        frame = frame.sort("timestamp", maintain_order=True)
    # Sorted, so repeats are adjacent: a row is dropped when the next has its time.
    repeated = frame.select((ts == ts.shift(-1)).fill_null(False)).to_series()
    if repeated.any():
        frame = frame.filter(~repeated)
    return frame


def _drop_outside_hours(
    frame: pl.DataFrame, day_start_minute: int, day_end_minute: int
) -> tuple[int, pl.DataFrame]:
    """The count of bars outside [start, end) ET minutes, and the rest.

    The min and max minute are read first so that a file already inside the hours
    (the usual case) is not copied.
    """
    if frame.is_empty():
        return 0, frame
    first, last = frame.select(pl.col("minute").min(), pl.col("minute").max().alias("x")).row(0)
    if first >= day_start_minute and last < day_end_minute:
        return 0, frame
    in_hours = pl.col("minute").is_between(day_start_minute, day_end_minute, "left")
    kept = frame.filter(in_hours)
    return frame.height - kept.height, kept


# Reductions only (fast): is any row bad, are the times strictly increasing? Built once.
_CHECKS = [
    pl.sum_horizontal(pl.col(c).null_count() for c in REQUIRED_COLUMNS).alias("nulls"),
    (pl.min_horizontal(pl.col(c).min() for c in PRICE_COLUMNS) <= 0).alias("low_price"),
    (pl.col("high") < pl.col("low")).any().alias("high_low"),
    (pl.col("volume").min() < 0).alias("low_volume"),
    pl.col("timestamp").to_physical().diff().min().alias("step"),
]


def _drop_bad_rows(frame: pl.DataFrame) -> tuple[int, int, int, int, pl.DataFrame]:
    """Counts of rows dropped for a missing timestamp, a bad price, high < low and a bad
    volume (each row under its first failing check, in that order), and the rest."""
    bad_ts = pl.col("timestamp").is_null()
    price_ok = pl.all_horizontal([pl.col(c) > 0 for c in PRICE_COLUMNS]).fill_null(False)
    bad_price = ~bad_ts & ~price_ok
    high_low = ~bad_ts & ~bad_price & (pl.col("high") < pl.col("low")).fill_null(False)
    bad_volume = ~bad_ts & ~bad_price & ~high_low & (pl.col("volume") < 0).fill_null(True)
    counts = frame.select(
        a=bad_ts.sum(), b=bad_price.sum(), c=high_low.sum(), d=bad_volume.sum()
    ).row(0)
    kept = frame.filter(~(bad_ts | bad_price | high_low | bad_volume))
    n_ts, n_price, n_high_low, n_volume = (int(n) for n in counts)
    return n_ts, n_price, n_high_low, n_volume, kept
