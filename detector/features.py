"""Per-day features of EVENTS.md §2 over clean bars, for a symbol's whole history at once.

Clean bars are sorted by time, so each ET trading day is one contiguous run of rows
and ``pos`` (a bar's index within its day) says how far back its day goes. A
per-day window that stays inside the day is then the plain whole-series window,
and the first bars of each day are masked (``min_samples`` windows, shifts) or
computed from day-start values. This gives exactly what ``.over("date")`` gave,
at a fraction of the cost of one group evaluation per day and expression:

- max / min and integer sums do not depend on the order of evaluation;
- volume is an integer (Int64), so its sums, means and medians in Float64 are exact
  whatever the algorithm (below 2**53 shares);
- the only per-day float running sum (VWAP's price x volume) keeps ``.over``, as
  does the running day high, on slice groups of the sorted date.

Ratios go through :func:`ratio`, which yields null (never NaN or inf) when the
denominator is not positive: in polars NaN compares greater than every number, and
the old script's 0/0 = NaN passed its tests.
"""

from __future__ import annotations

import polars as pl

from detector.config import DetectorConfig
from detector.config_load import minutes_of

DAY = "date"
VOLUME_AVG_WINDOW = 20  # vol_avg20
PRIOR_EXTREME_WINDOW = 20  # prior_high_20 / prior_low_20
ATR_DAYS = 14
POS = "pos"  # a bar's index within its trading day


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, null unless the denominator is positive and finite."""
    ok = (denominator > 0) & denominator.is_finite()
    return pl.when(ok).then(numerator / denominator).otherwise(None)


def per_day(expr: pl.Expr) -> pl.Expr:
    return expr.over(DAY)


def from_pos(n: int, expr: pl.Expr) -> pl.Expr:
    """``expr`` where the bar has at least ``n`` earlier bars that day, else null."""
    return pl.when(pl.col(POS) >= n).then(expr).otherwise(None)


def session_bounds(cfg: DetectorConfig) -> tuple[int, int, int, int]:
    """ET minutes of the PM start, RTH start, AH start and AH end."""
    sb = cfg.session_bounds
    return (
        minutes_of(sb.premarket[0]),
        minutes_of(sb.rth[0]),
        minutes_of(sb.afterhours[0]),
        minutes_of(sb.afterhours[1]),
    )


def in_session(cfg: DetectorConfig, name: str | None = None) -> pl.Expr:
    """Bars of session ``name`` (PM / RTH / AH), or of any session when None."""
    pm_start, rth_start, ah_start, ah_end = session_bounds(cfg)
    lo, hi = {
        None: (pm_start, ah_end),
        "PM": (pm_start, rth_start),
        "RTH": (rth_start, ah_start),
        "AH": (ah_start, ah_end),
    }[name]
    return pl.col("minute").is_between(lo, hi, "left")


def session_label(cfg: DetectorConfig) -> pl.Expr:
    """The ``session`` column (null outside the sessions); built for event rows only."""
    pm_start, rth_start, ah_start, ah_end = session_bounds(cfg)
    minute = pl.col("minute")
    return (
        pl.when(minute < pm_start)
        .then(None)
        .when(minute < rth_start)
        .then(pl.lit("PM"))
        .when(minute < ah_start)
        .then(pl.lit("RTH"))
        .when(minute < ah_end)
        .then(pl.lit("AH"))
        .otherwise(None)
    )


def daily_context(bars: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """One row per trading day, in order: size, dollar volume, ATR% of the prior days,
    opening range. ``bars`` has ``date`` flagged sorted, so the days are slices."""
    _, rth_start, _, _ = session_bounds(cfg)
    orb_end = rth_start + cfg.opening_range_break.or_duration_minutes
    in_or = pl.col("minute").is_between(rth_start, orb_end, "left")
    return (
        bars.group_by(DAY, maintain_order=True)
        .agg(
            day_bars=pl.len(),
            day_dollar_volume=(pl.col("volume").cast(pl.Float64) * pl.col("close")).sum(),
            day_high=pl.col("high").max(),
            day_low=pl.col("low").min(),
            day_close=pl.col("close").last(),
            or_high=pl.col("high").filter(in_or).max(),
            or_low=pl.col("low").filter(in_or).min(),
        )
        .with_columns(prev_close=pl.col("day_close").shift(1))
        .with_columns(
            true_range=pl.max_horizontal("day_high", "prev_close")
            - pl.min_horizontal("day_low", "prev_close")
        )
        .with_columns(
            atr14=pl.col("true_range").shift(1).rolling_mean(ATR_DAYS, min_samples=1),
        )
        .with_columns(atr14_pct=ratio(pl.col("atr14"), pl.col("prev_close")) * 100)
        .select("day_bars", "day_dollar_volume", "atr14_pct", "or_high", "or_low")
    )


def bar_features(bars: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    """``bars`` (sorted clean bars) with ``pos``, the day context and the per-bar features
    the detectors read; the sparse ones (:mod:`detector.sparse`) are added later."""
    bars = bars.with_columns(pl.col(DAY).set_sorted())
    daily = daily_context(bars, cfg)
    new_day = (pl.col(DAY) != pl.col(DAY).shift(1)).fill_null(True)
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    bars = bars.with_columns(
        row=row,
        day_no=new_day.cum_sum().cast(pl.Int64) - 1,
        pos=row - pl.when(new_day).then(row).otherwise(None).forward_fill(),
    )
    day_no = bars.get_column("day_no")
    bars = bars.with_columns(daily.get_column(c).gather(day_no) for c in daily.columns)
    return _per_bar(bars, cfg)


def volume_mean(window: int) -> pl.Expr:
    """Per-day rolling mean of volume over ``window`` bars (min_samples 1), from the
    integer running sum: exactly the Float64 rolling mean, whose sums are exact too."""
    back = pl.when(pl.col(POS) >= window).then(pl.col("volume_cum").shift(window))
    back = back.otherwise(pl.col("volume_before_day"))
    count = pl.min_horizontal(pl.col(POS) + 1, pl.lit(window, pl.Int64))
    return (pl.col("volume_cum") - back).cast(pl.Float64) / count.cast(pl.Float64)


def _per_bar(bars: pl.DataFrame, cfg: DetectorConfig) -> pl.DataFrame:
    _, rth_start, _, _ = session_bounds(cfg)
    vs = cfg.volume_spike
    volume = pl.col("volume").cast(pl.Float64)
    high, low, close, open_ = pl.col("high"), pl.col("low"), pl.col("close"), pl.col("open")
    in_vwap = pl.col("minute") >= rth_start
    first_of_day = pl.col(POS) == 0
    rth_volume = pl.when(in_vwap).then(pl.col("volume")).otherwise(0)
    bars = bars.with_columns(
        volume_cum=pl.col("volume").cum_sum(),
        rth_volume_cum=rth_volume.cum_sum(),
    ).with_columns(
        # The running sums just before each day's first bar, carried through the day.
        volume_before_day=pl.when(first_of_day)
        .then(pl.col("volume_cum") - pl.col("volume"))
        .forward_fill(),
        rth_volume_before_day=pl.when(first_of_day)
        .then(pl.col("rth_volume_cum") - rth_volume)
        .forward_fill(),
    )
    typical = (high + low + close) / 3
    cum_pv = per_day(pl.when(in_vwap).then(typical * volume).otherwise(0.0).cum_sum())
    cum_v = (pl.col("rth_volume_cum") - pl.col("rth_volume_before_day")).cast(pl.Float64)
    base_n = cfg.consolidation_break.consolidation_window_minutes
    red_n = cfg.flush_detection.min_consecutive_red_bars
    back_n = cfg.price_momentum.window_minutes
    columns = {
        "range_pct": ratio(high - low, open_) * 100,
        "dollar_volume": volume * close,
        "vol_avg20": volume_mean(VOLUME_AVG_WINDOW),
        "vwap": pl.when(in_vwap).then(ratio(cum_pv, cum_v)).otherwise(None),
        "close_back": from_pos(back_n, close.shift(back_n)),
        "base_high": from_pos(base_n, high.shift(1).rolling_max(base_n, min_samples=base_n)),
        "base_low": from_pos(base_n, low.shift(1).rolling_min(base_n, min_samples=base_n)),
        "day_high_so_far": per_day(high.cum_max()),
        "red_run": from_pos(
            red_n - 1,
            (close < open_).cast(pl.Int32).rolling_sum(red_n, min_samples=red_n),
        ),
    }
    if vs.rolling_method == "mean":
        columns["vol_ref"] = volume_mean(vs.rolling_window_minutes)
    bars = bars.with_columns(**columns)
    return bars.with_columns(
        vol_mult=ratio(volume, pl.col("vol_avg20")),
        prev_close=from_pos(1, close.shift(1)),
        prev_vwap=from_pos(1, pl.col("vwap").shift(1)),
    )
