"""``intraday-events detect-symbol``: run the detector on one symbol and summarise."""

from __future__ import annotations

import time
from pathlib import Path

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from detector.config import config_notices
from detector.pipeline import DetectionResult, detect_symbol_result
from detector.symbols import validate_symbol
from orchestrator.run.atomic_io import write_parquet_atomic
from tools.cli.context import CliContext


@click.command("detect-symbol")
@click.argument("symbol")
@click.option("--bars", type=click.Path(file_okay=False, path_type=Path), help="Bars root.")
@click.option("--raw", is_flag=True, help="Raw candidates, before cooldowns and caps.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write events here.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Detect without unreadable bar files (named on stderr) instead of failing (exit 3).",
)
@click.pass_obj
def detect_symbol(
    obj: CliContext,
    symbol: str,
    bars: Path | None,
    raw: bool,
    out: Path | None,
    skip_unreadable: bool,
) -> None:
    """Detect the events of one SYMBOL and print a summary."""
    symbol = validate_symbol(symbol.strip())
    config = obj.config()
    for notice in config_notices(config.detector):
        click.echo(f"notice: {notice}", err=True)
    started = time.perf_counter()
    result = detect_symbol_result(
        symbol, obj.bars_root(bars), config, raw=raw, skip_unreadable=skip_unreadable
    )
    elapsed = time.perf_counter() - started
    for path in result.stats.files_skipped:
        click.echo(f"skipped unreadable bar file {path}", err=True)
    if out is not None:
        write_parquet_atomic(result.events, out)
    Console().print(summary_table(result, elapsed, raw=raw, out=out))
    zone = result.stats.zone
    if zone is not None and not zone.fits:
        click.echo(
            f"suspect time zone: the volume peaks sit on the 09:30/16:00 auctions only once "
            f"shifted by {zone.note()} ({zone.describe()}); "
            "check intraday_events.bars.naive_timezone",
            err=True,
        )


def summary_table(result: DetectionResult, elapsed: float, *, raw: bool, out: Path | None) -> Table:
    events = result.events
    stats = result.stats
    title = f"{result.symbol}: {events.height} {'candidates' if raw else 'events'}"
    caption = (
        f"{result.bars:,} bars kept of {stats.rows_read:,} read from {stats.files_read} files"
        f" ({stats.rows_dropped:,} dropped, {len(stats.files_skipped)} files skipped)"
        f" in {elapsed * 1000:.0f} ms" + (f"; written to {out}" if out else "")
    )
    table = Table(title=title, caption=caption)
    table.add_column("event_type")
    table.add_column("up", justify="right")
    table.add_column("down", justify="right")
    table.add_column("days", justify="right")
    counts = (
        events.group_by("event_type")
        .agg(
            up=(pl.col("direction") == "up").sum(),
            down=(pl.col("direction") == "down").sum(),
            days=pl.col("date").n_unique(),
        )
        .sort("event_type")
    )
    for row in counts.iter_rows(named=True):
        table.add_row(row["event_type"], str(row["up"]), str(row["down"]), str(row["days"]))
    return table
