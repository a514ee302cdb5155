"""Per-day window features computed only on the bars that can still use them.

The rolling median of volume (volume_spike), the prior 20-bar high / low
(price_momentum) and the consolidation base (30 bars) are the dearest features, and
each is read by one detector whose other conditions already rule out nearly every
bar. They are computed on the bars where a cheap necessary condition of one of those
detectors holds (the *screen*) and are null elsewhere, which changes no comparison:
on the other bars those detectors' conditions are false anyway.

On the screened bars the windows' values are gathered (each bar's day start bounds
how far back it reaches) and reduced per bar; max, min and the median of integer
volumes are exact whatever the order, so the values equal those of the per-day
rolling windows. When the screen keeps so many bars that the windows would outweigh
the whole columns, the per-day rolling windows are evaluated instead.

Each polars expression node costs tens of microseconds to plan, about as much as to
run on these few cells, so the code keeps the number of nodes and calls small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from detector.features import DAY, POS, per_day

Reduce = Literal["median", "max", "min"]


@dataclass(frozen=True)
class WindowFeature:
    """``reduce`` of ``column`` (as Float64) over the bars ``first``..``last`` bars back
    (0 = this bar) of the same day, null when fewer than ``min_samples`` exist
    (``min_samples`` at most the window's size).

    With ``latest`` set, the column's nulls mark bars that are not part of the series
    (auction bars for the volume baseline): the window is then the ``latest`` most
    recent non-null values of the day from ``first`` bars back, and ``last`` must reach
    far enough back to hold them (``latest`` plus the most nulls a day can hold)."""

    name: str
    column: str
    first: int
    last: int
    min_samples: int
    reduce: Reduce
    latest: int | None = None

    def per_day_rolling(self) -> pl.Expr:
        """The same feature on every bar, as a per-day rolling window (no ``latest``)."""
        values = pl.col(self.column).cast(pl.Float64)
        shifted = values.shift(self.first) if self.first else values
        rolling = {
            "median": shifted.rolling_median,
            "max": shifted.rolling_max,
            "min": shifted.rolling_min,
        }[self.reduce]
        return per_day(rolling(self.last - self.first + 1, min_samples=self.min_samples))

    def on_every_bar(self, bars: pl.DataFrame) -> pl.Series:
        """The feature on every bar of ``bars``, by per-day rolling windows."""
        if self.latest is None:
            return bars.select(self.per_day_rolling().alias(self.name)).to_series()
        # Roll over the day's non-null values only, then put them back in place.
        present = bars.select(pl.col(DAY), pl.col("row"), pl.col(self.column)).drop_nulls()
        window = WindowFeature(
            self.name,
            self.column,
            self.first,
            self.first + self.latest - 1,
            self.min_samples,
            self.reduce,
        )
        values = present.select(window.per_day_rolling()).to_series()
        full = pl.Series(self.name, [], dtype=pl.Float64).extend_constant(None, bars.height)
        return full.scatter(present.get_column("row"), values)


@dataclass(frozen=True)
class Windows:
    """Window features and the expressions that reduce their gathered cells (built once
    per config: they do not depend on the bars)."""

    features: list[WindowFeature]
    span: int  # cells per window: 0..the longest ``last`` bars back
    reductions: list[pl.Expr]

    @classmethod
    def of(cls, features: list[WindowFeature]) -> Windows:
        span = max((f.last for f in features), default=0) + 1
        return cls(features, span, [_reduced(f, span) for f in features])


def add_window_features(
    bars: pl.DataFrame, screened: pl.DataFrame, windows: Windows, needed: pl.Expr
) -> pl.DataFrame:
    """``screened`` (some rows of ``bars``, with their ``row`` and ``pos``) with each feature
    as a column: exact where ``needed`` holds, null elsewhere."""
    features, span = windows.features, windows.span
    if not features:
        return screened
    at = screened.select(pl.arg_where(needed.fill_null(False))).to_series()
    n = at.len()
    if n * span > bars.height:
        # So many bars that the windows would outweigh the per-day rolling windows.
        rows = screened.get_column("row")
        return screened.with_columns(f.on_every_bar(bars).gather(rows) for f in features)
    if n == 0:
        return screened.with_columns(pl.lit(None, pl.Float64).alias(f.name) for f in features)
    # Cell i * span + j is bar j bars back from the i-th needed bar; it counts only if
    # that bar is in the same day (at most pos bars back).
    cell = pl.int_range(0, n * span, dtype=pl.Int64)
    back = cell % span
    which = cell // span
    source = (pl.lit(screened.get_column("row").gather(at)).gather(which) - back).clip(0)
    cells = pl.select(
        *(
            pl.lit(bars.get_column(c)).gather(source).cast(pl.Float64)
            for c in {f.column for f in features}
        ),
        back=back,
        pos=pl.lit(screened.get_column(POS).gather(at)).gather(which),
    )
    values = cells.select(windows.reductions)
    # Back to one row per screened bar: the i-th needed bar takes row i of ``values``.
    slot = pl.Series("slot", [], dtype=pl.UInt32).extend_constant(None, screened.height)
    slot = slot.scatter(at, pl.int_range(0, n, dtype=pl.UInt32, eager=True))
    return pl.concat([screened, values.select(pl.all().gather(pl.lit(slot)))], how="horizontal")


def _reduced(feature: WindowFeature, span: int) -> pl.Expr:
    """The feature per window, from the cells of all windows (``span`` cells each)."""
    back = pl.col("back")
    in_window = back <= pl.col(POS)  # in the bar's day
    if feature.first > 0 or feature.last < span - 1:
        in_window = in_window & back.is_between(feature.first, feature.last)
    window = pl.when(in_window).then(pl.col(feature.column)).reshape((-1, span))
    if feature.reduce == "median":
        # (A median over an array or list holding nulls takes a slow path, 20x slower.)
        values = window.arr.to_list().list.drop_nulls()
        if feature.latest is not None:
            values = values.list.head(feature.latest)  # cells run from this bar back
        reduced = values.list.median()
    else:
        assert feature.latest is None, "only the median skips null cells"
        reduced = getattr(window.arr, feature.reduce)()
    # A window holds min(last, pos) - first + 1 bars of the day.
    enough = feature.first + feature.min_samples - 1
    if enough > 0:
        reduced = pl.when(pl.col(POS).gather_every(span) >= enough).then(reduced)
    return reduced.alias(feature.name)
