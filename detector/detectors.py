"""The six detectors (EVENTS.md §3) and global filters (§4) as polars expressions.

Each detector contributes ``(event_type, direction, condition, metric)``;
:mod:`detector.candidates` evaluates them over a symbol's bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from detector.config import DetectorConfig
from detector.config_load import minutes_of
from detector.features import auction_minutes, in_session, is_auction, ratio

EVENT_TYPES = (
    "volume_spike",
    "vwap_break",
    "price_momentum",
    "consolidation_break",
    "opening_range_break",
    "flush",
)


@dataclass(frozen=True)
class Rule:
    event_type: str
    direction: str  # "up" | "down"
    condition: pl.Expr


@dataclass(frozen=True)
class Detection:
    """The enabled detectors: ``stages`` of intermediate columns (each stage may read the
    ones before), the rules over them and, per event type, its ``spike_x`` metric.

    A value that both directions (or a rule and its metric) read is computed once, in a
    stage: each polars expression node costs about as much to plan as to run on the
    few thousand bars the rules are evaluated on.
    """

    stages: list[dict[str, pl.Expr]]
    rules: list[Rule]
    metrics: dict[str, pl.Expr]


@dataclass(frozen=True)
class _Part:
    """One detector's share of a :class:`Detection`: its first- and second-stage
    columns, its rules and its metric."""

    first: dict[str, pl.Expr]
    second: dict[str, pl.Expr]
    rules: list[Rule]
    metric: pl.Expr


def _directions(direction_setting: str) -> set[str]:
    return {"both": {"up", "down"}, "up": {"up"}, "down": {"down"}}[direction_setting]


def _rules(event_type: str, setting: str, up: pl.Expr | None, down: pl.Expr | None) -> list[Rule]:
    """The rules of ``event_type`` for the directions its ``direction`` setting keeps."""
    wanted = _directions(setting)
    return [
        Rule(event_type, direction, cond.fill_null(False))
        for direction, cond in (("up", up), ("down", down))
        if cond is not None and direction in wanted
    ]


def _volume_spike(cfg: DetectorConfig) -> _Part | None:
    vs = cfg.volume_spike
    if not vs.enable:
        return None
    c, o, v = pl.col("close"), pl.col("open"), pl.col("volume")
    is_rth = in_session(cfg, "RTH")

    def threshold(name: str) -> pl.Expr:
        return pl.when(is_rth).then(getattr(vs.rth, name)).otherwise(getattr(vs.pm_ah, name))

    first = {"vs_spike": ratio(v.cast(pl.Float64), pl.col("vol_ref"))}
    second = {
        "vs_fired": (
            (pl.col("range_pct") >= vs.min_range_1m_pct)
            & (pl.col("vs_spike") >= threshold("min_spike"))
            & (v >= threshold("min_absolute_volume"))
            & (pl.col("dollar_volume") >= threshold("min_dollar_volume"))
        )
    }
    fired = pl.col("vs_fired")
    rules = _rules("volume_spike", vs.direction, fired & (c > o), fired & ~(c > o))
    return _Part(first, second, rules, pl.col("vs_spike"))


def _vwap_break(cfg: DetectorConfig) -> _Part | None:
    vb = cfg.vwap_break
    if not vb.enable:
        return None
    c, vol_mult, vwap = pl.col("close"), pl.col("vol_mult"), pl.col("vwap")
    first = {"vb_dist": ratio(c - vwap, vwap) * 100}
    dist = pl.col("vb_dist")
    prev_gap = pl.col("prev_vwap_gap")  # previous close vs its VWAP, by sign
    up = (
        (prev_gap <= 0)
        & (dist >= vb.bullish.min_distance_pct)
        & (vol_mult >= vb.bullish.min_volume_confirm)
    )
    down = (
        (prev_gap >= 0)
        & (dist <= -vb.bearish.min_distance_pct)
        & (vol_mult >= vb.bearish.min_volume_confirm)
    )
    return _Part(first, {}, _rules("vwap_break", vb.direction, up, down), dist.abs())


def _price_momentum(cfg: DetectorConfig) -> _Part | None:
    pm = cfg.price_momentum
    if not pm.enable:
        return None
    c, vol_mult = pl.col("close"), pl.col("vol_mult")
    first = {"pm_ret": (ratio(c, pl.col("close_back")) - 1) * 100}
    ret = pl.col("pm_ret")
    volume_ok = vol_mult >= pm.min_volume_multiplier
    up = (ret >= pm.bullish.min_change_pct) & volume_ok
    if pm.bullish.require_breakout:
        up = up & (c > pl.col("prior_high_20"))
    down = (ret <= -pm.bearish.min_change_pct) & volume_ok
    if pm.bearish.require_breakdown:
        down = down & (c < pl.col("prior_low_20"))
    return _Part(first, {}, _rules("price_momentum", pm.direction, up, down), ret.abs())


def _consolidation_break(cfg: DetectorConfig) -> _Part | None:
    cb = cfg.consolidation_break
    if not cb.enable:
        return None
    c, vol_mult = pl.col("close"), pl.col("vol_mult")
    base_high, base_low = pl.col("base_high"), pl.col("base_low")
    base_range_pct = ratio(base_high - base_low, base_low) * 100
    first = {
        "cb_quiet": (base_range_pct <= cb.max_range_atr_multiple * pl.col("atr14_pct"))
        & (vol_mult >= cb.min_volume_spike)
    }
    quiet = pl.col("cb_quiet")
    up = quiet & (c >= base_high * (1 + cb.min_breakout_pct / 100))
    down = quiet & (c <= base_low * (1 - cb.min_breakout_pct / 100))
    return _Part(first, {}, _rules("consolidation_break", cb.direction, up, down), vol_mult)


def _opening_range_break(cfg: DetectorConfig) -> _Part | None:
    ob = cfg.opening_range_break
    if not ob.enable:
        return None
    c, vol_mult, minute = pl.col("close"), pl.col("vol_mult"), pl.col("minute")
    rth_start, rth_end = (minutes_of(t) for t in cfg.session_bounds.rth)
    first = {
        "orb_open": (
            (minute >= rth_start + ob.or_duration_minutes)
            & (minute < rth_end)
            & pl.col("or_high").is_not_null()
            & (vol_mult >= ob.min_volume_confirm)
        )
    }
    may_fire = pl.col("orb_open")
    up_level = pl.col("or_high") * (1 + ob.min_breakout_pct / 100)
    down_level = pl.col("or_low") * (1 - ob.min_breakout_pct / 100)
    prev_close = pl.col("prev_close")
    # A crossing, not a state: the previous bar of the day closed on the other side
    # (EVENTS.md §3.5; a price that breaks out and stays out is one event).
    up = may_fire & (c >= up_level) & (prev_close < up_level)
    down = may_fire & (c <= down_level) & (prev_close > down_level)
    return _Part(first, {}, _rules("opening_range_break", ob.direction, up, down), vol_mult)


def _flush(cfg: DetectorConfig) -> _Part | None:
    fd = cfg.flush_detection
    if not fd.enable:
        return None
    day_high = pl.col("day_high_so_far")
    first = {"fd_drop": ratio(day_high - pl.col("close"), day_high) * 100}
    drop = pl.col("fd_drop")
    down = (
        (drop >= fd.min_drop_pct)
        & (pl.col("vol_mult") >= fd.min_volume_spike)
        & (pl.col("red_run") == fd.min_consecutive_red_bars)
    )
    return _Part(first, {}, _rules("flush", "down", None, down), drop)


# One builder per event type, in the order of EVENT_TYPES (the order of the rules).
_DETECTORS: dict[str, Callable[[DetectorConfig], _Part | None]] = {
    "volume_spike": _volume_spike,
    "vwap_break": _vwap_break,
    "price_momentum": _price_momentum,
    "consolidation_break": _consolidation_break,
    "opening_range_break": _opening_range_break,
    "flush": _flush,
}


def detector_rules(cfg: DetectorConfig) -> Detection:
    """The enabled rules, their intermediate columns and their metrics."""
    first: dict[str, pl.Expr] = {}  # read by the second stage or the rules
    second: dict[str, pl.Expr] = {}
    rules: list[Rule] = []
    metrics: dict[str, pl.Expr] = {}
    for event_type, build in _DETECTORS.items():
        part = build(cfg)
        if part is None:
            continue
        first.update(part.first)
        second.update(part.second)
        rules.extend(part.rules)
        metrics[event_type] = part.metric
    return Detection([stage for stage in (first, second) if stage], rules, metrics)


def bar_filter(cfg: DetectorConfig) -> pl.Expr:
    """Bars that may produce an event by their own price and session (EVENTS.md §4)."""
    gf = cfg.global_filters
    # Auction bars (EVENTS.md §1) carry a structural surge of volume: they never fire.
    keep = pl.col("close").is_between(gf.min_price, gf.max_price) & in_session(cfg)
    if auction_minutes(cfg):
        keep = keep & ~is_auction(cfg)
    if gf.market_hours_only:
        keep = keep & in_session(cfg, "RTH")
    if gf.exclude_premarket:
        keep = keep & ~in_session(cfg, "PM")
    if gf.exclude_afterhours:
        keep = keep & ~in_session(cfg, "AH")
    return keep.fill_null(False)


def day_filter(cfg: DetectorConfig) -> pl.Expr:
    """Trading days (rows of the daily context) that may produce events (EVENTS.md §1, §4)."""
    keep = (pl.col("day_dollar_volume") >= cfg.global_filters.min_dollar_volume_day) & (
        pl.col("day_bars") >= cfg.min_bars_per_day
    )
    return keep.fill_null(False)
