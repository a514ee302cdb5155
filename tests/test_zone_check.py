"""The time-zone verdict (detector.zone_check) at its edges, on generated bars.

The demo generator puts the opening and closing crosses' volume surges on the 09:30
and 16:00 bars, as real tape has; its bars are shifted here the way a wrong zone
shifts them, and read back through the same code as detection.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from detector.bars import read_bar_files
from detector.cleaning import clean_bars
from detector.et_clock import with_et_clock
from detector.zone_check import (
    MIN_DAYS,
    PeriodVerdict,
    ZoneVerdict,
    auction_profile,
    fitting_zone,
    format_offset,
    zone_verdict,
)
from tools.demo.data import demo_symbol_bars, trading_days

from builders import bars_frame, random_walk_rows

SUMMER = trading_days(dt.date(2026, 6, 1), 20)  # EDT all along
WINTER = trading_days(dt.date(2026, 1, 5), 20)  # EST all along
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-1m-sample"


def verdict_of(frame: pl.DataFrame) -> ZoneVerdict:
    """The verdict of bars whose ``timestamp`` is already the instant as read (UTC)."""
    return zone_verdict(auction_profile(with_et_clock(frame.select("timestamp", "volume"))))


def shifted(frame: pl.DataFrame, hours: float) -> pl.DataFrame:
    """The bars as a reading ``hours`` early would place them (true = read + hours)."""
    return frame.with_columns(pl.col("timestamp") - pl.duration(minutes=round(hours * 60)))


def ny_wall_read_as(frame: pl.DataFrame, zone: str) -> pl.DataFrame:
    """New York wall-clock times, naive, read in ``zone``: what a wrong setting does."""
    wall = pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
    return frame.with_columns(wall.dt.replace_time_zone(zone).dt.convert_time_zone("UTC"))


def only(verdict: ZoneVerdict) -> PeriodVerdict:
    assert len(verdict.periods) == 1, verdict
    return verdict.periods[0]


@pytest.mark.parametrize("days", [SUMMER, WINTER], ids=["summer", "winter"])
def test_the_right_reading_fits_with_offset_zero(days: list[dt.date]) -> None:
    verdict = verdict_of(demo_symbol_bars(0, "DAAA", days))
    period = only(verdict)
    assert verdict.judged and verdict.fits and verdict.offset_half_hours == 0
    assert period.best_offset == 0 and period.days == pytest.approx(20)
    # The auctions hold a large share of each day's volume: the evidence is strong.
    assert period.share_at_zero == period.share_at_best > 0.15


@pytest.mark.parametrize(
    ("hours", "days", "period"),
    [(4, SUMMER, "summer"), (5, WINTER, "winter"), (-5, SUMMER, "summer"), (-5, WINTER, "winter")],
)
def test_a_shifted_reading_is_caught_with_its_offset(
    hours: int, days: list[dt.date], period: str
) -> None:
    verdict = verdict_of(shifted(demo_symbol_bars(0, "DAAB", days), hours))
    found = only(verdict)
    assert not verdict.fits and found.contradicts and found.period == period
    assert verdict.offset_half_hours == 2 * hours == found.best_offset
    assert found.share_at_best > 3 * found.share_at_zero
    assert verdict.note() == f"{period} {format_offset(2 * hours)}"


def test_new_york_wall_clock_read_as_utc_is_4_h_in_summer_and_5_h_in_winter() -> None:
    bars = pl.concat(
        [demo_symbol_bars(0, "DAAC", WINTER), demo_symbol_bars(0, "DAAC", SUMMER)]
    ).sort("timestamp")
    verdict = verdict_of(ny_wall_read_as(bars, "UTC"))
    offsets = {p.period: p.best_offset for p in verdict.periods}
    assert offsets == {"summer": 8, "winter": 10} and not verdict.fits
    assert verdict.offsets_text() == "4-5 h"
    assert fitting_zone("UTC", verdict) == "America/New_York"


def test_a_fixed_utc_minus_5_reading_is_right_in_winter_and_an_hour_off_in_summer() -> None:
    bars = pl.concat(
        [demo_symbol_bars(0, "DAAD", WINTER), demo_symbol_bars(0, "DAAD", SUMMER)]
    ).sort("timestamp")
    verdict = verdict_of(ny_wall_read_as(bars, "Etc/GMT+5"))  # POSIX sign: UTC-5
    by_period = {p.period: p for p in verdict.periods}
    assert by_period["winter"].best_offset == 0 and not by_period["winter"].contradicts
    assert by_period["summer"].best_offset == -2 and by_period["summer"].contradicts
    assert not verdict.fits and verdict.offsets_text() == "1 h"
    assert fitting_zone("Etc/GMT+5", verdict) == "America/New_York"


def test_new_york_wall_clock_read_as_chicago_is_an_hour_late_all_year() -> None:
    bars = pl.concat(
        [demo_symbol_bars(0, "DAAE", WINTER), demo_symbol_bars(0, "DAAE", SUMMER)]
    ).sort("timestamp")
    verdict = verdict_of(ny_wall_read_as(bars, "America/Chicago"))
    assert {p.period: p.best_offset for p in verdict.periods} == {"summer": -2, "winter": -2}
    assert verdict.note() == "summer -1 h, winter -1 h" and verdict.offsets_text() == "1 h"
    assert fitting_zone("America/Chicago", verdict) == "America/New_York"
    assert fitting_zone("UTC", verdict_of(bars)) is None  # a fitting reading needs no hint


def test_bars_without_auction_surges_never_contradict_whatever_their_zone() -> None:
    # Random walks with bursts at random minutes, the same every day: no auctions at all.
    days = [d.isoformat() for d in WINTER]
    for seed in range(4):
        bars = bars_frame(random_walk_rows(days, seed=seed))
        for frame in (bars, ny_wall_read_as(bars, "UTC"), shifted(bars, 3)):
            verdict = verdict_of(frame)
            assert verdict.judged and verdict.fits, (seed, verdict.describe())


def test_too_few_days_are_not_judged_and_fit() -> None:
    # Days as read: a trading day that a wrong reading splits at midnight counts twice.
    few = int(MIN_DAYS) // 2 - 1
    verdict = verdict_of(shifted(demo_symbol_bars(0, "DAAE", WINTER[:few]), 5))
    period = only(verdict)
    assert period.best_offset == 10  # the evidence points away ...
    assert not period.judged and not verdict.judged and verdict.fits  # ... but is too thin
    assert verdict_of(demo_symbol_bars(0, "DAAE", WINTER[:0])).periods == ()


def test_profiles_pool_into_one_verdict_of_symbol_days() -> None:
    half = int(MIN_DAYS) // 2 + 1
    profiles = [
        # 2 h late: the 04:00-20:00 bars stay inside one New York day as read.
        auction_profile(with_et_clock(shifted(demo_symbol_bars(0, s, WINTER[:half]), -2)))
        for s in ("DAAA", "DAAB")
    ]
    assert not any(zone_verdict(p).judged for p in profiles)
    pooled = zone_verdict(profiles)
    assert pooled.judged and not pooled.fits and only(pooled).days == pytest.approx(2 * half)
    assert pooled.offset_half_hours == -4


def test_cleaning_judges_the_bars_before_the_cut_to_trading_hours() -> None:
    # Read 5 h early, the evening bars fall before 04:00 and are cut: the verdict still
    # saw them, and it travels with the cleaning statistics.
    bars = shifted(demo_symbol_bars(0, "DAAF", WINTER), 5)
    clean, stats = clean_bars(bars, day_start_minute=4 * 60, day_end_minute=20 * 60)
    assert stats.dropped_outside_hours > 0 and clean["minute"].min() >= 4 * 60
    assert stats.zone is not None
    assert not stats.zone.fits and stats.zone.offset_half_hours == 10
    _, unchecked = clean_bars(
        bars, day_start_minute=4 * 60, day_end_minute=20 * 60, check_zone=False
    )
    assert unchecked.zone is None and unchecked == stats  # the verdict is not a count


def _profile_by_grouping(clocked: pl.DataFrame) -> dict[tuple[int, int | None], float]:
    """The profile computed the plain way: each (day, shift) group's share of its day."""
    frame = clocked.drop_nulls("timestamp").with_columns(pl.col("volume").fill_null(0).clip(0))
    offset = (
        pl.col("date").cast(pl.Int64) * 1440
        + pl.col("minute")
        - pl.col("timestamp").dt.epoch("ms") // 60_000
    )
    shift_of = auction_profile.__globals__["_SHIFT_CODES"]
    groups = (
        frame.with_columns(
            offset.alias("offset"), pl.lit(shift_of).gather(pl.col("minute")).alias("code")
        )
        .group_by("date", "code")
        .agg(pl.col("volume").sum().cast(pl.Float64), pl.col("offset").min())
        .with_columns(
            pl.col("offset").min().over("date").alias("period"),
            (pl.col("volume") / pl.col("volume").sum().over("date")).fill_nan(0.0).alias("w"),
        )
    )
    out: dict[tuple[int, int | None], float] = {}
    for period, code, w in groups.select("period", "code", "w").iter_rows():
        k = code - 23 if code < 48 else None
        out[(period, k)] = out.get((period, k), 0.0) + w
    return out


def test_the_profile_from_runs_of_sorted_bars_equals_grouping_by_day_and_shift() -> None:
    """auction_profile sums runs of adjacent bars; bars out of order, repeated minutes,
    null volumes and a day with no volume must give what a plain grouping gives."""
    days = SUMMER[:6] + WINTER[:6]
    frame = demo_symbol_bars(3, "DAAD", days).select("timestamp", "volume")
    frame = pl.concat([frame, frame.head(50), shifted(frame.tail(400), 3)])
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0)
        .then(None)
        .otherwise(pl.col("volume"))
        .alias("volume")
    ).sample(fraction=1.0, shuffle=True, seed=7)
    quiet_day = demo_symbol_bars(4, "DAAE", [WINTER[10]]).select(
        "timestamp", pl.lit(0).alias("volume")
    )
    clocked = with_et_clock(
        pl.concat([frame, quiet_day.cast(frame.schema)]).drop_nulls("timestamp")
    )
    got = {
        (period, k): w for period, k, w in auction_profile(clocked).iter_rows() if w or k is None
    }
    expected = {key: w for key, w in _profile_by_grouping(clocked).items() if w or key[1] is None}
    assert got.keys() == expected.keys()
    for key, w in expected.items():
        assert got[key] == pytest.approx(w, rel=1e-12, abs=1e-12), key


def test_format_offset() -> None:
    assert [format_offset(k) for k in (8, -10, 1, -1, 5, 0)] == [
        "+4 h", "-5 h", "+30 min", "-30 min", "+2.5 h", "+0 h",
    ]  # fmt: skip


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real sample not present at {SHARED}")
def test_real_tape_fits_as_read_and_is_caught_as_new_york_wall_clock_read_as_utc() -> None:
    files = sorted(SHARED.glob("*.parquet"))
    frame, _ = read_bar_files(files[:5], "UTC")
    right = verdict_of(frame)
    wrong = verdict_of(ny_wall_read_as(frame, "UTC"))
    assert right.judged and right.fits
    assert {p.period: p.best_offset for p in wrong.periods} == {"summer": 8, "winter": 10}
    assert fitting_zone("UTC", wrong) == "America/New_York"
    # Each symbol alone, as detection judges it: all 17 fit, all 17 caught when shifted.
    for path in files:
        alone, _ = read_bar_files([path], "UTC")
        assert verdict_of(alone).fits, path.name
        caught = verdict_of(ny_wall_read_as(alone, "UTC"))
        assert caught.note() == "summer +4 h, winter +5 h", path.name


def test_a_period_of_exactly_min_days_is_judged_whatever_the_order_of_its_weights() -> None:
    """Each day's weights add up to one in floating point only nearly: summed in another
    order, ten days made 9.999999999999998 and the period went unjudged."""
    days = WINTER[: int(MIN_DAYS)]
    profile = auction_profile(
        with_et_clock(demo_symbol_bars(2, "DAAC", days).select("timestamp", "volume"))
    )
    for seed in range(30):
        verdict = zone_verdict(profile.sample(fraction=1.0, shuffle=True, seed=seed))
        assert only(verdict).days == MIN_DAYS and only(verdict).judged
