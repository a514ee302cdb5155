"""The benchmark's arithmetic and report: derived numbers and the issue's targets.

The arithmetic is pure functions of plain numbers. :func:`build_report` turns the
measurements of :mod:`tools.bench.run` into one :class:`Report`, which :mod:`tools.bench.text`
renders as text and as JSON, so the two never disagree.

Fixed and marginal: the launches and the bare loop run over all ``N`` symbols and over
the first ``N // 2`` (demo symbols are all of a similar size). Through the two sizes,
wall time = fixed seconds + marginal seconds per symbol × symbols. The fixed part
(interpreter starts, imports, planning, exits) is paid once per run and vanishes in a
run of hours; the marginal part is what holds at the universe's size, so the speedup,
overhead and projection targets use it. A slope <= 0 (noise larger than the half run's
work), or one that makes N workers more than N times faster than one, gives ``null``
marginal values rather than nonsense.

The ``--json`` keys are listed in :mod:`tools.bench.text`, next to the code writing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tools.bench.processes import LaunchRun
from tools.bench.run import BenchResult, LayoutTiming

UNIVERSE_SYMBOLS = 1996
UNIVERSE_DAYS = 750
MB = 1e6
# Issue 8's targets.
TARGET_RATIO = 2.0  # detect <= 2.0 x read, daily layout
TARGET_SPEEDUP = 1.8  # two workers >= 1.8 x one worker
TARGET_OVERHEAD_PCT = 5.0
TARGET_RSS_MB = 300.0
TARGET_PROJECTION_MIN = 10.0


# -- pure arithmetic ---------------------------------------------------------------------
def per_100_days(seconds: float, symbols: int, days: int) -> float:
    """Seconds per symbol-100-days."""
    return seconds / (symbols * days / 100)


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


# -- derived results ---------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutRow:
    files: int
    read_ms_per_100d: float
    detect_ms_per_100d: float
    ratio: float
    read_median_ms_per_100d: float
    detect_median_ms_per_100d: float
    median_ratio: float


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


@dataclass(frozen=True)
class LongRun:
    days: int
    bars: int
    generated: bool
    generate_s: float
    detect_wall_s: float
    peak_worker_rss_mb: float


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


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float
    unit: str
    at_most: bool  # the value must be <= limit (else >=)
    met: bool | None  # None: no value
    at_bench_size: float | None = None  # whole runs at this size; None: the value itself


@dataclass(frozen=True)
class Report:
    result: BenchResult
    bars_per_symbol_day: float
    half_symbols: int
    layouts: dict[str, LayoutRow]
    scaling: tuple[Scaling, ...]
    overhead: Overhead
    peak_worker_rss_mb: float | None
    long_run: LongRun
    projection: Projection
    targets: tuple[Target, ...]


def _mb(size: int | None) -> float | None:
    return None if size is None else size / MB


def layout_row(timing: LayoutTiming, symbols: int, days: int) -> LayoutRow:
    def ms(seconds: float) -> float:
        return per_100_days(seconds, symbols, days) * 1000

    read, detect = ms(timing.read_s), ms(timing.detect_s)
    read_med, detect_med = ms(timing.read_median_s), ms(timing.detect_median_s)
    return LayoutRow(
        timing.files, read, detect, ratio(detect, read), read_med, detect_med,
        ratio(detect_med, read_med),
    )  # fmt: skip


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
) -> Target:
    if value is None or math.isnan(value):
        return Target(name, None, limit, unit, at_most, None, at_bench_size)
    met = value <= limit if at_most else value >= limit
    return Target(name, value, limit, unit, at_most, met, at_bench_size)


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
) -> tuple[Target, ...]:
    """Issue 8's targets on the values that hold at scale, the whole runs' alongside."""
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


def build_report(result: BenchResult) -> Report:
    data, days, n = result.data, result.spec.days, len(result.data.symbols)
    half = result.spec.half_symbols
    layouts = {t.layout: layout_row(t, n, days) for t in result.layouts}
    fits = _launch_fits(result)
    scaling = _scaling_rows(result, fits)
    by_workers = {s.workers: s for s in scaling}
    widest = by_workers[max(by_workers)]
    peak = max((s.peak_worker_rss_mb or 0.0 for s in scaling), default=0.0) or None
    overhead = _overhead(result, fits[1])
    long_run = _long_run(result)
    per_day = bars_per_symbol_day(data.bars, n, days)
    two = by_workers[2]
    projection = _projection(result, per_day, by_workers[1], two, widest)
    targets = evaluate_targets(
        detect_read_ratio=layouts["daily"].ratio,
        two_worker_speedup=two.marginal_speedup,
        whole_run_speedup=two.speedup,
        overhead=overhead.marginal_overhead_pct,
        whole_run_overhead=overhead.overhead_pct,
        peak_worker_rss_mb=long_run.peak_worker_rss_mb,
        bench_days_rss_mb=peak,
        projection_s=projection.seconds,
        whole_run_projection_s=projection.whole_run_seconds,
        long_days=result.spec.long_days,
    )
    return Report(
        result, per_day, half, layouts, scaling, overhead, peak, long_run, projection, targets
    )


def _half_launches(result: BenchResult) -> dict[int, LaunchRun]:
    """The launches over the first half of the symbols, by worker count."""
    return {r.workers: r for r in result.half_launches}


def _launch_fits(result: BenchResult) -> dict[int, Fit]:
    """Per worker count, the line through the half and the whole launch."""
    n, half, halves = len(result.data.symbols), result.spec.half_symbols, _half_launches(result)
    return {
        r.workers: fit_two_sizes(half, halves[r.workers].wall_s, n, r.wall_s)
        for r in result.launches
    }


def _one_worker_launch(result: BenchResult) -> LaunchRun:
    return next(run for run in result.launches if run.workers == 1)


def _scaling_rows(result: BenchResult, fits: dict[int, Fit]) -> tuple[Scaling, ...]:
    """One row per worker count, against the 1-worker launch."""
    n, halves, one = len(result.data.symbols), _half_launches(result), _one_worker_launch(result)
    return tuple(
        scaling_row(
            r.workers,
            r.wall_s,
            one.wall_s,
            n,
            result.data.bars,
            r.peak_worker_rss,
            r.launcher_rss,
            half_wall_s=halves[r.workers].wall_s,
            fit=fits[r.workers],
            one_worker_marginal_s=fits[1].marginal_s,
        )
        for r in result.launches
    )


def _overhead(result: BenchResult, one_fit: Fit) -> Overhead:
    """The 1-worker launch against the bare loop, whole and marginal."""
    n, half = len(result.data.symbols), result.spec.half_symbols
    one, half_one = _one_worker_launch(result), _half_launches(result)[1]
    bare, half_bare = result.bare, result.half_bare
    bare_fit = fit_two_sizes(half, half_bare.wall_s, n, bare.wall_s)
    return Overhead(
        one.wall_s, bare.wall_s, bare.import_s, bare.loop_s,
        overhead_pct(one.wall_s, bare.wall_s), bare.peak_rss / MB, half_one.wall_s,
        half_bare.wall_s, one_fit.marginal_s, bare_fit.marginal_s,
        marginal_overhead_pct(one_fit.marginal_s, bare_fit.marginal_s), one_fit.fixed_s,
        bare_fit.fixed_s,
    )  # fmt: skip


def _long_run(result: BenchResult) -> LongRun:
    long_data = result.long_data
    return LongRun(
        result.spec.long_days, long_data.bars, long_data.generated, long_data.seconds,
        result.long_detect.wall_s, result.long_detect.peak_rss / MB,
    )  # fmt: skip


def _projection(
    result: BenchResult, per_day: float, one: Scaling, two: Scaling, widest: Scaling
) -> Projection:
    """The universe's projection on the marginal rates, or on the whole runs' rates when
    a marginal one is n/a."""
    rates = marginal_rates(one, two, widest)
    one_rate, two_rate, fixed, eff = rates or (
        one.mbars_per_s,
        two.mbars_per_s,
        0.0,
        widest.efficiency,
    )
    return project(
        per_day,
        two_worker_mbars_per_s=two_rate,
        one_worker_mbars_per_s=one_rate,
        fixed_s=fixed,
        whole_run_two_worker_mbars_per_s=two.mbars_per_s,
        cpu_workers=result.machine.cpus_available,
        measured_efficiency=eff,
        measured_workers=widest.workers,
        marginal=rates is not None,
    )
