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
    """``reduce`` of ``values`` over the bars ``first``..``last`` bars back (0 = this bar)
    of the same day, null when fewer than ``min_samples`` exist; only where ``screen``."""

    name: str
    values: pl.Expr
    first: int
    last: int
    min_samples: int
    reduce: Reduce
    screen: pl.Expr

    def per_day_rolling(self) -> pl.Expr:
        """The same feature on every bar, as a per-day rolling window."""
        size = self.last - self.first + 1
        shifted = self.values.shift(self.first) if self.first else self.values
        rolling = {
            "median": shifted.rolling_median,
            "max": shifted.rolling_max,
            "min": shifted.rolling_min,
        }[self.reduce]
        return per_day(rolling(size, min_samples=self.min_samples))


def add_window_features(
    frame: pl.DataFrame, screened: pl.DataFrame, features: list[WindowFeature]
) -> pl.DataFrame:
    """``screened`` (rows of ``frame``, with their ``row`` and ``pos``) with each feature as
    a column, null off the feature's screen."""
    for feature in features:
        on = screened.select(pl.arg_where(feature.screen.fill_null(False))).to_series()
        rows = screened["row"].gather(on)
        size = feature.last - feature.first + 1
        if rows.len() * size > frame.height:
            dense = frame.select(feature.per_day_rolling().alias(feature.name)).to_series()
            values = dense.gather(rows)
        else:
            values = _window_at(frame, rows, feature)
        column = pl.Series(feature.name, [], dtype=pl.Float64)
        column = column.extend_constant(None, screened.height).scatter(on, values)
        screened = screened.with_columns(column)
    return screened


def _window_at(frame: pl.DataFrame, rows: pl.Series, feature: WindowFeature) -> pl.Series:
    """The feature at each of ``rows`` (row numbers of ``frame``)."""
    size = feature.last - feature.first + 1
    n = rows.len()
    # Row i * size + j of the window frame is bar j + first bars back from rows[i]; it
    # counts only if that bar lies in the same day (at most pos bars back).
    cell = pl.int_range(0, n * size, dtype=pl.Int64, eager=True)
    at = cell // size
    back = cell % size + feature.first
    source = rows.cast(pl.Int64).gather(at) - back
    same_day = back <= frame[POS].gather(rows).gather(at)
    values = frame.select(feature.values.cast(pl.Float64)).to_series()
    gathered = values.gather(source.clip(lower_bound=0))
    window = pl.select(pl.when(same_day).then(gathered)).to_series().reshape((n, size))
    result = getattr(window.arr, feature.reduce)()
    count = same_day.cast(pl.UInt32).reshape((n, size)).arr.sum()
    kept = pl.select(pl.when(count >= feature.min_samples).then(result)).to_series()
    return kept.alias(feature.name)
