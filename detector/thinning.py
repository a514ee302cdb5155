"""Score and causal thinning (EVENTS.md §5).

Cooldown thinning is a greedy walk (an event is emitted unless one of the same
key was emitted less than the cooldown earlier), which is inherently sequential;
it runs over the few candidates only, never over bars.
"""

from __future__ import annotations

import polars as pl

from detector.config import DetectorConfig

_CONFIG_KEY = {
    "volume_spike": "volume_spike",
    "vwap_break": "vwap_break",
    "price_momentum": "price_momentum",
    "consolidation_break": "consolidation_break",
    "opening_range_break": "opening_range_break",
    "flush": "flush_detection",
}
_MS_PER_MINUTE = 60_000


def score_expr(cfg: DetectorConfig) -> pl.Expr:
    w = cfg.deduplication.score_weights
    return (
        w.volume_spike_magnitude * pl.col("spike_x")
        + w.price_change_magnitude * pl.col("range_pct")
        + w.volume_confirm
    )


def cooldown_minutes(cfg: DetectorConfig, event_type: str) -> float:
    section = getattr(cfg, _CONFIG_KEY[event_type])
    value = section.cooldown_minutes
    return cfg.deduplication.window_minutes if value is None else value


def daily_cap(cfg: DetectorConfig, event_type: str) -> int | None:
    return getattr(cfg, _CONFIG_KEY[event_type]).max_events_per_symbol_day


def thin(candidates: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """Apply cooldowns per (day, event_type, direction), then daily caps per event type.

    ``candidates`` holds one symbol's candidates with ``date``, ``event_type``,
    ``direction`` and ``timestamp``. Never looks ahead: whether a candidate is kept
    depends only on earlier candidates. The rows come back in no particular order.
    """
    if candidates.is_empty() or not cfg.deduplication.enable:
        return candidates
    ordered = candidates.sort(["date", "event_type", "direction", "timestamp"])
    kept = ordered.filter(_cooldown_mask(ordered, cfg))
    caps = {t: daily_cap(cfg, t) for t in kept["event_type"].unique().to_list()}
    caps = {t: cap for t, cap in caps.items() if cap is not None}
    if not caps:
        return kept
    capped = pl.col("event_type").is_in(list(caps))
    # Rank within (day, event_type) by (timestamp, direction): the cap keeps the earliest.
    limited = kept.filter(capped).sort(["date", "event_type", "timestamp", "direction"])
    first = (
        (pl.col("date") != pl.col("date").shift(1))
        | (pl.col("event_type") != pl.col("event_type").shift(1))
    ).fill_null(True)
    row = pl.int_range(pl.len())
    rank = row - pl.when(first).then(row).otherwise(None).forward_fill()
    cap = pl.col("event_type").replace_strict(caps, return_dtype=pl.Int64)
    return pl.concat([kept.filter(~capped), limited.filter(rank < cap)])


def _cooldown_mask(ordered: pl.DataFrame, cfg: DetectorConfig) -> pl.Series:
    """The greedy cooldown walk over candidates sorted by group, then time.

    Sequential by nature (whether a candidate is kept depends on the last *kept* one),
    so it is a plain loop over Python ints, one step per candidate, never per bar.
    """
    cooldown_ms = {
        t: cooldown_minutes(cfg, t) * _MS_PER_MINUTE
        for t in ordered["event_type"].unique().to_list()
    }
    columns = ordered.select(
        starts=pl.any_horizontal(
            pl.col(c) != pl.col(c).shift(1) for c in ("date", "event_type", "direction")
        ).fill_null(True),
        times=pl.col("timestamp").dt.epoch("ms"),
        cooldowns=pl.col("event_type").replace_strict(cooldown_ms, return_dtype=pl.Float64),
    )
    starts = columns["starts"].to_list()
    times = columns["times"].to_list()
    cooldowns = columns["cooldowns"].to_list()
    keep = [False] * len(times)
    last_emitted = 0
    for i, t in enumerate(times):
        if starts[i] or t - last_emitted >= cooldowns[i]:
            keep[i] = True
            last_emitted = t
    return pl.Series(keep, dtype=pl.Boolean)
