"""Per-day features of EVENTS.md §2 over clean bars, for a symbol's whole history at once.

Clean bars are sorted by time, so each ET trading day is one contiguous run of rows
and ``pos`` (a bar's index within its day) says how far back its day goes. A
per-day window that stays inside the day is then a plain look back over the rows,
masked on the first bars of each day, which gives exactly what ``.over("date")``
gave at a fraction of its cost (one group evaluation per day and expression):

- max / min and integer sums do not depend on the order of evaluation;
- volume is an integer (Int64), so its sums and means in Float64 are exact
  whatever the algorithm (below 2**53 shares);
- the per-day float running sum (VWAP's price x volume) and the running day high
  keep ``.over`` on the sorted date (slice groups).

Only what the screen of :mod:`detector.candidates` reads is computed for every bar
(:func:`symbol_features`); the rest is looked up for the screened bars only
(:func:`at_bars`). Ratios go through :func:`ratio`, which yields null (never NaN or
inf) when the denominator is not positive: in polars NaN compares greater than every
number, and the old script's 0/0 = NaN passed its tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detector.config import DetectorConfig
from detector.config_load import minutes_of
from detector.expr_cache import per_config

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


def auction_minutes(cfg: DetectorConfig) -> list[int]:
    """ET minutes of the auction bars (EVENTS.md §1), empty when the rule is off."""
    return [minutes_of(t) for t in cfg.session_bounds.auction_minutes]


def prior_days_read(cfg: DetectorConfig) -> int:
    """How many trading days before a day that day's features and events depend on.

    ATR% averages the true ranges of the ``ATR_DAYS`` prior days, the first of which
    reads the close of the day before it, and the quiet-base test waits for
    ``min_atr_days`` prior days. Every other feature, the day filters and thinning
    (cooldowns and caps are per day) restart each day, so a day's events computed from
    it and this many earlier days equal those computed from the whole history.
    """
    return max(ATR_DAYS + 1, cfg.consolidation_break.min_atr_days)


def is_auction(cfg: DetectorConfig) -> pl.Expr:
    """Bars that carry an opening or closing cross: they never fire."""
    minutes = auction_minutes(cfg)
    if not minutes:
        return pl.lit(False)
    return pl.col("minute").is_in(minutes)


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
    opening range, and where the day starts: its first row and the running volumes just
    before it and before its RTH open. ``bars`` has ``date`` flagged sorted, so the days
    are slices, and, with auction minutes, the auction and base volume columns that
    :func:`symbol_features` marks."""
    aggregates, context = per_config(cfg, "daily_context", lambda: _daily_exprs(cfg))
    return bars.group_by(DAY, maintain_order=True).agg(aggregates).select(context)


def _daily_exprs(cfg: DetectorConfig) -> tuple[list[pl.Expr], list[pl.Expr]]:
    _, rth_start, _, _ = session_bounds(cfg)
    orb_end = rth_start + cfg.opening_range_break.or_duration_minutes
    in_or = pl.col("minute").is_between(rth_start, orb_end, "left")
    aggregates = [
        pl.len().alias("day_bars"),
        (pl.col("volume").cast(pl.Float64) * pl.col("close")).sum().alias("day_dollar_volume"),
        pl.col("high").max().alias("day_high"),
        pl.col("low").min().alias("day_low"),
        pl.col("close").last().alias("day_close"),
        pl.col("high").filter(in_or).max().alias("or_high"),
        pl.col("low").filter(in_or).min().alias("or_low"),
        pl.col("volume").sum().alias("day_volume"),
        pl.col("volume").filter(pl.col("minute") < rth_start).sum().alias("pm_volume"),
    ]
    if auction_minutes(cfg):
        # Plain sums of columns marked before grouping (see symbol_features): a filter
        # inside the aggregation would be evaluated group by group.
        aggregates += [
            pl.col(BASE_VOLUME).sum().alias("base_day_volume"),
            (pl.len() - pl.col(AUCTION).sum()).cast(pl.Int64).alias("base_day_bars"),
        ]
    prev_close = pl.col("day_close").shift(1)
    true_range = pl.max_horizontal("day_high", prev_close) - pl.min_horizontal(
        "day_low", prev_close
    )
    atr14 = true_range.shift(1).rolling_mean(ATR_DAYS, min_samples=1)
    # A mean of one or two days makes the quiet-base test meaningless: null until enough
    # prior trading days exist (the row number of a day is the count before it).
    enough_days = pl.int_range(pl.len()) >= cfg.consolidation_break.min_atr_days
    atr14 = pl.when(enough_days).then(atr14)
    before_day = pl.col("day_volume").cum_sum() - pl.col("day_volume")
    context = [
        pl.col("day_bars", "day_dollar_volume", "or_high", "or_low"),
        (ratio(atr14, prev_close) * 100).alias("atr14_pct"),
        (pl.col("day_bars").cum_sum() - pl.col("day_bars")).cast(pl.Int64).alias("day_start"),
        before_day.alias("volume_before_day"),
        # VWAP's volume runs from the first bar at or after the RTH open.
        (before_day + pl.col("pm_volume")).alias("volume_before_rth"),
    ]
    if auction_minutes(cfg):
        context += [
            (pl.col(c).cum_sum() - pl.col(c)).alias(f"{c}_before")
            for c in ("base_day_volume", "base_day_bars")
        ]
    return aggregates, context


@dataclass(frozen=True)
class SymbolFeatures:
    """``bars``: every clean bar with ``row``, ``day_no``, ``pos`` and the dense features;
    ``days``: the daily context, one row per trading day (row number ``day_no``)."""

    bars: pl.DataFrame
    days: pl.DataFrame


def symbol_features(bars: pl.DataFrame, cfg: DetectorConfig) -> SymbolFeatures:
    """The features of every bar of ``bars`` (sorted clean bars): those the screen of
    :mod:`detector.candidates` reads, and the running values :func:`at_bars` needs."""
    running, means, vol_mult = per_config(cfg, "symbol_features", lambda: _bar_exprs(cfg))
    auctions = bool(auction_minutes(cfg))
    day_columns = ["volume_before_day", *(_BASE_BEFORE_DAY if auctions else [])]
    marks = [is_auction(cfg).alias(AUCTION), base_volume(cfg)] if auctions else []
    bars = bars.with_columns(pl.col(DAY).set_sorted(), *marks)
    days = daily_context(bars, cfg)
    # Running scans (cumulative sums, forward fills, windows) cost ten times an
    # element-wise operation: day-level values are looked up from the day table instead.
    day_no = bars.select(pl.col(DAY).rle_id().cast(pl.Int64)).to_series().alias("day_no")
    bars = bars.with_columns(
        day_no,
        days.get_column("day_start").gather(day_no).alias("day_start"),
        *(days.get_column(c).gather(day_no) for c in day_columns),
        *running,
    ).with_columns(pos=pl.col("row") - pl.col("day_start"))
    bars = bars.with_columns(means).with_columns(vol_mult)
    helpers = ["day_start", *day_columns, "vol_avg20"]
    if auctions:
        helpers += [AUCTION, *_BASE_RUNNING]
    return SymbolFeatures(bars.drop(helpers), days)


# Auction bars stay out of the volume baselines (EVENTS.md §1): the running volume and
# bar count of the other bars, and their values before each day.
_BASE_RUNNING = ["base_volume_cum", "base_count"]
_BASE_BEFORE_DAY = ["base_day_volume_before", "base_day_bars_before"]
BASE_VOLUME = "base_volume"  # volume, null on auction bars: the median's window column
AUCTION = "auction"


def base_volume(cfg: DetectorConfig) -> pl.Expr:
    """The volume that counts in the baselines: null on auction bars."""
    return pl.when(~is_auction(cfg)).then(pl.col("volume")).alias(BASE_VOLUME)


def _bar_exprs(cfg: DetectorConfig) -> tuple[list[pl.Expr], list[pl.Expr], pl.Expr]:
    """The per-bar columns in three steps, each reading the ones before."""
    _, rth_start, _, _ = session_bounds(cfg)
    volume = pl.col("volume").cast(pl.Float64)
    high, low, close = pl.col("high"), pl.col("low"), pl.col("close")
    in_vwap = pl.col("minute") >= rth_start
    running = [
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
        pl.col("volume").cum_sum().alias("volume_cum"),
        (ratio(high - low, pl.col("open")) * 100).alias("range_pct"),
        (volume * close).alias("dollar_volume"),
        # Three times Σ typical x volume: (h + l + c) is not divided by 3 here, so that
        # the test of a lone flat bar's VWAP side is exact (see _looked_back_exprs).
        per_day(
            pl.when(in_vwap).then((high + low + close) * volume).otherwise(0.0).cum_sum()
        ).alias("cum_pv3"),
        per_day(high.cum_max()).alias("day_high_so_far"),
    ]
    auctions = len(auction_minutes(cfg))
    if auctions:
        running += [
            pl.col(BASE_VOLUME).fill_null(0).cum_sum().alias("base_volume_cum"),
            (~pl.col(AUCTION)).cum_sum().cast(pl.Int64).alias("base_count"),
        ]
    vs = cfg.volume_spike
    means = [volume_mean(VOLUME_AVG_WINDOW, auctions).alias("vol_avg20")]
    if vs.rolling_method == "mean":
        means.append(volume_mean(vs.rolling_window_minutes, auctions).alias("vol_ref"))
    return running, means, ratio(volume, pl.col("vol_avg20")).alias("vol_mult")


def volume_mean(window: int, auctions: int = 0) -> pl.Expr:
    """Per-day rolling mean of volume over ``window`` bars (min_samples 1), from the
    integer running sum: exactly the Float64 rolling mean, whose sums are exact too.

    With ``auctions`` auction minutes a day, the window is the last ``window`` bars of
    the day that are not auction bars (see :func:`_base_volume_mean`)."""
    if auctions:
        return _base_volume_mean(window)
    # The running sum ``window`` bars back, or just before the day where that is earlier
    # (volumes are never negative, so the later of the two is the larger).
    back = _larger(pl.col("volume_cum").shift(window), pl.col("volume_before_day"))
    count = _smaller(pl.col(POS) + 1, window)
    return (pl.col("volume_cum") - back).cast(pl.Float64) / count.cast(pl.Float64)


# (max_horizontal / min_horizontal cost several times a when/then on these columns.)
def _larger(maybe_null: pl.Expr, other: pl.Expr) -> pl.Expr:
    """The larger of the two; ``other`` where the first is null."""
    return pl.when(maybe_null > other).then(maybe_null).otherwise(other)


def _smaller(expr: pl.Expr, limit: int) -> pl.Expr:
    return pl.when(expr < limit).then(expr).otherwise(pl.lit(limit, pl.Int64))


def _base_volume_mean(window: int) -> pl.Expr:
    """Mean volume of the last ``window`` non-auction bars of the day up to this bar.

    With ``k`` such bars so far (``base_count``), the window holds the bars after the
    ``(k - window)``-th, whose running base volume is read from the running volume of
    the non-auction bars in their order (``window`` + 1 zeros first, so that the index
    ``k`` is never negative). Where the day has fewer than ``window`` such bars so far,
    the window starts with the day. Null on a day's auction bars before its first other
    bar.
    """
    count, cum = pl.col("base_count"), pl.col("base_volume_cum")
    in_day = count - pl.col("base_day_bars_before")
    at_base_bars = pl.repeat(0, window + 1, dtype=pl.Int64).append(cum.filter(~pl.col(AUCTION)))
    short_day = in_day < window
    back = (
        pl.when(short_day)
        .then(pl.col("base_day_volume_before"))
        .otherwise(at_base_bars.gather(count))
    )
    in_window = pl.when(short_day).then(in_day).otherwise(pl.lit(window, pl.Int64))
    mean = (cum - back).cast(pl.Float64) / in_window.cast(pl.Float64)
    return pl.when(in_day > 0).then(mean)


def at_bars(features: SymbolFeatures, rows: pl.Series, cfg: DetectorConfig) -> pl.DataFrame:
    """The bars at ``rows`` (row numbers, ascending) with every feature but the sparse ones:
    those of every bar, and VWAP, the previous bar's close, VWAP, high and low, the close
    N bars back, the red run, ATR% and the opening range, looked up for these bars only.
    """
    bars = features.bars
    back_n = cfg.price_momentum.window_minutes
    red_n = cfg.flush_detection.min_consecutive_red_bars
    rows = rows.cast(pl.Int64)
    # Each expression node costs about as much to plan as to run on a few thousand rows:
    # the bars' own columns come from one plain frame gather, the looked-back ones from
    # one select.
    at = bars[rows]
    back = {n: pl.lit(rows - n).clip(lower_bound=0) for n in {0, 1, back_n, *range(red_n)}}
    close, open_ = pl.col("close"), pl.col("open")
    red = [(close.gather(back[j]) < open_.gather(back[j])) for j in range(1, red_n)]
    looked_up = bars.select(
        *(pl.col(c).gather(back[1]).alias(f"{c}_1") for c in _PREVIOUS),
        close_n=close.gather(back[back_n]),
        red_before=pl.sum_horizontal(r.cast(pl.Int32) for r in red) if red else pl.lit(0),
    )
    days = features.days.select(*_DAY_COLUMNS, _BEFORE_RTH)[at.get_column("day_no")]
    derived = per_config(cfg, "at_bars", lambda: _looked_back_exprs(cfg))
    return (
        pl.concat([at, looked_up, days], how="horizontal")
        .with_columns(derived)
        .drop(*_RUNNING, *looked_up.columns, _BEFORE_RTH)
    )


def _looked_back_exprs(cfg: DetectorConfig) -> list[pl.Expr]:
    _, rth_start, _, _ = session_bounds(cfg)
    back_n = cfg.price_momentum.window_minutes
    red_n = cfg.flush_detection.min_consecutive_red_bars

    def vwap_volume(suffix: str) -> pl.Expr:
        """Σ volume since the RTH open; null before it (no VWAP there)."""
        cum_v = (pl.col(f"volume_cum{suffix}") - pl.col(_BEFORE_RTH)).cast(pl.Float64)
        return pl.when(pl.col(f"minute{suffix}") >= rth_start).then(cum_v)

    # "At or below its VWAP" is decided as close x 3 x Σv against Σ(h + l + c) x v, with
    # no division: for a bar whose high, low and close are one print (often the day's
    # first RTH bar) both sides are then the same float, the tie they are. Divided,
    # (h + l + c) / 3 is one unit in the last place off the close for a third of prices.
    prev_cum_v = vwap_volume("_1")
    prev_gap = pl.col("close_1") * 3 * prev_cum_v - pl.col("cum_pv3_1")

    red_run = (pl.col("close") < pl.col("open")).cast(pl.Int32) + pl.col("red_before").cast(
        pl.Int32
    )
    return [
        (ratio(pl.col("cum_pv3"), vwap_volume("")) / 3).alias("vwap"),
        # The previous close's side of its VWAP (the sign only); null where it has none.
        from_pos(1, pl.when(prev_cum_v > 0).then(prev_gap)).alias("prev_vwap_gap"),
        from_pos(1, pl.col("close_1")).alias("prev_close"),
        from_pos(1, pl.col("high_1")).alias("prev_high"),
        from_pos(1, pl.col("low_1")).alias("prev_low"),
        from_pos(back_n, pl.col("close_n")).alias("close_back"),
        # A run that would reach into the previous day is null, as a per-day window.
        from_pos(red_n - 1, red_run).alias("red_run"),
    ]


_DAY_COLUMNS = ("atr14_pct", "or_high", "or_low")
# Columns read one bar back from a screened bar.
_PREVIOUS = ("close", "high", "low", "minute", "cum_pv3", "volume_cum")
# Running values only VWAP is built from.
_RUNNING = ("volume_cum", "cum_pv3")
_BEFORE_RTH = "volume_before_rth"
