"""Reading one symbol's bar files (EVENTS.md §1) from either layout.

Daily layout: ``ROOT/symbol=SYM/date=YYYY-MM-DD.parquet`` (UTC date partitions).
Symbol layout: ``ROOT/SYM.parquet``. A symbol's history is the union of both.
Only the required columns are read, in one pass over all files when they agree;
only when that fails are files examined one by one, so that the culprit is named:
an unreadable file (corrupt, truncated, empty, no permission) raises
:class:`UnreadableBarFileError`, or with ``skip_unreadable`` is skipped and listed
in ``CleaningStats.files_skipped``; a file with a missing or unusable column is
always an error. Whether to skip is the caller's decision (a run's
``--skip-unreadable``), never this module's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from detector.cleaning import (
    PRICE_COLUMNS,
    REQUIRED_COLUMNS,
    CleaningStats,
    clean_bars,
    normalize_types,
)
from detector.errors import BarsSchemaError, NoBarsError, UnreadableBarFileError
from detector.input_fingerprint import InputFingerprint, changed, fingerprint, to_redo
from detector.symbols import is_valid_symbol, validate_symbol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's clean bars, sorted by time, and what cleaning dropped."""

    symbol: str
    bars: pl.DataFrame
    stats: CleaningStats
    inputs: InputFingerprint | None = None  # the files, as they were just before reading


def bar_files(symbol: str, bars_root: Path) -> list[Path]:
    """All bar files of ``symbol``: daily files in date order, then the per-symbol file."""
    validate_symbol(symbol)
    folder = bars_root / f"symbol={symbol}"
    # Names, not paths, are sorted: within one folder the order is the same, and
    # comparing Path objects costs more than listing the folder (250 files a year).
    files = [folder / name for name in sorted(_daily_names(folder))]
    single = bars_root / f"{symbol}.parquet"
    if single.is_file():
        files.append(single)
    return files


def _daily_names(folder: Path) -> list[str]:
    """The ``date=*.parquet`` names in ``folder`` (none when it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return [
                e.name
                for e in entries
                if e.name.startswith("date=") and e.name.endswith(".parquet")
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def symbol_bytes(symbol: str, bars_root: Path) -> int:
    """The size of a symbol's bar files: its expected work, from a listing (no read)."""
    total = 0
    for path in bar_files(symbol, bars_root):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _symbol_entries(bars_root: Path) -> dict[str, str]:
    """Entry name -> the symbol it names, for every ``symbol=X/`` and ``X.parquet``."""
    found: dict[str, str] = {}
    if bars_root.is_dir():
        for entry in bars_root.iterdir():
            name = entry.name
            if entry.is_dir() and name.startswith("symbol="):
                found[name] = name.removeprefix("symbol=")
            elif entry.is_file() and name.endswith(".parquet"):
                found[name] = name.removesuffix(".parquet")
    return found


def bars_layout(bars_root: Path) -> str:
    """Which layouts ``bars_root`` holds: ``daily``, ``symbol``, ``both`` or ``none``."""
    names = [name for name, symbol in _symbol_entries(bars_root).items() if is_valid_symbol(symbol)]
    daily = any(name.startswith("symbol=") for name in names)
    single = any(not name.startswith("symbol=") for name in names)
    return {(True, True): "both", (True, False): "daily", (False, True): "symbol"}.get(
        (daily, single), "none"
    )


def discover_symbols(bars_root: Path) -> list[str]:
    """Symbols that have bar files under ``bars_root`` (either layout), sorted."""
    return sorted({s for s in _symbol_entries(bars_root).values() if is_valid_symbol(s)})


def invalid_symbol_folders(bars_root: Path) -> list[str]:
    """Names of ``symbol=X/`` folders whose X is not a valid ticker (``symbol=abc``),
    sorted: they are never read, so the plan reports them. (Files are not listed: the
    bars root may hold others, such as ``symbols.parquet``.)"""
    return sorted(
        name
        for name, symbol in _symbol_entries(bars_root).items()
        if name.startswith("symbol=") and not is_valid_symbol(symbol)
    )


def count_bars(symbol: str, bars_root: Path) -> int:
    """Rows in ``symbol``'s bar files, from the Parquet footers (no data is read).

    This is the expected work of a symbol; an unreadable footer counts as zero.
    """
    return count_rows(bar_files(symbol, bars_root))


def count_rows(files: list[Path]) -> int:
    """Rows in ``files`` from their footers; an unreadable footer counts as zero."""
    total = 0
    for path in files:
        try:
            total += pq.read_metadata(path).num_rows
        except (OSError, pa.ArrowException):
            continue
    return total


def symbols_without_bars(symbols: Iterable[str], bars_root: Path) -> tuple[str, ...]:
    """The symbols of ``symbols`` that have no bar file under ``bars_root`` (sorted)."""
    return tuple(sorted(s for s in symbols if not bar_files(s, bars_root)))


def read_bar_files(
    files: list[Path], naive_timezone: str, *, skip_unreadable: bool = False
) -> tuple[pl.DataFrame, CleaningStats]:
    """Read the required columns of ``files`` into canonical types.

    Returns the rows and statistics holding ``files_read`` and ``files_skipped``.
    Raises :class:`BarsSchemaError` for a missing column or an unusable type, and
    :class:`UnreadableBarFileError` for the first file that cannot be read unless
    ``skip_unreadable``, which skips such files and lists them in ``files_skipped``.
    """
    if naive_timezone != "UTC" and _mixed_time_zones(files):
        # A scan over many files takes the first file's timestamp type and silently
        # reads the others as if they had it: a naive file beside zone-aware ones would
        # be shifted by the naive zone's offset. Only matters when naive is not UTC.
        return _read_one_by_one(files, naive_timezone, skip_unreadable)
    try:
        frame = pl.scan_parquet(files).select(REQUIRED_COLUMNS).collect()
        if _usable_schema(frame.schema) is None:
            # One chunk per file otherwise, and every later step is several times slower.
            # (Converting inside the scan needs its schema first, which costs more.)
            frame = normalize_types(frame.rechunk(), naive_timezone)
            return frame, CleaningStats(files_read=len(files))
    except Exception as exc:  # fall back to file-by-file to find the culprit
        log.debug("one-pass read of %d files failed (%s); reading one by one", len(files), exc)
    return _read_one_by_one(files, naive_timezone, skip_unreadable)


def _mixed_time_zones(files: list[Path]) -> bool:
    """Whether some files have naive timestamps and others zone-aware ones (footers only)."""
    kinds = set()
    for path in files:
        try:
            field = pq.read_schema(path).field("timestamp")
        except (OSError, KeyError, pa.ArrowException):
            continue  # the file-by-file read names the problem, if it is one
        if pa.types.is_timestamp(field.type):
            kinds.add(field.type.tz is None)
        if len(kinds) > 1:
            return True
    return False


def _read_one_by_one(
    files: list[Path], naive_timezone: str, skip_unreadable: bool
) -> tuple[pl.DataFrame, CleaningStats]:
    frames: list[pl.DataFrame] = []
    skipped: list[str] = []
    for path in files:
        try:
            empty = pl.DataFrame(pq.read_schema(path).empty_table())
            schema = empty.schema
        except Exception as exc:
            _unreadable(path, exc, skipped, skip_unreadable)
            continue
        for column in REQUIRED_COLUMNS:
            if column not in schema:
                raise BarsSchemaError(path, column, "missing")
        problem = _usable_schema(schema)
        if problem is not None:
            raise BarsSchemaError(path, problem[0], problem[1])
        try:
            frame = pl.read_parquet(path, columns=list(REQUIRED_COLUMNS))
        except Exception as exc:
            _unreadable(path, exc, skipped, skip_unreadable)
            continue
        frames.append(normalize_types(frame, naive_timezone))
    stats = CleaningStats(files_read=len(frames), files_skipped=tuple(skipped))
    if not frames:
        return _empty_canonical(), stats
    return pl.concat(frames, how="vertical", rechunk=True), stats


def _unreadable(path: Path, exc: Exception, skipped: list[str], skip: bool) -> None:
    """Raise :class:`UnreadableBarFileError` for ``path``, or (``skip``) list it as skipped."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if not skip:
        raise UnreadableBarFileError(path, reason) from exc
    log.warning("skipping unreadable bar file %s: %s", path, reason)
    skipped.append(str(path))


def _usable_schema(schema: pl.Schema) -> tuple[str, str] | None:
    """``(column, problem)`` for the first unusable column, else None."""
    if not isinstance(schema["timestamp"], pl.Datetime):
        return "timestamp", f"must be a datetime, got {schema['timestamp']}"
    for column in (*PRICE_COLUMNS, "volume"):
        if not schema[column].is_numeric():
            return column, f"must be numeric, got {schema[column]}"
    return None


def _empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "timestamp": pl.Datetime("ms", "UTC"),
            **{c: pl.Float64 for c in PRICE_COLUMNS},
            "volume": pl.Int64,
        }
    )


def load_symbol_bars(
    symbol: str,
    bars_root: Path,
    *,
    naive_timezone: str = "UTC",
    day_start_minute: int = 4 * 60,
    day_end_minute: int = 20 * 60,
    skip_unreadable: bool = False,
) -> SymbolBars:
    """One symbol's clean bars. Raises :class:`NoBarsError` when it has no bar file, and
    :class:`UnreadableBarFileError` for an unreadable one unless ``skip_unreadable``."""
    files = bar_files(symbol, bars_root)
    if not files:
        raise NoBarsError(symbol, bars_root)
    # Before reading: a file changed while it is read then shows as changed later.
    inputs = fingerprint(files)
    raw, read_stats = read_bar_files(files, naive_timezone, skip_unreadable=skip_unreadable)
    bars, stats = clean_bars(
        raw, day_start_minute=day_start_minute, day_end_minute=day_end_minute, stats=read_stats
    )
    return SymbolBars(symbol=symbol, bars=bars, stats=stats, inputs=inputs)


def load_recent_bars(
    symbol: str,
    bars_root: Path,
    first_day: date,
    last_day: date,
    prior_days: int,
    *,
    naive_timezone: str = "UTC",
    day_start_minute: int = 4 * 60,
    day_end_minute: int = 20 * 60,
) -> SymbolBars:
    """``symbol``'s clean bars of the ET days ``first_day`` to ``last_day`` and of at
    least ``prior_days`` whole trading days before them (all of them where its history
    has fewer), without reading the rest of its history when it need not.

    An ET day's bars fall on two UTC dates at most, so the last
    ``2 * (prior_days + 2 + days asked)`` UTC dates up to the day after ``last_day``
    usually hold them: of the daily files, only those are read; of a per-symbol file,
    only those rows are kept. The earliest day kept may be partial. Where files or
    dates without clean bars (empty files, gaps, bad rows) leave fewer than
    ``prior_days`` whole days before ``first_day``, the whole history is read instead.
    Raises :class:`NoBarsError` when it has no bar file and
    :class:`UnreadableBarFileError` for an unreadable one; the time-zone verdict is not
    computed for a partial read.
    """
    files = bar_files(symbol, bars_root)
    if not files:
        raise NoBarsError(symbol, bars_root)

    def whole_history() -> SymbolBars:
        return load_symbol_bars(
            symbol,
            bars_root,
            naive_timezone=naive_timezone,
            day_start_minute=day_start_minute,
            day_end_minute=day_end_minute,
        )

    through = last_day + timedelta(days=1)  # UTC date of an ET day's last hour in winter
    dates = 2 * (prior_days + 2 + (last_day - first_day).days)
    daily = [p for p in files if p.name.startswith("date=")]
    up_to = [p for p in daily if p.name[5:15] <= through.isoformat()]
    read = up_to[-dates:]
    single = [p for p in files if not p.name.startswith("date=")]
    raw, read_stats = read_bar_files(read + single, naive_timezone)
    utc_day = pl.col("timestamp").dt.date()
    cut = raw.select(utc_day.filter(utc_day <= through).unique().sort().tail(dates).min()).item()
    left_out = len(read) < len(up_to)
    if left_out and read and cut is not None:
        # Older days would come from the per-symbol file alone, without their daily files.
        try:
            cut = max(cut, date.fromisoformat(read[0].name[5:15]))
        except ValueError:  # a file name that is no date: no shortcut
            cut = None
    if cut is None and left_out:
        return whole_history()
    if cut is not None:
        kept = raw.filter(utc_day.is_between(cut, through))
        left_out = left_out or kept.height < raw.filter(utc_day <= through).height
        raw = kept
    bars, stats = clean_bars(
        raw,
        day_start_minute=day_start_minute,
        day_end_minute=day_end_minute,
        stats=read_stats,
        check_zone=False,
    )
    if left_out:
        before = bars.filter(pl.col("date") < first_day).get_column("date").n_unique()
        if before <= prior_days:  # the earliest may be partial: one more than asked
            return whole_history()
    return SymbolBars(symbol=symbol, bars=bars, stats=stats)


@dataclass(frozen=True)
class InputChanges:
    """Symbols whose bar files are not what their commit recorded."""

    changed: tuple[str, ...]  # sorted; a symbol whose files are all gone included
    redo: dict[str, InputFingerprint]  # those that can be recomputed: their print now


def input_changes(recorded: Mapping[str, InputFingerprint], bars_root: Path) -> InputChanges:
    """Compare each recorded fingerprint (symbol -> what its commit was computed from)
    with the symbol's bar files now."""
    current = input_fingerprints(sorted(recorded), bars_root)
    redo = {s: f for s in to_redo(recorded, current) if (f := current[s]) is not None}
    return InputChanges(changed(recorded, current), redo)


def input_fingerprints(
    symbols: Iterable[str], bars_root: Path
) -> dict[str, InputFingerprint | None]:
    """The fingerprint of each symbol's bar files as they are now (None: no file).

    A stat per file: about 1 s per 200,000 files on a local disk."""
    out: dict[str, InputFingerprint | None] = {}
    for symbol in symbols:
        files = bar_files(symbol, bars_root)
        out[symbol] = fingerprint(files) if files else None
    return out
