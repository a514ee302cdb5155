"""``intraday-events dedupe``: keep one row per event key, the best one, and report."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from detector.schema import EVENT_KEY
from tools.dedupe.core import DedupeConfig, DedupeReport, GroupCount, default_output, run_dedupe
from tools.dedupe.partitions import DEFAULT_PARTITION_ROWS


def _key(_: click.Context, __: click.Parameter, value: str) -> tuple[str, ...]:
    names = [name.strip() for name in value.split(",")]
    if not value.strip() or any(not name for name in names):
        raise click.BadParameter(f"{value!r}: give column names separated by commas")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise click.BadParameter(f"column repeated in the key: {', '.join(repeated)}")
    return tuple(names)


@click.command("dedupe")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Events Parquet file to deduplicate (never modified).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deduplicated file (default: INPUT_STEM.dedup.parquet next to the input); "
    "its stats go to OUTPUT.stats.json.",
)
@click.option("--dry-run", is_flag=True, help="Only report: write nothing at all.")
@click.option(
    "--key",
    default=",".join(EVENT_KEY),
    show_default=True,
    callback=_key,
    help="Comma-separated columns that identify one event.",
)
@click.option(
    "--partition-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_PARTITION_ROWS,
    show_default=True,
    help="Rows deduplicated at a time (whole symbols): peak memory grows with this, "
    "not with the file (about 1 GB at the default).",
)
def dedupe(
    input_path: Path,
    output: Path | None,
    dry_run: bool,
    key: tuple[str, ...],
    partition_rows: int,
) -> None:
    """Keep one row per KEY: highest score (numeric), then fewest nulls, then first in file."""
    cfg = DedupeConfig(
        input=input_path,
        output=output if output is not None else default_output(input_path),
        key=key,
        dry_run=dry_run,
        rows_per_partition=partition_rows,
    )
    report = run_dedupe(cfg)
    console = Console()
    for table in report_tables(report):
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    if report.dry_run:
        console.print(f"dry run: nothing written (would write {report.output})", highlight=False)
    else:
        console.print(f"wrote {report.output} and {report.stats_path}", highlight=False)


def report_tables(report: DedupeReport) -> list[Table]:
    summary = Table(title=f"dedupe {report.input.name} by {', '.join(report.key)}")
    for column in ("rows in", "rows out", "duplicate groups", "duplicate rows", "%"):
        summary.add_column(column, justify="right")
    summary.add_row(
        f"{report.rows_in:,}",
        f"{report.rows_out:,}",
        f"{report.duplicate_groups:,}",
        f"{report.duplicate_rows:,}",
        f"{report.duplicate_pct:.2f}",
    )
    tables = [summary]
    if report.by_event_type:
        tables.append(_breakdown("event_type", report.by_event_type.items()))
    if report.top_symbols:
        tables.append(_breakdown("symbol", report.top_symbols, title="top symbols by duplicates"))
    return tables


def _breakdown(
    label: str, rows: Iterable[tuple[str, GroupCount]], title: str | None = None
) -> Table:
    table = Table(title=title)
    table.add_column(label)
    for column in ("rows", "duplicate rows", "%"):
        table.add_column(column, justify="right")
    for name, count in rows:
        pct = 100.0 * count.duplicate_rows / count.rows if count.rows else 0.0
        table.add_row(name, f"{count.rows:,}", f"{count.duplicate_rows:,}", f"{pct:.2f}")
    return table
