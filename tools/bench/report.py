"""The benchmark's report: derived numbers, their spread, and the issues' targets.

The arithmetic is :mod:`tools.bench.stats` (pure functions of plain numbers).
:func:`build_report` turns the measurements of :mod:`tools.bench.run` into one
:class:`Report`, which :mod:`tools.bench.text` renders as text and as JSON, so the two
never disagree.

Spread: every figure is derived once per repeat, from that repeat's runs only (the
i-th run of each launch, bare loop and detect worker; the i-th pass of step 1), and the
report holds its median with its :class:`~tools.bench.stats.Spread` (min / median /
max over the repeats). The targets are judged on the median.

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

from dataclasses import dataclass, replace
from typing import TypeVar

from tools.bench.figures import (
    MB,
    LayoutRow,
    LongRun,
    Overhead,
    Projection,
    Scaling,
    Spreads,
    Target,
    evaluate_targets,
    layout_row,
    marginal_rates,
    project,
    ratio_target,
    ratio_value,
    scaling_row,
)
from tools.bench.processes import LaunchRun
from tools.bench.run import BenchResult, TryRuns
from tools.bench.stats import (
    Fit,
    Spread,
    bars_per_symbol_day,
    combine,
    fit_two_sizes,
    marginal_overhead_pct,
    median_of,
    overhead_pct,
    scaled,
    spread,
)

R = TypeVar("R", Scaling, Overhead, LongRun, Projection)


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
    peak_worker_rss_spread: Spread  # the largest worker of each repeat


# -- one repeat, then all of them --------------------------------------------------------
@dataclass(frozen=True)
class TryReport:
    """The figures derived from one repeat's runs alone."""

    scaling: tuple[Scaling, ...]
    overhead: Overhead
    long_run: LongRun
    projection: Projection
    peak_worker_rss_mb: float | None


def try_report(result: BenchResult, runs: TryRuns) -> TryReport:
    n, days = len(result.data.symbols), result.spec.days
    fits = _launch_fits(result, runs)
    scaling = _scaling_rows(result, runs, fits)
    by_workers = {s.workers: s for s in scaling}
    widest = by_workers[max(by_workers)]
    peak = max((s.peak_worker_rss_mb or 0.0 for s in scaling), default=0.0) or None
    per_day = bars_per_symbol_day(result.data.bars, n, days)
    projection = _projection(result, per_day, by_workers[1], by_workers[2], widest)
    return TryReport(
        scaling, _overhead(result, runs, fits[1]), _long_run(result, runs), projection, peak
    )


def build_report(result: BenchResult) -> Report:
    data, days, n = result.data, result.spec.days, len(result.data.symbols)
    layouts = {t.layout: layout_row(t, n, days) for t in result.layouts}
    tries = [try_report(result, runs) for runs in result.tries]
    scaling = tuple(
        _with_spread(*combine([t.scaling[k] for t in tries])) for k in range(len(tries[0].scaling))
    )
    overhead = _with_spread(*combine([t.overhead for t in tries]))
    long_run = _with_spread(*combine([t.long_run for t in tries]))
    middle = median_of([t.projection.seconds for t in tries])
    projection = _with_spread(*combine([t.projection for t in tries], pick=middle))
    peak = spread(t.peak_worker_rss_mb for t in tries)
    targets = _targets(result, layouts, scaling, overhead, long_run, projection, peak)
    return Report(
        result, bars_per_symbol_day(data.bars, n, days), result.spec.half_symbols, layouts,
        scaling, overhead, peak.median, long_run, projection, targets, peak,
    )  # fmt: skip


def _with_spread(row: R, spreads: Spreads) -> R:
    return replace(row, spread=spreads)


def _targets(
    result: BenchResult,
    layouts: dict[str, LayoutRow],
    scaling: tuple[Scaling, ...],
    overhead: Overhead,
    long_run: LongRun,
    projection: Projection,
    peak: Spread,
) -> tuple[Target, ...]:
    """The targets on the medians, each with its spread; detect / read per layout."""
    two = next(s for s in scaling if s.workers == 2)
    _, *rest = evaluate_targets(
        detect_read_ratio=ratio_value(layouts["daily"])[0],
        two_worker_speedup=two.marginal_speedup,
        whole_run_speedup=two.speedup,
        overhead=overhead.marginal_overhead_pct,
        whole_run_overhead=overhead.overhead_pct,
        peak_worker_rss_mb=long_run.peak_worker_rss_mb,
        bench_days_rss_mb=peak.median,
        projection_s=projection.seconds,
        whole_run_projection_s=projection.whole_run_seconds,
        long_days=result.spec.long_days,
        launch_fixed_s=_fixed_over_bare(overhead),
    )
    seconds = projection.spread.get("seconds")
    spreads = [
        two.spread.get("marginal_speedup"),
        overhead.spread.get("marginal_overhead_pct"),
        long_run.spread.get("peak_worker_rss_mb"),
        None if seconds is None else scaled(seconds, 1 / 60),
        None,  # a difference of two medians: no spread of its own
    ]
    ratios = tuple(ratio_target(name, row) for name, row in layouts.items())
    return (*ratios, *(replace(t, spread=s) for t, s in zip(rest, spreads, strict=True)))


def _fixed_over_bare(overhead: Overhead) -> float | None:
    launch, bare = overhead.launch_fixed_s, overhead.bare_fixed_s
    return None if launch is None or bare is None else launch - bare


def _half_launches(runs: TryRuns) -> dict[int, LaunchRun]:
    """The launches over the first half of the symbols, by worker count."""
    return {r.workers: r for r in runs.half_launches}


def _launch_fits(result: BenchResult, runs: TryRuns) -> dict[int, Fit]:
    """Per worker count, the line through the half and the whole launch."""
    n, half, halves = len(result.data.symbols), result.spec.half_symbols, _half_launches(runs)
    return {
        r.workers: fit_two_sizes(half, halves[r.workers].wall_s, n, r.wall_s) for r in runs.launches
    }


def _one_worker_launch(runs: TryRuns) -> LaunchRun:
    return next(run for run in runs.launches if run.workers == 1)


def _scaling_rows(result: BenchResult, runs: TryRuns, fits: dict[int, Fit]) -> tuple[Scaling, ...]:
    """One row per worker count, against the 1-worker launch of the same repeat."""
    n, halves, one = len(result.data.symbols), _half_launches(runs), _one_worker_launch(runs)
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
        for r in runs.launches
    )


def _overhead(result: BenchResult, runs: TryRuns, one_fit: Fit) -> Overhead:
    """The 1-worker launch against the bare loop, whole and marginal."""
    n, half = len(result.data.symbols), result.spec.half_symbols
    one, half_one = _one_worker_launch(runs), _half_launches(runs)[1]
    bare, half_bare = runs.bare, runs.half_bare
    bare_fit = fit_two_sizes(half, half_bare.wall_s, n, bare.wall_s)
    return Overhead(
        one.wall_s, bare.wall_s, bare.import_s, bare.loop_s,
        overhead_pct(one.wall_s, bare.wall_s), bare.peak_rss / MB, half_one.wall_s,
        half_bare.wall_s, one_fit.marginal_s, bare_fit.marginal_s,
        marginal_overhead_pct(one_fit.marginal_s, bare_fit.marginal_s), one_fit.fixed_s,
        bare_fit.fixed_s,
    )  # fmt: skip


def _long_run(result: BenchResult, runs: TryRuns) -> LongRun:
    long_data = result.long_data
    return LongRun(
        result.spec.long_days, long_data.bars, long_data.generated, long_data.seconds,
        runs.long_detect.wall_s, runs.long_detect.peak_rss / MB,
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
