"""``intraday-events status``: a one-shot view of a run, read from its files only."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from orchestrator.observe.status import read_snapshot, render_text, snapshot_to_json
from orchestrator.run.snapshot import with_changed_inputs
from tools.cli.context import CliContext
from tools.cli.options import existing_run_layout, viewer_max_attempts_option


@click.command("status")
@click.option("--run-id", help="Run to show (default: the run whose checkpoint changed last).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option(
    "--bars",
    type=click.Path(path_type=Path, file_okay=False),
    help="Bars folder to compare the completed symbols' inputs with (default: the one the "
    "latest launch read).",
)
@viewer_max_attempts_option()
@click.pass_obj
def status(
    obj: CliContext, run_id: str | None, as_json: bool, bars: Path | None, max_attempts: int | None
) -> None:
    """Show a run's state, workers, progress, events so far and ETA (reads, never writes)."""
    layout = existing_run_layout(obj.root, run_id)
    stall = obj.config().supervision.stall_timeout_seconds
    snapshot = read_snapshot(
        layout, now=datetime.now(), max_attempts=max_attempts, stall_after_s=stall
    )
    snapshot = with_changed_inputs(snapshot, layout, bars)
    if as_json:
        click.echo(json.dumps(snapshot_to_json(snapshot), indent=1))
    else:
        click.echo(render_text(snapshot))
