"""The six detectors and the global filters against EVENTS.md §2-§4, on hand-built bars.

Every threshold test builds bars whose metric equals the threshold *exactly* in
binary floating point (prices such as 64, 65, 66.015625 and volumes whose ratios
are 2.0, 4.0, 6.0), so that ``>=`` versus ``>`` is checked exactly; "just below"
is one ulp away (``math.nextafter``).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import pytest

from detector.config import DetectorConfig
from detector.pipeline import detect_bars
from detector.schema import EVENT_SCHEMA

from builders import (
    DETECTOR_SECTIONS,
    Row,
    bars_frame,
    flat_bars,
    loose_config,
    minutes_after,
    with_overrides,
)

DAY = "2026-03-10"
DAY2 = "2026-03-11"
INF = math.inf
NAN = math.nan

Hit = tuple[str, str, str]  # ("YYYY-MM-DD HH:MM" ET, event_type, direction)


def above(x: float) -> float:
    """The next float above ``x``: a threshold the metric ``x`` just misses."""
    return math.nextafter(x, INF)


def below(x: float) -> float:
    return math.nextafter(x, -INF)


def detect(rows: list[Row], cfg: DetectorConfig, *, raw: bool = False) -> pl.DataFrame:
    return detect_bars("T", bars_frame(rows), cfg, raw=raw).events


def hits(events: pl.DataFrame, event_type: str | None = None) -> list[Hit]:
    if event_type is not None:
        events = events.filter(pl.col("event_type") == event_type)
    return [
        (ts.strftime("%Y-%m-%d %H:%M"), t, d)
        for ts, t, d in events.select("timestamp_et", "event_type", "direction").iter_rows()
    ]


def at(hhmm: str, day: str = DAY) -> str:
    return f"{day} {hhmm}"


def flat(day: str, start: str, n: int, price: float = 64.0, volume: int = 1000) -> list[Row]:
    return flat_bars(day, start, n, price=price, volume=volume)


# --------------------------------------------------------------------------- volume_spike
# 19 flat bars at 64 (volume 2000), then the spike bar: range (65-64)/64 = 1.5625 %,
# spike_x = volume / median(19 x 2000, volume) = volume / 2000.

SPIKE_CLOSE = {"up": 64.5, "down": 63.5}


def spike_rows(
    direction: str, *, when: str = "09:49", volume: int = 12000, day: str = DAY, base: int = 2000
) -> list[Row]:
    if direction == "up":
        bar: Row = (day, when, 64.0, 65.0, 64.0, 64.5, volume)
    else:
        bar = (day, when, 64.0, 64.0, 63.0, 63.5, volume)
    return [*flat(day, minutes_after(when, -19), 19, volume=base), bar]


@pytest.mark.parametrize("direction", ["up", "down"])
def test_volume_spike_fires_with_default_thresholds_at_spike_6_and_not_just_below(
    direction: str,
) -> None:
    events = detect(spike_rows(direction), loose_config("volume_spike"))
    assert hits(events) == [(at("09:49"), "volume_spike", direction)]
    assert events["spike_x"].to_list() == [6.0]
    # 11999 / 2000 = 5.9995 < 6.0
    assert detect(spike_rows(direction, volume=11999), loose_config("volume_spike")).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize(
    "key", ["min_range_1m_pct", "rth.min_spike", "rth.min_absolute_volume", "rth.min_dollar_volume"]
)
def test_volume_spike_each_threshold_is_inclusive(direction: str, key: str) -> None:
    metric = {
        "min_range_1m_pct": (65.0 - 64.0) / 64.0 * 100,  # 1.5625
        "rth.min_spike": 12000 / 2000,
        "rth.min_absolute_volume": 12000.0,
        "rth.min_dollar_volume": 12000 * SPIKE_CLOSE[direction],
    }[key]
    rows = spike_rows(direction)
    exact = loose_config("volume_spike", **{f"volume_spike.{key}": metric})
    assert hits(detect(rows, exact)) == [(at("09:49"), "volume_spike", direction)]
    missed = loose_config("volume_spike", **{f"volume_spike.{key}": above(metric)})
    assert detect(rows, missed, raw=True).is_empty()


@pytest.mark.parametrize(
    ("when", "volume", "session", "fires"),
    [
        ("09:29", 12000, "PM", False),  # spike 6 < pm_ah 8
        ("09:29", 16000, "PM", True),  # spike 8 >= pm_ah 8
        ("09:30", 12000, "RTH", True),  # spike 6 >= rth 6
        ("15:59", 12000, "RTH", True),
        ("16:00", 12000, "AH", False),
        ("16:00", 16000, "AH", True),
        ("04:19", 16000, "PM", True),
        ("19:59", 16000, "AH", True),
    ],
)
def test_volume_spike_uses_pm_ah_thresholds_outside_rth(
    when: str, volume: int, session: str, fires: bool
) -> None:
    events = detect(spike_rows("up", when=when, volume=volume), loose_config("volume_spike"))
    if fires:
        assert hits(events) == [(at(when), "volume_spike", "up")]
        assert events["session"].to_list() == [session]
    else:
        assert events.is_empty()


@pytest.mark.parametrize(
    ("when", "own", "other"),
    [("08:00", "pm_ah", "rth"), ("12:00", "rth", "pm_ah"), ("17:00", "pm_ah", "rth")],
)
@pytest.mark.parametrize(
    ("field", "value"),
    [("min_spike", 8.0), ("min_absolute_volume", 16000.0), ("min_dollar_volume", 16000 * 64.5)],
)
def test_volume_spike_session_reads_only_its_own_threshold_section(
    when: str, own: str, other: str, field: str, value: float
) -> None:
    rows = spike_rows("up", when=when, volume=16000)  # spike 8, dollar volume 1,032,000
    impossible = {f"volume_spike.{other}.{field}": 1e12}
    exact = loose_config("volume_spike", **impossible, **{f"volume_spike.{own}.{field}": value})
    assert hits(detect(rows, exact)) == [(at(when), "volume_spike", "up")]
    missed = loose_config(
        "volume_spike", **impossible, **{f"volume_spike.{own}.{field}": above(value)}
    )
    assert detect(rows, missed, raw=True).is_empty()


def test_volume_spike_median_window_restarts_each_day() -> None:
    # Day 2's first bars: 2000 then 12000 -> median 7000, spike 1.7. Had yesterday's
    # 2000-volume bars fed the window, the median would be 2000 and spike_x 6.
    rows = [
        *flat(DAY, "15:30", 30, volume=2000),
        *flat(DAY2, "09:30", 1, volume=2000),
        (DAY2, "09:31", 64.0, 65.0, 64.0, 64.5, 12000),
    ]
    assert detect(rows, loose_config("volume_spike"), raw=True).is_empty()


def test_volume_spike_rolling_method_mean() -> None:
    # mean(19 x 2000, 12000) = 2500 -> spike_x 4.8 (the median would give 6)
    cfg = loose_config(
        "volume_spike", **{"volume_spike.rolling_method": "mean", "volume_spike.rth.min_spike": 4.8}
    )
    events = detect(spike_rows("up"), cfg)
    assert events["spike_x"].to_list() == [4.8]
    cfg = with_overrides(cfg, **{"volume_spike.rth.min_spike": above(4.8)})
    assert detect(spike_rows("up"), cfg).is_empty()


# --------------------------------------------------------------------------- vwap_break
# 3 flat bars at 64 (volume 1000) from 09:30, then a bar of volume 3000 whose typical
# price is 66 (up) or 62 (down): VWAP = (3*64*1000 + 66*3000) / 6000 = 65 (or 63),
# vol_mult = 3000 / mean(1000, 1000, 1000, 3000) = 2.0 exactly.

UP_DIST = (66.0 - 65.0) / 65.0 * 100  # what the detector computes: (close - vwap) / vwap * 100
DOWN_DIST = (63.0 - 62.0) / 63.0 * 100


def vwap_rows(direction: str, *, start: str = "09:30", day: str = DAY) -> list[Row]:
    when = minutes_after(start, 3)
    if direction == "up":
        bar: Row = (day, when, 64.0, 68.0, 64.0, 66.0, 3000)  # typical (68+64+66)/3 = 66
    else:
        bar = (day, when, 64.0, 64.0, 60.0, 62.0, 3000)  # typical (64+60+62)/3 = 62
    return [*flat(day, start, 3), bar]


def vwap_cfg(**changes: Any) -> DetectorConfig:
    base = {
        "vwap_break.bullish.min_distance_pct": UP_DIST,
        "vwap_break.bearish.min_distance_pct": DOWN_DIST,
        "vwap_break.bullish.min_volume_confirm": 2.0,
        "vwap_break.bearish.min_volume_confirm": 2.0,
    }
    return loose_config("vwap_break", **{**base, **changes})


SIDE = {"up": "bullish", "down": "bearish"}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_vwap_break_distance_threshold_is_inclusive(direction: str) -> None:
    dist = UP_DIST if direction == "up" else DOWN_DIST
    events = detect(vwap_rows(direction), vwap_cfg())
    assert hits(events) == [(at("09:33"), "vwap_break", direction)]
    assert events["spike_x"].to_list() == [dist]
    key = f"vwap_break.{SIDE[direction]}.min_distance_pct"
    assert detect(vwap_rows(direction), vwap_cfg(**{key: above(dist)}), raw=True).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_vwap_break_volume_confirmation_is_inclusive(direction: str) -> None:
    key = f"vwap_break.{SIDE[direction]}.min_volume_confirm"
    assert len(detect(vwap_rows(direction), vwap_cfg(**{key: 2.0}))) == 1
    assert detect(vwap_rows(direction), vwap_cfg(**{key: above(2.0)}), raw=True).is_empty()


def test_vwap_break_defaults_fire_on_cumulative_vwap_not_the_bars_typical_price() -> None:
    # The old script's VWAP equalled the bar's typical price (66 = close): distance 0.
    # The cumulative RTH VWAP is 65, so the distance is 1.54 % >= 0.6 with defaults.
    events = detect(vwap_rows("up"), loose_config("vwap_break"))
    assert hits(events) == [(at("09:33"), "vwap_break", "up")]
    assert events["spike_x"].to_list() == [UP_DIST]


def test_vwap_is_rth_anchored_ignoring_premarket_and_previous_day() -> None:
    # Yesterday's RTH and today's pre-market trade at 10 with heavy volume; had they
    # entered the VWAP it would be near 10, not 65.
    rows = [
        *flat(DAY, "09:30", 30, price=10.0, volume=1_000_000),
        *flat(DAY2, "04:00", 30, price=10.0, volume=1000),
        *vwap_rows("up", day=DAY2),
    ]
    events = detect(rows, vwap_cfg())
    assert hits(events) == [(at("09:33", DAY2), "vwap_break", "up")]
    assert events["spike_x"].to_list() == [UP_DIST]


@pytest.mark.parametrize("direction", ["up", "down"])
def test_vwap_break_never_fires_in_premarket(direction: str) -> None:
    zero = {
        "vwap_break.bullish.min_distance_pct": 0.0,
        "vwap_break.bearish.min_distance_pct": 0.0,
        "vwap_break.bullish.min_volume_confirm": 0.0,
        "vwap_break.bearish.min_volume_confirm": 0.0,
    }
    assert detect(vwap_rows(direction, start="08:00"), vwap_cfg(**zero), raw=True).is_empty()
    # the same bars from 09:26 (break bar 09:29, still pre-market)
    assert detect(vwap_rows(direction, start="09:26"), vwap_cfg(**zero), raw=True).is_empty()


def test_vwap_break_needs_previous_bar_on_the_other_side() -> None:
    # 09:33 breaks up (previous close 64 == its VWAP 64: "at or below" holds).
    # 09:34 would qualify on distance and volume (close 68, VWAP 66.5, vol_mult 2.5)
    # but its previous bar closed above its VWAP, so it is no candidate.
    rows = [*vwap_rows("up"), (DAY, "09:34", 66.0, 70.0, 66.0, 68.0, 6000)]
    cfg = loose_config("vwap_break", **{"deduplication.enable": False})
    assert hits(detect(rows, cfg, raw=True)) == [(at("09:33"), "vwap_break", "up")]


def test_vwap_break_down_needs_previous_bar_at_or_above_vwap() -> None:
    rows = [*vwap_rows("down"), (DAY, "09:34", 62.0, 62.0, 58.0, 60.0, 6000)]
    cfg = vwap_cfg(**{"deduplication.enable": False})
    assert hits(detect(rows, cfg, raw=True)) == [(at("09:33"), "vwap_break", "down")]


# --------------------------------------------------------------------------- price_momentum
# 5 flat bars at 64 (volume 1000) from 09:30, then at 09:35 a bar closing at 66
# (ret = (66/64 - 1) * 100 = 3.125) or 61.5 (ret = -3.90625) with volume 2500:
# vol_mult = 2500 / mean(5 x 1000, 2500) = 2.0 exactly.

MOM_RET = {"up": (66.0 / 64.0 - 1) * 100, "down": (61.5 / 64.0 - 1) * 100}


def momentum_bar(direction: str, when: str = "09:35", day: str = DAY, volume: int = 2500) -> Row:
    if direction == "up":
        return (day, when, 64.0, 66.0, 64.0, 66.0, volume)
    return (day, when, 64.0, 64.0, 61.5, 61.5, volume)


def momentum_rows(direction: str, day: str = DAY) -> list[Row]:
    return [*flat(day, "09:30", 5), momentum_bar(direction, day=day)]


@pytest.mark.parametrize("direction", ["up", "down"])
def test_price_momentum_fires_with_defaults(direction: str) -> None:
    events = detect(momentum_rows(direction), loose_config("price_momentum"))
    assert hits(events) == [(at("09:35"), "price_momentum", direction)]
    assert events["spike_x"].to_list() == [abs(MOM_RET[direction])]
    assert MOM_RET == {"up": 3.125, "down": -3.90625}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_price_momentum_change_threshold_is_inclusive(direction: str) -> None:
    side = "bullish" if direction == "up" else "bearish"
    change = abs(MOM_RET[direction])
    key = f"price_momentum.{side}.min_change_pct"
    exact = loose_config("price_momentum", **{key: change})
    assert hits(detect(momentum_rows(direction), exact)) == [
        (at("09:35"), "price_momentum", direction)
    ]
    missed = loose_config("price_momentum", **{key: above(change)})
    assert detect(momentum_rows(direction), missed, raw=True).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_price_momentum_volume_multiplier_is_inclusive(direction: str) -> None:
    key = "price_momentum.min_volume_multiplier"
    assert len(detect(momentum_rows(direction), loose_config("price_momentum", **{key: 2.0}))) == 1
    missed = loose_config("price_momentum", **{key: above(2.0)})
    assert detect(momentum_rows(direction), missed, raw=True).is_empty()


@pytest.mark.parametrize(
    ("direction", "extreme", "fires"),
    [
        ("up", 66.0, False),  # close 66 == prior high 66: not strictly above
        ("up", below(66.0), True),
        ("down", 61.5, False),  # close 61.5 == prior low 61.5: not strictly below
        ("down", above(61.5), True),
    ],
)
def test_price_momentum_needs_close_strictly_beyond_prior_20_bar_extreme(
    direction: str, extreme: float, fires: bool
) -> None:
    # The first bar (the close 5 bars back stays 64) carries a wick to ``extreme``.
    if direction == "up":
        first: Row = (DAY, "09:30", 64.0, extreme, 64.0, 64.0, 1000)
    else:
        first = (DAY, "09:30", 64.0, 64.0, extreme, 64.0, 1000)
    rows = [first, *flat(DAY, "09:31", 4), momentum_bar(direction)]
    events = detect(rows, loose_config("price_momentum"), raw=True)
    assert hits(events) == ([(at("09:35"), "price_momentum", direction)] if fires else [])


def test_price_momentum_prior_high_excludes_the_current_bar() -> None:
    # The bar's own high equals its close (66): a prior high that included the bar
    # itself could never be exceeded (defect §7); the event must fire.
    assert momentum_bar("up")[3] == momentum_bar("up")[5]
    assert len(detect(momentum_rows("up"), loose_config("price_momentum"))) == 1


@pytest.mark.parametrize(("bars_before", "fires"), [(20, False), (21, True)])
def test_price_momentum_prior_high_spans_exactly_20_bars(bars_before: int, fires: bool) -> None:
    # A wick to 70 ``bars_before`` bars before the momentum bar blocks it only
    # while it is within the 20 prior bars.
    rows = [
        (DAY, "09:30", 64.0, 70.0, 64.0, 64.0, 1000),
        *flat(DAY, "09:31", bars_before - 1),
        momentum_bar("up", when=minutes_after("09:30", bars_before)),
    ]
    events = detect(rows, loose_config("price_momentum"), raw=True)
    assert len(events) == (1 if fires else 0)


def test_price_momentum_nothing_in_first_5_bars_of_a_day() -> None:
    # Day 2's 5th bar (index 4) jumps to 66 with heavy volume. Its close 5 bars
    # back does not exist today; yesterday's last close (64) must not be used.
    rows = [*flat(DAY, "15:00", 60), *flat(DAY2, "09:30", 4), momentum_bar("up", "09:34", DAY2)]
    assert detect(rows, loose_config("price_momentum"), raw=True).is_empty()
    # One more flat bar first and the same jump (now the 6th bar) fires.
    rows = [*flat(DAY, "15:00", 60), *flat(DAY2, "09:30", 5), momentum_bar("up", "09:35", DAY2)]
    assert hits(detect(rows, loose_config("price_momentum"))) == [
        (at("09:35", DAY2), "price_momentum", "up")
    ]


def test_price_momentum_prior_high_restarts_each_day() -> None:
    # Yesterday closed with highs of 70; today's prior 20-bar high is 64 only.
    yesterday = [(DAY, minutes_after("15:40", i), 64.0, 70.0, 64.0, 64.0, 1000) for i in range(20)]
    rows = [*yesterday, *momentum_rows("up", day=DAY2)]
    assert hits(detect(rows, loose_config("price_momentum"))) == [
        (at("09:35", DAY2), "price_momentum", "up")
    ]


def test_volume_average_restarts_each_day() -> None:
    # Yesterday's heavy bars (100,000 each) must not enter today's vol_avg20: today
    # the 6th bar's vol_mult is 2500 / mean(5 x 1000, 2500) = 2.0 >= 1.8.
    rows = [*flat(DAY, "15:30", 30, volume=100_000), *momentum_rows("up", day=DAY2)]
    key = "price_momentum.min_volume_multiplier"
    assert hits(detect(rows, loose_config("price_momentum", **{key: 2.0}))) == [
        (at("09:35", DAY2), "price_momentum", "up")
    ]
    assert detect(rows, loose_config("price_momentum", **{key: above(2.0)}), raw=True).is_empty()


# --------------------------------------------------------------------------- consolidation_break
# Prior day: high 65, low 63, close 64 -> true range 2, atr14_pct = 2 / 64 * 100 = 3.125,
# so the base may span 0.5 * 3.125 = 1.5625 %. Break day: base bars (64, 65, 64, 64)
# whose range (65 - 64) / 64 * 100 is exactly 1.5625 %. With min_breakout_pct 1.5625 the
# levels are 65 * 1.015625 = 66.015625 and 64 * 0.984375 = 63.0. The break bar's
# volume 4750 after >= 19 bars of 1000 gives vol_mult = 4750 / 1187.5 = 4.0.

CB_UP, CB_DOWN = 65.0 * 1.015625, 64.0 * 0.984375


def cb_prior_day(day: str = DAY, n: int = 31) -> list[Row]:
    return [
        (day, "09:30", 64.0, 65.0, 63.0, 64.0, 1000),
        *[(day, minutes_after("09:31", i), 64.0, 65.0, 64.0, 64.0, 1000) for i in range(n - 1)],
    ]


def cb_day(
    direction: str,
    *,
    day: str = DAY2,
    base: int = 30,
    close: float | None = None,
    base_high: float = 65.0,
) -> list[Row]:
    rows: list[Row] = [
        (day, minutes_after("09:30", i), 64.0, 65.0, 64.0, 64.0, 1000) for i in range(base)
    ]
    rows[0] = (day, "09:30", 64.0, base_high, 64.0, 64.0, 1000)
    when = minutes_after("09:30", base)
    if direction == "up":
        c = CB_UP if close is None else close
        rows.append((day, when, 65.0, c, 65.0, c, 4750))
    else:
        c = CB_DOWN if close is None else close
        rows.append((day, when, 64.0, 64.0, c, c, 4750))
    return rows


def cb_cfg(**changes: Any) -> DetectorConfig:
    return loose_config(
        "consolidation_break", **{"consolidation_break.min_breakout_pct": 1.5625, **changes}
    )


@pytest.mark.parametrize("direction", ["up", "down"])
def test_consolidation_break_fires_exactly_at_breakout_level(direction: str) -> None:
    assert (CB_UP, CB_DOWN) == (66.015625, 63.0)
    events = detect([*cb_prior_day(), *cb_day(direction)], cb_cfg())
    assert hits(events) == [(at("10:00", DAY2), "consolidation_break", direction)]
    assert events["spike_x"].to_list() == [4.0]
    just_inside = below(CB_UP) if direction == "up" else above(CB_DOWN)
    rows = [*cb_prior_day(), *cb_day(direction, close=just_inside)]
    assert detect(rows, cb_cfg(), raw=True).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_consolidation_break_base_range_at_half_atr_is_consolidating(direction: str) -> None:
    rows = [*cb_prior_day(), *cb_day(direction)]
    key = "consolidation_break.max_range_atr_multiple"
    assert len(detect(rows, cb_cfg(**{key: 0.5}))) == 1
    # 0.5 minus one ulp: the allowed range falls just below the base's 1.5625 %
    assert detect(rows, cb_cfg(**{key: below(0.5)}), raw=True).is_empty()
    # or a base one ulp wider than allowed
    wider = [*cb_prior_day(), *cb_day(direction, base_high=above(65.0))]
    assert detect(wider, cb_cfg(), raw=True).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_consolidation_break_volume_threshold_is_inclusive(direction: str) -> None:
    rows = [*cb_prior_day(), *cb_day(direction)]
    key = "consolidation_break.min_volume_spike"
    assert len(detect(rows, cb_cfg(**{key: 4.0}))) == 1
    assert detect(rows, cb_cfg(**{key: above(4.0)}), raw=True).is_empty()


@pytest.mark.parametrize(("base", "fires"), [(29, False), (30, True)])
def test_consolidation_break_needs_30_prior_bars_of_the_same_day(base: int, fires: bool) -> None:
    # Yesterday's last bars would complete a 30-bar consolidating base with 29
    # of today's; windows restart each day, so they must not.
    rows = [*cb_prior_day(), *cb_day("up", base=base)]
    events = detect(rows, cb_cfg(), raw=True)
    assert len(events) == (1 if fires else 0)


def test_consolidation_break_needs_a_prior_day_for_atr() -> None:
    cfg = cb_cfg(**{"consolidation_break.max_range_atr_multiple": 1e6})
    assert detect(cb_day("up", day=DAY), cfg, raw=True).is_empty()


@pytest.mark.parametrize("include_flat_day", [False, True])
def test_consolidation_break_atr_averages_exactly_the_14_prior_days(
    include_flat_day: bool,
) -> None:
    # 14 days of true range 2 (close 64) before the break day -> atr14_pct 3.125.
    # A 15th, older day with true range 0 must not count: with it the mean would be
    # 28/15 and the 1.5625 % base would no longer be consolidating.
    days = [f"2026-02-{d:02d}" for d in range(1, 17)]
    rows: list[Row] = []
    if include_flat_day:
        rows.append((days[0], "10:00", 64.0, 64.0, 64.0, 64.0, 1000))
    rows += [(d, "10:00", 64.0, 65.0, 63.0, 64.0, 1000) for d in days[1:15]]
    rows += cb_day("up", day=days[15])
    assert hits(detect(rows, cb_cfg())) == [(f"{days[15]} 10:00", "consolidation_break", "up")]


# --------------------------------------------------------------------------- opening_range_break
# Opening range bars (64, 64, 63, 63.5) volume 1000; filler bars flat at 63.5. With
# min_breakout_pct 1.5625 the levels are 64 * 1.015625 = 65.0 and 63 * 0.984375 = 62.015625.
# A break bar of volume 4750 after 19 bars of 1000 has vol_mult 4.0.

ORB_UP, ORB_DOWN = 64.0 * 1.015625, 63.0 * 0.984375


def orb_rows(
    direction: str,
    *,
    when: str = "09:49",
    duration: int = 15,
    day: str = DAY,
    close: float | None = None,
    volume: int = 4750,
    opening_range: bool = True,
) -> list[Row]:
    or_end = minutes_after("09:30", duration)
    rows: list[Row] = []
    t = "09:30"
    while t < when:
        if t < or_end and opening_range:
            rows.append((day, t, 64.0, 64.0, 63.0, 63.5, 1000))
        elif t >= or_end:
            rows.append((day, t, 63.5, 63.5, 63.5, 63.5, 1000))
        t = minutes_after(t, 1)
    if direction == "up":
        c = ORB_UP if close is None else close
        rows.append((day, when, 64.0, c, 64.0, c, volume))
    else:
        c = ORB_DOWN if close is None else close
        rows.append((day, when, 63.0, 63.0, c, c, volume))
    return rows


def orb_cfg(**changes: Any) -> DetectorConfig:
    return loose_config(
        "opening_range_break", **{"opening_range_break.min_breakout_pct": 1.5625, **changes}
    )


@pytest.mark.parametrize("direction", ["up", "down"])
def test_opening_range_break_fires_exactly_at_breakout_level(direction: str) -> None:
    assert (ORB_UP, ORB_DOWN) == (65.0, 62.015625)
    events = detect(orb_rows(direction), orb_cfg())
    assert hits(events) == [(at("09:49"), "opening_range_break", direction)]
    assert events["spike_x"].to_list() == [4.0]
    just_inside = below(ORB_UP) if direction == "up" else above(ORB_DOWN)
    assert detect(orb_rows(direction, close=just_inside), orb_cfg(), raw=True).is_empty()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_opening_range_break_volume_confirmation_matters(direction: str) -> None:
    key = "opening_range_break.min_volume_confirm"
    assert len(detect(orb_rows(direction), orb_cfg(**{key: 4.0}))) == 1
    assert detect(orb_rows(direction), orb_cfg(**{key: above(4.0)}), raw=True).is_empty()
    # a price break on ordinary volume (vol_mult 1.0 < default 1.8) is no event
    assert detect(orb_rows(direction, volume=1000), orb_cfg(), raw=True).is_empty()


@pytest.mark.parametrize(
    ("when", "fires"),
    [("09:44", False), ("09:45", True), ("12:00", True), ("15:59", True), ("16:00", False)],
)
def test_opening_range_break_only_fires_from_range_end_to_16_00(when: str, fires: bool) -> None:
    events = detect(orb_rows("up", when=when), orb_cfg(), raw=True)
    assert hits(events) == ([(at(when), "opening_range_break", "up")] if fires else [])


def test_opening_range_break_never_fires_in_premarket() -> None:
    # Pre-market bars far beyond the later opening range, on heavy volume: the old
    # script compared them with the day's future range (look-ahead).
    pm = [
        *flat(DAY, "09:00", 20, price=63.5),
        (DAY, "09:20", 64.0, 70.0, 64.0, 70.0, 20000),
        (DAY, "09:21", 63.0, 63.0, 55.0, 55.0, 20000),
    ]
    opening = [(DAY, minutes_after("09:30", i), 64.0, 64.0, 63.0, 63.5, 1000) for i in range(15)]
    zero_vol = {"opening_range_break.min_volume_confirm": 0.0}
    assert detect([*pm, *opening], orb_cfg(**zero_vol), raw=True).is_empty()


def test_opening_range_break_needs_bars_in_the_opening_range() -> None:
    # Day 2 has no bar in [09:30, 09:45): no range, so no event, even though day 1's
    # range would be broken.
    rows = [*orb_rows("up"), *orb_rows("up", day=DAY2, opening_range=False)]
    assert all(r[0] == DAY2 for r in orb_rows("up", day=DAY2, opening_range=False))
    assert hits(detect(rows, orb_cfg(), raw=True)) == [(at("09:49"), "opening_range_break", "up")]


@pytest.mark.parametrize("duration", [15, 30, 60])
def test_opening_range_break_duration_sets_range_and_first_eligible_bar(duration: int) -> None:
    end = minutes_after("09:30", duration)
    cfg = orb_cfg(**{"opening_range_break.or_duration_minutes": duration})
    assert hits(detect(orb_rows("up", when=end, duration=duration), cfg)) == [
        (at(end), "opening_range_break", "up")
    ]
    last_in_range = minutes_after(end, -1)
    assert detect(orb_rows("up", when=last_in_range, duration=duration), cfg, raw=True).is_empty()


@pytest.mark.parametrize("duration", [15, 30])
def test_bars_inside_the_opening_range_never_fire(duration: int) -> None:
    # With min_breakout_pct 0 a bar closing at its own high, a new range high, meets
    # close >= or_high; inside the range it is not eligible, from the range end it is.
    # The new high comes 10 minutes before the range ends (09:35 or 09:50: with a
    # 30-minute range it is past 09:45, where a 15-minute range would have ended).
    spike = duration - 10
    rows = [
        *[(DAY, minutes_after("09:30", i), 64.0, 64.0, 63.0, 63.5, 1000) for i in range(spike)],
        (DAY, minutes_after("09:30", spike), 64.0, 65.0, 64.0, 65.0, 4750),
        *[
            (DAY, minutes_after("09:30", i), 64.5, 64.5, 64.5, 64.5, 1000)
            for i in range(spike + 1, 50)
        ],
    ]
    cfg = orb_cfg(
        **{
            "opening_range_break.min_breakout_pct": 0.0,
            "opening_range_break.min_volume_confirm": 0.0,
            "opening_range_break.or_duration_minutes": duration,
        }
    )
    assert detect(rows, cfg, raw=True).is_empty()
    end = minutes_after("09:30", duration)
    at_end = [r if r[1] != end else (DAY, end, 64.5, 65.0, 64.5, 65.0, 1000) for r in rows]
    assert hits(detect(at_end, cfg, raw=True)) == [(at(end), "opening_range_break", "up")]


def test_opening_range_break_30_minute_range_includes_0950() -> None:
    # 09:50 breaks the 15-minute range (high 64) to 65; 10:00 breaks 65 to 66.015625.
    rows = [
        *[(DAY, minutes_after("09:30", i), 64.0, 64.0, 63.0, 63.5, 1000) for i in range(20)],
        (DAY, "09:50", 64.0, 65.0, 64.0, 65.0, 4750),
        *[(DAY, minutes_after("09:51", i), 64.5, 64.5, 64.5, 64.5, 1000) for i in range(9)],
        (DAY, "10:00", 65.0, 66.015625, 65.0, 66.015625, 4750),
    ]
    fifteen = detect(rows, orb_cfg(), raw=True)
    assert hits(fifteen) == [
        (at("09:50"), "opening_range_break", "up"),
        (at("10:00"), "opening_range_break", "up"),
    ]
    thirty = detect(rows, orb_cfg(**{"opening_range_break.or_duration_minutes": 30}), raw=True)
    assert hits(thirty) == [(at("10:00"), "opening_range_break", "up")]


# --------------------------------------------------------------------------- flush
# 17 flat bars at 64 (volume 1000), then three red bars 64->63, 63->62, 62->``close``,
# the last with volume 4750: vol_mult = 4750 / mean(19 x 1000, 4750) = 4.0 exactly,
# drop from the day high 64 to 56 = 8 / 64 * 100 = 12.5 %.

FLUSH_DROP = (64.0 - 56.0) / 64.0 * 100


def flush_rows(
    *,
    red: tuple[bool, bool, bool] = (True, True, True),
    close: float = 56.0,
    day: str = DAY,
    level: float = 64.0,
    flat_volume: int = 1000,
) -> list[Row]:
    a = (day, "09:47", level, level, level - 1, level - 1 if red[0] else level, flat_volume)
    b = (day, "09:48", level - 1, level - 1, level - 2, level - 2 if red[1] else level - 1, 1000)
    c_open = level - 2 if red[2] else close
    c = (day, "09:49", c_open, level - 2, close, close, 4750)
    return [*flat(day, "09:30", 17, price=level, volume=flat_volume), a, b, c]


def flush_cfg(**changes: Any) -> DetectorConfig:
    return loose_config("flush_detection", **{"flush_detection.min_drop_pct": 12.5, **changes})


def test_flush_fires_exactly_at_drop_and_volume_thresholds() -> None:
    assert FLUSH_DROP == 12.5
    events = detect(flush_rows(), flush_cfg())
    assert hits(events) == [(at("09:49"), "flush", "down")]
    assert events["spike_x"].to_list() == [12.5]
    assert detect(flush_rows(close=above(56.0)), flush_cfg(), raw=True).is_empty()
    missed = flush_cfg(**{"flush_detection.min_drop_pct": above(12.5)})
    assert detect(flush_rows(), missed, raw=True).is_empty()
    # default min_volume_spike is 4.0: exactly met; one ulp more misses
    missed = flush_cfg(**{"flush_detection.min_volume_spike": above(4.0)})
    assert detect(flush_rows(), missed, raw=True).is_empty()


@pytest.mark.parametrize("red", [(False, True, True), (True, False, True), (True, True, False)])
def test_flush_needs_three_red_bars_including_the_current_one(
    red: tuple[bool, bool, bool],
) -> None:
    assert detect(flush_rows(red=red), flush_cfg(), raw=True).is_empty()


def test_flush_min_consecutive_red_bars_is_configurable() -> None:
    cfg = flush_cfg(**{"flush_detection.min_consecutive_red_bars": 2})
    assert len(detect(flush_rows(red=(False, True, True)), cfg)) == 1
    assert detect(flush_rows(red=(True, False, True)), cfg, raw=True).is_empty()


def test_flush_drop_is_from_the_running_day_high_not_a_recent_window() -> None:
    # The day high (64) was set 60 bars before; the last 15 bars traded at 60.
    rows = [
        (DAY, "09:30", 60.0, 64.0, 60.0, 60.0, 1000),
        *flat(DAY, "09:31", 59, price=60.0),
        (DAY, "10:30", 60.0, 60.0, 59.0, 59.0, 1000),
        (DAY, "10:31", 59.0, 59.0, 58.0, 58.0, 1000),
        (DAY, "10:32", 58.0, 58.0, 56.0, 56.0, 4750),
    ]
    events = detect(rows, flush_cfg())
    assert hits(events) == [(at("10:32"), "flush", "down")]
    assert events["spike_x"].to_list() == [12.5]


def test_flush_day_high_includes_the_current_bar() -> None:
    # The flush bar itself spikes to a new day high of 64 and closes at 56:
    # drop 12.5 % from its own high (from the earlier high of 58 it is 3.4 %).
    rows = [
        *flat(DAY, "09:30", 17, price=58.0),
        (DAY, "09:47", 58.0, 58.0, 57.5, 57.5, 1000),
        (DAY, "09:48", 57.5, 57.5, 57.0, 57.0, 1000),
        (DAY, "09:49", 57.0, 64.0, 56.0, 56.0, 4750),
    ]
    events = detect(rows, flush_cfg())
    assert hits(events) == [(at("09:49"), "flush", "down")]
    assert events["spike_x"].to_list() == [12.5]


def test_flush_day_high_restarts_each_day() -> None:
    # Yesterday's high was 100; today's is 64. Drop to 60 is 6.25 % (40 % from 100).
    rows = [*flat(DAY, "15:00", 30, price=100.0), *flush_rows(day=DAY2, close=60.0)]
    events = detect(rows, flush_cfg(**{"flush_detection.min_drop_pct": 6.25}))
    assert hits(events) == [(at("09:49", DAY2), "flush", "down")]
    assert events["spike_x"].to_list() == [6.25]
    assert detect(rows, flush_cfg(), raw=True).is_empty()


# --------------------------------------------------------------------------- global filters


def test_min_and_max_price_are_inclusive_on_close() -> None:
    rows = spike_rows("up")  # close 64.5
    for key in ("global_filters.min_price", "global_filters.max_price"):
        assert len(detect(rows, loose_config("volume_spike", **{key: 64.5}))) == 1
    assert detect(
        rows, loose_config("volume_spike", **{"global_filters.min_price": above(64.5)}), raw=True
    ).is_empty()
    assert detect(
        rows, loose_config("volume_spike", **{"global_filters.max_price": below(64.5)}), raw=True
    ).is_empty()


def test_min_dollar_volume_day_is_per_day_and_inclusive() -> None:
    day1 = spike_rows("up")  # 19 * 2000 * 64 + 12000 * 64.5 = 3,206,000
    day2 = spike_rows("up", day=DAY2, base=4000, volume=24000)  # 6,412,000
    key = "global_filters.min_dollar_volume_day"
    both = detect([*day1, *day2], loose_config("volume_spike", **{key: 3_206_000.0}))
    assert hits(both) == [
        (at("09:49"), "volume_spike", "up"),
        (at("09:49", DAY2), "volume_spike", "up"),
    ]
    only2 = detect([*day1, *day2], loose_config("volume_spike", **{key: above(3_206_000.0)}))
    assert hits(only2) == [(at("09:49", DAY2), "volume_spike", "up")]
    none = detect([*day1, *day2], loose_config("volume_spike", **{key: above(6_412_000.0)}))
    assert none.is_empty()


def test_min_bars_per_day_is_inclusive() -> None:
    rows = spike_rows("up")  # 20 bars
    assert len(detect(rows, loose_config("volume_spike", min_bars_per_day=20))) == 1
    assert detect(rows, loose_config("volume_spike", min_bars_per_day=21), raw=True).is_empty()


def three_session_rows() -> list[Row]:
    # spike 8 (volume 16000) passes the RTH and the PM/AH thresholds
    return [
        *spike_rows("up", when="07:00", volume=16000),
        *spike_rows("up", when="11:00", volume=16000),
        *spike_rows("up", when="17:00", volume=16000),
    ]


@pytest.mark.parametrize(
    ("filters", "sessions"),
    [
        ({}, ["PM", "RTH", "AH"]),
        ({"exclude_premarket": True}, ["RTH", "AH"]),
        ({"exclude_afterhours": True}, ["PM", "RTH"]),
        ({"exclude_premarket": True, "exclude_afterhours": True}, ["RTH"]),
        ({"market_hours_only": True}, ["RTH"]),
    ],
)
def test_session_filters(filters: dict[str, bool], sessions: list[str]) -> None:
    cfg = loose_config("volume_spike", **{f"global_filters.{k}": v for k, v in filters.items()})
    assert detect(three_session_rows(), cfg)["session"].to_list() == sessions
    assert detect(three_session_rows(), cfg, raw=True)["session"].to_list() == sessions


# --------------------------------------------------------------------------- direction, enable


def two_direction_rows() -> list[Row]:
    return [*spike_rows("up"), *spike_rows("down", when="10:30")]


@pytest.mark.parametrize(
    ("setting", "expected"), [("both", ["up", "down"]), ("up", ["up"]), ("down", ["down"])]
)
def test_direction_setting_limits_directions(setting: str, expected: list[str]) -> None:
    cfg = loose_config("volume_spike", **{"volume_spike.direction": setting})
    assert detect(two_direction_rows(), cfg, raw=True)["direction"].to_list() == expected


@pytest.mark.parametrize("setting", ["up", "down"])
def test_direction_setting_on_price_momentum(setting: str) -> None:
    rows = [*momentum_rows("up"), *momentum_rows("down", day=DAY2)]
    cfg = loose_config("price_momentum", **{"price_momentum.direction": setting})
    assert detect(rows, cfg, raw=True)["direction"].to_list() == [setting]


@pytest.mark.parametrize(
    ("section", "event_type", "rows"),
    [
        ("volume_spike", "volume_spike", spike_rows("up")),
        ("vwap_break", "vwap_break", vwap_rows("up")),
        ("price_momentum", "price_momentum", momentum_rows("up")),
        ("consolidation_break", "consolidation_break", [*cb_prior_day(), *cb_day("up")]),
        ("opening_range_break", "opening_range_break", orb_rows("up", close=66.0)),
        ("flush_detection", "flush", flush_rows(close=50.0)),
    ],
)
def test_disabled_detector_yields_no_events(section: str, event_type: str, rows: list[Row]) -> None:
    # all six on (defaults, global filters off): the detector fires; disabled, it does not
    on = detect(rows, loose_config(), raw=True)
    assert event_type in on["event_type"].to_list()
    off = detect(rows, loose_config(**{f"{section}.enable": False}), raw=True)
    assert event_type not in off["event_type"].to_list()
    assert off.equals(on.filter(pl.col("event_type") != event_type))


def test_volume_spike_doji_counts_as_down() -> None:
    # direction = up if close > open else down: close == open is down
    rows = [*spike_rows("up")[:-1], (DAY, "09:49", 64.0, 65.0, 64.0, 64.0, 12000)]
    assert hits(detect(rows, loose_config("volume_spike"))) == [
        (at("09:49"), "volume_spike", "down")
    ]


def test_all_detectors_disabled_yields_empty_frame_with_schema() -> None:
    cfg = with_overrides(
        loose_config(),
        **{f"{s}.enable": False for s in DETECTOR_SECTIONS},
    )
    events = detect([*cb_prior_day(), *cb_day("up"), *two_direction_rows()], cfg, raw=True)
    assert events.is_empty()
    assert dict(events.schema) == EVENT_SCHEMA


# --------------------------------------------------------------------------- 0/0, NaN, inf


def everything_at_zero() -> DetectorConfig:
    """Every detector on, every threshold 0: only null (0/0) comparisons can stop a bar."""
    zero: dict[str, Any] = {}
    for sec in ("rth", "pm_ah"):
        for f in ("min_spike", "min_absolute_volume", "min_dollar_volume"):
            zero[f"volume_spike.{sec}.{f}"] = 0.0
    zero["volume_spike.min_range_1m_pct"] = 0.0
    for side in ("bullish", "bearish"):
        zero[f"vwap_break.{side}.min_distance_pct"] = 0.0
        zero[f"vwap_break.{side}.min_volume_confirm"] = 0.0
        zero[f"price_momentum.{side}.min_change_pct"] = 0.0
    zero["price_momentum.min_volume_multiplier"] = 0.0
    zero["consolidation_break.min_breakout_pct"] = 0.0
    zero["consolidation_break.min_volume_spike"] = 0.0
    zero["opening_range_break.min_breakout_pct"] = 0.0
    zero["opening_range_break.min_volume_confirm"] = 0.0
    zero["flush_detection.min_drop_pct"] = 0.0
    zero["flush_detection.min_volume_spike"] = 0.0
    zero["flush_detection.min_consecutive_red_bars"] = 1
    zero["price_momentum.bullish.require_breakout"] = False
    zero["price_momentum.bearish.require_breakdown"] = False
    return loose_config(**zero, **{"deduplication.enable": False})


def test_zero_volume_flat_bars_never_fire_anything() -> None:
    # defect §7: 0/0 = NaN passed the old tests. Three whole days (04:00-19:59) of
    # flat, zero-volume bars; every ratio is 0/0 and must compare false.
    rows = [r for d in ("2026-03-09", DAY, DAY2) for r in flat(d, "04:00", 16 * 60, volume=0)]
    assert detect(rows, everything_at_zero(), raw=True).is_empty()


def test_flat_zero_volume_days_never_fire_consolidation_break() -> None:
    # defect §7: the old consolidation_break fired only on flat, zero-volume bars
    # (a zero-width base "broken" by a 0/0 volume test). Base range 0 <= 0.5 * ATR 0
    # and close >= base high hold here; the 0/0 volume multiple must not.
    rows = [*flat(DAY, "09:30", 40, volume=0), *flat(DAY2, "09:30", 40, volume=0)]
    cfg = loose_config(
        "consolidation_break",
        **{
            "consolidation_break.min_breakout_pct": 0.0,
            "consolidation_break.min_volume_spike": 0.0,
        },
    )
    assert detect(rows, cfg, raw=True).is_empty()


@pytest.mark.parametrize(
    "bad",
    [
        {"open": NAN},
        {"high": NAN},
        {"low": NAN},
        {"close": NAN},
        {"open": INF},
        {"high": INF},
        {"close": INF},
    ],
)
def test_nan_or_inf_prices_never_produce_events(bad: dict[str, float]) -> None:
    rows = [*spike_rows("up"), *flat(DAY, "09:50", 40)]
    frame = bars_frame(rows)
    index = 19  # the spike bar
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == index)
        .then(pl.lit(value, pl.Float64))
        .otherwise(pl.col(col))
        .alias(col)
        for col, value in bad.items()
    )
    cfg = everything_at_zero()
    events = detect_bars("T", frame, cfg, raw=True).events
    spike_time = at("09:49")
    assert spike_time not in [h[0] for h in hits(events)]
    assert events.filter(
        ~pl.all_horizontal(
            pl.col(c).is_finite() for c in ("spike_x", "score", "open", "high", "low", "close")
        )
    ).is_empty()
    clean = detect_bars("T", bars_frame(rows), loose_config("volume_spike")).events
    assert hits(clean) == [(spike_time, "volume_spike", "up")]


@pytest.mark.parametrize("bad_volume", [NAN, INF, -1.0])
def test_nan_inf_or_negative_volume_bar_is_dropped(bad_volume: float) -> None:
    frame = bars_frame(spike_rows("up")).with_columns(pl.col("volume").cast(pl.Float64))
    frame = frame.with_columns(
        volume=pl.when(pl.int_range(pl.len()) == 19).then(bad_volume).otherwise(pl.col("volume"))
    )
    result = detect_bars("T", frame, loose_config("volume_spike"), raw=True)
    assert result.events.is_empty()
    assert result.stats.dropped_bad_volume == 1
    assert result.bars == 19


# -- the fast paths against the definitions ------------------------------------------------
# candidates() evaluates the rules on screened bars only, with per-day windows computed
# from running sums, look-backs and sparse gathered windows. Here the same rules run on
# every bar with each feature written as its plain per-day definition (.over the date),
# and the candidates must be the same, bit for bit.


def reference_candidates(bars: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    from detector.detectors import bar_filter, day_filter, detector_rules
    from detector.features import ratio

    sb = cfg.session_bounds
    h, m = (int(x) for x in sb.rth[0].split(":"))
    rth_start = h * 60 + m
    orb_end = rth_start + cfg.opening_range_break.or_duration_minutes
    vs, pm = cfg.volume_spike, cfg.price_momentum
    base_n = cfg.consolidation_break.consolidation_window_minutes
    red_n = cfg.flush_detection.min_consecutive_red_bars
    volume = pl.col("volume").cast(pl.Float64)
    high, low, close, open_ = pl.col("high"), pl.col("low"), pl.col("close"), pl.col("open")
    minute = pl.col("minute")

    def day(e: pl.Expr) -> pl.Expr:
        return e.over("date")

    in_vwap = minute >= rth_start
    in_or = (minute >= rth_start) & (minute < orb_end)
    cum_pv3 = day(pl.when(in_vwap).then((high + low + close) * volume).otherwise(0.0).cum_sum())
    cum_v = day(pl.when(in_vwap).then(volume).otherwise(0.0).cum_sum())
    vol_ref = (
        volume.rolling_median(vs.rolling_window_minutes, min_samples=1)
        if vs.rolling_method == "median"
        else volume.rolling_mean(vs.rolling_window_minutes, min_samples=1)
    )
    # The volume baselines run over the day's bars that are not auction bars.
    auction = minute.is_in([int(t[:2]) * 60 + int(t[3:]) for t in sb.auction_minutes])
    baselines = (
        bars.filter(~auction)
        .with_columns(vol_ref=day(vol_ref), vol_avg20=day(volume.rolling_mean(20, min_samples=1)))
        .select("timestamp", "vol_ref", "vol_avg20")
    )
    daily = (
        bars.group_by("date")
        .agg(
            day_bars=pl.len(),
            day_dollar_volume=(volume * close).sum(),
            day_high=high.max(),
            day_low=low.min(),
            day_close=close.last(),
        )
        .sort("date")
        .with_columns(prev_close=pl.col("day_close").shift(1))
        .with_columns(
            tr=pl.max_horizontal("day_high", "prev_close")
            - pl.min_horizontal("day_low", "prev_close")
        )
        .with_columns(atr=pl.col("tr").shift(1).rolling_mean(14, min_samples=1))
        .with_columns(
            atr=pl.when(pl.int_range(pl.len()) >= cfg.consolidation_break.min_atr_days).then("atr")
        )
        .with_columns(atr14_pct=ratio(pl.col("atr"), pl.col("prev_close")) * 100)
        .with_columns(day_ok=day_filter(cfg))
        .select("date", "day_bars", "day_dollar_volume", "atr14_pct", "day_ok")
    )
    frame = (
        bars.join(daily, on="date", how="left", maintain_order="left").join(
            baselines, on="timestamp", how="left", maintain_order="left"
        )
    ).with_columns(
        range_pct=ratio(high - low, open_) * 100,
        dollar_volume=volume * close,
        vwap=pl.when(in_vwap).then(ratio(cum_pv3, cum_v)) / 3,
        cum_pv3=cum_pv3,
        cum_v=pl.when(in_vwap).then(cum_v),
        prior_high_20=day(high.shift(1).rolling_max(20, min_samples=1)),
        prior_low_20=day(low.shift(1).rolling_min(20, min_samples=1)),
        close_back=day(close.shift(pm.window_minutes)),
        base_high=day(high.shift(1).rolling_max(base_n, min_samples=base_n)),
        base_low=day(low.shift(1).rolling_min(base_n, min_samples=base_n)),
        or_high=day(high.filter(in_or).max()),
        or_low=day(low.filter(in_or).min()),
        day_high_so_far=day(high.cum_max()),
        red_run=day((close < open_).cast(pl.Int32).rolling_sum(red_n, min_samples=red_n)),
    )
    frame = frame.with_columns(
        vol_mult=ratio(volume, pl.col("vol_avg20")),
        prev_close=day(close.shift(1)),
        # The side of the previous close vs its VWAP, undivided (EVENTS.md's tie exact).
        prev_vwap_gap=day(
            pl.when(pl.col("cum_v") > 0)
            .then(close * 3 * pl.col("cum_v") - pl.col("cum_pv3"))
            .shift(1)
        ),
    )
    detection = detector_rules(cfg)
    for stage in detection.stages:
        frame = frame.with_columns(**stage)
    keep = bar_filter(cfg) & pl.col("day_ok")
    parts = [
        frame.filter(keep & r.condition).select(
            "timestamp",
            event_type=pl.lit(r.event_type),
            direction=pl.lit(r.direction),
            spike_x=detection.metrics[r.event_type].cast(pl.Float64),
        )
        for r in detection.rules
    ]
    found = pl.concat(parts) if parts else pl.DataFrame()
    return found.filter(pl.col("spike_x").is_finite()).sort("timestamp", "event_type", "direction")


def fast_candidates(bars: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    from detector.candidates import candidates
    from detector.features import symbol_features

    found = candidates(symbol_features(bars, cfg), cfg)
    return found.select("timestamp", "event_type", "direction", "spike_x").sort(
        "timestamp", "event_type", "direction"
    )


def walk_bars(days: int, *, seed: int, zero_volume_every: int = 0) -> pl.DataFrame:
    """Random-walk bars over ``days`` weekdays, each day starting at a different time
    (some days before, some after the RTH open) and with gaps, in clean-bar form."""
    from datetime import date, timedelta

    from detector.cleaning import clean_bars, normalize_types

    from builders import random_walk_rows

    rows: list[Row] = []
    d = date(2026, 3, 2)
    k = 0
    while k < days:
        if d.weekday() < 5:
            start = ("04:00", "06:17", "09:31", "09:45", "11:02")[(seed + k) % 5]
            day_rows = random_walk_rows([d.isoformat()], seed=seed * 100 + k, start=start, n=400)
            rows += [r for i, r in enumerate(day_rows) if (i * 7 + k) % 23]  # gaps
            k += 1
        d += timedelta(days=1)
    frame = bars_frame(rows)
    if zero_volume_every:
        frame = frame.with_columns(
            volume=pl.when(pl.int_range(pl.len()) % zero_volume_every == 0)
            .then(0)
            .otherwise(pl.col("volume"))
        )
    bars, _ = clean_bars(normalize_types(frame, "UTC"), day_start_minute=240, day_end_minute=1200)
    return bars


FAST_PATH_CONFIGS: dict[str, dict[str, Any]] = {
    "defaults, loose": {},
    "every detector at its lowest": {
        "volume_spike.min_range_1m_pct": 0.0,
        "volume_spike.rth.min_spike": 1.0,
        "volume_spike.pm_ah.min_spike": 1.0,
        "volume_spike.rth.min_absolute_volume": 0.0,
        "volume_spike.pm_ah.min_absolute_volume": 0.0,
        "volume_spike.rth.min_dollar_volume": 0.0,
        "volume_spike.pm_ah.min_dollar_volume": 0.0,
        "vwap_break.bullish.min_volume_confirm": 0.5,
        "vwap_break.bearish.min_volume_confirm": 0.5,
        "price_momentum.min_volume_multiplier": 0.5,
        "price_momentum.bullish.min_change_pct": 0.3,
        "price_momentum.bearish.min_change_pct": 0.3,
        "consolidation_break.min_volume_spike": 0.5,
        "consolidation_break.max_range_atr_multiple": 5.0,
        "consolidation_break.min_breakout_pct": 0.1,
        "opening_range_break.min_volume_confirm": 0.5,
        "flush_detection.min_volume_spike": 0.5,
        "flush_detection.min_drop_pct": 0.5,
    },
    "other windows": {
        "volume_spike.rolling_window_minutes": 7,
        "volume_spike.rolling_method": "mean",
        "price_momentum.window_minutes": 12,
        "price_momentum.bullish.min_change_pct": 1.0,
        "price_momentum.bearish.min_change_pct": 1.0,
        "consolidation_break.consolidation_window_minutes": 5,
        "consolidation_break.max_range_atr_multiple": 3.0,
        "flush_detection.min_consecutive_red_bars": 1,
        "flush_detection.min_drop_pct": 2.0,
        "opening_range_break.or_duration_minutes": 45,
    },
    "longer windows, no breakout tests": {
        "volume_spike.rolling_window_minutes": 45,
        "price_momentum.window_minutes": 1,
        "price_momentum.bullish.require_breakout": False,
        "price_momentum.bearish.require_breakdown": False,
        "consolidation_break.consolidation_window_minutes": 60,
        "flush_detection.min_consecutive_red_bars": 5,
    },
    "version 2 guards on, median baseline": {
        "session_bounds.auction_minutes": ("09:30", "16:00"),
        "consolidation_break.min_atr_days": 2,
        "consolidation_break.max_range_atr_multiple": 3.0,
        "opening_range_break.min_volume_confirm": 0.8,
        "volume_spike.rth.min_spike": 2.0,
        "volume_spike.pm_ah.min_spike": 2.0,
    },
    "more auction minutes, every detector at its lowest (rolling windows)": {
        "session_bounds.auction_minutes": ("09:30", "09:31", "12:00", "16:00", "19:59"),
        "consolidation_break.min_atr_days": 3,
        "volume_spike.min_range_1m_pct": 0.0,
        "volume_spike.rth.min_spike": 0.5,
        "volume_spike.pm_ah.min_spike": 0.5,
        "volume_spike.rth.min_absolute_volume": 0.0,
        "volume_spike.pm_ah.min_absolute_volume": 0.0,
        "volume_spike.rth.min_dollar_volume": 0.0,
        "volume_spike.pm_ah.min_dollar_volume": 0.0,
        "vwap_break.bullish.min_volume_confirm": 0.5,
        "price_momentum.min_volume_multiplier": 0.5,
        "consolidation_break.max_range_atr_multiple": 5.0,
        "opening_range_break.min_volume_confirm": 0.5,
    },
    "auction minutes with a mean baseline": {
        "session_bounds.auction_minutes": ("09:30", "16:00"),
        "volume_spike.rolling_method": "mean",
        "volume_spike.rolling_window_minutes": 7,
        "volume_spike.rth.min_spike": 2.0,
        "volume_spike.pm_ah.min_spike": 2.0,
        "vwap_break.bullish.min_volume_confirm": 1.0,
        "vwap_break.bearish.min_volume_confirm": 1.0,
    },
    "global filters and one direction": {
        "global_filters.min_price": 19.0,
        "global_filters.max_price": 21.5,
        "global_filters.min_dollar_volume_day": 4_000_000.0,
        "global_filters.exclude_afterhours": True,
        "min_bars_per_day": 200,
        "vwap_break.direction": "up",
        "opening_range_break.direction": "down",
    },
}


@pytest.mark.parametrize("name", FAST_PATH_CONFIGS)
@pytest.mark.parametrize(("days", "seed", "zero_every"), [(3, 1, 0), (12, 2, 17)])
def test_screened_candidates_equal_the_per_day_definitions(
    name: str, days: int, seed: int, zero_every: int
) -> None:
    cfg = loose_config(**FAST_PATH_CONFIGS[name])
    bars = walk_bars(days, seed=seed, zero_volume_every=zero_every)
    expected = reference_candidates(bars, cfg)
    assert expected.height > 0
    got = fast_candidates(bars, cfg)
    assert got.equals(expected)


def test_sparse_windows_give_the_per_day_rolling_values_on_both_paths() -> None:
    from detector.features import BASE_VOLUME, symbol_features
    from detector.sparse import WindowFeature, Windows, add_window_features

    bars = symbol_features(walk_bars(6, seed=5, zero_volume_every=11), DetectorConfig()).bars
    windows = Windows.of(
        [
            WindowFeature("med", "volume", 0, 19, 1, "median"),
            WindowFeature("hi", "high", 1, 20, 1, "max"),
            WindowFeature("lo", "low", 1, 30, 30, "min"),
            WindowFeature("med3", "volume", 2, 4, 2, "median"),
            # The last 20 non-auction volumes of the day (null on auction bars).
            WindowFeature("base_med", BASE_VOLUME, 0, 21, 1, "median", latest=20),
        ]
    )
    plain = [f for f in windows.features if f.latest is None]
    base_med = (
        bars.filter(pl.col(BASE_VOLUME).is_not_null())
        .select(
            "row",
            pl.col(BASE_VOLUME).cast(pl.Float64).rolling_median(20, min_samples=1).over("date"),
        )
        .rename({BASE_VOLUME: "base_med"})
    )
    expected = bars.select("row", *(f.per_day_rolling().alias(f.name) for f in plain))
    expected = expected.join(base_med, on="row", how="left", maintain_order="left").drop("row")
    assert bars[BASE_VOLUME].null_count() >= 4  # the auction bars of the six days
    for every in (97, 3):  # few needed bars (gathered windows), many (rolling windows)
        needed = pl.col("row") % every == 0
        got = add_window_features(bars, bars, windows, needed)
        on = bars.select(needed).to_series()
        for f in windows.features:
            assert got.filter(on)[f.name].equals(expected.filter(on)[f.name]), (every, f.name)


def test_expressions_are_built_once_per_config_object() -> None:
    import gc
    import weakref

    from detector import expr_cache

    class Config:
        pass

    built: list[int] = []

    def build(value: int) -> int:
        built.append(value)
        return value

    one, two = Config(), Config()
    assert expr_cache.per_config(one, "x", lambda: build(1)) == 1
    assert expr_cache.per_config(one, "x", lambda: build(9)) == 1  # kept
    assert expr_cache.per_config(two, "x", lambda: build(2)) == 2  # another object
    assert expr_cache.per_config(one, "y", lambda: build(3)) == 3  # another name
    # An object that reuses a dead object's id is not taken for it.
    gone = Config()
    dead = weakref.ref(gone)
    del gone
    gc.collect()
    expr_cache._built[(id(two), "z")] = (dead, 99)
    assert expr_cache.per_config(two, "z", lambda: build(4)) == 4
    assert built == [1, 2, 3, 4]


def test_configs_used_in_turn_each_give_their_own_events() -> None:
    rows = [*spike_rows("up"), *flat(DAY, "09:50", 40)]
    fires = loose_config("volume_spike")
    silent = with_overrides(fires, **{"volume_spike.rth.min_spike": 7.0})
    for _ in range(2):
        assert len(hits(detect(rows, fires))) == 1
        assert hits(detect(rows, silent)) == []
