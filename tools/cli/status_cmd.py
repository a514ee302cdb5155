"""``intraday-events status``: a one-shot view of a run, read from its files only."""

from __future__ import annotations

import json
from datetime import datetime

import click

from detector.run_layout import RunLayout, is_valid_run_id
from detector.run_select import InvalidRunIdError
from orchestrator.run_status import newest_run_id, read_snapshot, render_text, snapshot_to_json
from tools.cli.context import CliContext


@click.command("status")
@click.option("--run-id", help="Run to show (default: the run whose checkpoint changed last).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Failed attempts after which a symbol counts as quarantined (as given to detect).",
)
@click.pass_obj
def status(obj: CliContext, run_id: str | None, as_json: bool, max_attempts: int) -> None:
    """Show a run's state, workers, progress, events so far and ETA (reads, never writes)."""
    if run_id is None:
        run_id = newest_run_id(obj.root)
    elif not is_valid_run_id(run_id):
        raise InvalidRunIdError(run_id)
    snapshot = read_snapshot(
        RunLayout(obj.root, run_id), now=datetime.now(), max_attempts=max_attempts
    )
    if as_json:
        click.echo(json.dumps(snapshot_to_json(snapshot), indent=1))
    else:
        click.echo(render_text(snapshot))
