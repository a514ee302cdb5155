"""Per-day features of EVENTS.md §2 as polars expressions over clean bars.

Every window counts bars of the same trading day (``.over("date")``). Ratios go
through :func:`ratio`, which yields null (never NaN or inf) when the denominator
is not positive: in polars NaN compares greater than every number, and the old
script's 0/0 = NaN passed its tests.
"""

from __future__ import annotations

import polars as pl

from detector.config import DetectorConfig
from detector.config_load import minutes_of

DAY = "date"
VOLUME_AVG_WINDOW = 20  # vol_avg20
PRIOR_EXTREME_WINDOW = 20  # prior_high_20 / prior_low_20
ATR_DAYS = 14


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null unless the denominator is positive and finite."""
    ok = (denominator > 0) & denominator.is_finite()
    return pl.when(ok).then(numerator / denominator).otherwise(None)


def per_day(expr: pl.Expr) -> pl.Expr:
    return expr.over(DAY)


def add_daily_context(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Join day-level values: bar count, dollar volume, ATR% of the prior days."""
    daily = (
        lf.group_by(DAY)
        .agg(
            day_bars=pl.len(),
            day_dollar_volume=(pl.col("volume").cast(pl.Float64) * pl.col("close")).sum(),
            day_high=pl.col("high").max(),
            day_low=pl.col("low").min(),
            day_close=pl.col("close").last(),
        )
        .sort(DAY)
        .with_columns(prev_close=pl.col("day_close").shift(1))
        .with_columns(
            true_range=pl.max_horizontal("day_high", "prev_close")
            - pl.min_horizontal("day_low", "prev_close")
        )
        .with_columns(
            atr14=pl.col("true_range").shift(1).rolling_mean(ATR_DAYS, min_samples=1),
        )
        .with_columns(atr14_pct=ratio(pl.col("atr14"), pl.col("prev_close")) * 100)
        .select(DAY, "day_bars", "day_dollar_volume", "atr14_pct")
    )
    return lf.join(daily, on=DAY, how="left", maintain_order="left")


def add_bar_features(lf: pl.LazyFrame, cfg: DetectorConfig) -> pl.LazyFrame:
    """Add every per-bar feature the six detectors read."""
    sb = cfg.session_bounds
    pm_start, rth_start = minutes_of(sb.premarket[0]), minutes_of(sb.rth[0])
    ah_start, ah_end = minutes_of(sb.afterhours[0]), minutes_of(sb.afterhours[1])
    vs = cfg.volume_spike
    minute = pl.col("minute")
    volume = pl.col("volume").cast(pl.Float64)
    high, low, close, open_ = pl.col("high"), pl.col("low"), pl.col("close"), pl.col("open")

    vol_window = vs.rolling_window_minutes
    if vs.rolling_method == "median":
        vol_ref = volume.rolling_median(vol_window, min_samples=1)
    else:
        vol_ref = volume.rolling_mean(vol_window, min_samples=1)
    in_vwap = minute >= rth_start
    typical = (high + low + close) / 3
    cum_pv = pl.when(in_vwap).then(typical * volume).otherwise(0.0).cum_sum()
    cum_v = pl.when(in_vwap).then(volume).otherwise(0.0).cum_sum()
    base_n = cfg.consolidation_break.consolidation_window_minutes
    orb_end = rth_start + cfg.opening_range_break.or_duration_minutes
    in_or = (minute >= rth_start) & (minute < orb_end)

    lf = lf.with_columns(
        session=pl.when(minute < pm_start)
        .then(None)
        .when(minute < rth_start)
        .then(pl.lit("PM"))
        .when(minute < ah_start)
        .then(pl.lit("RTH"))
        .when(minute < ah_end)
        .then(pl.lit("AH"))
        .otherwise(None),
        range_pct=ratio(high - low, open_) * 100,
        dollar_volume=volume * close,
        vol_ref=per_day(vol_ref),
        vol_avg20=per_day(volume.rolling_mean(VOLUME_AVG_WINDOW, min_samples=1)),
        vwap=pl.when(in_vwap).then(ratio(per_day(cum_pv), per_day(cum_v))).otherwise(None),
        prior_high_20=per_day(high.shift(1).rolling_max(PRIOR_EXTREME_WINDOW, min_samples=1)),
        prior_low_20=per_day(low.shift(1).rolling_min(PRIOR_EXTREME_WINDOW, min_samples=1)),
        close_back=per_day(close.shift(cfg.price_momentum.window_minutes)),
        base_high=per_day(high.shift(1).rolling_max(base_n, min_samples=base_n)),
        base_low=per_day(low.shift(1).rolling_min(base_n, min_samples=base_n)),
        or_high=per_day(high.filter(in_or).max()),
        or_low=per_day(low.filter(in_or).min()),
        day_high_so_far=per_day(high.cum_max()),
        red_run=per_day(
            (close < open_)
            .cast(pl.Int32)
            .rolling_sum(
                cfg.flush_detection.min_consecutive_red_bars,
                min_samples=cfg.flush_detection.min_consecutive_red_bars,
            )
        ),
    )
    return lf.with_columns(
        vol_mult=ratio(volume, pl.col("vol_avg20")),
        prev_close=per_day(close.shift(1)),
        prev_vwap=per_day(pl.col("vwap").shift(1)),
    )
