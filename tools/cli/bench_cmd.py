"""``intraday-events bench``: read vs detect, 1 vs N workers, overhead, RSS, projection;
with ``--bars DIR``, read vs detect alone on the user's bars."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from tools.bench.bars_run import BarsBenchSpec
from tools.bench.bars_text import bars_output
from tools.bench.report import build_report
from tools.bench.run import BenchSpec, run_bench
from tools.bench.text import format_text, report_json
from tools.cli.context import CliContext

DEMO_SYMBOLS = 20
DEMO_ONLY = ("days", "keep", "workers_max", "long_days")  # options --bars refuses


def _note(line: str) -> None:
    click.echo(line, err=True)


@click.command("bench")
@click.option(
    "--bars",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="Measure only read vs detect_symbol (step 1) on the bars under DIR (either layout, "
    "or both), read with --config (bars.naive_timezone for naive timestamps); no launches, "
    "no generated data, nothing written under DIR.",
)
@click.option(
    "--symbols",
    type=click.IntRange(min=1),
    default=None,
    help=f"Demo symbols (default {DEMO_SYMBOLS}, at least 2); launches and the bare loop also "
    "run over the first half of them, to split wall time into fixed seconds and seconds per "
    "symbol. With --bars: measure only the first N of DIR's symbols, sorted by name across "
    "both layouts (default: all).",
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
    "launch, bare loop and long detect worker; every figure shows min / median / max over "
    "them, and the targets are judged on the median.",
)
@click.option(
    "--long-days",
    type=click.IntRange(min=1),
    default=750,
    show_default=True,
    help="Days of the one demo symbol a single detect worker runs on, for the peak worker "
    "RSS target (generated once, kept under --keep).",
)
@click.pass_context
def bench(
    ctx: click.Context,
    bars: Path | None,
    symbols: int | None,
    days: int,
    keep: Path | None,
    as_json: bool,
    workers_max: int,
    repeat: int,
    long_days: int,
) -> None:
    """Measure the detector and the orchestrator on demo bars; print the numbers.

    With --bars DIR: only the detector's read vs detect on the bars under DIR.
    Exits 0 whatever the numbers are: the issue's targets are shown, not enforced.
    """
    obj: CliContext = ctx.obj
    if bars is not None:
        given = [n for n in DEMO_ONLY if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]
        if given:
            flags = ", ".join("--" + n.replace("_", "-") for n in given)
            raise click.UsageError(f"{flags}: not with --bars (it measures only step 1)")
        spec_bars = BarsBenchSpec(bars=bars, repeat=repeat, symbols=symbols)
        click.echo(bars_output(spec_bars, obj.config(), as_json, _note))
        return
    if symbols == 1:
        raise click.BadParameter("the demo bench needs at least 2", param_hint="--symbols")
    spec = BenchSpec(
        symbols=symbols or DEMO_SYMBOLS,
        days=days,
        repeat=repeat,
        workers_max=workers_max,
        keep=keep,
        long_days=long_days,
    )
    result = run_bench(spec, obj.config(), obj.config_path, _note)
    report = build_report(result)
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        click.echo(format_text(report))
