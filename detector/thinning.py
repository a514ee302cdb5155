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
    depends only on earlier candidates.
    """
    if candidates.is_empty() or not cfg.deduplication.enable:
        return candidates
    ordered = candidates.sort(["date", "event_type", "direction", "timestamp"])
    keep = _cooldown_mask(ordered, cfg)
    kept = ordered.filter(pl.Series(keep, dtype=pl.Boolean))
    caps = {t: daily_cap(cfg, t) for t in kept["event_type"].unique().to_list()}
    caps = {t: cap for t, cap in caps.items() if cap is not None}
    if not caps:
        return kept
    cap_col = pl.col("event_type").replace_strict(caps, default=None, return_dtype=pl.Int64)
    rank = pl.int_range(pl.len()).over(["date", "event_type"], order_by=["timestamp", "direction"])
    return kept.filter(cap_col.is_null() | (rank < cap_col))


def _cooldown_mask(ordered: pl.DataFrame, cfg: DetectorConfig) -> list[bool]:
    cooldown_ms = {
        t: cooldown_minutes(cfg, t) * _MS_PER_MINUTE
        for t in ordered["event_type"].unique().to_list()
    }
    groups = ordered.select(pl.col("date"), pl.col("event_type"), pl.col("direction")).rows()
    times = ordered["timestamp"].dt.epoch("ms").to_list()
    keep: list[bool] = []
    last_key: tuple[object, ...] | None = None
    last_emitted = 0
    for key, t in zip(groups, times, strict=True):
        if key != last_key:
            last_key, last_emitted = key, t
            keep.append(True)
        elif t - last_emitted >= cooldown_ms[key[1]]:
            last_emitted = t
            keep.append(True)
        else:
            keep.append(False)
    return keep
