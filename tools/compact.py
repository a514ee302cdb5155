"""``compact``: one Parquet file per symbol (``OUT/SYM.parquet``) from its daily files.

A symbol's sources are the files the detector reads for it (:func:`detector.bars.bar_files`).
All rows and columns are kept, nothing is cleaned: a stable sort on the timestamp of the
sources concatenated in that order keeps repeated timestamps in their order, so the
detector's "last row wins" picks the same row on either layout. Schemas are unified
(numeric widths, time units, time zones to UTC, missing columns as nulls); any other
difference, an unreadable file or a missing detector column fails the symbol, never a
day silently. One ``write_table`` per calendar month (UTC; wall clock when naive), zstd,
temp file + fsync + ``os.replace``. The footer records the sources (count, bytes, newest
mtime, digest of names, sizes and mtimes): unchanged symbols are skipped next time.
One run per OUT at a time (kernel lock ``OUT/.compact.lock``); a killed run's temps go.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from detector.bars import bar_files, discover_symbols
from detector.cleaning import PRICE_COLUMNS, REQUIRED_COLUMNS
from detector.errors import BarsError, BarsSchemaError, ExitCode, IntradayEventsError, NoBarsError
from orchestrator.run.atomic_io import fsync_dir
from orchestrator.run.faults import crash_point

METADATA_KEY = b"intraday_events.compact"
FORMAT_VERSION = 1
TEMP_SUFFIX = ".compact-tmp"  # never ends in .parquet: the detector never reads a temp
LOCK_NAME = ".compact.lock"
Status = Literal["compacted", "skipped", "failed"]


# -- errors ---------------------------------------------------------------------------
class BarsRootNotFoundError(BarsError):
    def __init__(self, bars: Path) -> None:
        self.bars = bars
        super().__init__(f"bars root {bars} does not exist or is not a directory")


class CompactPathError(IntradayEventsError):
    """OUT would be read back as bars of DIR."""

    exit_code = ExitCode.USAGE

    def __init__(self, bars: Path, out: Path, problem: str) -> None:
        self.bars, self.out, self.problem = bars, out, problem
        super().__init__(f"--out {out}: {problem} (--bars {bars})")


class CompactBusyError(IntradayEventsError):
    exit_code = ExitCode.BUSY

    def __init__(self, out: Path) -> None:
        self.out = out
        super().__init__(f"another compact is writing to {out} (it holds {out / LOCK_NAME})")


class SourceReadError(BarsError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: unreadable: {reason}")


class SchemaUnifyError(BarsError):
    def __init__(
        self, column: str, first: tuple[object, Path], second: tuple[object, Path]
    ) -> None:
        self.column, self.first, self.second = column, first, second
        where = f"{first[0]} in {first[1]} and {second[0]} in {second[1]}"
        super().__init__(f"column {column!r} is {where}: cannot unify")


class CompactIncompleteError(IntradayEventsError):
    exit_code = ExitCode.FAILURE

    def __init__(self, failed: tuple[str, ...]) -> None:
        self.failed = failed
        shown = ", ".join(failed[:20]) + " ..." * (len(failed) > 20)
        super().__init__(
            f"{len(failed)} symbols not compacted ({shown}): nothing written for them, "
            "the reasons are above"
        )


# -- configuration and results --------------------------------------------------------
@dataclass(frozen=True)
class CompactConfig:
    bars: Path
    out: Path
    symbols: tuple[str, ...] | None = None  # None: every symbol found under ``bars``
    force: bool = False  # rebuild even symbols whose sources are unchanged


@dataclass(frozen=True)
class SymbolOutcome:
    symbol: str
    status: Status
    rows: int = 0
    files_read: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CompactReport:
    bars: Path
    out: Path
    outcomes: tuple[SymbolOutcome, ...]
    seconds: float
    stale_temps_removed: int = 0

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(o.symbol for o in self.outcomes if o.status == "failed")

    def summary(self) -> str:
        """The closing line: counts, rows, files read, bytes in -> out, seconds, symbols/s."""
        done = [o for o in self.outcomes if o.status == "compacted"]
        rows, read = sum(o.rows for o in done), sum(o.files_read for o in done)
        b_in, b_out = sum(o.bytes_in for o in done), sum(o.bytes_out for o in done)
        rate = len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0
        temps = f"; {self.stale_temps_removed} stale temps removed" * bool(self.stale_temps_removed)
        return (
            f"compact: {len(self.outcomes)} symbols: {tally(self.outcomes)}; "
            f"{rows:,} rows from {read:,} files, {b_in / 1e6:,.1f} MB -> {b_out / 1e6:,.1f} MB; "
            f"{self.seconds:.1f} s, {rate:.2f} symbols/s{temps} -> {self.out}"
        )

    def raise_for_failures(self) -> None:
        if self.failed:
            raise CompactIncompleteError(self.failed)


OnSymbol = Callable[[SymbolOutcome, int, int], None]


def tally(outcomes: Iterable[SymbolOutcome]) -> str:
    counts = Counter(o.status for o in outcomes)
    return (
        f"{counts['compacted']} compacted, {counts['skipped']} skipped up to date, "
        f"{counts['failed']} failed"
    )


# -- sources --------------------------------------------------------------------------
@dataclass(frozen=True)
class Sources:
    """What a compacted file is built from, as recorded in its footer."""

    files: tuple[Path, ...]
    total_bytes: int
    max_mtime_ns: int
    digest: str

    def metadata(self, symbol: str, bars: Path, rows: int) -> dict[bytes, bytes]:
        record = dict(
            version=FORMAT_VERSION, symbol=symbol, rows=rows, source_root=str(bars),
            source_files=len(self.files), source_bytes=self.total_bytes,
            source_max_mtime_ns=self.max_mtime_ns, source_digest=self.digest,
        )  # fmt: skip
        return {METADATA_KEY: json.dumps(record, sort_keys=True).encode()}


def stat_sources(files: list[Path], bars: Path) -> Sources:
    """Sizes and mtimes, taken before reading: a file changed meanwhile is rebuilt next run."""
    digest = hashlib.sha256()
    total = newest = 0
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            raise SourceReadError(path, exc.strerror or str(exc)) from exc
        digest.update(
            f"{path.relative_to(bars).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode()
        )
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
    return Sources(tuple(files), total, newest, digest.hexdigest())


def recorded_sources(target: Path) -> dict[str, object] | None:
    """The footer record of a compacted file, or None (missing, unreadable, not ours)."""
    try:
        meta = pq.read_metadata(target).metadata or {}
        record = json.loads(meta[METADATA_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return record if isinstance(record, dict) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_required(schema: pl.Schema, path: Path) -> None:
    """Every source must hold the detector's columns in usable types (as it checks them)."""
    for column in REQUIRED_COLUMNS:
        if column not in schema:
            raise BarsSchemaError(path, column, "missing")
    if not isinstance(schema["timestamp"], pl.Datetime):
        raise BarsSchemaError(path, "timestamp", f"must be a datetime, got {schema['timestamp']}")
    for column in (*PRICE_COLUMNS, "volume"):
        if not schema[column].is_numeric():
            raise BarsSchemaError(path, column, f"must be numeric, got {schema[column]}")


def read_sources(files: list[Path]) -> pl.DataFrame:
    """All rows and columns of ``files``, concatenated in order; one pass when the footers'
    schemas agree (polars alone would read a naive timestamp file as UTC), else unified."""
    schemas, rows = [], 0
    for path in files:
        try:
            meta = pq.read_metadata(path)
            schemas.append(meta.schema.to_arrow_schema())
        except Exception as exc:
            raise SourceReadError(path, _first_line(exc)) from exc
        rows += meta.num_rows
    frame = None
    if all(schema.equals(schemas[0]) for schema in schemas):
        try:
            frame = pl.scan_parquet(files, hive_partitioning=False).collect()
        except Exception:  # a broken page: find out which file, one by one
            frame = None
        else:
            _check_required(frame.schema, files[0])
    frame = _read_one_by_one(files) if frame is None else frame
    if frame.height != rows:
        raise SourceReadError(files[0].parent, f"read {frame.height} rows, footers say {rows}")
    return frame


def _read_one_by_one(files: list[Path]) -> pl.DataFrame:
    frames: list[tuple[Path, pl.DataFrame]] = []
    for path in files:
        try:
            frame = pl.read_parquet(path, hive_partitioning=False)
        except Exception as exc:
            raise SourceReadError(path, _first_line(exc)) from exc
        _check_required(frame.schema, path)
        frames.append((path, frame))
    return unify(frames)


def unify(frames: list[tuple[Path, pl.DataFrame]]) -> pl.DataFrame:
    """Concatenate frames whose schemas differ only in ways that lose nothing the detector
    reads: numeric widths, datetime units, time zones (converted to UTC), missing columns."""
    seen: dict[str, list[tuple[pl.DataType, Path]]] = {}
    for path, frame in frames:
        for column, dtype in frame.schema.items():
            if dtype != pl.Null:
                seen.setdefault(column, []).append((dtype, path))
    to_utc: set[str] = set()
    for column, kinds in seen.items():
        dtypes = {dtype for dtype, _ in kinds}
        if len(dtypes) == 1 or all(d.is_numeric() for d in dtypes):
            continue
        zones = {d.time_zone for d in dtypes if isinstance(d, pl.Datetime)}
        if all(isinstance(d, pl.Datetime) for d in dtypes) and None not in zones:
            if len(zones) > 1:
                to_utc.add(column)
            continue
        first = kinds[0]
        second = next(k for k in kinds if k[0] != first[0])
        raise SchemaUnifyError(column, first, second)
    parts = [
        frame.with_columns(
            pl.col(c).dt.convert_time_zone("UTC")
            for c in to_utc
            if isinstance(frame.schema.get(c), pl.Datetime)
        )
        for _, frame in frames
    ]
    return pl.concat(parts, how="diagonal_relaxed")


# -- writing --------------------------------------------------------------------------
def sort_by_time(frame: pl.DataFrame) -> pl.DataFrame:
    """Stable sort on the timestamp at the detector's precision (ms): ties keep source order."""
    return frame.sort(pl.col("timestamp").dt.cast_time_unit("ms"), maintain_order=True)


def month_runs(frame: pl.DataFrame) -> list[tuple[int, int]]:
    """``(offset, length)`` of each calendar month of a time-sorted frame (nulls: one run)."""
    ts = pl.col("timestamp")
    dtype = frame.schema["timestamp"]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        ts = ts.dt.convert_time_zone("UTC")
    months = frame.select((ts.dt.year() * 12 + ts.dt.month()).fill_null(-1)).to_series()
    runs, offset = [], 0
    for length in months.rle().struct.field("len").to_list():
        runs.append((offset, length))
        offset += length
    return runs


def temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_SUFFIX}")  # hidden, never *.parquet


def write_compacted(
    frame: pl.DataFrame, target: Path, metadata: dict[bytes, bytes], symbol: str = ""
) -> int:
    """Write ``frame`` (time-sorted) to ``target`` atomically, one write per month; its bytes."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    tmp = temp_path(target)
    try:
        with pq.ParquetWriter(tmp, table.schema, compression="zstd") as writer:
            for offset, length in month_runs(frame):
                writer.write_table(table.slice(offset, length))
                crash_point("compact_mid_write", symbol)  # test-only: SIGKILL inside a write
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        written = pq.read_metadata(tmp).num_rows
        if written != frame.height:
            raise OSError(f"wrote {written} rows of {frame.height} to {tmp}")
        size = tmp.stat().st_size
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return size
    finally:
        tmp.unlink(missing_ok=True)


# -- one symbol, and the run ----------------------------------------------------------
def compact_symbol(symbol: str, bars: Path, out: Path, *, force: bool = False) -> SymbolOutcome:
    """Compact one symbol, or skip it when its file is built from the same sources."""
    target = out / f"{symbol}.parquet"
    try:
        files = bar_files(symbol, bars)
        if not files:
            raise NoBarsError(symbol, bars)
        sources = stat_sources(files, bars)
        record = recorded_sources(target)
        if not force and record is not None and _up_to_date(record, sources):
            return SymbolOutcome(symbol, "skipped")
        frame = sort_by_time(read_sources(files))
        size = write_compacted(frame, target, sources.metadata(symbol, bars, frame.height), symbol)
    except (IntradayEventsError, OSError, pl.exceptions.PolarsError, pa.ArrowException) as exc:
        kept = f" (the previous {target.name} is kept as it was)" * target.exists()
        return SymbolOutcome(symbol, "failed", error=_first_line(exc) + kept)
    return SymbolOutcome(symbol, "compacted", frame.height, len(files), sources.total_bytes, size)


def _up_to_date(record: dict[str, object], sources: Sources) -> bool:
    return record.get("version") == FORMAT_VERSION and record.get("source_digest") == sources.digest


def check_paths(bars: Path, out: Path) -> None:
    """Refuse a missing bars root (exit 3) and an OUT the detector would read as bars (2)."""
    if not bars.is_dir():
        raise BarsRootNotFoundError(bars)
    b, o = bars.resolve(), out.resolve()
    if o == b:
        raise CompactPathError(
            bars, out, "is the bars root: SYM.parquet there adds to the daily files"
        )
    if o.is_relative_to(b) and o.relative_to(b).parts[0].startswith("symbol="):
        raise CompactPathError(bars, out, "is inside a symbol folder of the bars root")
    if out.exists() and not out.is_dir():
        raise CompactPathError(bars, out, "is not a directory")


def remove_stale_temps(out: Path) -> int:
    """Temps of a killed run (only called under the lock: no live writer owns one)."""
    stale = list(out.glob(f".*.parquet{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def run_compact(cfg: CompactConfig, on_symbol: OnSymbol | None = None) -> CompactReport:
    """Compact every symbol of ``cfg``; one failing symbol never stops the others.

    ``on_symbol(outcome, done, total)`` is called after each symbol (progress display)."""
    check_paths(cfg.bars, cfg.out)
    started = time.perf_counter()
    symbols = list(cfg.symbols) if cfg.symbols is not None else discover_symbols(cfg.bars)
    cfg.out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(cfg.out / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise CompactBusyError(cfg.out) from None
    outcomes: list[SymbolOutcome] = []
    try:
        removed = remove_stale_temps(cfg.out)
        for symbol in symbols:
            outcomes.append(compact_symbol(symbol, cfg.bars, cfg.out, force=cfg.force))
            if on_symbol is not None:
                on_symbol(outcomes[-1], len(outcomes), len(symbols))
    finally:
        lock.release()
    return CompactReport(cfg.bars, cfg.out, tuple(outcomes), time.perf_counter() - started, removed)
