"""The benchmark's figures: one row per measurement, derived from plain numbers, and the
issues' targets. Each is computed once per repeat; :mod:`tools.bench.report` combines the
repeats (median, with the spread in each row's ``spread``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from tools.bench.run import LayoutTiming
from tools.bench.stats import (
    NO_FIT,
    Fit,
    Spread,
    efficiency,
    marginal_ratio,
    per_100_symbol_days,
    projected_seconds,
    rate,
    ratio,
    scaled_rate,
    speedup,
    spread,
)

UNIVERSE_SYMBOLS = 1996
UNIVERSE_DAYS = 750
MB = 1e6
# Issue 8's targets, and the later one for one file per symbol.
TARGET_RATIO = 2.0  # detect <= 2.0 x read, daily layout
TARGET_RATIO_SYMBOL = 3.0  # detect <= 3.0 x read, one file per symbol
TARGET_SPEEDUP = 1.8  # two workers >= 1.8 x one worker
TARGET_OVERHEAD_PCT = 5.0
TARGET_RSS_MB = 300.0
TARGET_PROJECTION_MIN = 3.0  # 1,996 symbols x 750 days on 2 cores
TARGET_FIXED_S = 0.5  # what a launch adds once, over a bare loop's own start


Spreads = dict[str, Spread]  # field name -> its spread over the repeats


# -- derived results ---------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutRow:
    """ms per symbol-100-days. ``read_ms_per_100d``, ``detect_ms_per_100d``, ``ratio``:
    per symbol the best pass, summed; ``*_median_*``: per symbol the median, summed;
    ``spread``: over the passes (each pass summed over the symbols, its ratio its own)."""

    files: int
    read_ms_per_100d: float
    detect_ms_per_100d: float
    ratio: float
    read_median_ms_per_100d: float
    detect_median_ms_per_100d: float
    median_ratio: float
    spread: Spreads = field(default_factory=dict)


@dataclass(frozen=True)
class Scaling:
    workers: int
    wall_s: float
    symbols_per_s: float
    mbars_per_s: float
    speedup: float
    efficiency: float
    peak_worker_rss_mb: float | None
    launcher_rss_mb: float | None
    half_wall_s: float | None
    marginal_s_per_symbol: float | None
    marginal_mbars_per_s: float | None
    fixed_s: float | None
    marginal_speedup: float | None
    marginal_efficiency: float | None
    spread: Spreads = field(default_factory=dict)


@dataclass(frozen=True)
class Overhead:
    launch_wall_s: float
    bare_wall_s: float
    bare_import_s: float
    bare_loop_s: float
    overhead_pct: float
    bare_rss_mb: float
    launch_half_wall_s: float
    bare_half_wall_s: float
    launch_marginal_s_per_symbol: float | None
    bare_marginal_s_per_symbol: float | None
    marginal_overhead_pct: float | None
    launch_fixed_s: float | None
    bare_fixed_s: float | None
    spread: Spreads = field(default_factory=dict)


@dataclass(frozen=True)
class LongRun:
    days: int
    bars: int
    generated: bool
    generate_s: float
    detect_wall_s: float
    peak_worker_rss_mb: float
    spread: Spreads = field(default_factory=dict)


@dataclass(frozen=True)
class Projection:
    symbols: int
    days: int
    bars: float
    workers: int
    basis: str  # "marginal", or "whole run" when a slope was n/a
    fixed_s: float
    seconds: float
    whole_run_seconds: float
    cpu_workers: int
    efficiency: float  # assumed for cpu_workers: the one measured with the most workers
    cpu_seconds: float
    assumption: str
    spread: Spreads = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None  # the median over the repeats
    limit: float
    unit: str
    at_most: bool  # the value must be <= limit (else >=)
    met: bool | None  # None: no value
    at_bench_size: float | None = None  # whole runs at this size; None: the value itself
    spread: Spread | None = None  # of the value, over the repeats


def _mb(size: int | None) -> float | None:
    return None if size is None else size / MB


def layout_row(timing: LayoutTiming, symbols: int, days: int) -> LayoutRow:
    return layout_row_days(timing, symbols * days)


def layout_row_days(timing: LayoutTiming, symbol_days: int) -> LayoutRow:
    """The row of ``timing``, whose symbols hold ``symbol_days`` symbol-days in all."""

    def ms(seconds: float) -> float:
        return per_100_symbol_days(seconds, symbol_days) * 1000

    read, detect = ms(timing.read_s), ms(timing.detect_s)
    read_med, detect_med = ms(timing.read_median_s), ms(timing.detect_median_s)
    passes = list(zip(timing.read_passes, timing.detect_passes, strict=True))
    spreads = {
        "read_ms_per_100d": spread(ms(r) for r, _ in passes),
        "detect_ms_per_100d": spread(ms(d) for _, d in passes),
        "ratio": spread(ratio(d, r) for r, d in passes),
    } if passes else {}  # fmt: skip
    return LayoutRow(
        timing.files, read, detect, ratio(detect, read), read_med, detect_med,
        ratio(detect_med, read_med), spreads,
    )  # fmt: skip


def ratio_value(row: LayoutRow) -> tuple[float, Spread | None]:
    """What a detect / read target judges: the median of the passes' ratios (else, with
    no passes recorded, the ratio of the per-symbol medians)."""
    passes = row.spread.get("ratio")
    if passes is None or passes.median is None:
        return row.median_ratio, passes
    return passes.median, passes


def ratio_target(layout: str, row: LayoutRow) -> Target:
    """The detect / read target of a layout: ``daily`` (and ``both``: a symbol's daily files
    make its read a daily one) <= 2.0 x, ``symbol`` (one file per symbol) <= 3.0 x."""
    limit = TARGET_RATIO_SYMBOL if layout == "symbol" else TARGET_RATIO
    name = {"daily": "daily layout", "symbol": "one file per symbol"}.get(layout, layout)
    value, passes = ratio_value(row)
    return replace(target(f"detect / read, {name}", value, limit, "x", True), spread=passes)


def scaling_row(
    workers: int,
    wall_s: float,
    one_worker_wall_s: float,
    symbols: int,
    bars: int,
    peak_worker_rss: int | None = None,
    launcher_rss: int | None = None,
    *,
    half_wall_s: float | None = None,
    fit: Fit = NO_FIT,
    one_worker_marginal_s: float | None = None,
) -> Scaling:
    up, slope = speedup(one_worker_wall_s, wall_s), fit.marginal_s
    m_up = marginal_ratio(one_worker_marginal_s, slope)
    if m_up is not None and m_up > workers:
        # Faster than perfect scaling: the slope is noise (the half and the whole run
        # differ by less than the machine's jitter), not a measurement.
        fit, slope, m_up = NO_FIT, None, None
    return Scaling(
        workers, wall_s, rate(symbols, wall_s), rate(bars, wall_s) / 1e6, up,
        efficiency(up, workers), _mb(peak_worker_rss), _mb(launcher_rss), half_wall_s, slope,
        None if slope is None else rate(bars / symbols, slope) / 1e6, fit.fixed_s, m_up,
        None if m_up is None else efficiency(m_up, workers),
    )  # fmt: skip


def project(
    bars_per_day: float,
    *,
    two_worker_mbars_per_s: float,
    one_worker_mbars_per_s: float,
    fixed_s: float,
    whole_run_two_worker_mbars_per_s: float,
    cpu_workers: int,
    measured_efficiency: float,
    measured_workers: int,
    marginal: bool,
) -> Projection:
    """The universe's wall time with 2 workers, and with ``cpu_workers`` workers.

    ``fixed_s`` once plus the universe's bars at the given rates: the marginal ones (the
    slopes), or, when ``marginal`` is false, the whole runs' (then ``fixed_s`` is 0: the
    fixed costs are in the rate, as if paid per bar).
    """
    bars = UNIVERSE_SYMBOLS * UNIVERSE_DAYS * bars_per_day
    cpu_rate = scaled_rate(one_worker_mbars_per_s, cpu_workers, measured_efficiency)
    demo = f"{bars_per_day:.0f} bars per symbol-day as in these demo bars"
    cpus = f"{cpu_workers} workers at the {'marginal ' if marginal else ''}efficiency measured"
    cpus += f" with {measured_workers} ({measured_efficiency:.2f})"
    if marginal:
        assumption = (
            f"{fixed_s:.1f} s fixed, as measured with 2 workers (start-up, planning, exits: "
            "assumed not to grow with the universe), plus the universe's bars at the marginal "
            f"2-worker rate (the slope between the half and the whole run); {demo}; {cpus}"
        )
    else:
        assumption = (
            "no positive slope between the half and the whole run (noise), so the whole "
            "runs' rates, their fixed costs counted as if per bar (pessimistic for a small "
            f"run); {demo}; {cpus}"
        )
    return Projection(
        UNIVERSE_SYMBOLS, UNIVERSE_DAYS, bars, 2, "marginal" if marginal else "whole run",
        fixed_s, fixed_s + projected_seconds(bars, two_worker_mbars_per_s * 1e6),
        projected_seconds(bars, whole_run_two_worker_mbars_per_s * 1e6), cpu_workers,
        measured_efficiency, fixed_s + projected_seconds(bars, cpu_rate * 1e6), assumption,
    )  # fmt: skip


def target(
    name: str,
    value: float | None,
    limit: float,
    unit: str,
    at_most: bool,
    at_bench_size: float | None = None,
    spread: Spread | None = None,
) -> Target:
    if value is None or math.isnan(value):
        return Target(name, None, limit, unit, at_most, None, at_bench_size, spread)
    met = value <= limit if at_most else value >= limit
    return Target(name, value, limit, unit, at_most, met, at_bench_size, spread)


def evaluate_targets(
    *,
    detect_read_ratio: float,
    two_worker_speedup: float | None,
    whole_run_speedup: float,
    overhead: float | None,
    whole_run_overhead: float,
    peak_worker_rss_mb: float | None,
    bench_days_rss_mb: float | None,
    projection_s: float,
    whole_run_projection_s: float,
    long_days: int,
    launch_fixed_s: float | None = None,
) -> tuple[Target, ...]:
    """The targets on the values that hold at scale, the whole runs' alongside.

    ``launch_fixed_s``: the fixed seconds a launch adds over a bare loop's (interpreter
    start and imports are in both): planning, workers' start, the merge, the report,
    exits."""
    return (
        target("detect / read, daily layout", detect_read_ratio, TARGET_RATIO, "x", True),
        target("2 workers / 1 worker, marginal", two_worker_speedup, TARGET_SPEEDUP, "x", False,
               whole_run_speedup),
        target("orchestrator overhead, marginal", overhead, TARGET_OVERHEAD_PCT, "%", True,
               whole_run_overhead),
        target(f"peak worker RSS, {long_days} days", peak_worker_rss_mb, TARGET_RSS_MB, "MB",
               True, bench_days_rss_mb),
        target("projection, 2 workers", projection_s / 60, TARGET_PROJECTION_MIN, "min", True,
               whole_run_projection_s / 60),
        target("fixed cost of a launch, over a bare loop", launch_fixed_s, TARGET_FIXED_S, "s",
               True),
    )  # fmt: skip


def marginal_rates(
    one: Scaling, two: Scaling, widest: Scaling
) -> tuple[float, float, float, float] | None:
    """The projection's marginal inputs: the 1- and 2-worker rates (M bars/s), the fixed
    seconds of 2 workers and the efficiency of the most workers; None when any is n/a, so
    that the projection never mixes marginal and whole-run rates."""
    m1, m2, eff = one.marginal_mbars_per_s, two.marginal_mbars_per_s, widest.marginal_efficiency
    if m1 is None or m2 is None or eff is None:
        return None
    # A negative intercept is noise (no run takes less than nothing): count no fixed part.
    return m1, m2, max(two.fixed_s or 0.0, 0.0), eff
