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

Everything runs on the lazy API with the streaming engine: the file is scanned,
never collected. What is held in memory is one row number and one count per key
group (to pick the kept rows), the per-event-type and per-symbol counts, and
whatever the streaming sort of the output needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from detector.atomic_io import fsync_dir, write_text_atomic
from detector.errors import ExitCode, IntradayEventsError
from detector.schema import EVENT_KEY

SCORE_COLUMN = "score"
TOP_SYMBOLS = 10
OUTPUT_SUFFIX = ".dedup.parquet"
STATS_SUFFIX = ".stats.json"
# The legacy final file is sorted this way; only the columns that exist are used.
SORT_COLUMNS = ("symbol", "timestamp")
NULL_LABEL = "(null)"

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


@dataclass(frozen=True)
class DedupePlan:
    """The lazy queries of one deduplication, before anything is executed."""

    scan: pl.LazyFrame  # the input plus a file-order row number column
    groups: pl.LazyFrame  # per key group: the kept row number and the group size
    row_column: str
    count_column: str
    unparsed_scores: pl.LazyFrame | None  # one count, when scores are parsed from strings
    sort_columns: tuple[str, ...]
    notes: tuple[str, ...]


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
    groups = _run(cfg.input, lambda: plan.groups.collect(engine="streaming"))
    kept_rows = groups.select(plan.row_column)
    report = build_report(cfg, plan, groups, kept_rows)
    if not cfg.dry_run:
        write_output(kept_frame(plan, kept_rows), cfg.output, report.rows_out)
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
    scan = pl.scan_parquet(path, row_index_name=row)
    score, notes, unparsed = _score_rank(path, schema, score_column)
    ranked = scan.with_columns(score.alias(rank), _null_cells(columns).alias(nulls))
    # Highest score first (nulls last), then fewest nulls, then earliest row. The
    # streaming engine runs this sort_by().first() as a native min-by reduction.
    best_row = (
        pl.col(row)
        .sort_by([rank, nulls, row], descending=[True, False, False], nulls_last=True)
        .first()
    )
    groups = ranked.group_by(list(key)).agg(best_row.alias(row), pl.len().alias(count))
    return DedupePlan(
        scan=scan,
        groups=groups.select(row, count),
        row_column=row,
        count_column=count,
        unparsed_scores=(
            scan.select(unparsed.sum().alias("unparsed")) if unparsed is not None else None
        ),
        sort_columns=tuple(name for name in SORT_COLUMNS if name in schema),
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


def kept_frame(plan: DedupePlan, kept_rows: pl.DataFrame) -> pl.LazyFrame:
    """The input's rows that survive, in the input's schema and column order, sorted."""
    kept = plan.scan.join(kept_rows.lazy(), on=plan.row_column, how="semi")
    # The row number breaks ties, so equal (symbol, timestamp) rows keep file order.
    return kept.sort([*plan.sort_columns, plan.row_column]).drop(plan.row_column)


def build_report(
    cfg: DedupeConfig, plan: DedupePlan, groups: pl.DataFrame, kept_rows: pl.DataFrame
) -> DedupeReport:
    sizes = groups[plan.count_column]
    rows_in = int(sizes.sum())
    duplicate_rows = rows_in - groups.height
    # Each input row is flagged kept or removed; both breakdowns aggregate the flag.
    names = plan.scan.collect_schema().names()
    kept_flag = _free_name("kept", names)
    flagged = plan.scan.join(
        kept_rows.lazy().with_columns(pl.lit(True).alias(kept_flag)),
        on=plan.row_column,
        how="left",
    )
    queries = {
        name: _removed_by(flagged, name, kept_flag)
        for name in ("event_type", "symbol")
        if name in names
    }
    if plan.unparsed_scores is not None:
        queries["unparsed"] = plan.unparsed_scores
    frames = _run(cfg.input, lambda: pl.collect_all(list(queries.values()), engine="streaming"))
    results = dict(zip(queries, frames, strict=True))
    notes = list(plan.notes)
    if "unparsed" in results and (unparsed := int(results["unparsed"].item())):
        notes.append(f"{unparsed} {cfg.score_column!r} values are not numbers and rank as null")
    by_type = _counts(results.get("event_type"))
    symbols = _counts(results.get("symbol"))
    top = sorted(
        ((name, c) for name, c in symbols.items() if c.duplicate_rows),
        key=lambda item: (-item[1].duplicate_rows, item[0]),
    )[: cfg.top_symbols]
    return DedupeReport(
        input=cfg.input,
        output=cfg.output,
        key=cfg.key,
        rows_in=rows_in,
        rows_out=groups.height,
        duplicate_groups=int((sizes > 1).sum()),
        duplicate_rows=duplicate_rows,
        by_event_type=dict(sorted(by_type.items())),
        top_symbols=tuple(top),
        notes=tuple(notes),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dry_run=cfg.dry_run,
    )


def _removed_by(flagged: pl.LazyFrame, column: str, kept_flag: str) -> pl.LazyFrame:
    return flagged.group_by(column).agg(
        pl.len().alias("rows"), pl.col(kept_flag).is_null().sum().alias("duplicate_rows")
    )


def _counts(frame: pl.DataFrame | None) -> dict[str, GroupCount]:
    if frame is None:
        return {}
    label, rows, removed = frame.columns
    return {
        NULL_LABEL if name is None else str(name): GroupCount(int(n), int(d))
        for name, n, d in frame.select(label, rows, removed).iter_rows()
    }


def write_output(kept: pl.LazyFrame, path: Path, expected_rows: int) -> None:
    """Stream ``kept`` to zstd Parquet at ``path`` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            kept.sink_parquet(tmp, compression="zstd", sync_on_close="all", engine="streaming")
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DedupeWriteError(path, _first_line(exc)) from exc
        # Cheap (footer only) and it guards the one promise that matters: no row lost.
        written = pl.scan_parquet(tmp).select(pl.len()).collect().item()
        if written != expected_rows:
            raise DedupeWriteError(path, f"wrote {written} rows, expected {expected_rows}")
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


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
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DedupeInputError(path, f"cannot read: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
