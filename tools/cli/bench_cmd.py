"""``intraday-events bench``: read vs detect, 1 vs N workers, overhead, RSS, projection."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tools.bench.report import build_report
from tools.bench.run import BenchSpec, run_bench
from tools.bench.text import format_text, report_json
from tools.cli.context import CliContext


@click.command("bench")
@click.option(
    "--symbols",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="Demo symbols; launches and the bare loop also run over the first half of them, "
    "to split wall time into fixed seconds and seconds per symbol.",
)
@click.option("--days", type=click.IntRange(min=1), default=250, show_default=True)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the generated bars in DIR (daily/, symbol/, and long/ for --long-days) and "
    "reuse them when a later bench asks for the same size; default: a temporary directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--workers-max",
    type=click.IntRange(min=2),
    default=2,
    show_default=True,
    help="Launches run with 1, 2 and this many workers (each over all the symbols and over "
    "the first half).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed passes of the in-process read / detect_symbol measurement, and runs of each "
    "launch and bare loop (the best is kept).",
)
@click.option(
    "--long-days",
    type=click.IntRange(min=1),
    default=750,
    show_default=True,
    help="Days of the one demo symbol a single detect worker runs on, for the peak worker "
    "RSS target (generated once, kept under --keep).",
)
@click.pass_obj
def bench(
    obj: CliContext,
    symbols: int,
    days: int,
    keep: Path | None,
    as_json: bool,
    workers_max: int,
    repeat: int,
    long_days: int,
) -> None:
    """Measure the detector and the orchestrator on demo bars; print the numbers.

    Exits 0 whatever the numbers are: the issue's targets are shown, not enforced.
    """
    spec = BenchSpec(
        symbols=symbols,
        days=days,
        repeat=repeat,
        workers_max=workers_max,
        keep=keep,
        long_days=long_days,
    )
    result = run_bench(spec, obj.config(), obj.config_path, lambda line: click.echo(line, err=True))
    report = build_report(result)
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        click.echo(format_text(report))
