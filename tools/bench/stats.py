"""The benchmark's pure arithmetic: functions of plain numbers, and the spread of repeats.

Every figure the report prints is measured ``repeat`` times (or derived once per repeat
from that repeat's measurements: a ratio per pass, a slope per pair of runs) and shown as
its :class:`Spread`, min / median / max; the targets are judged on the median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

T = TypeVar("T")


def per_100_days(seconds: float, symbols: int, days: int) -> float:
    """Seconds per symbol-100-days."""
    return per_100_symbol_days(seconds, symbols * days)


def per_100_symbol_days(seconds: float, symbol_days: int) -> float:
    """Seconds per symbol-100-days, given the symbol-days counted (summed over symbols)."""
    return seconds / (symbol_days / 100) if symbol_days > 0 else math.inf


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.inf


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def speedup(one_worker_s: float, n_workers_s: float) -> float:
    return ratio(one_worker_s, n_workers_s)


def efficiency(speed_up: float, workers: int) -> float:
    return speed_up / workers


def overhead_pct(orchestrated_s: float, bare_s: float) -> float:
    """How much longer the orchestrated run took than the bare loop, in %."""
    return (orchestrated_s - bare_s) / bare_s * 100 if bare_s > 0 else math.inf


def bars_per_symbol_day(bars: int, symbols: int, days: int) -> float:
    return bars / (symbols * days)


def scaled_rate(one_worker_rate: float, workers: int, eff: float) -> float:
    """Throughput of ``workers`` workers at parallel efficiency ``eff``."""
    return one_worker_rate * workers * eff


def projected_seconds(bars: float, bars_per_s: float) -> float:
    return bars / bars_per_s if bars_per_s > 0 else math.inf


@dataclass(frozen=True)
class Fit:
    """Wall time = ``fixed_s`` + ``marginal_s`` x symbols, through two measured sizes."""

    marginal_s: float | None  # seconds per symbol; None: no positive slope (noise)
    fixed_s: float | None  # None with marginal_s


NO_FIT = Fit(None, None)


def fit_two_sizes(small: int, small_s: float, large: int, large_s: float) -> Fit:
    """The line through (small, small_s) and (large, large_s), symbols against seconds.

    More symbols cannot take less time; a slope <= 0 says the noise was larger than the
    smaller run's work, and no per-symbol cost can be read from it.
    """
    if large <= small:
        raise ValueError(f"the sizes must grow (got {small} then {large})")
    slope = (large_s - small_s) / (large - small)
    if not (math.isfinite(slope) and slope > 0):
        return NO_FIT
    return Fit(slope, large_s - slope * large)


def marginal_ratio(numerator: float | None, denominator: float | None) -> float | None:
    """A ratio of two slopes (a marginal speedup); None when either is n/a."""
    return None if numerator is None or denominator is None else ratio(numerator, denominator)


def marginal_overhead_pct(launch_s: float | None, bare_s: float | None) -> float | None:
    """The orchestrator's cost per symbol: launch slope / bare slope - 1, in %."""
    return None if launch_s is None or bare_s is None else overhead_pct(launch_s, bare_s)


# -- the spread of repeats ---------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Min / median / max of one figure over the repeats; ``missing`` of them were n/a
    (a slope lost in the noise, an infinite ratio), and all three are None when all were."""

    min: float | None
    median: float | None
    max: float | None
    missing: int = 0


def spread(values: Iterable[float | None]) -> Spread:
    every = list(values)
    known = [v for v in every if v is not None and math.isfinite(v)]
    if not known:
        return Spread(None, None, None, len(every))
    return Spread(min(known), statistics.median(known), max(known), len(every) - len(known))


def median_of(values: Sequence[float]) -> int:
    """The index of the (lower) median of ``values``: the repeat that stands for all."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def combine(rows: Sequence[T], pick: int = 0) -> tuple[T, dict[str, Spread]]:
    """One frozen dataclass for the repeats' ``rows``: every float field (or float-or-None)
    becomes its median over the rows, with its :class:`Spread`; the other fields (counts,
    words) are those of ``rows[pick]``."""
    if not rows:
        raise ValueError("no repeats to combine")
    first: Any = rows[pick]
    spreads: dict[str, Spread] = {}
    for f in fields(first):
        values = [getattr(row, f.name) for row in rows]
        floats = [v for v in values if isinstance(v, float)]
        if floats and all(v is None or isinstance(v, float) for v in values):
            spreads[f.name] = spread(values)
    medians = {name: s.median for name, s in spreads.items()}
    combined: T = replace(first, **medians)
    return combined, spreads


def scaled(s: Spread, factor: float) -> Spread:
    """``s`` in another unit (seconds to minutes: ``factor`` 1/60)."""
    low, mid, high = (None if v is None else v * factor for v in (s.min, s.median, s.max))
    return Spread(low, mid, high, s.missing)
