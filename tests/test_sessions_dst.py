"""Sessions and trading days around the 2026 DST changes (EVENTS.md §1, §2, §6).

US clocks go forward on Sunday 2026-03-08 and back on Sunday 2026-11-01. A UTC
timestamp then maps to a different ET wall clock on the Friday before and the
Monday after; sessions, days and events must follow the ET wall clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.config import AppConfig, BarsConfig, DetectorConfig
from detector.pipeline import detect_bars, detect_symbol_result
from detector.schema import EVENT_SCHEMA

from builders import (
    Row,
    bars_frame,
    et_instant,
    flat_bars,
    loose_config,
    minutes_after,
    ohlcv_frame,
    random_walk_rows,
    write_daily,
)

NY = "America/New_York"
MARCH = ("2026-03-06", "2026-03-08", "2026-03-09")  # Fri EST, Sun (change), Mon EDT
NOVEMBER = ("2026-10-30", "2026-11-01", "2026-11-02")  # Fri EDT, Sun (change), Mon EST
AROUND_DST = [*MARCH, *NOVEMBER]


def every_bar_fires(**changes: Any) -> DetectorConfig:
    """volume_spike with every threshold 0: each bar with volume is a raw candidate,
    which shows its session and trading day through the public API."""
    zero = {
        f"volume_spike.{s}.{f}": 0.0
        for s in ("rth", "pm_ah")
        for f in ("min_spike", "min_absolute_volume", "min_dollar_volume")
    }
    return loose_config("volume_spike", **zero, **{"volume_spike.min_range_1m_pct": 0.0}, **changes)


def labels(frame: pl.DataFrame, config: AppConfig | DetectorConfig) -> list[tuple[str, str, str]]:
    """(ET date, ET "HH:MM", session) of every clean bar, via raw candidates."""
    events = detect_bars("T", frame, config, raw=True).events
    return [
        (d.isoformat(), ts.strftime("%H:%M"), s)
        for d, ts, s in events.select("date", "timestamp_et", "session").iter_rows()
    ]


def utc_frame(rows: list[tuple[str, float, float, float, float, int]]) -> pl.DataFrame:
    """Bars given by UTC "YYYY-MM-DD HH:MM" timestamps."""
    return ohlcv_frame(
        [datetime.fromisoformat(r[0]).replace(tzinfo=UTC) for r in rows], [r[1:] for r in rows]
    )


BOUNDARY_TIMES = {
    "04:00": "PM",
    "09:29": "PM",
    "09:30": "RTH",
    "15:59": "RTH",
    "16:00": "AH",
    "19:59": "AH",
}


@pytest.mark.parametrize("day", AROUND_DST)
def test_session_bounds_on_the_et_wall_clock(day: str) -> None:
    rows = [(day, t, 10.0, 10.1, 9.9, 10.05, 1000) for t in BOUNDARY_TIMES]
    assert labels(bars_frame(rows), every_bar_fires()) == [
        (day, t, s) for t, s in BOUNDARY_TIMES.items()
    ]


@pytest.mark.parametrize(("friday", "monday"), [(MARCH[0], MARCH[2]), (NOVEMBER[0], NOVEMBER[2])])
def test_same_wall_clock_bars_give_same_sessions_and_events_across_dst(
    friday: str, monday: str
) -> None:
    def day_view(day: str, cfg: DetectorConfig, raw: bool) -> pl.DataFrame:
        frame = bars_frame(random_walk_rows([day], seed=3))
        events = detect_bars("T", frame, cfg, raw=raw).events
        return events.select(
            pl.col("timestamp_et").dt.strftime("%H:%M").alias("clock"),
            pl.exclude("timestamp", "timestamp_et", "date"),
        )

    sessions = {
        s for *_, s in labels(bars_frame(random_walk_rows([friday], seed=3)), every_bar_fires())
    }
    assert sessions == {"PM", "RTH", "AH"}
    assert (
        day_view(friday, every_bar_fires(), True)
        .select("clock", "session")
        .equals(day_view(monday, every_bar_fires(), True).select("clock", "session"))
    )
    for raw in (False, True):
        before, after = day_view(friday, loose_config(), raw), day_view(monday, loose_config(), raw)
        assert len(before) > 20
        assert set(before["session"]) == {"PM", "RTH", "AH"}
        assert before.equals(after)


@pytest.mark.parametrize(
    ("utc", "et_day", "et_clock", "session"),
    [
        ("2026-03-06 13:30", "2026-03-06", "08:30", "PM"),  # EST: UTC-5
        ("2026-03-09 13:30", "2026-03-09", "09:30", "RTH"),  # EDT: UTC-4
        ("2026-10-30 13:30", "2026-10-30", "09:30", "RTH"),
        ("2026-11-02 13:30", "2026-11-02", "08:30", "PM"),
        ("2026-03-06 20:30", "2026-03-06", "15:30", "RTH"),
        ("2026-03-09 20:30", "2026-03-09", "16:30", "AH"),
        ("2026-10-30 20:00", "2026-10-30", "16:00", "AH"),
        ("2026-11-02 20:00", "2026-11-02", "15:00", "RTH"),
        ("2026-03-07 00:30", "2026-03-06", "19:30", "AH"),  # next UTC day, same ET day
        ("2026-11-03 00:59", "2026-11-02", "19:59", "AH"),
        ("2026-10-30 23:59", "2026-10-30", "19:59", "AH"),
    ],
)
def test_utc_timestamps_are_classified_by_et(
    utc: str, et_day: str, et_clock: str, session: str
) -> None:
    frame = utc_frame([(utc, 10.0, 10.1, 9.9, 10.05, 1000)])
    assert labels(frame, every_bar_fires()) == [(et_day, et_clock, session)]


@pytest.mark.parametrize(("day", "fires"), [("2026-03-06", False), ("2026-03-09", True)])
def test_utc_1330_spike_is_premarket_in_winter_and_rth_in_summer(day: str, fires: bool) -> None:
    # spike_x 6 passes the RTH threshold (6) but not the pre-market one (8).
    rows = [(f"{day} {minutes_after('13:11', i)}", 64.0, 64.0, 64.0, 64.0, 2000) for i in range(19)]
    rows.append((f"{day} 13:30", 64.0, 65.0, 64.0, 64.5, 12000))
    events = detect_bars("T", utc_frame(rows), loose_config("volume_spike")).events
    if fires:
        assert events.select("session", "spike_x").rows() == [("RTH", 6.0)]
        assert events["timestamp_et"].dt.strftime("%H:%M").to_list() == ["09:30"]
    else:
        assert events.is_empty()


@pytest.mark.parametrize("day", ["2026-01-16", "2026-10-30", "2026-11-02", "2026-03-09"])
def test_evening_bars_in_next_utc_date_file_belong_to_the_et_day(tmp_path: Path, day: str) -> None:
    # 19 bars 18:41-18:59 ET, then a spike at 19:00 ET (8 x the median, passes AH
    # thresholds) and quiet bars to 19:59. In winter 19:00 ET is 00:00 UTC of the next
    # day, so the window crosses two UTC-date files; it must be one ET trading day.
    rows: list[Row] = [
        *flat_bars(day, "18:41", 19, price=64.0, volume=2000),
        (day, "19:00", 64.0, 65.0, 64.0, 64.5, 16000),
        *flat_bars(day, "19:01", 59, price=64.0, volume=2000),
    ]
    files = write_daily(tmp_path, "T", bars_frame(rows))
    winter = date.fromisoformat(day).month in (1, 11)
    assert len(files) == (2 if winter else 1)
    result = detect_symbol_result("T", tmp_path, loose_config("volume_spike", min_bars_per_day=79))
    events = result.events
    assert result.bars == 79
    assert events.select("date", "session", "spike_x").rows() == [
        (date.fromisoformat(day), "AH", 8.0)
    ]
    assert events["timestamp_et"].dt.strftime("%H:%M").to_list() == ["19:00"]
    # every clean bar is on the ET day
    days = {d for d, _, _ in labels(bars_frame(rows), every_bar_fires())}
    assert days == {day}


@pytest.mark.parametrize("day", ["2026-07-15", "2026-03-06", "2026-03-09", "2026-11-02"])
def test_naive_timestamps_are_read_in_the_configured_zone(day: str) -> None:
    naive = bars_frame(flat_bars(day, "09:30", 1, price=10.0)).with_columns(
        timestamp=pl.lit(datetime.fromisoformat(f"{day} 09:30"), pl.Datetime("ms"))
    )
    assert naive.schema["timestamp"] == pl.Datetime("ms")
    ny = AppConfig(bars=BarsConfig(naive_timezone=NY), detector=every_bar_fires())
    assert labels(naive, ny) == [(day, "09:30", "RTH")]
    event = detect_bars("T", naive, ny, raw=True).events
    assert event["timestamp"].to_list() == [et_instant(day, "09:30").astimezone(UTC)]
    # default: naive means UTC; 09:30 UTC is 04:30 or 05:30 ET, pre-market
    expected_clock = et_instant(day, "09:30")
    utc_read = (
        datetime.fromisoformat(f"{day} 09:30").replace(tzinfo=UTC).astimezone(expected_clock.tzinfo)
    )
    for cfg in (every_bar_fires(), AppConfig(detector=every_bar_fires())):
        assert labels(naive, cfg) == [(day, utc_read.strftime("%H:%M"), "PM")]


@pytest.mark.parametrize("day", AROUND_DST)
def test_bars_at_0359_and_2000_et_are_dropped_0400_and_1959_kept(day: str) -> None:
    rows = [(day, t, 10.0, 10.1, 9.9, 10.05, 1000) for t in ("03:59", "04:00", "19:59", "20:00")]
    result = detect_bars("T", bars_frame(rows), every_bar_fires(), raw=True)
    assert result.stats.dropped_outside_hours == 2
    assert result.bars == 2
    assert labels(bars_frame(rows), every_bar_fires()) == [
        (day, "04:00", "PM"),
        (day, "19:59", "AH"),
    ]


@pytest.mark.parametrize("day", AROUND_DST)
def test_timestamp_et_is_new_york_and_the_same_instant(day: str) -> None:
    frame = bars_frame(random_walk_rows([day], seed=3, n=120, start="09:00"))
    for raw in (False, True):
        events = detect_bars("T", frame, loose_config(), raw=raw).events
        assert not events.is_empty()
        assert (
            events.schema["timestamp_et"] == EVENT_SCHEMA["timestamp_et"] == pl.Datetime("ms", NY)
        )
        assert events.schema["timestamp"] == pl.Datetime("ms", "UTC")
        assert events["timestamp_et"].dt.epoch("ms").equals(events["timestamp"].dt.epoch("ms"))
        assert (events["timestamp_et"].dt.date() == events["date"]).all()
        # the ET wall clock is the one the bars were built with
        built = {
            et_instant(day, t).astimezone(UTC)
            for _, t, *_ in random_walk_rows([day], seed=3, n=120, start="09:00")
        }
        assert set(events["timestamp"].to_list()) <= built


# -- the ET clock from per-hour offsets ------------------------------------------------------


def per_row_clock(frame: pl.DataFrame, zone: str) -> pl.DataFrame:
    et = pl.col("timestamp").dt.convert_time_zone(zone)
    return frame.with_columns(
        ts_et=et, date=et.dt.date(), minute=et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute()
    )


def random_instants(first: str, last: str, n: int, seed: int) -> pl.DataFrame:
    import random

    rng = random.Random(seed)
    lo = int(datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp() * 1000)
    hi = int(datetime.fromisoformat(last).replace(tzinfo=UTC).timestamp() * 1000)
    ms = sorted(rng.randrange(lo, hi) for _ in range(n))
    return pl.DataFrame({"timestamp": pl.Series(ms).cast(pl.Datetime("ms", "UTC"))})


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-03-08 05:00", "2026-03-08 08:00"),  # spring forward at 07:00 UTC
        ("2026-11-01 04:00", "2026-11-01 08:00"),  # fall back at 06:00 UTC
        ("2020-01-01 00:00", "2030-01-01 00:00"),
        ("1960-01-01 00:00", "1975-01-01 00:00"),  # before the epoch, other DST rules
        ("1883-11-01 00:00", "1883-12-01 00:00"),  # local mean time to EST at 17:00 UTC
    ],
)
def test_et_clock_from_hourly_offsets_equals_the_per_row_conversion(first: str, last: str) -> None:
    from detector.et_clock import with_et_clock

    frame = random_instants(first, last, 20_000, seed=len(first + last))
    assert with_et_clock(frame).equals(per_row_clock(frame, NY))


def test_et_clock_falls_back_where_an_offset_changes_inside_an_hour() -> None:
    from detector.et_clock import _local_ms, with_et_clock

    # Lord Howe Island moves its clocks by 30 minutes; in October at 15:30 UTC.
    zone = "Australia/Lord_Howe"
    frame = random_instants("2026-10-03 12:00", "2026-10-03 18:00", 5_000, seed=7)
    assert _local_ms(frame["timestamp"], zone) is None
    assert with_et_clock(frame, zone).equals(per_row_clock(frame, zone))


def test_et_clock_of_outlying_or_no_timestamps() -> None:
    from detector.et_clock import with_et_clock

    # Bars a century apart: the hour table would be far larger than the rows.
    frame = random_instants("2026-03-06 14:00", "2026-03-06 15:00", 10, seed=1)
    frame = pl.concat([frame, frame.with_columns(pl.col("timestamp").dt.offset_by("100y"))])
    assert with_et_clock(frame).equals(per_row_clock(frame, NY))
    empty = frame.clear()
    assert with_et_clock(empty).equals(per_row_clock(empty, NY))
