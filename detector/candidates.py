"""Candidate rows from a symbol's per-bar features (EVENTS.md §3 and §4).

Every candidate passes the global filters and the volume test of its detector
(``vol_mult`` above a threshold; volume_spike: range, volume and dollar volume), so
these cheap tests, on all bars at once, *screen* the bars first. The rules, their
metrics and the sparse window features (:mod:`detector.sparse`) are then evaluated
on the screened bars only, and each bar is taken once per rule that fired.
"""

from __future__ import annotations

import polars as pl

from detector.config import DetectorConfig
from detector.detectors import detector_rules, global_filter
from detector.features import PRIOR_EXTREME_WINDOW, in_session, ratio, session_label
from detector.sparse import WindowFeature, add_window_features

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
    """A condition every candidate meets: the global filters, and its detector's volume test."""
    volume_tests: list[float] = []
    if cfg.vwap_break.enable:
        vb = cfg.vwap_break
        volume_tests += [vb.bullish.min_volume_confirm, vb.bearish.min_volume_confirm]
    if cfg.price_momentum.enable:
        volume_tests.append(cfg.price_momentum.min_volume_multiplier)
    if cfg.consolidation_break.enable:
        volume_tests.append(cfg.consolidation_break.min_volume_spike)
    if cfg.opening_range_break.enable:
        volume_tests.append(cfg.opening_range_break.min_volume_confirm)
    if cfg.flush_detection.enable:
        volume_tests.append(cfg.flush_detection.min_volume_spike)
    tests = []
    if volume_tests:
        tests.append((pl.col("vol_mult") >= min(volume_tests)).fill_null(False))
    if cfg.volume_spike.enable:
        tests.append(_spike_screen(cfg))
    if not tests:
        return pl.lit(False)
    return global_filter(cfg) & pl.any_horizontal(tests)


def window_features(cfg: DetectorConfig) -> list[WindowFeature]:
    """The sparse features of the enabled rules, each where the other conditions of its
    detector hold (on screened bars): elsewhere the detector cannot fire."""
    features: list[WindowFeature] = []
    vs = cfg.volume_spike
    if vs.enable and vs.rolling_method == "median":
        volume = pl.col("volume").cast(pl.Float64)
        last = vs.rolling_window_minutes - 1
        features.append(WindowFeature("vol_ref", volume, 0, last, 1, "median", _spike_screen(cfg)))
    pm = cfg.price_momentum
    if pm.enable:
        ret = (ratio(pl.col("close"), pl.col("close_back")) - 1) * 100
        moving = pl.col("vol_mult") >= pm.min_volume_multiplier
        n = PRIOR_EXTREME_WINDOW
        if pm.bullish.require_breakout:
            up = moving & (ret >= pm.bullish.min_change_pct)
            features.append(WindowFeature("prior_high_20", pl.col("high"), 1, n, 1, "max", up))
        if pm.bearish.require_breakdown:
            down = moving & (ret <= -pm.bearish.min_change_pct)
            features.append(WindowFeature("prior_low_20", pl.col("low"), 1, n, 1, "min", down))
    return features


def candidates(features: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """One row per (bar, event_type, direction) that fires and passes the global filters.

    ``features`` is :func:`detector.features.bar_features`' output. Returns the bar
    columns the events need with ``event_type``, ``direction``, ``spike_x`` and
    ``session``; rows whose metric is not finite are dropped.
    """
    rules, metrics = detector_rules(cfg)
    screened = features.filter(screen(cfg)) if rules else features.clear()
    if screened.is_empty():
        return screened.select(_BAR_COLUMNS).with_columns(
            pl.lit(None, dtype).alias(name) for name, dtype in _CANDIDATE_COLUMNS.items()
        )
    screened = add_window_features(features, screened, window_features(cfg))
    # (screened row, rule) for every rule that fired, rule by rule in time order.
    fired = screened.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("at"),
        *(r.condition.alias(str(i)) for i, r in enumerate(rules)),
    ).unpivot(index="at", variable_name="rule", value_name="fired")
    fired = fired.filter(pl.col("fired"))
    rule = fired["rule"].cast(pl.Int64)
    found = (
        screened.select(*_BAR_COLUMNS, **{f"metric_{t}": m for t, m in metrics.items()})
        .gather(fired["at"])
        .with_columns(
            pl.Series("event_type", [r.event_type for r in rules]).gather(rule),
            pl.Series("direction", [r.direction for r in rules]).gather(rule),
        )
    )
    spike_x = pl.lit(None, pl.Float64)
    for name in metrics:
        is_type = pl.col("event_type") == name
        spike_x = pl.when(is_type).then(pl.col(f"metric_{name}")).otherwise(spike_x)
    return (
        found.with_columns(spike_x=spike_x.cast(pl.Float64), session=session_label(cfg))
        .drop(f"metric_{t}" for t in metrics)
        .filter(pl.col("spike_x").is_finite())
    )
