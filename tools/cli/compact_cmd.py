"""``intraday-events compact``: one Parquet file per symbol from the daily bar files."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools.cli.context import CliContext
from tools.cli.options import gather_symbols
from tools.compact import CompactConfig, OnSymbol, SymbolOutcome, run_compact, tally


@click.command("compact")
@click.option(
    "--bars",
    type=click.Path(path_type=Path),
    help="Bars root to read (daily layout symbol=SYM/date=*.parquet); default bars.root "
    "of the config. Never modified.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for OUT/SYM.parquet (created if missing); not the bars root itself.",
)
@click.option(
    "--symbols",
    "symbol_args",
    multiple=True,
    help="Only these symbols (comma- or space-separated, repeatable); default every "
    "symbol under --bars.",
)
@click.option(
    "--symbols-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Only the symbols of this file (.parquet column 'symbol', .txt or .csv).",
)
@click.option("--force", is_flag=True, help="Rebuild symbols whose sources are unchanged too.")
@click.option(
    "--progress-every",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Symbols per progress line on stderr when it is not a terminal.",
)
@click.pass_obj
def compact(
    obj: CliContext,
    bars: Path | None,
    out: Path,
    symbol_args: tuple[str, ...],
    symbols_file: Path | None,
    force: bool,
    progress_every: int,
) -> None:
    """Convert each symbol's daily bar files into one sorted, month-row-grouped OUT/SYM.parquet.

    Every row and column is kept (the detector cleans when it reads); a symbol whose
    sources are unchanged since its file was written is skipped. A symbol with an
    unreadable or incompatible source file is not written and named; the others go on,
    and the exit status is then 1.
    """
    symbols: tuple[str, ...] | None = None
    if symbol_args or symbols_file is not None:
        symbols = tuple(gather_symbols(symbol_args, symbols_file))
        if not symbols:
            raise click.UsageError("no symbols in --symbols / --symbols-file")
    cfg = CompactConfig(bars=obj.bars_root(bars), out=out, symbols=symbols, force=force)
    with progress(sys.stderr.isatty(), progress_every) as on_symbol:
        report = run_compact(cfg, on_symbol)
    click.echo(report.summary())
    report.raise_for_failures()


@contextmanager
def progress(bar: bool, every: int) -> Iterator[OnSymbol]:
    """On stderr: every failure with its reason, then a rich bar on a terminal, else a line
    every ``every`` symbols."""
    console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    started = time.perf_counter()
    seen: list[SymbolOutcome] = []
    label = TextColumn("compact {task.fields[symbol]:<8}")
    columns = (label, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    display = Progress(*columns, console=console, transient=True, disable=not bar)
    task = display.add_task("symbols", total=None, symbol="")

    def on_symbol(outcome: SymbolOutcome, done: int, total: int) -> None:
        seen.append(outcome)
        if outcome.error is not None:
            console.print(f"compact: {outcome.symbol} failed: {outcome.error}")
        display.update(task, completed=done, total=total, symbol=outcome.symbol)
        if not bar and done % every == 0:
            elapsed = time.perf_counter() - started
            console.print(f"compact: {done}/{total} symbols, {tally(seen)}, {elapsed:.1f} s")

    with display:
        yield on_symbol
