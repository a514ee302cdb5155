"""Expected bars per symbol, the plan's measure of work, without reading every footer.

A Parquet footer read costs ~45 µs per file; the users' universe has ~1.5 M daily
files, which would make planning alone take over a minute. Up to ``EXACT_UP_TO``
files the footers are read (exact counts); beyond, a symbol's bars are estimated
from the size of its files, at the rows per byte measured on an evenly spread
sample of footers, per kind of file (a per-symbol file's rows per byte differs from
a small daily file's, whose footer weighs more). Estimates only order the plan
and weigh progress and ETA; detection never depends on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from detector.bars import bar_files, count_rows

EXACT_UP_TO = 2_000  # files: up to this, every footer is read (about 0.1 s)
SAMPLE_FILES = 200  # footers read per kind of file beyond it, for the fixed cost of a file
PER_SYMBOL_FILES = 4  # footers read per symbol, for its rows per byte


@dataclass(frozen=True)
class WorkEstimate:
    bars: dict[str, int]
    files: int
    exact: bool  # footers read for every file
    no_files: tuple[str, ...] = ()  # symbols without any bar file


def expected_bars(symbols: Iterable[str], bars_root: Path) -> WorkEstimate:
    """Bars per symbol: exact from the footers for small universes, else estimated."""
    files = {s: bar_files(s, bars_root) for s in symbols}
    total = sum(len(f) for f in files.values())
    no_files = tuple(sorted(s for s, paths in files.items() if not paths))
    if total <= EXACT_UP_TO:
        exact = {s: count_rows(paths) for s, paths in files.items()}
        return WorkEstimate(exact, total, exact=True, no_files=no_files)
    kinds = {"daily": _every_file(files, daily=True), "symbol": _every_file(files, daily=False)}
    fits = {kind: _fit(paths, SAMPLE_FILES) for kind, paths in kinds.items()}
    bars = {}
    for symbol, paths in files.items():
        estimate = 0.0
        for daily in (True, False):
            own = [p for p in paths if _is_daily(p) == daily]
            if own:
                estimate += _symbol_rows(own, fits["daily" if daily else "symbol"])
        bars[symbol] = round(estimate)
    return WorkEstimate(bars, total, exact=False, no_files=no_files)


def _symbol_rows(paths: list[Path], fit: tuple[float, float]) -> float:
    """One symbol's rows in ``paths`` (one kind): the global fit's intercept (a footer's
    bytes) with this symbol's own rows per byte, from a few of its footers (how well
    bars compress differs from one symbol to the next)."""
    slope, intercept = fit
    sizes = [_size(p) for p in paths]
    step = max(len(paths) // PER_SYMBOL_FILES, 1)
    rows = sampled = 0.0
    for path, size in list(zip(paths, sizes, strict=True))[::step]:
        try:
            rows += pq.read_metadata(path).num_rows - intercept
        except (OSError, pa.ArrowException):
            continue
        sampled += size
    if sampled > 0 and rows > 0:
        slope = rows / sampled
    return sum(max(slope * size + intercept, 0.0) for size in sizes)


def _is_daily(path: Path) -> bool:
    return path.name.startswith("date=")


def _every_file(files: dict[str, list[Path]], *, daily: bool) -> list[Path]:
    return [p for paths in files.values() for p in paths if _is_daily(p) == daily]


def _fit(paths: list[Path], sample: int) -> tuple[float, float]:
    """``rows ≈ slope * bytes + intercept``, least squares over an evenly spread sample of
    ``paths`` (a footer's bytes carry no rows, which the intercept absorbs)."""
    step = max(len(paths) // sample, 1)
    points = []
    for path in paths[::step]:
        try:
            points.append((path.stat().st_size, pq.read_metadata(path).num_rows))
        except (OSError, pa.ArrowException):
            continue
    if not points:
        return 0.0, 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return (mean_y / mean_x if mean_x else 0.0), 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    return slope, mean_y - slope * mean_x


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
