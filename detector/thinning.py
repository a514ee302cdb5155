"""Score and causal thinning (EVENTS.md §5).

Cooldown thinning is a greedy walk (an event is emitted unless one of the same
key was emitted less than the cooldown earlier), which is inherently sequential;
it runs over the few candidates only, never over bars.
"""

from __future__ import annotations

import polars as pl

from detector.config import DetectorConfig
from detector.expr_cache import per_config

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


def direction_cap(cfg: DetectorConfig, event_type: str) -> int | None:
    """Events per direction and day (opening_range_break's ``max_breaks_per_day``)."""
    if event_type == "opening_range_break":
        return cfg.opening_range_break.max_breaks_per_day
    return None


def thin(candidates: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """Apply cooldowns per (day, event_type, direction), then the daily caps: per direction
    (opening_range_break's ``max_breaks_per_day``), then per event type.

    ``candidates`` holds one symbol's candidates with ``date``, ``event_type``,
    ``direction`` and ``timestamp``. Never looks ahead: whether a candidate is kept
    depends only on earlier candidates. The rows come back in no particular order.
    """
    if candidates.is_empty() or not cfg.deduplication.enable:
        return candidates
    # In (day, event_type) groups, by (timestamp, direction): the order the cap counts
    # in, and each direction's candidates in time order for its cooldown.
    ordered = candidates.sort(["event_type", "date", "timestamp", "direction"])
    return ordered.filter(_keep(ordered, cfg))


def _keep(ordered: pl.DataFrame, cfg: DetectorConfig) -> pl.Series:
    """The greedy cooldown walk per direction, and the daily caps on what it emits.

    Sequential by nature (whether a candidate is kept depends on the last *kept* one),
    so it is one plain loop over Python values, one step per candidate, never per bar.
    """
    columns = ordered.select(per_config(cfg, "thinning", lambda: _walk_columns(cfg)))
    keep: list[bool] = []
    emit = keep.append
    last_up: int | None = None
    last_down: int | None = None
    emitted = n_up = n_down = 0  # in this (day, event_type), after cooldowns
    for start, up, t, cooldown, cap, per_direction in zip(
        *(c.to_list() for c in columns), strict=True
    ):
        if start:
            last_up = last_down = None
            emitted = n_up = n_down = 0
        last = last_up if up else last_down
        if last is None or t - last >= cooldown:
            if up:
                last_up = t
                n_up += 1
                within = n_up <= per_direction
            else:
                last_down = t
                n_down += 1
                within = n_down <= per_direction
            if within:
                emitted += 1
            emit(within and emitted <= cap)
        else:
            emit(False)
    return pl.Series(keep, dtype=pl.Boolean)


_NO_CAP = 2**62  # more than any day can hold


def _walk_columns(cfg: DetectorConfig) -> list[pl.Expr]:
    """What the walk reads per candidate: group start, direction, time, cooldown, caps."""
    cooldown_ms = {t: cooldown_minutes(cfg, t) * _MS_PER_MINUTE for t in _CONFIG_KEY}
    caps = {t: daily_cap(cfg, t) for t in _CONFIG_KEY}
    direction_caps = {t: direction_cap(cfg, t) for t in _CONFIG_KEY}
    event_type = pl.col("event_type")

    def cap_column(values: dict[str, int | None], name: str) -> pl.Expr:
        no_cap = {t: _NO_CAP if cap is None else cap for t, cap in values.items()}
        return event_type.replace_strict(no_cap, return_dtype=pl.Int64).alias(name)

    return [
        ((pl.col("date") != pl.col("date").shift(1)) | (event_type != event_type.shift(1)))
        .fill_null(True)
        .alias("starts"),
        (pl.col("direction") == "up").alias("up"),
        pl.col("timestamp").dt.epoch("ms").alias("times"),
        event_type.replace_strict(cooldown_ms, return_dtype=pl.Float64).alias("cooldowns"),
        cap_column(caps, "caps"),
        cap_column(direction_caps, "direction_caps"),
    ]
