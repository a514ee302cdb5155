"""Hand-built bars for tests: ET wall-clock rows in, canonical frames out."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from detector.config import DetectorConfig

NY = ZoneInfo("America/New_York")
DETECTOR_SECTIONS = (
    "volume_spike",
    "vwap_break",
    "price_momentum",
    "consolidation_break",
    "opening_range_break",
    "flush_detection",
)


def et_instant(day: str | date, hhmm: str) -> datetime:
    """The UTC-aware instant of an ET wall-clock time on ``day``."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return datetime(d.year, d.month, d.day, hours, minutes, tzinfo=NY)


def minutes_after(hhmm: str, n: int) -> str:
    t = datetime(2000, 1, 1, *(int(x) for x in hhmm.split(":"))) + timedelta(minutes=n)
    return t.strftime("%H:%M")


Row = tuple[str, str, float, float, float, float, int]  # (day, "HH:MM" ET, o, h, l, c, v)


BAR_SCHEMA = {
    "timestamp": pl.Datetime("ms", "UTC"),
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Int64,
}


def ohlcv_frame(
    timestamps: list[datetime], ohlcv: list[tuple[float, float, float, float, int]]
) -> pl.DataFrame:
    """Bars as the users' files hold them: UTC ms timestamps, Float64 prices, Int64 volume."""
    columns = list(zip(*ohlcv, strict=True)) if ohlcv else [[]] * 5
    data = dict(zip(BAR_SCHEMA, [timestamps, *map(list, columns)], strict=True))
    return pl.DataFrame(data, schema=BAR_SCHEMA)


def bars_frame(rows: list[Row]) -> pl.DataFrame:
    """Bars from ``(day, "HH:MM" ET, o, h, l, c, v)`` rows."""
    return ohlcv_frame([et_instant(d, t) for d, t, *_ in rows], [tuple(r[2:]) for r in rows])


def flat_bars(
    day: str, start: str, n: int, *, price: float = 10.0, volume: int = 1000, spread: float = 0.0
) -> list[Row]:
    """``n`` consecutive flat bars from ``start``; ``spread`` widens high/low around price."""
    return [
        (day, minutes_after(start, i), price, price + spread, price - spread, price, volume)
        for i in range(n)
    ]


def with_overrides(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with dotted paths: ``with_overrides(cfg, **{"a.b": 1})``."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(obj, head), **sub)
    return dataclasses.replace(obj, **direct)


def loose_config(*enabled: str, **changes: Any) -> DetectorConfig:
    """Only the named detector sections enabled (all when none named), global filters
    off (no price, day-volume or day-size limits), then ``changes`` applied.

    The guards of EVENTS.md version 2 that are about whole days and histories are off
    too (no auction minutes, ATR from one prior day), so that a test of one rule's edge
    can put its bars anywhere in a short history; those guards have their own tests
    (tests/test_detector_v2.py), which turn them back on with ``changes``.
    """
    cfg = DetectorConfig()
    names = enabled or DETECTOR_SECTIONS
    off = {f"{s}.enable": s in names for s in DETECTOR_SECTIONS}
    base = {
        "min_bars_per_day": 1,
        "global_filters.min_price": 0.0,
        "global_filters.max_price": 1e9,
        "global_filters.min_dollar_volume_day": 0.0,
        "session_bounds.auction_minutes": (),
        "consolidation_break.min_atr_days": 1,
        **off,
    }
    return with_overrides(cfg, **{**base, **changes})


def write_daily(root: Path, symbol: str, frame: pl.DataFrame) -> list[Path]:
    """Split ``frame`` into UTC-date files as the users' ingest does."""
    paths = []
    with_day = frame.with_columns(_d=pl.col("timestamp").dt.date())
    for (day,), part in with_day.group_by("_d", maintain_order=True):
        path = root / f"symbol={symbol}" / f"date={day}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        part.drop("_d").write_parquet(path)
        paths.append(path)
    return paths


def busy_days(n: int = 3, start: str = "2026-03-05") -> pl.DataFrame:
    """n weekdays of 04:00-20:00 ET bars with some movement, in users' dtypes."""
    rows = []
    d = date.fromisoformat(start)
    while len({r[0] for r in rows}) < n:
        if d.weekday() < 5:
            for i, (o, c) in enumerate(
                [(10.0, 10.4), (10.4, 9.9), (9.9, 10.6), (10.6, 10.1)] * 240
            ):
                t = (datetime(2000, 1, 1, 4, 0) + timedelta(minutes=i)).strftime("%H:%M")
                volume = 5000 + 37 * (i % 50)
                if i % 97 == 50:  # a burst: volume and range jump, price breaks out
                    volume, c = volume * 15, o * 1.12
                rows.append((d.isoformat(), t, o, max(o, c) + 0.05, min(o, c) - 0.05, c, volume))
        d += timedelta(days=1)
    frame = bars_frame(rows)
    return frame.with_columns(
        [pl.col(c).cast(pl.Float32) for c in ("open", "high", "low", "close")],
        vwap=pl.col("close").cast(pl.Float32),
        transactions=pl.lit(12, pl.Int32),
    )


def random_walk_rows(
    days: list[str],
    *,
    seed: int,
    start: str = "04:00",
    n: int = 16 * 60,
    price: float = 20.0,
) -> list[Row]:
    """``n`` consecutive bars from ``start`` on each of ``days``: a seeded random walk
    with occasional jumps and volume bursts, so every detector finds something.

    Deterministic for a given seed; each day restarts the generator, so the same
    seed gives the same ET wall-clock bars on every day.
    """
    import random

    rows: list[Row] = []
    for day in days:
        rng = random.Random(seed)
        close = price
        run, run_sign = 0, 1
        for i in range(n):
            open_ = close
            step = rng.gauss(0.0, 0.002)
            if run == 0 and rng.random() < 0.02:
                run, run_sign = rng.randint(1, 4), rng.choice((-1, 1))
            burst = run > 0
            if burst:
                step += run_sign * rng.uniform(0.01, 0.04)
                run -= 1
            close = round(max(0.5, open_ * (1 + step)), 4)
            high = round(max(open_, close) * (1 + rng.uniform(0, 0.003)), 4)
            low = round(min(open_, close) * (1 - rng.uniform(0, 0.003)), 4)
            volume = int(rng.uniform(500, 3000) * (rng.uniform(5, 20) if burst else 1))
            rows.append((day, minutes_after(start, i), open_, high, low, close, volume))
    return rows
