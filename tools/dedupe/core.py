"""Remove duplicate events from an events file, keeping the best row of each key.

The legacy dedup kept the wrong row (LEGACY.md, "How the old system lost and
duplicated data", item 11): it compared ranks as strings ("10" < "2") and dropped
every group whose scores were all null. Here, per key group, the kept row is the
one with

1. the highest score, compared as numbers (a String score column is parsed to
   Float64; null, NaN and unparseable scores rank below every number),
2. then the fewest null cells,
3. then the earliest in file order,

so every group keeps exactly one row.

Everything runs on the lazy API with the streaming engine, one partition of the
file at a time (``tools.dedupe.partitions``: a range of symbols of about
``rows_per_partition`` rows), so memory holds one partition's key groups and
kept rows plus the per-event-type and per-symbol counts, whatever the file's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa

from detector.errors import ExitCode, IntradayEventsError
from detector.schema import EVENT_KEY
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.errors import ENVIRONMENT_ERRNOS
from tools.dedupe.partitions import (
    DEFAULT_PARTITION_ROWS,
    DedupePlan,
    ParquetAppender,
    RowsChangedError,
    Tally,
    WriteFailedError,
    dedupe_partition,
    partition_column,
    plan_partitions,
    spill,
    spill_directory,
)

SCORE_COLUMN = "score"
TOP_SYMBOLS = 10
OUTPUT_SUFFIX = ".dedup.parquet"
STATS_SUFFIX = ".stats.json"
# The legacy final file is sorted this way; only the columns that exist are used.
SORT_COLUMNS = ("symbol", "timestamp")
# The report breaks removed rows down by these columns, where the file has them.
BREAKDOWNS = ("event_type", "symbol")

T = TypeVar("T")


class DedupeInputError(IntradayEventsError):
    """The input file cannot be read, or lacks what deduplication needs."""

    exit_code = ExitCode.DATA

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class MissingKeyColumnError(DedupeInputError):
    """A key column is not in the input (a typo in --key, or not an events file)."""

    def __init__(self, path: Path, missing: list[str], available: list[str]) -> None:
        self.missing = missing
        self.available = available
        names = ", ".join(repr(name) for name in missing)
        super().__init__(
            path,
            f"no column {names} for the dedupe key; the file has: {', '.join(available)}",
        )


class OutputIsInputError(IntradayEventsError):
    """Deduplicating a file into itself would destroy the only copy on any failure."""

    exit_code = ExitCode.USAGE

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"refusing to overwrite the input {path}: choose another --output")


class DedupeWriteError(IntradayEventsError):
    """The output could not be written; nothing was replaced."""

    exit_code = ExitCode.FAILURE

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")


@dataclass(frozen=True)
class DedupeConfig:
    input: Path
    output: Path
    key: tuple[str, ...] = EVENT_KEY
    dry_run: bool = False
    score_column: str = SCORE_COLUMN
    top_symbols: int = TOP_SYMBOLS
    # Rows per partition: peak memory grows with this, not with the file.
    rows_per_partition: int = DEFAULT_PARTITION_ROWS


@dataclass(frozen=True)
class GroupCount:
    """Rows of one event type or symbol in the input, and how many of them were removed."""

    rows: int
    duplicate_rows: int


@dataclass(frozen=True)
class DedupeReport:
    input: Path
    output: Path
    key: tuple[str, ...]
    rows_in: int
    rows_out: int
    duplicate_groups: int  # key groups with more than one row
    duplicate_rows: int  # rows removed
    by_event_type: dict[str, GroupCount]
    top_symbols: tuple[tuple[str, GroupCount], ...]  # most removed rows first
    notes: tuple[str, ...]
    created_at: str
    dry_run: bool

    @property
    def duplicate_pct(self) -> float:
        return round(100.0 * self.duplicate_rows / self.rows_in, 4) if self.rows_in else 0.0

    @property
    def stats_path(self) -> Path:
        return stats_path(self.output)


def default_output(input_path: Path) -> Path:
    """``<input stem>.dedup.parquet`` next to the input."""
    return input_path.with_name(input_path.stem + OUTPUT_SUFFIX)


def stats_path(output: Path) -> Path:
    """``<output>.stats.json``: the output's full name plus ``.stats.json``."""
    return output.with_name(output.name + STATS_SUFFIX)


def run_dedupe(cfg: DedupeConfig) -> DedupeReport:
    """Deduplicate ``cfg.input``; write the output and its stats unless ``cfg.dry_run``."""
    check_paths(cfg)
    plan = plan_dedupe(cfg.input, cfg.key, cfg.score_column)
    layout = _run(
        cfg.input,
        lambda: plan_partitions(plan.scan, plan.partition_column, cfg.rows_per_partition),
    )
    tally = Tally()
    if cfg.dry_run:  # nothing written, not even spilled partitions
        for partition in layout.partitions:
            _run(cfg.input, partial(dedupe_partition, plan, partition, tally, keep_rows=False))
    else:
        with (
            _writing(cfg.output),
            spill_directory(cfg.output) as spill_to,
            ParquetAppender(cfg.output, plan.schema) as output,
        ):
            partitions = layout.partitions
            if layout.scattered:
                partitions = _run(cfg.input, partial(spill, plan.scan, layout, spill_to))
            for partition in partitions:
                kept = _run(cfg.input, partial(dedupe_partition, plan, partition, tally))
                assert kept is not None
                output.write(kept)
            output.commit(tally.rows_out)
    report = build_report(cfg, plan, tally)
    if not cfg.dry_run:
        write_text_atomic(report.stats_path, json.dumps(report_to_json(report), indent=1) + "\n")
    return report


def check_paths(cfg: DedupeConfig) -> None:
    targets = (cfg.output, stats_path(cfg.output))
    if any(_same_file(cfg.input, target) for target in targets):
        raise OutputIsInputError(cfg.input)


def _same_file(a: Path, b: Path) -> bool:
    # samefile also catches hard links and other spellings of the same path.
    if b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def plan_dedupe(path: Path, key: tuple[str, ...], score_column: str = SCORE_COLUMN) -> DedupePlan:
    """Build the lazy queries; reads only the file's schema."""
    schema = _read_schema(path)
    columns = list(schema.names())
    missing = [name for name in key if name not in schema]
    if missing:
        raise MissingKeyColumnError(path, missing, columns)
    row, count, rank, nulls = (_free_name(base, columns) for base in ("row", "n", "rank", "nulls"))
    score, notes, unparsed = _score_rank(path, schema, score_column)
    sort_columns = tuple(name for name in SORT_COLUMNS if name in schema)
    split_by = partition_column(schema, key, sort_columns)
    if split_by is None:
        notes += (
            f"not split into partitions (the key has no text, integer or date {SORT_COLUMNS[0]!r} "
            "column): memory grows with the number of key groups",
        )
    return DedupePlan(
        scan=pl.scan_parquet(path, row_index_name=row),
        schema=schema,
        key=key,
        ranking=(score.alias(rank), _null_cells(columns).alias(nulls)),
        # Highest score first (nulls last), then fewest nulls, then earliest row. The
        # streaming engine runs this sort_by().first() as a native min-by reduction.
        best_row=pl.col(row)
        .sort_by([rank, nulls, row], descending=[True, False, False], nulls_last=True)
        .first(),
        row_column=row,
        count_column=count,
        unparsed_scores=unparsed,
        breakdowns=tuple(name for name in BREAKDOWNS if name in schema),
        sort_columns=sort_columns,
        partition_column=split_by,
        notes=notes,
    )


def _read_schema(path: Path) -> pl.Schema:
    try:
        return pl.scan_parquet(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DedupeInputError(path, f"not a readable Parquet file: {_first_line(exc)}") from exc


def _free_name(base: str, taken: list[str]) -> str:
    """A helper column name that cannot clash with the input's own columns."""
    name = f"__dedupe_{base}"
    while name in taken:
        name = f"_{name}"
    return name


def _null_cells(columns: list[str]) -> pl.Expr:
    return pl.sum_horizontal(pl.col(name).is_null().cast(pl.UInt32) for name in columns)


def _score_rank(
    path: Path, schema: pl.Schema, column: str
) -> tuple[pl.Expr, tuple[str, ...], pl.Expr | None]:
    """The score as Float64 for ranking, notes for the report, and (for strings) an
    expression flagging values that could not be parsed."""
    if column not in schema:
        note = f"no {column!r} column: groups keep the row with the fewest nulls, then the first"
        return pl.lit(None, dtype=pl.Float64), (note,), None
    dtype = schema[column]
    if dtype.is_numeric():
        # NaN sorts above every number in polars; it must rank as "no score" instead.
        return pl.col(column).cast(pl.Float64).fill_nan(None), (), None
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        text = pl.col(column).cast(pl.String).str.strip_chars()
        parsed = text.cast(pl.Float64, strict=False)
        note = (
            f"{column!r} is stored as {dtype}: compared as numbers (cast to Float64), "
            "not as text; unparseable values rank as null"
        )
        unparsed = text.is_not_null() & parsed.is_null()
        return parsed.fill_nan(None), (note,), unparsed
    raise DedupeInputError(path, f"column {column!r} has type {dtype}, not a number or text")


def build_report(cfg: DedupeConfig, plan: DedupePlan, tally: Tally) -> DedupeReport:
    notes = list(plan.notes)
    if tally.unparsed_scores:
        notes.append(
            f"{tally.unparsed_scores} {cfg.score_column!r} values are not numbers and rank as null"
        )
    by_type = {name: GroupCount(*counts) for name, counts in tally.removed_by("event_type").items()}
    top = sorted(
        ((name, GroupCount(*counts)) for name, counts in tally.removed_by("symbol").items()),
        key=lambda item: (-item[1].duplicate_rows, item[0]),
    )
    return DedupeReport(
        input=cfg.input,
        output=cfg.output,
        key=cfg.key,
        rows_in=tally.rows_in,
        rows_out=tally.rows_out,
        duplicate_groups=tally.duplicate_groups,
        duplicate_rows=tally.rows_in - tally.rows_out,
        by_event_type=dict(sorted(by_type.items())),
        top_symbols=tuple(item for item in top if item[1].duplicate_rows)[: cfg.top_symbols],
        notes=tuple(notes),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dry_run=cfg.dry_run,
    )


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A failure to write ``path`` is a :class:`DedupeWriteError`."""
    try:
        yield
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError, WriteFailedError) as exc:
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            raise  # read-only, full disk, file too large: one line and exit 5 at the CLI
        raise DedupeWriteError(path, _first_line(exc)) from exc


def report_to_json(report: DedupeReport) -> dict[str, Any]:
    return {
        "input": str(report.input.resolve()),
        "output": str(report.output.resolve()),
        "key": list(report.key),
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "duplicate_groups": report.duplicate_groups,
        "duplicate_rows": report.duplicate_rows,
        "duplicate_pct": report.duplicate_pct,
        "by_event_type": {
            name: {"rows": c.rows, "duplicate_rows": c.duplicate_rows}
            for name, c in report.by_event_type.items()
        },
        "top_symbols": [
            {"symbol": name, "rows": c.rows, "duplicate_rows": c.duplicate_rows}
            for name, c in report.top_symbols
        ],
        "notes": list(report.notes),
        "created_at": report.created_at,
    }


def _run(path: Path, query: Callable[[], T]) -> T:
    """Execute a query; a failure while reading the input is a data error."""
    try:
        return query()
    except (pl.exceptions.PolarsError, OSError, RowsChangedError) as exc:
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            raise  # writing the spilled partitions: one line and exit 5 at the CLI
        raise DedupeInputError(path, f"cannot read: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
