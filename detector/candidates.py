"""Candidate rows from a symbol's per-bar features (EVENTS.md §3 and §4).

Every candidate passes the global filters and the volume test of its detector
(``vol_mult`` above a threshold; volume_spike: range, volume and dollar volume), so
these cheap tests, on all bars at once, *screen* the bars first. The rules, their
metrics and the sparse window features (:mod:`detector.sparse`) are then evaluated
on the screened bars only, and each bar is taken once per rule that fired.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detector.config import DetectorConfig
from detector.detectors import Detection, bar_filter, day_filter, detector_rules
from detector.expr_cache import per_config
from detector.features import (
    BASE_VOLUME,
    PRIOR_EXTREME_WINDOW,
    SymbolFeatures,
    at_bars,
    auction_minutes,
    in_session,
    ratio,
    session_label,
)
from detector.sparse import WindowFeature, Windows, add_window_features

# What the event rows carry from their bar (EVENTS.md §6), and what candidates add.
_BAR_COLUMNS = (
    "timestamp",
    "ts_et",
    "date",
    "minute",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "dollar_volume",
    "range_pct",
)
_CANDIDATE_COLUMNS = {
    "event_type": pl.String,
    "direction": pl.String,
    "spike_x": pl.Float64,
    "session": pl.String,
}


def _spike_thresholds(cfg: DetectorConfig) -> tuple[pl.Expr, pl.Expr]:
    """volume_spike's session-dependent absolute and dollar volume thresholds."""
    vs = cfg.volume_spike
    is_rth = in_session(cfg, "RTH")

    def threshold(name: str) -> pl.Expr:
        return pl.when(is_rth).then(getattr(vs.rth, name)).otherwise(getattr(vs.pm_ah, name))

    return threshold("min_absolute_volume"), threshold("min_dollar_volume")


def _spike_screen(cfg: DetectorConfig) -> pl.Expr:
    """volume_spike's conditions other than the spike itself."""
    vs = cfg.volume_spike
    min_volume, min_dollars = _spike_thresholds(cfg)
    return (
        (pl.col("range_pct") >= vs.min_range_1m_pct)
        & (pl.col("volume") >= min_volume)
        & (pl.col("dollar_volume") >= min_dollars)
    ).fill_null(False)


def screen(cfg: DetectorConfig) -> pl.Expr:
    """A condition every candidate meets, from few features of every bar: the global
    filters of the bar (those of its day are added by the caller), and its detector's
    volume test (``vol_mult`` at least some threshold; for
    volume_spike, range, volume and dollar volume at least the lower of its session
    thresholds). Cheap on purpose: all else is evaluated on the screened bars only."""
    vol_tests: list[float] = []
    if cfg.vwap_break.enable:
        vb = cfg.vwap_break
        vol_tests += [vb.bullish.min_volume_confirm, vb.bearish.min_volume_confirm]
    if cfg.price_momentum.enable:
        vol_tests.append(cfg.price_momentum.min_volume_multiplier)
    if cfg.consolidation_break.enable:
        vol_tests.append(cfg.consolidation_break.min_volume_spike)
    if cfg.opening_range_break.enable:
        vol_tests.append(cfg.opening_range_break.min_volume_confirm)
    if cfg.flush_detection.enable:
        vol_tests.append(cfg.flush_detection.min_volume_spike)
    tests = []
    if vol_tests:
        tests.append(pl.col("vol_mult") >= min(vol_tests))
    vs = cfg.volume_spike
    if vs.enable:
        tests.append(
            (pl.col("range_pct") >= vs.min_range_1m_pct)
            & (pl.col("volume") >= min(vs.rth.min_absolute_volume, vs.pm_ah.min_absolute_volume))
            & (pl.col("dollar_volume") >= min(vs.rth.min_dollar_volume, vs.pm_ah.min_dollar_volume))
        )
    if not tests:
        return pl.lit(False)
    return bar_filter(cfg) & pl.any_horizontal(tests).fill_null(False)


def _breaking_out(cfg: DetectorConfig) -> pl.Expr:
    """consolidation_break's volume test, and a close beyond the previous bar's high or
    low by the breakout margin: the base includes that bar, and multiplying floats by a
    positive factor keeps their order, so a base breakout is also this one."""
    cb = cfg.consolidation_break
    close = pl.col("close")
    up = close >= pl.col("prev_high") * (1 + cb.min_breakout_pct / 100)
    down = close <= pl.col("prev_low") * (1 - cb.min_breakout_pct / 100)
    return (pl.col("vol_mult") >= cb.min_volume_spike) & (up | down)


def window_features(cfg: DetectorConfig) -> tuple[list[WindowFeature], pl.Expr]:
    """The sparse features of the enabled rules, and where (on screened bars) one of them
    may be read: where the other conditions of its detector hold."""
    features: list[WindowFeature] = []
    needed: list[pl.Expr] = []
    vs = cfg.volume_spike
    if vs.enable and vs.rolling_method == "median":
        window = vs.rolling_window_minutes
        auctions = len(auction_minutes(cfg))
        if auctions:
            # The last `window` non-auction bars: at most `auctions` more bars back.
            last = window - 1 + auctions
            features.append(WindowFeature("vol_ref", BASE_VOLUME, 0, last, 1, "median", window))
        else:
            features.append(WindowFeature("vol_ref", "volume", 0, window - 1, 1, "median"))
        needed.append(_spike_screen(cfg))
    pm = cfg.price_momentum
    if pm.enable and (pm.bullish.require_breakout or pm.bearish.require_breakdown):
        n = PRIOR_EXTREME_WINDOW
        if pm.bullish.require_breakout:
            features.append(WindowFeature("prior_high_20", "high", 1, n, 1, "max"))
        if pm.bearish.require_breakdown:
            features.append(WindowFeature("prior_low_20", "low", 1, n, 1, "min"))
        ret = (ratio(pl.col("close"), pl.col("close_back")) - 1) * 100
        moving = (ret >= pm.bullish.min_change_pct) | (ret <= -pm.bearish.min_change_pct)
        needed.append((pl.col("vol_mult") >= pm.min_volume_multiplier) & moving)
    cb = cfg.consolidation_break
    if cb.enable:
        n = cb.consolidation_window_minutes
        features.append(WindowFeature("base_high", "high", 1, n, n, "max"))
        features.append(WindowFeature("base_low", "low", 1, n, n, "min"))
        needed.append(_breaking_out(cfg))
    return features, pl.any_horizontal(needed) if needed else pl.lit(False)


@dataclass(frozen=True)
class _Expressions:
    """Everything :func:`candidates` evaluates that depends on the config only."""

    detection: Detection
    windows: Windows
    needed: pl.Expr
    screen: pl.Expr
    day_filter: pl.Expr
    flags: list[pl.Expr]
    hits: list[pl.Expr]
    labels: list[pl.Expr]


def _build(cfg: DetectorConfig) -> _Expressions:
    detection = detector_rules(cfg)
    rules, metrics = detection.rules, detection.metrics
    windows, needed = window_features(cfg)
    fired = [f"fired_{i}" for i in range(len(rules))]
    metric = [metrics[r.event_type].cast(pl.Float64) for r in rules]
    # Per rule, the screened bars where it fired, its number and its metric there; all
    # rules one after the other, each column as one list.
    hits = (
        [
            pl.concat_list(pl.arg_where(pl.col(f)).implode() for f in fired).alias("at"),
            pl.concat_list(
                pl.repeat(i, pl.col(f).sum(), dtype=pl.Int64).implode() for i, f in enumerate(fired)
            ).alias("rule"),
            pl.concat_list(
                m.filter(pl.col(f)).implode() for m, f in zip(metric, fired, strict=True)
            ).alias("spike_x"),
        ]
        if rules
        else []
    )
    rule = pl.col("rule")
    labels = [
        pl.lit(pl.Series([r.event_type for r in rules])).gather(rule).alias("event_type"),
        pl.lit(pl.Series([r.direction for r in rules])).gather(rule).alias("direction"),
        pl.col("spike_x"),
        session_label(cfg).alias("session"),
    ]
    return _Expressions(
        detection,
        Windows.of(windows),
        needed,
        screen(cfg),
        day_filter(cfg),
        [r.condition.alias(f) for r, f in zip(rules, fired, strict=True)],
        hits,
        labels,
    )


def candidates(features: SymbolFeatures, cfg: DetectorConfig) -> pl.DataFrame:
    """One row per (bar, event_type, direction) that fires and passes the global filters.

    Returns the bar columns the events need with ``event_type``, ``direction``,
    ``spike_x`` and ``session``; rows whose metric is not finite are dropped.
    """
    exprs = per_config(cfg, "candidates", lambda: _build(cfg))
    detection = exprs.detection
    rules = detection.rules
    bars = features.bars
    rows = pl.Series(dtype=pl.Int64)
    if rules:
        day_ok = features.days.select(exprs.day_filter).to_series()
        on_good_day = pl.lit(day_ok).gather(pl.col("day_no"))
        rows = bars.select(pl.arg_where(exprs.screen & on_good_day)).to_series()
    if rows.is_empty():
        return (
            bars.select(_BAR_COLUMNS)
            .clear()
            .with_columns(
                pl.lit(None, dtype).alias(name) for name, dtype in _CANDIDATE_COLUMNS.items()
            )
        )
    screened = at_bars(features, rows, cfg)
    screened = add_window_features(bars, screened, exprs.windows, exprs.needed)
    for stage in detection.stages:
        screened = screened.with_columns(**stage)
    hits = screened.with_columns(exprs.flags).select(exprs.hits)
    # (Indexing a list column gives the inner Series, possibly empty.)
    found = pl.concat(
        [
            screened.select(_BAR_COLUMNS).gather(hits.get_column("at")[0]),
            pl.DataFrame([hits.get_column(c)[0].alias(c) for c in ("rule", "spike_x")]),
        ],
        how="horizontal",
    )
    return found.select(*_BAR_COLUMNS, *exprs.labels).filter(pl.col("spike_x").is_finite())
