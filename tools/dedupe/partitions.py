"""Bounded memory for ``dedupe``: split the input into partitions, write them in order.

Every row of a key group has the same value in each key column, so when the
output's leading sort column (``symbol``) is part of the key, a range of its
values holds whole groups. One cheap streaming pass over that column counts the
rows of each value; the sorted values are cut into contiguous ranges of about
``rows_per_partition`` rows. Each range is deduplicated on its own and its kept
rows, sorted, are appended to one Parquet file, range after range. Ranges follow
the sort order, null first as in ``sort()``, so the output is sorted exactly as
one sort of all kept rows would be.

A range's rows are read with a filter that the Parquet reader pushes down: on a
file clustered by symbol (final files are sorted by it) it skips the row groups
outside the range, so the file is read about once in all. On a scattered file
every filter would read the whole file, so the rows are first spilled, in one
pass, to one temporary file per range (with their file row numbers) next to the
output; a dry run writes nothing and filters anyway.

Memory is that of one partition (its key groups and its kept rows), never the
file's. A single symbol with more rows than ``rows_per_partition`` is still one
partition: a group cannot be split.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.run.atomic_io import fsync_dir
from orchestrator.run.errors import ENVIRONMENT_ERRNOS
from orchestrator.run.io_errors import writing

DEFAULT_PARTITION_ROWS = 1_000_000
# Filtering is kept while the file holds at most this many sorted runs of the
# partition column (each range then reads about this many slices of the file).
MAX_RUNS_TO_FILTER = 3
SPILL_BATCH_ROWS = 500_000
# What polars' own Parquet writer uses: readers skip row groups by their statistics.
ROW_GROUP_ROWS = 100_000
ZSTD_LEVEL = 3
NULL_LABEL = "(null)"


class RowsChangedError(Exception):
    """A partition read back a different number of rows than were counted in it."""


class WriteFailedError(Exception):
    """Writing a temporary or output file failed (as opposed to reading the input)."""


@dataclass(frozen=True)
class Partition:
    """The rows of one range of the partition column (``predicate`` None: every row)."""

    predicate: pl.Expr | None
    rows: int
    label: str
    spilled_to: Path | None = None  # a file holding just these rows, with their row numbers


@dataclass(frozen=True)
class Layout:
    partitions: list[Partition]
    column: str | None
    ranges: pl.DataFrame  # each value of ``column``, then the index of its partition
    runs: int  # sorted runs of the column in file order (1: the file is sorted by it)

    @property
    def scattered(self) -> bool:
        """Whether range filters would read the file many times over."""
        return min(self.runs, len(self.partitions)) > MAX_RUNS_TO_FILTER


@dataclass(frozen=True)
class DedupePlan:
    """The lazy queries of one deduplication, before anything is executed."""

    scan: pl.LazyFrame  # the whole input plus a file-order row number column
    schema: pl.Schema  # the input's (and the output's)
    key: tuple[str, ...]
    ranking: tuple[pl.Expr, ...]  # the score and null-count columns a group is ranked by
    best_row: pl.Expr  # per key group: the kept row number
    row_column: str
    count_column: str
    unparsed_scores: pl.Expr | None  # flags text scores that are not numbers
    breakdowns: tuple[str, ...]
    sort_columns: tuple[str, ...]
    partition_column: str | None  # None: the file is one partition
    notes: tuple[str, ...]

    def rows(self, partition: Partition | None = None) -> pl.LazyFrame:
        """The input rows of ``partition`` (default: all), with their places in the file
        (numbered before the filter)."""
        if partition is not None and partition.spilled_to is not None:
            return pl.scan_parquet(partition.spilled_to)  # row numbers included
        if partition is None or partition.predicate is None:
            return self.scan
        return self.scan.filter(partition.predicate)

    def groups(self, rows: pl.LazyFrame | None = None) -> pl.LazyFrame:
        """Per key group of ``rows``: the kept row number, the group size and the
        key columns the report breaks down by."""
        rows = self.scan if rows is None else rows
        by_key = [name for name in self.breakdowns if name in self.key]
        return (
            rows.with_columns(*self.ranking)
            .group_by(list(self.key))
            .agg(self.best_row.alias(self.row_column), pl.len().alias(self.count_column))
            .select(self.row_column, self.count_column, *by_key)
        )

    def kept(self, kept_rows: pl.DataFrame, rows: pl.LazyFrame | None = None) -> pl.LazyFrame:
        """``rows`` (default: all) numbered in ``kept_rows``, in the input's schema, sorted."""
        rows = self.scan if rows is None else rows
        kept = rows.join(kept_rows.lazy(), on=self.row_column, how="semi")
        # The row number breaks ties, so equal (symbol, timestamp) rows keep file order.
        return kept.sort([*self.sort_columns, self.row_column]).drop(self.row_column)


def partition_column(
    schema: pl.Schema, key: tuple[str, ...], sort_columns: tuple[str, ...]
) -> str | None:
    """The column to split by: the output's leading sort column, when it is in the key
    and its ``<=`` order is the order ``sort()`` uses (text, integers, dates and times).
    None: the file is processed as one partition."""
    if not sort_columns or sort_columns[0] not in key:
        return None
    column = sort_columns[0]
    dtype = schema[column]
    ordered = dtype == pl.String or dtype == pl.Boolean or dtype.is_integer() or dtype.is_temporal()
    return column if ordered else None


def plan_partitions(scan: pl.LazyFrame, column: str | None, rows_per_partition: int) -> Layout:
    """Contiguous ranges of ``column``'s values, in sort order, null first, each of
    about ``rows_per_partition`` rows (one value may hold more). Reads one column."""
    if rows_per_partition < 1:
        raise ValueError(f"rows_per_partition must be at least 1, not {rows_per_partition}")
    no_ranges = pl.DataFrame()
    if column is None:
        rows = scan.select(pl.len()).collect(engine="streaming").item()
        return Layout([Partition(None, rows, "all rows")] if rows else [], None, no_ranges, 1)
    schema = scan.collect_schema()
    dtype = schema[column]
    value = pl.col("value")
    counts, descents = pl.collect_all(
        [
            scan.group_by(pl.col(column).alias("value")).agg(pl.len().alias("rows")),
            scan.select((pl.col(column) < pl.col(column).shift(1)).sum()),
        ],
        engine="streaming",
    )
    # In sort order each value starts at a running row offset; a range takes the
    # values that start in one window of rows_per_partition offsets, so it holds
    # fewer than rows_per_partition rows plus those of its last value. Nulls come
    # first, alone.
    valued = pl.when(value.is_null()).then(0).otherwise(pl.col("rows"))
    counts = counts.sort("value", nulls_last=False).with_columns(
        part=pl.when(value.is_null())
        .then(-1)
        .otherwise((valued.cum_sum() - valued) // rows_per_partition)
    )
    ranges = counts.group_by("part", maintain_order=True).agg(
        value.first().alias("lo"), value.last().alias("hi"), pl.col("rows").sum()
    )
    partitions = []
    for lo, hi, rows in ranges.select("lo", "hi", "rows").iter_rows():
        if lo is None:
            predicate, label = pl.col(column).is_null(), f"{column} null"
        else:
            predicate = pl.col(column).is_between(pl.lit(lo, dtype=dtype), pl.lit(hi, dtype=dtype))
            label = f"{column} {lo!r}..{hi!r}"
        partitions.append(Partition(predicate, int(rows), label))
    part = "__dedupe_part"  # a column name the input does not use
    while part in schema:
        part = f"_{part}"
    index = counts.select(value.alias(column), (pl.col("part").rank("dense") - 1).alias(part))
    return Layout(partitions, column, index, int(descents.item() or 0) + 1)


@contextmanager
def spill_directory(output: Path) -> Iterator[Path]:
    """A fresh directory next to ``output`` for spilled partitions, removed on exit."""
    directory = output.with_name(f".{output.name}.{os.getpid()}.parts")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def spill(scan: pl.LazyFrame, layout: Layout, directory: Path) -> list[Partition]:
    """Write each partition's rows, row numbers included, to its own file in
    ``directory``: one pass over the input, a batch of rows at a time."""
    assert layout.column is not None
    with _spill_errors(directory):
        directory.mkdir(parents=True)
    paths = [directory / f"{i:05d}.parquet" for i in range(len(layout.partitions))]
    writers: dict[int, pq.ParquetWriter] = {}
    total = sum(partition.rows for partition in layout.partitions)
    try:
        for offset in range(0, total, SPILL_BATCH_ROWS):
            # Rows are numbered before the slice: the numbers are their places in the file.
            batch = scan.slice(offset, SPILL_BATCH_ROWS).collect(engine="streaming")
            batch = batch.join(
                layout.ranges, on=layout.column, how="left", nulls_equal=True, maintain_order="left"
            )
            by_part = batch.partition_by(layout.ranges.columns[1], as_dict=True, include_key=False)
            for (part,), rows in by_part.items():
                if part is None:
                    raise RowsChangedError(f"{layout.column} values appeared after the count")
                with _spill_errors(directory):
                    table = rows.to_arrow()
                    if part not in writers:
                        writers[part] = pq.ParquetWriter(
                            paths[part], table.schema, compression="lz4", use_dictionary=False
                        )
                    writers[part].write_table(table)
        with _spill_errors(directory):
            for writer in writers.values():
                writer.close()
    finally:
        for writer in writers.values():
            with suppress(OSError, pa.ArrowException):
                writer.close()  # a no-op once closed
    return [replace(p, spilled_to=path) for p, path in zip(layout.partitions, paths, strict=True)]


@contextmanager
def _spill_errors(directory: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            # A full disk or read-only folder: one line and exit 5 at the CLI.
            raise OSError(exc.errno, exc.strerror, str(directory)) from exc
        raise WriteFailedError(str(exc)) from exc


@dataclass
class Tally:
    """Report counts summed over partitions."""

    rows_in: int = 0
    rows_out: int = 0
    duplicate_groups: int = 0
    unparsed_scores: int = 0
    rows_by: dict[str, Counter[str]] = field(default_factory=dict)
    kept_by: dict[str, Counter[str]] = field(default_factory=dict)

    def add_counts(self, column: str, counts: pl.DataFrame, *, kept: bool) -> None:
        """Add ``counts`` (values, then counts) to the input or the kept rows by ``column``."""
        target = (self.kept_by if kept else self.rows_by).setdefault(column, Counter())
        for value, rows in counts.iter_rows():
            target[NULL_LABEL if value is None else str(value)] += int(rows)

    def removed_by(self, column: str) -> dict[str, tuple[int, int]]:
        """Per value of ``column``: (input rows, rows removed)."""
        rows, kept = self.rows_by.get(column, Counter()), self.kept_by.get(column, Counter())
        return {name: (n, n - kept[name]) for name, n in rows.items()}


def dedupe_partition(
    plan: DedupePlan, partition: Partition, tally: Tally, *, keep_rows: bool = True
) -> pl.DataFrame | None:
    """The kept rows of ``partition``, sorted; its counts are added to ``tally``.
    ``keep_rows=False`` (a dry run) wants the counts only: it returns None, and reads
    the partition once when the groups give every count."""
    rows = plan.rows(partition)
    # Breakdown columns in the key are counted from the groups; the others need a query.
    queries = {
        name: rows.group_by(name).agg(pl.len()) for name in plan.breakdowns if name not in plan.key
    }
    if plan.unparsed_scores is not None:
        queries[""] = rows.select(plan.unparsed_scores.sum())
    groups, *frames = pl.collect_all([plan.groups(rows), *queries.values()], engine="streaming")
    results = dict(zip(queries, frames, strict=True))
    kept = None
    if keep_rows or any(name not in plan.key for name in plan.breakdowns):
        kept = plan.kept(groups.select(plan.row_column), rows).collect(engine="streaming")
    sizes = groups[plan.count_column]
    rows_in = int(sizes.sum())
    if rows_in != partition.rows or (kept is not None and kept.height != groups.height):
        raise RowsChangedError(
            f"{partition.label}: {rows_in} rows read, {partition.rows} counted before "
            "(was the file changed during the run?)"
        )
    tally.rows_in += rows_in
    tally.rows_out += groups.height
    tally.duplicate_groups += int((sizes > 1).sum())
    for name in plan.breakdowns:
        if name in plan.key:
            tally.add_counts(
                name, groups.group_by(name).agg(pl.col(plan.count_column).sum()), kept=False
            )
        else:
            tally.add_counts(name, results[name], kept=False)
        # A group keeps one row, so a key column's kept rows are its groups.
        by_kept = groups if kept is None or name in plan.key else kept
        tally.add_counts(name, by_kept.group_by(name).len(), kept=True)
    if "" in results:
        tally.unparsed_scores += int(results[""].item() or 0)
    return kept if keep_rows else None


def _is_text(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_dictionary(dtype)
    )


class ParquetAppender:
    """Write frames one after another into one zstd Parquet file, then rename it into
    place; on any failure, or without :meth:`commit`, the temporary file is removed."""

    def __init__(self, path: Path, schema: pl.Schema) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.schema = pl.DataFrame(schema=schema).to_arrow().schema
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetAppender:
        with writing(self.path):  # a refused write names the output, not the temp file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.tmp, "wb")  # closed by commit() or __exit__
            self._writer = pq.ParquetWriter(
                self._handle,
                self.schema,
                compression="zstd",
                compression_level=ZSTD_LEVEL,
                # Like polars: dictionaries for text only (they only bloat unique numbers).
                use_dictionary=[field.name for field in self.schema if _is_text(field.type)],
            )
        return self

    def write(self, frame: pl.DataFrame) -> None:
        assert self._writer is not None, "use ParquetAppender in a with block"
        # Converted a row group at a time, so at most one extra row group is held.
        for offset in range(0, frame.height, ROW_GROUP_ROWS):
            table = frame.slice(offset, ROW_GROUP_ROWS).to_arrow()
            if not table.schema.equals(self.schema, check_metadata=False):
                table = table.cast(self.schema)
            with writing(self.path, inject=False):
                self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)

    def commit(self, expected_rows: int) -> None:
        """Finish the file, check its row count, fsync it and rename it to ``path``."""
        assert self._writer is not None and self._handle is not None
        with writing(self.path, inject=False):
            self._writer.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        # Cheap (footer only) and it guards the one promise that matters: no row lost.
        written = pq.ParquetFile(self.tmp).metadata.num_rows
        if written != expected_rows:
            raise OSError(f"wrote {written} rows, expected {expected_rows}")
        with writing(self.path, inject=False):
            os.replace(self.tmp, self.path)
            fsync_dir(self.path.parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._writer is not None:
                self._writer.close()  # a no-op once closed
        except (OSError, pa.ArrowException):
            pass  # already failing: the original error is the one to report
        finally:
            if self._handle is not None:
                self._handle.close()
            self.tmp.unlink(missing_ok=True)
