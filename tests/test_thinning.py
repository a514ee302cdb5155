"""Causal thinning, caps, raw candidates, score and output shape (EVENTS.md §5-§6)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import polars as pl
import pytest

from detector.config import DetectorConfig
from detector.detectors import EVENT_TYPES
from detector.pipeline import detect_bars
from detector.schema import EVENT_KEY, EVENT_SCHEMA

from builders import (
    Row,
    bars_frame,
    et_instant,
    flat_bars,
    loose_config,
    minutes_after,
    random_walk_rows,
    with_overrides,
)

DAY = "2026-03-10"
DAY2 = "2026-03-11"
T0 = "09:49"  # first candidate: after 19 flat bars from 09:30
WALK_DAYS = ["2026-03-10", "2026-03-11", "2026-03-12"]


def spike_day(
    ups: list[int], downs: tuple[int, ...] | list[int] = (), *, day: str = DAY, length: int = 12
) -> list[Row]:
    """19 flat bars (volume 2000) from 09:30, then ``length`` bars from 09:49 where the
    minute offsets in ``ups`` / ``downs`` are volume spikes (12000 = 6 x the median
    2000, range 1.5625 %); every spike bar is a volume_spike candidate."""
    rows: list[Row] = flat_bars(day, "09:30", 19, price=64.0, volume=2000)
    for k in range(length):
        t = minutes_after(T0, k)
        if k in ups:
            rows.append((day, t, 64.0, 65.0, 64.0, 64.5, 12000))
        elif k in downs:
            rows.append((day, t, 64.0, 64.0, 63.0, 63.5, 12000))
        else:
            rows.append((day, t, 64.0, 64.0, 64.0, 64.0, 2000))
    return rows


def spike_cfg(**changes: Any) -> DetectorConfig:
    base = {"volume_spike.cooldown_minutes": 5.0, "volume_spike.max_events_per_symbol_day": None}
    return loose_config("volume_spike", **{**base, **changes})


def detect(rows: list[Row], cfg: DetectorConfig, *, raw: bool = False) -> pl.DataFrame:
    return detect_bars("T", bars_frame(rows), cfg, raw=raw).events


def offsets(events: pl.DataFrame, day: str = DAY) -> list[tuple[int, str]]:
    """(minutes after T0, direction) of each event on ``day``."""
    out = []
    for ts, d, direction in events.select("timestamp_et", "date", "direction").iter_rows():
        if d.isoformat() == day:
            out.append((ts.hour * 60 + ts.minute - (9 * 60 + 49), direction))
    return out


def up(*ks: int) -> list[tuple[int, str]]:
    return [(k, "up") for k in ks]


def with_cap(cfg: DetectorConfig, section: str, cap: int) -> DetectorConfig:
    return with_overrides(cfg, **{f"{section}.max_events_per_symbol_day": cap})


def keys(events: pl.DataFrame) -> set[tuple[Any, ...]]:
    return set(events.select(EVENT_KEY).iter_rows())


# --------------------------------------------------------------------------- cooldown


def test_cooldown_is_a_greedy_walk_over_emitted_events() -> None:
    # Candidates t, t+4, t+5, t+9, t+10 with a 5-minute cooldown: t is emitted; t+4 is
    # 4 < 5 after it; t+5 is exactly 5 after t (kept); t+9 is 4 after the emitted t+5
    # (suppressed, though 5 after the suppressed t+4); t+10 is 5 after t+5 (kept).
    rows = spike_day([0, 4, 5, 9, 10])
    assert offsets(detect(rows, spike_cfg(), raw=True)) == up(0, 4, 5, 9, 10)
    assert offsets(detect(rows, spike_cfg())) == up(0, 5, 10)


def test_cooldown_is_per_direction() -> None:
    rows = spike_day([0, 2], [1, 3])
    events = detect(rows, spike_cfg())
    assert offsets(events) == [(0, "up"), (1, "down")]


def test_cooldown_restarts_each_trading_day() -> None:
    # A week-long cooldown still lets the next day's first candidate through.
    rows = [*spike_day([0, 6]), *spike_day([0, 6], day=DAY2)]
    events = detect(rows, spike_cfg(**{"volume_spike.cooldown_minutes": 7 * 24 * 60.0}))
    assert offsets(events, DAY) == up(0)
    assert offsets(events, DAY2) == up(0)


def test_cooldown_is_per_event_type() -> None:
    # The same bars are volume_spike and price_momentum candidates; a long
    # volume_spike cooldown does not suppress price_momentum and vice versa.
    rows = [
        *flat_bars(DAY, "09:30", 19, price=64.0, volume=2000),
        (DAY, "09:49", 64.0, 66.0, 64.0, 66.0, 12000),  # +3.125 % over 5 bars, new high
        *flat_bars(DAY, "09:50", 2, price=66.0, volume=2000),
        (DAY, "09:52", 66.0, 68.0, 66.0, 68.0, 24000),
    ]
    cfg = loose_config(
        "volume_spike",
        "price_momentum",
        **{
            "volume_spike.cooldown_minutes": 60.0,
            "price_momentum.cooldown_minutes": 0.0,
            "price_momentum.bullish.min_change_pct": 3.0,
        },
    )
    events = detect(rows, cfg)
    got = [
        (t, d.hour * 60 + d.minute)
        for t, d in events.select("event_type", "timestamp_et").iter_rows()
    ]
    assert got == [
        ("price_momentum", 9 * 60 + 49),
        ("volume_spike", 9 * 60 + 49),
        ("price_momentum", 9 * 60 + 52),
    ]


@pytest.mark.parametrize(("window", "expected"), [(3.0, up(0, 3)), (10.0, up(0))])
def test_null_cooldown_falls_back_to_deduplication_window(
    window: float, expected: list[tuple[int, str]]
) -> None:
    rows = spike_day([0, 2, 3])
    cfg = spike_cfg(
        **{"volume_spike.cooldown_minutes": None, "deduplication.window_minutes": window}
    )
    assert offsets(detect(rows, cfg)) == expected


def test_zero_cooldown_keeps_every_candidate() -> None:
    rows = spike_day([0, 1, 2])
    assert offsets(detect(rows, spike_cfg(**{"volume_spike.cooldown_minutes": 0.0}))) == up(0, 1, 2)


# --------------------------------------------------------------------------- daily cap


def test_cap_counts_both_directions_of_an_event_type_earliest_first() -> None:
    rows = spike_day([0, 2], [1])
    cfg = spike_cfg(
        **{"volume_spike.cooldown_minutes": 0.0, "volume_spike.max_events_per_symbol_day": 2}
    )
    assert offsets(detect(rows, cfg)) == [(0, "up"), (1, "down")]


def test_cap_applies_to_events_after_cooldown_and_per_day() -> None:
    # cooldown 5 leaves t and t+5 out of t, t+1, t+5, t+6; the cap of 2 keeps both.
    # (Capping the candidates first would keep t, t+1 and then only t.)
    rows = [*spike_day([0, 1, 5, 6]), *spike_day([0, 1, 5, 6], day=DAY2)]
    cfg = spike_cfg(**{"volume_spike.max_events_per_symbol_day": 2})
    events = detect(rows, cfg)
    assert offsets(events, DAY) == up(0, 5)
    assert offsets(events, DAY2) == up(0, 5)
    cfg = spike_cfg(**{"volume_spike.max_events_per_symbol_day": 1})
    events = detect(rows, cfg)
    assert offsets(events, DAY) == up(0)
    assert offsets(events, DAY2) == up(0)


def test_cap_is_per_event_type() -> None:
    # A pre-market volume spike at 09:10, then a flush at 09:49 whose last bar is also
    # a volume spike. A cap of 1 on volume_spike removes the 09:49 spike, not the flush.
    pm_base = flat_bars(DAY, "08:51", 19, price=64.0, volume=1000)
    pm_spike: Row = (DAY, "09:10", 64.0, 65.0, 64.0, 64.5, 4750)
    rth = [
        *flat_bars(DAY, "09:30", 17, price=64.0, volume=1000),
        (DAY, "09:47", 64.0, 64.0, 63.0, 63.0, 1000),
        (DAY, "09:48", 63.0, 63.0, 62.0, 62.0, 1000),
        (DAY, "09:49", 62.0, 62.0, 56.0, 56.0, 4750),
    ]
    spike_thresholds = {
        f"volume_spike.{s}.{f}": v
        for s in ("rth", "pm_ah")
        for f, v in (("min_spike", 4.0), ("min_absolute_volume", 0.0), ("min_dollar_volume", 0.0))
    }
    cfg = loose_config(
        "volume_spike",
        "flush_detection",
        **spike_thresholds,
        **{"flush_detection.min_drop_pct": 12.5},
    )
    rows = [*pm_base, pm_spike, *rth]
    got = detect(rows, cfg).select("event_type", "timestamp_et").rows()
    assert [(t, ts.strftime("%H:%M")) for t, ts in got] == [
        ("volume_spike", "09:10"),
        ("flush", "09:49"),
        ("volume_spike", "09:49"),
    ]
    capped = with_cap(cfg, "volume_spike", 1)
    got = detect(rows, capped).select("event_type", "timestamp_et").rows()
    assert [(t, ts.strftime("%H:%M")) for t, ts in got] == [
        ("volume_spike", "09:10"),
        ("flush", "09:49"),
    ]


# --------------------------------------------------------------------------- enable / raw


def test_deduplication_disabled_keeps_every_candidate() -> None:
    rows = spike_day([0, 1, 2, 4, 5])
    cfg = spike_cfg(**{"deduplication.enable": False})
    assert offsets(detect(rows, cfg)) == up(0, 1, 2, 4, 5)
    assert detect(rows, cfg).equals(detect(rows, cfg, raw=True))


def walk() -> pl.DataFrame:
    return bars_frame(random_walk_rows(WALK_DAYS, seed=3))


def test_events_are_a_subset_of_raw_candidates() -> None:
    cfg = loose_config()
    events = detect_bars("T", walk(), cfg).events
    raw = detect_bars("T", walk(), cfg, raw=True).events
    assert set(events["event_type"]) == set(EVENT_TYPES)
    assert keys(events) <= keys(raw)
    assert len(raw) > len(events)
    # and the kept rows are the candidates' rows, unchanged
    assert events.join(raw, on=list(EVENT_KEY), how="anti").is_empty()
    assert raw.join(events, on=list(EVENT_KEY), how="semi").equals(events)


@pytest.mark.parametrize("raw", [False, True])
def test_no_look_ahead_appending_bars_never_changes_earlier_events(raw: bool) -> None:
    full = walk()
    cfg = loose_config()
    everything = detect_bars("T", full, cfg, raw=raw).events
    assert len(everything) > 50
    # cut inside the opening range, mid-session, late after-hours and on later days
    cuts = [
        ("2026-03-10", "09:40"),
        ("2026-03-10", "11:17"),
        ("2026-03-10", "19:30"),
        ("2026-03-11", "04:10"),
        ("2026-03-11", "13:03"),
        ("2026-03-12", "10:01"),
    ]
    for day, hhmm in cuts:
        cut = et_instant(day, hhmm).astimezone(UTC)
        prefix = full.filter(pl.col("timestamp") < cut)
        early = detect_bars("T", prefix, cfg, raw=raw).events
        expected = everything.filter(pl.col("timestamp") < cut)
        assert early.equals(expected), f"events before {day} {hhmm} changed with later bars"


# --------------------------------------------------------------------------- score


def test_score_is_weighted_spike_and_range() -> None:
    events = detect(spike_day([0]), spike_cfg())
    # spike_x 6, range (65 - 64) / 64 * 100 = 1.5625
    assert events["spike_x"].to_list() == [6.0]
    assert events["score"].to_list() == [pytest.approx(0.3 * 6.0 + 0.25 * 1.5625 + 0.2)]
    weights = {
        "deduplication.score_weights.volume_spike_magnitude": 1.0,
        "deduplication.score_weights.price_change_magnitude": 2.0,
        "deduplication.score_weights.volume_confirm": 0.5,
    }
    events = detect(spike_day([0]), spike_cfg(**weights))
    assert events["score"].to_list() == [6.0 + 2 * 1.5625 + 0.5]


def test_score_formula_holds_for_every_event_type() -> None:
    raw = detect_bars("T", walk(), loose_config(), raw=True).events
    expected = (
        0.3 * pl.col("spike_x")
        + 0.25 * (pl.col("high") - pl.col("low")) / pl.col("open") * 100
        + 0.2
    )
    off = raw.filter((pl.col("score") - expected).abs() > 1e-9)
    assert off.is_empty()


# --------------------------------------------------------------------------- output shape


@pytest.mark.parametrize("raw", [False, True])
def test_output_schema_order_and_key(raw: bool) -> None:
    events = detect_bars("SYM", walk(), loose_config(), raw=raw).events
    assert list(events.schema.items()) == list(EVENT_SCHEMA.items())
    assert events.equals(events.sort(EVENT_KEY))
    assert events.select(EVENT_KEY).is_unique().all()
    assert set(events["symbol"]) == {"SYM"}
    assert events.filter(
        (
            pl.col("event_bias")
            != pl.when(pl.col("direction") == "up")
            .then(pl.lit("bullish"))
            .otherwise(pl.lit("bearish"))
        )
        | (
            pl.col("close_vs_open")
            != pl.when(pl.col("close") > pl.col("open"))
            .then(pl.lit("green"))
            .otherwise(pl.lit("red"))
        )
        | (pl.col("tier") != 1)
    ).is_empty()
    assert set(events["direction"]) == {"up", "down"}
    assert set(events["session"]) == {"PM", "RTH", "AH"}


def test_output_schema_when_there_are_no_events() -> None:
    events = detect(flat_bars(DAY, "09:30", 40), loose_config())
    assert events.is_empty()
    assert list(events.schema.items()) == list(EVENT_SCHEMA.items())


def test_output_values_of_one_event() -> None:
    row = detect(spike_day([0]), spike_cfg()).row(0, named=True)
    assert row["symbol"] == "T"
    assert row["event_type"] == "volume_spike"
    assert row["timestamp"].isoformat() == "2026-03-10T13:49:00+00:00"
    assert row["timestamp_et"].isoformat() == "2026-03-10T09:49:00-04:00"
    assert row["date"].isoformat() == DAY
    assert (row["direction"], row["session"], row["event_bias"], row["close_vs_open"]) == (
        "up",
        "RTH",
        "bullish",
        "green",
    )
    assert (row["open"], row["high"], row["low"], row["close"]) == (64.0, 65.0, 64.0, 64.5)
    assert (row["volume"], row["dollar_volume"], row["tier"]) == (12000, 12000 * 64.5, 1)


# -- the one-pass walk against the definition -----------------------------------------------


def reference_thin(candidates: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """EVENTS.md §5 written plainly: a greedy cooldown walk per (day, type, direction) in
    time order, then per (day, type, direction) the earliest ``max_breaks_per_day``
    (opening_range_break), then per (day, type) the earliest ``cap`` by (timestamp,
    direction)."""
    from detector.thinning import cooldown_minutes, daily_cap

    per_direction = {"opening_range_break": cfg.opening_range_break.max_breaks_per_day}

    rows = candidates.sort("date", "event_type", "direction", "timestamp").to_dicts()
    kept: list[dict[str, Any]] = []
    last: dict[tuple[Any, ...], Any] = {}
    for r in rows:
        key = (r["date"], r["event_type"], r["direction"])
        cooldown = cooldown_minutes(cfg, r["event_type"]) * 60_000
        t = r["timestamp"].timestamp() * 1000
        if key not in last or t - last[key] >= cooldown:
            last[key] = t
            kept.append(r)
    kept.sort(key=lambda r: r["timestamp"])
    breaks: dict[tuple[Any, ...], int] = {}
    within_direction_cap = []
    for r in kept:
        key = (r["date"], r["event_type"], r["direction"])
        breaks[key] = breaks.get(key, 0) + 1
        cap = per_direction.get(r["event_type"])
        if cap is None or breaks[key] <= cap:
            within_direction_cap.append(r)
    kept = within_direction_cap
    kept.sort(key=lambda r: (r["date"], r["event_type"], r["timestamp"], r["direction"]))
    counts: dict[tuple[Any, ...], int] = {}
    out = []
    for r in kept:
        key = (r["date"], r["event_type"])
        counts[key] = counts.get(key, 0) + 1
        cap = daily_cap(cfg, r["event_type"])
        if cap is None or counts[key] <= cap:
            out.append(r)
    return pl.DataFrame(out, schema=candidates.schema)


def random_candidates(seed: int, n: int = 3000) -> pl.DataFrame:
    """Candidates as candidates() gives them, in no particular order: bursts of
    neighbouring minutes, both directions interleaved, several types and days."""
    import random

    rng = random.Random(seed)
    minutes: set[tuple[int, int, str, str]] = set()
    while len(minutes) < n:
        day = rng.randrange(4)
        start = rng.randrange(240, 1150)
        event_type = rng.choice(EVENT_TYPES)
        for k in range(rng.randint(1, 25)):
            minute = start + k * rng.choice((1, 1, 2, 7))
            if minute < 1200:
                minutes.add((day, minute, event_type, rng.choice(("up", "down"))))
    frame = pl.DataFrame(
        [
            (et_instant(f"2026-03-{10 + day:02d}", f"{m // 60:02d}:{m % 60:02d}"), e, d)
            for day, m, e, d in minutes
        ],
        schema={
            "timestamp": pl.Datetime("us", UTC),
            "event_type": pl.String,
            "direction": pl.String,
        },
        orient="row",
    )
    frame = frame.with_columns(pl.col("timestamp").dt.cast_time_unit("ms"))
    et = pl.col("timestamp").dt.convert_time_zone("America/New_York")
    return frame.with_columns(date=et.dt.date(), spike_x=pl.lit(1.0)).sample(
        fraction=1.0, shuffle=True, seed=seed
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"volume_spike.max_events_per_symbol_day": 3, "vwap_break.max_events_per_symbol_day": 1},
        {"opening_range_break.cooldown_minutes": None, "deduplication.window_minutes": 4.0},
        {"flush_detection.cooldown_minutes": 0.0, "price_momentum.cooldown_minutes": 2.0},
        {"opening_range_break.max_breaks_per_day": None},
        {
            "opening_range_break.max_breaks_per_day": 2,
            "opening_range_break.cooldown_minutes": 3.0,
            "opening_range_break.max_events_per_symbol_day": 3,
        },
    ],
)
def test_thinning_equals_the_walk_it_defines(seed: int, changes: dict[str, Any]) -> None:
    from detector.thinning import thin

    cfg = with_overrides(DetectorConfig(), **changes)
    candidates = random_candidates(seed)
    key = ["timestamp", "event_type", "direction"]
    got = thin(candidates, cfg).sort(key)
    expected = reference_thin(candidates, cfg).sort(key)
    assert 0 < got.height < candidates.height
    assert got.equals(expected)
