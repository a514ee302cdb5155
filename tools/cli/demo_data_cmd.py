"""``intraday-events demo-data``: write synthetic small-cap bars in the users' layout."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Literal

import click

from tools.demo.data import DemoDataSpec, generate_demo_bars


@click.command("demo-data")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bars root to write (created if missing; files of the same name are replaced).",
)
@click.option("--symbols", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--days", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--layout",
    default="daily",
    show_default=True,
    type=click.Choice(["daily", "symbol"]),
    help="daily: symbol=SYM/date=YYYY-MM-DD.parquet (UTC dates); symbol: SYM.parquet.",
)
def demo_data(
    out: Path, symbols: int, days: int, seed: int, layout: Literal["daily", "symbol"]
) -> None:
    """Generate demo 1-minute bars on which every detector fires."""
    spec = DemoDataSpec(out=out, symbols=symbols, days=days, seed=seed, layout=layout)
    started = time.perf_counter()
    summary = generate_demo_bars(spec, progress=sys.stderr.isatty())
    elapsed = time.perf_counter() - started
    click.echo(
        f"demo-data: {len(summary.symbols)} symbols, {summary.symbol_days:,} symbol-days, "
        f"{summary.bars:,} bars, {summary.files:,} files in {elapsed:.1f} s -> {out}"
    )
