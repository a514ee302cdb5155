"""The rules EVENTS.md version 2 added (§8), each at its edge, on hand-built bars.

- opening_range_break is a crossing (the bar before it closed on the other side of
  the level), capped per direction and day by ``max_breaks_per_day``;
- auction bars (``session_bounds.auction_minutes``) never fire and stay out of the
  volume baselines;
- consolidation_break needs ``min_atr_days`` prior trading days of history;
- non-finite prices are dropped as bad prices.

Thresholds are met exactly in binary floating point, as in tests/test_detectors.py;
"just short" is one float step away (``math.nextafter``).
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest

from detector.config import AppConfig, DetectorConfig, config_hash
from detector.config_load import config_from_document
from detector.errors import ConfigError
from detector.pipeline import detect_bars

from builders import Row, bars_frame, flat_bars, loose_config, minutes_after, with_overrides

DAY = "2026-03-10"
AUCTIONS = {"session_bounds.auction_minutes": ("09:30", "16:00")}


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def detect(rows: list[Row], cfg: DetectorConfig, *, raw: bool = False) -> pl.DataFrame:
    return detect_bars("T", bars_frame(rows), cfg, raw=raw).events


def hits(events: pl.DataFrame) -> list[tuple[str, str, str]]:
    return [
        (ts.strftime("%H:%M"), t, d)
        for ts, t, d in events.select("timestamp_et", "event_type", "direction").iter_rows()
    ]


def bars_between(start: str, end: str, close: float, volume: int = 1000) -> list[Row]:
    """Flat bars at ``close`` from ``start`` up to (not including) ``end``."""
    rows: list[Row] = []
    t = start
    while t < end:
        rows.append((DAY, t, close, close, close, close, volume))
        t = minutes_after(t, 1)
    return rows


# ------------------------------------------------------------- opening_range_break: crossings
# Opening range 09:30-09:44: high 64, low 63. With min_breakout_pct 1.5625 the up level
# is 64 x 1.015625 = 65.0 and the down level 63 x 0.984375 = 62.015625, both exact.
UP_LEVEL, DOWN_LEVEL = 65.0, 62.015625


def orb_cfg(**changes: Any) -> DetectorConfig:
    return loose_config(
        "opening_range_break", **{"opening_range_break.min_breakout_pct": 1.5625, **changes}
    )


def opening_range() -> list[Row]:
    return [(DAY, minutes_after("09:30", i), 64.0, 64.0, 63.0, 63.5, 1000) for i in range(15)]


def break_bar(when: str, direction: str, close: float | None = None) -> Row:
    """A bar closing at the level (or ``close``) on 4x the average volume of 1000-share bars
    (vol_mult = 4750 / ((19 x 1000 + 4750) / 20) = 4.0)."""
    if direction == "up":
        c = UP_LEVEL if close is None else close
        return (DAY, when, 64.0, c, 64.0, c, 4750)
    c = DOWN_LEVEL if close is None else close
    return (DAY, when, 63.0, 63.0, c, c, 4750)


@pytest.mark.parametrize("direction", ["up", "down"])
def test_orb_fires_only_when_the_bar_before_closed_short_of_the_level(direction: str) -> None:
    level = UP_LEVEL if direction == "up" else DOWN_LEVEL
    just_short = below(level) if direction == "up" else above(level)
    for before, fires in ((just_short, True), (level, False)):
        rows = [
            *opening_range(),
            *bars_between("09:45", "09:48", 63.5),
            (DAY, "09:48", 63.5, max(63.5, before), min(63.5, before), before, 1000),
            break_bar("09:49", direction),
        ]
        expected = [("09:49", "opening_range_break", direction)] if fires else []
        assert hits(detect(rows, orb_cfg(), raw=True)) == expected, before


def test_orb_break_that_stays_out_is_one_event_not_one_per_cooldown() -> None:
    # Version 1 fired again at 10:30, after the 30-minute cooldown, on a bar that was
    # still above the range with heavy volume.
    rows = [
        *opening_range(),
        *bars_between("09:45", "09:49", 63.5),
        break_bar("09:49", "up"),
        *bars_between("09:50", "10:30", 65.5),
        (DAY, "10:30", 65.5, 66.0, 65.5, 66.0, 4750),
    ]
    expected = [("09:49", "opening_range_break", "up")]
    assert hits(detect(rows, orb_cfg(), raw=True)) == expected
    assert hits(detect(rows, orb_cfg())) == expected


def crossing_twice_each_way() -> list[Row]:
    """Up at 09:49, back inside, up again at 10:30; down at 11:10, back, down at 11:50."""
    return [
        *opening_range(),
        *bars_between("09:45", "09:49", 63.5),
        break_bar("09:49", "up"),
        *bars_between("09:50", "10:30", 64.5),
        break_bar("10:30", "up", 65.5),
        *bars_between("10:31", "11:10", 63.5),
        break_bar("11:10", "down"),
        *bars_between("11:11", "11:50", 63.5),
        break_bar("11:50", "down", 61.5),
        *bars_between("11:51", "12:00", 63.5),
    ]


def test_orb_cap_keeps_the_earliest_break_per_direction() -> None:
    rows = crossing_twice_each_way()
    every = [
        ("09:49", "opening_range_break", "up"),
        ("10:30", "opening_range_break", "up"),
        ("11:10", "opening_range_break", "down"),
        ("11:50", "opening_range_break", "down"),
    ]
    # Raw candidates come before cooldowns and caps.
    assert hits(detect(rows, orb_cfg(), raw=True)) == every
    assert hits(detect(rows, orb_cfg())) == [every[0], every[2]]
    for cap in (2, None):
        assert (
            hits(detect(rows, orb_cfg(**{"opening_range_break.max_breaks_per_day": cap}))) == every
        )
    # The cap counts per direction; the daily cap counts both directions together.
    both = {
        "opening_range_break.max_breaks_per_day": 2,
        "opening_range_break.max_events_per_symbol_day": 3,
    }
    assert hits(detect(rows, orb_cfg(**both))) == every[:3]


def test_orb_cap_counts_only_breaks_that_passed_the_cooldown() -> None:
    # Second up crossing at 10:10, inside the 30-minute cooldown: dropped by the cooldown,
    # so with a cap of 2 the third crossing (10:40) is the second event.
    rows = [
        *opening_range(),
        *bars_between("09:45", "09:49", 63.5),
        break_bar("09:49", "up"),
        *bars_between("09:50", "10:10", 64.5),
        break_bar("10:10", "up", 65.5),
        *bars_between("10:11", "10:40", 64.5),
        break_bar("10:40", "up", 65.5),
    ]
    cfg = orb_cfg(**{"opening_range_break.max_breaks_per_day": 2})
    assert [h[0] for h in hits(detect(rows, cfg, raw=True))] == ["09:49", "10:10", "10:40"]
    assert [h[0] for h in hits(detect(rows, cfg))] == ["09:49", "10:40"]


# ------------------------------------------------------------------------- auction minutes


def test_an_auction_bar_that_would_be_the_days_biggest_spike_never_fires() -> None:
    # 100x volume and a 1.5625 % range on the 09:30 and 16:00 bars: the biggest
    # volume_spike of the day by far, were they not the opening and closing crosses.
    rows = [
        *flat_bars(DAY, "09:10", 20, price=64.0, volume=2000),
        (DAY, "09:30", 64.0, 65.0, 64.0, 64.5, 200_000),
        *flat_bars(DAY, "09:31", 389, price=64.0, volume=2000),
        (DAY, "16:00", 64.0, 65.0, 64.0, 63.5, 200_000),
        *flat_bars(DAY, "16:01", 20, price=64.0, volume=2000),
    ]
    # An ordinary spike at 12:00 fires either way.
    rows = [r if r[1] != "12:00" else (DAY, "12:00", 64.0, 65.0, 64.0, 64.5, 12_000) for r in rows]
    spikes = loose_config("volume_spike", **{"volume_spike.max_events_per_symbol_day": None})
    without_rule = with_overrides(spikes, **{"session_bounds.auction_minutes": ()})
    assert hits(detect(rows, without_rule, raw=True)) == [
        ("09:30", "volume_spike", "up"),
        ("12:00", "volume_spike", "up"),
        ("16:00", "volume_spike", "down"),
    ]
    with_rule = with_overrides(spikes, **AUCTIONS)
    assert hits(detect(rows, with_rule, raw=True)) == [("12:00", "volume_spike", "up")]
    # The default config has the rule on.
    assert DetectorConfig().session_bounds.auction_minutes == ("09:30", "16:00")


def vwap_rows_after_the_open(volume: int) -> list[Row]:
    """Three pre-market bars of 1000 shares, the opening cross (100,000 shares at 64) and a
    09:31 bar closing 0.77 % above VWAP on ``volume`` shares."""
    return [
        *flat_bars(DAY, "09:27", 3, price=64.0, volume=1000),
        (DAY, "09:30", 64.0, 64.0, 64.0, 64.0, 100_000),
        (DAY, "09:31", 64.0, 64.5, 64.0, 64.5, volume),
    ]


def test_the_opening_cross_is_left_out_of_vol_avg20() -> None:
    # Without the cross, vol_avg20 at 09:31 is the mean of 1000, 1000, 1000 and 3000:
    # 1500, so vol_mult is exactly 2.0, vwap_break's bullish volume test.
    cfg = loose_config("vwap_break", **AUCTIONS)
    assert hits(detect(vwap_rows_after_the_open(3000), cfg)) == [("09:31", "vwap_break", "up")]
    stricter = with_overrides(cfg, **{"vwap_break.bullish.min_volume_confirm": above(2.0)})
    assert detect(vwap_rows_after_the_open(3000), stricter, raw=True).is_empty()
    # Counted in, the cross makes the 09:31 bar look like a quiet one.
    off = with_overrides(cfg, **{"session_bounds.auction_minutes": ()})
    assert detect(vwap_rows_after_the_open(3000), off, raw=True).is_empty()


@pytest.mark.parametrize(
    "auction_minutes",
    [("09:30", "16:00"), ("09:30",), ("04:00", "09:30", "09:31", "12:00", "16:00", "19:59"), ()],
)
def test_vol_avg20_is_the_mean_of_the_last_20_non_auction_bars_of_the_day(
    auction_minutes: tuple[str, ...],
) -> None:
    from detector.cleaning import clean_bars, normalize_types
    from detector.features import symbol_features

    rng = random.Random(7)
    rows: list[Row] = []
    day = date(2026, 3, 9)
    for _ in range(3):
        start = rng.choice(("04:00", "09:15", "09:29", "11:00"))
        n = rng.randint(30, 700)
        rows += [
            (day.isoformat(), minutes_after(start, i), 10.0, 10.0, 10.0, 10.0, rng.randint(0, 9000))
            for i in range(n)
            if minutes_after(start, i) >= start and rng.random() < 0.9
        ]
        day += timedelta(days=1)
    cfg = loose_config(**{"session_bounds.auction_minutes": auction_minutes})
    bars, _ = clean_bars(
        normalize_types(bars_frame(rows), "UTC"), day_start_minute=240, day_end_minute=1200
    )
    got = symbol_features(bars, cfg).bars.select("date", "minute", "volume", "vol_mult")
    auctions = {int(t[:2]) * 60 + int(t[3:]) for t in auction_minutes}
    window: dict[Any, list[int]] = {}
    checked = 0
    for d, minute, volume, vol_mult in got.iter_rows():
        if minute in auctions:
            continue  # never fires: its vol_mult is not used
        seen = window.setdefault(d, [])
        seen.append(volume)
        mean = sum(seen[-20:]) / len(seen[-20:])
        expected = volume / mean if mean > 0 else None
        assert vol_mult == expected, (d, minute)
        checked += 1
    assert checked > 100


# ------------------------------------------------------------------ consolidation_break: ATR
# Each day: one wide bar at 10:00 (high 11, low 9: a true range of 2, ~19.6 % of the
# previous close), 31 flat bars at 10.0, then a breakout bar closing at 10.2 (2 % above
# the flat base, on vol_mult 5000 / 1200 = 4.17).


def atr_history(days: int) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    dates: list[str] = []
    d = date(2026, 3, 2)
    while len(dates) < days:
        if d.weekday() < 5:
            day = d.isoformat()
            dates.append(day)
            rows.append((day, "10:00", 10.0, 11.0, 9.0, 10.0, 1000))
            rows += flat_bars(day, "10:01", 31, price=10.0, volume=1000)
            rows.append((day, "10:32", 10.0, 10.2, 10.0, 10.2, 5000))
        d += timedelta(days=1)
    return rows, dates


@pytest.mark.parametrize(("min_atr_days", "first_day"), [(14, 14), (1, 1), (15, None), (3, 3)])
def test_consolidation_break_waits_for_min_atr_days_of_history(
    min_atr_days: int, first_day: int | None
) -> None:
    rows, dates = atr_history(15)
    cfg = loose_config("consolidation_break", **{"consolidation_break.min_atr_days": min_atr_days})
    events = detect(rows, cfg, raw=True)
    fired_on = events["date"].cast(pl.String).to_list()
    # The 14th day (index 13) has 13 prior days; the 15th (index 14) has 14.
    expected = [] if first_day is None else dates[first_day:]
    assert fired_on == expected
    assert set(events["direction"]) <= {"up"}


def test_consolidation_break_default_needs_14_prior_days() -> None:
    assert DetectorConfig().consolidation_break.min_atr_days == 14


# ---------------------------------------------------------------------- non-finite prices


def vwap_day() -> list[Row]:
    """RTH bars at 64 with one vwap_break up at 10:00 (close 64.5 on 4x volume)."""
    return [
        *flat_bars(DAY, "09:30", 30, price=64.0, volume=1000),
        (DAY, "10:00", 64.0, 64.5, 64.0, 64.5, 4750),
        *flat_bars(DAY, "10:01", 10, price=64.0, volume=1000),
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("high", math.inf),
        ("close", math.inf),
        ("open", math.inf),
        ("low", -math.inf),
        ("high", math.nan),
    ],
)
def test_a_non_finite_price_is_dropped_and_counted_not_a_poisoned_vwap(
    column: str, value: float
) -> None:
    index = {"open": 2, "high": 3, "low": 4, "close": 5}[column]
    rows = vwap_day()
    bad = list(rows[5])  # the 09:35 bar
    bad[index] = value
    rows[5] = (DAY, "09:35", *bad[2:])  # type: ignore[assignment]
    cfg = loose_config("vwap_break", **AUCTIONS)
    result = detect_bars("T", bars_frame(rows), cfg)
    assert result.stats.dropped_bad_price == 1
    assert result.stats.rows_kept == len(rows) - 1
    assert hits(result.events) == [("10:00", "vwap_break", "up")]
    # The same as a day that never had the bar.
    clean = [r for r in rows if r[1] != "09:35"]
    assert result.events.equals(detect(clean, cfg))


# ------------------------------------------------------------------------- configuration


def test_new_keys_default_when_absent_and_change_the_hash() -> None:
    legacy = {"processing": {"intraday_events": {"opening_range_break": {"enable": True}}}}
    loaded = config_from_document(legacy)
    assert loaded.detector.session_bounds.auction_minutes == ("09:30", "16:00")
    assert loaded.detector.opening_range_break.max_breaks_per_day == 1
    assert loaded.detector.consolidation_break.min_atr_days == 14
    assert config_hash(loaded) == config_hash(AppConfig())
    for key, value in (
        ("session_bounds.auction_minutes", ()),
        ("opening_range_break.max_breaks_per_day", 2),
        ("consolidation_break.min_atr_days", 13),
    ):
        changed = AppConfig(detector=with_overrides(DetectorConfig(), **{key: value}))
        assert config_hash(changed) != config_hash(AppConfig()), key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["09:30", "16:00"], ("09:30", "16:00")),
        ([570, 960], ("09:30", "16:00")),  # YAML 1.1 reads unquoted 09:30 as 570
        ([], ()),
        (["16:00"], ("16:00",)),
        (["16:00", "09:30"], ("09:30", "16:00")),  # same rule, same config hash
    ],
)
def test_auction_minutes_load(value: Any, expected: tuple[str, ...]) -> None:
    doc = {"processing": {"intraday_events": {"session_bounds": {"auction_minutes": value}}}}
    assert config_from_document(doc).detector.session_bounds.auction_minutes == expected


@pytest.mark.parametrize(
    ("section", "key", "value", "problem"),
    [
        ("session_bounds", "auction_minutes", ["09:30", "09:30"], "twice"),
        ("session_bounds", "auction_minutes", ["9:30"], 'time "HH:MM"'),
        ("session_bounds", "auction_minutes", "09:30", "list of times"),
        ("session_bounds", "auction_minutes", None, "([] for none)"),
        ("session_bounds", "auction_minutes", ["03:59"], "outside the day [04:00, 20:00)"),
        ("session_bounds", "auction_minutes", ["20:00"], "outside the day"),
        ("opening_range_break", "max_breaks_per_day", 0, "at least 1"),
        ("consolidation_break", "min_atr_days", 0, "at least 1"),
    ],
)
def test_bad_values_of_the_new_keys_name_the_key(
    section: str, key: str, value: Any, problem: str
) -> None:
    doc = {"processing": {"intraday_events": {section: {key: value}}}}
    with pytest.raises(ConfigError) as info:
        config_from_document(doc)
    assert f"{section}.{key}" in info.value.key_path
    assert problem in str(info.value)


# ------------------------------------------------------------ vwap_break: an exact tie


@pytest.mark.parametrize("price", [279.17, 49.99, 423.15, 10.0, 1.1, 20.3, 0.37])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_previous_close_exactly_at_its_vwap_counts_as_at(price: float, direction: str) -> None:
    # The day's first RTH bar is one flat print, so its VWAP is its close: "at or below"
    # (up) and "at or above" (down) both hold for the next bar. Computed as
    # (h + l + c) / 3 the VWAP was one unit in the last place off the close for a third
    # of prices (279.17, 49.99 and TYL's 423.15 on 2024-02-15 missed a default event).
    moved = price * (1.025 if direction == "up" else 0.975)
    rows = [
        *flat_bars(DAY, "09:11", 19, price=price, volume=1000),
        (DAY, "09:30", price, price, price, price, 1000),
        (DAY, "09:31", price, max(price, moved), min(price, moved), moved, 5000),
    ]
    assert hits(detect(rows, loose_config("vwap_break"))) == [("09:31", "vwap_break", direction)]
