"""``intraday-events bench --bars DIR``: step 1 of the benchmark alone, on the user's bars.

Per symbol of ``DIR`` (either layout, or both), in this process: reading the columns the
detector needs against :func:`detector.pipeline.detect_symbol` on the same files, with
the run's configuration (so naive timestamps are read in ``bars.naive_timezone``),
exactly as :func:`tools.bench.run.time_layout` measures the demo bars: one warm-up pass,
then ``repeat`` timed passes. No process is started, nothing is generated, nothing is
written under ``DIR``.

The symbols are grouped by the layout of their own files: ``daily`` (only
``symbol=SYM/date=*.parquet``), ``symbol`` (only ``SYM.parquet``), ``both`` (some of
each: the detector reads the union). Each group is one row of the report, with the
target of its layout.

Days: the demo bars have a known number of days; real ones do not. Each symbol's days are
counted, after the timed passes, as the distinct ET trading days it has bars on once
cleaned as ``detect_symbol`` cleans them (the configured day window, ``premarket``
start to ``afterhours`` end, bad rows dropped): the days the detector actually works
on. ``symbol_days`` is their sum over the group's symbols, and ms per symbol-100-days
divides by it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.bars import bar_files, bars_layout, count_rows, discover_symbols, load_symbol_bars
from detector.config import AppConfig
from detector.config_load import minutes_of
from detector.errors import ExitCode, IntradayEventsError
from tools.bench.run import LayoutTiming, Machine, machine, time_layout

Note = Callable[[str], None]
GROUPS = ("daily", "symbol", "both")


class BarsBenchError(IntradayEventsError):
    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class BarsBenchSpec:
    bars: Path
    repeat: int = 3
    symbols: int | None = None  # the first N of DIR's symbols, sorted by name; None: all

    def __post_init__(self) -> None:
        if self.repeat < 1 or (self.symbols is not None and self.symbols < 1):
            raise ValueError("repeat and symbols must be >= 1")


@dataclass(frozen=True)
class BarsGroup:
    """The symbols of one layout and their timing."""

    layout: str  # daily, symbol or both
    symbols: tuple[str, ...]
    timing: LayoutTiming
    symbol_days: int  # distinct ET trading days with clean bars, summed over the symbols
    bars: int  # rows in the files (their footers)
    rows_kept: int  # rows left after cleaning, summed


@dataclass(frozen=True)
class BarsResult:
    spec: BarsBenchSpec
    directory: Path  # resolved
    layout: str  # of the whole directory: daily, symbol or both
    symbols_found: int
    naive_timezone: str
    day_window: tuple[str, str]  # ET, [start, end)
    groups: tuple[BarsGroup, ...]
    machine: Machine
    wall_s: float


def symbol_layout(symbol: str, bars_root: Path) -> str:
    """``daily``, ``symbol`` or ``both``: which layouts ``symbol``'s own files are in."""
    files = bar_files(symbol, bars_root)
    single = any(f.parent == bars_root for f in files)
    daily = any(f.parent != bars_root for f in files)
    return "both" if single and daily else "symbol" if single else "daily"


def day_window(config: AppConfig) -> tuple[str, str]:
    """The ET clock window ``detect_symbol`` keeps (as :mod:`detector.pipeline` sets it)."""
    bounds = config.detector.session_bounds
    return bounds.premarket[0], bounds.afterhours[1]


def count_days(symbol: str, bars_root: Path, config: AppConfig) -> tuple[int, int]:
    """The distinct ET trading days of ``symbol``'s clean bars, and the rows kept."""
    start, end = day_window(config)
    loaded = load_symbol_bars(
        symbol,
        bars_root,
        naive_timezone=config.bars.naive_timezone,
        day_start_minute=minutes_of(start),
        day_end_minute=minutes_of(end),
    )
    return loaded.bars["date"].n_unique(), loaded.bars.height


def pick_symbols(bars_root: Path, limit: int | None) -> tuple[list[str], int]:
    """The symbols to measure (the first ``limit`` by name, or all) and how many there are."""
    if not bars_root.is_dir():
        raise BarsBenchError(f"--bars {bars_root}: no such directory")
    found = discover_symbols(bars_root)
    if not found:
        raise BarsBenchError(
            f"--bars {bars_root}: no bars in either layout (symbol=SYM/date=*.parquet or "
            "SYM.parquet)"
        )
    return found[:limit] if limit is not None else found, len(found)


def time_group(
    layout: str, bars_root: Path, symbols: tuple[str, ...], config: AppConfig, repeat: int
) -> BarsGroup:
    timing = time_layout(layout, bars_root, symbols, config, repeat)
    counted = [count_days(s, bars_root, config) for s in symbols]
    return BarsGroup(
        layout=layout,
        symbols=symbols,
        timing=timing,
        symbol_days=sum(days for days, _ in counted),
        bars=sum(count_rows(bar_files(s, bars_root)) for s in symbols),
        rows_kept=sum(kept for _, kept in counted),
    )


def run_bars_bench(spec: BarsBenchSpec, config: AppConfig, note: Note) -> BarsResult:
    """Step 1 on the bars under ``spec.bars``, one group per layout its symbols are in."""
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    root = spec.bars.resolve()
    symbols, found = pick_symbols(root, spec.symbols)
    by_layout: dict[str, list[str]] = {}
    for symbol in symbols:
        by_layout.setdefault(symbol_layout(symbol, root), []).append(symbol)
    groups = []
    for layout in (g for g in GROUPS if g in by_layout):
        members = tuple(by_layout[layout])
        note(
            f"timing read and detect_symbol on {len(members)} symbols, {layout} layout "
            f"({spec.repeat} passes)"
        )
        groups.append(time_group(layout, root, members, config, spec.repeat))
    return BarsResult(
        spec=spec,
        directory=root,
        layout=bars_layout(root),
        symbols_found=found,
        naive_timezone=config.bars.naive_timezone,
        day_window=day_window(config),
        groups=tuple(groups),
        machine=machine(load),
        wall_s=time.perf_counter() - started,
    )
