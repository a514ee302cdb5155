"""``intraday-events show``: one event (or a run's top events) in context, as HTML."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.observe.event_figure import context_sections
from orchestrator.observe.event_view import (
    ShowError,
    event_context,
    parse_when,
    top_events,
)
from orchestrator.observe.html_page import figure_count, page, write_page
from orchestrator.observe.run_data import load_events
from tools.cli.context import CliContext
from tools.cli.options import existing_run_layout


@click.command("show")
@click.argument("symbol", required=False)
@click.argument("timestamp", required=False)
@click.option(
    "--minutes",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Bars this many minutes either side of the time.",
)
@click.option("--top", type=click.IntRange(min=1), help="The run's N best events by score.")
@click.option("--type", "event_type", help="With --top: only events of this type.")
@click.option("--run-id", help="With --top: the run (default: the newest).")
@click.option(
    "--bars",
    type=click.Path(file_okay=False, path_type=Path),
    help="Bars directory (default: bars.root under --root).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here (default under logs/show/).",
)
@click.pass_obj
def show(
    obj: CliContext,
    symbol: str | None,
    timestamp: str | None,
    minutes: int,
    top: int | None,
    event_type: str | None,
    run_id: str | None,
    bars: Path | None,
    out: Path | None,
) -> None:
    """SYM TIMESTAMP (New York time unless it has a zone), or --top N: candlesticks and
    volume around the event with what the detector saw, in one self-contained HTML file."""
    app = obj.config()
    bars_root = obj.bars_root(bars)
    if top is not None:
        if symbol or timestamp:
            raise ShowError("give either SYM TIMESTAMP or --top N, not both")
        layout = existing_run_layout(obj.root, run_id)
        best = top_events(load_events(layout), top, event_type)
        if best.height == 0:
            raise ShowError(
                f"run {layout.run_id} has no events{' of ' + event_type if event_type else ''}"
            )
        targets = [(r["symbol"], r["timestamp_et"]) for r in best.iter_rows(named=True)]
        title = f"Top {best.height} events of run {layout.run_id}" + (
            f" ({event_type})" if event_type else ""
        )
        default = (
            obj.root
            / "logs"
            / "show"
            / f"{layout.run_id}_top{top}{'_' + event_type if event_type else ''}.html"
        )
    else:
        if not symbol or not timestamp:
            raise ShowError("give SYM TIMESTAMP (e.g. ABC '2025-03-04 10:31'), or --top N")
        when = parse_when(timestamp)
        targets = [(symbol.upper(), when)]
        title = f"{symbol.upper()} at {when:%Y-%m-%d %H:%M} ET"
        default = obj.root / "logs" / "show" / f"{symbol.upper()}_{when:%Y%m%d_%H%M}.html"
    contexts = [event_context(s, t, bars_root, app, minutes=minutes) for s, t in targets]
    sections = context_sections(contexts)
    path = out or default
    write_page(path, page(title, sections))
    events = sum(c.events.height for c in contexts)
    click.echo(f"{path} ({figure_count(sections)} figures, {events} events in the windows)")
