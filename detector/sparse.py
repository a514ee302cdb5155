"""Per-day window features computed only on the bars that can still use them.

The rolling median of volume (volume_spike) and the prior 20-bar high / low
(price_momentum) are the dearest features, and each is read by one detector whose
other conditions already rule out nearly every bar. Such a feature is computed on
the bars where a cheap necessary condition of its detector holds (the *screen*)
and is null elsewhere, which changes no comparison: on the other bars the
detector's condition is false anyway.

On the screened bars the window's values are gathered (each bar's day start bounds
how far back it reaches) and reduced per bar; max, min and the median of integer
volumes are exact whatever the order, so the values equal those of the per-day
rolling window. When the screen keeps so many bars that gathering costs more than
the whole column, the per-day rolling window is evaluated instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from detector.features import POS, per_day

Reduce = Literal["median", "max", "min"]


@dataclass(frozen=True)
class WindowFeature:
    """``reduce`` of ``column`` (as Float64) over the bars ``first``..``last`` bars back
    (0 = this bar) of the same day, null when fewer than ``min_samples`` exist. Needed
    only where ``screen`` holds."""

    name: str
    column: str
    first: int
    last: int
    min_samples: int
    reduce: Reduce
    screen: pl.Expr

    def per_day_rolling(self) -> pl.Expr:
        """The same feature on every bar, as a per-day rolling window."""
        values = pl.col(self.column).cast(pl.Float64)
        shifted = values.shift(self.first) if self.first else values
        rolling = {
            "median": shifted.rolling_median,
            "max": shifted.rolling_max,
            "min": shifted.rolling_min,
        }[self.reduce]
        return per_day(rolling(self.last - self.first + 1, min_samples=self.min_samples))


def add_window_features(
    bars: pl.DataFrame, screened: pl.DataFrame, features: list[WindowFeature]
) -> pl.DataFrame:
    """``screened`` (some rows of ``bars``, with their ``row`` and ``pos``) with each feature
    as a column: exact where any feature's screen holds, null elsewhere.

    All features share one gathered window (0..the longest ``last`` bars back) per bar,
    so the work is a fixed, small number of polars calls: on a few hundred bars the
    fixed cost of each call is what counts.
    """
    if not features:
        return screened
    span = max(f.last for f in features) + 1
    needed = pl.any_horizontal(f.screen.fill_null(False) for f in features)
    at = screened.select(pl.arg_where(needed)).to_series()
    if at.len() * span > bars.height:
        # So many bars that the windows would outweigh the per-day rolling windows.
        rows = pl.lit(screened.get_column("row"))
        return screened.with_columns(
            bars.select(f.per_day_rolling().gather(rows).alias(f.name) for f in features)
        )
    n = at.len()
    if n == 0:
        return screened.with_columns(pl.lit(None, pl.Float64).alias(f.name) for f in features)
    # Cell i * span + j is bar j bars back from the i-th needed bar; it counts only if
    # that bar is in the same day (at most pos bars back). Few polars calls in all: each
    # eager call has a fixed cost, and there are few cells.
    cell = pl.int_range(0, n * span, dtype=pl.Int64)
    which = cell // span
    cells = pl.select(
        back=cell % span,
        pos=pl.lit(screened.get_column(POS).gather(at)).gather(which),
        source=pl.lit(screened.get_column("row").gather(at)).gather(which) - cell % span,
    )
    source = pl.col("source").clip(0)
    cells = cells.with_columns(
        pl.lit(bars.get_column(c)).gather(source) for c in {f.column for f in features}
    )
    values = cells.select(_reduced(f, n, span) for f in features)
    # Back to one row per screened bar: the i-th needed bar takes row i of ``values``.
    slot = pl.Series("slot", [], dtype=pl.UInt32).extend_constant(None, screened.height)
    slot = slot.scatter(at, pl.int_range(0, n, dtype=pl.UInt32, eager=True))
    return pl.concat([screened, values.select(pl.all().gather(pl.lit(slot)))], how="horizontal")


def _reduced(feature: WindowFeature, n: int, span: int) -> pl.Expr:
    """The feature per needed bar, from the cells of the ``n`` windows."""
    back = pl.col("back")
    counts = (back <= pl.col(POS)) & back.is_between(feature.first, feature.last)
    values = pl.col(feature.column).cast(pl.Float64)
    window = pl.when(counts).then(values).reshape((n, span))
    if feature.reduce == "median":
        # (A median over an array or list holding nulls takes a slow path, 20x slower.)
        reduced = window.arr.to_list().list.drop_nulls().list.median()
    else:
        reduced = getattr(window.arr, feature.reduce)()
    enough = counts.cast(pl.UInt32).reshape((n, span)).arr.sum() >= feature.min_samples
    return pl.when(enough).then(reduced).alias(feature.name)
