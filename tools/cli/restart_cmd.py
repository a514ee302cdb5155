"""``intraday-events restart``: stop a run's recorded processes, clear what they left."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from orchestrator.backends.cleanup import remove_orphan_temps, stop_recorded_processes
from orchestrator.run.layout import RunLayout
from orchestrator.run.select import existing_run, resolve_run_id
from tools.cli.context import CliContext
from tools.cli.launch_cmd import LaunchOptions, launch_options, run_launch


@click.command("restart")
@click.option("--start", is_flag=True, help="Then launch the run again (launch options apply).")
@launch_options
@click.pass_obj
def restart(obj: CliContext, start: bool, **options: Any) -> None:
    """Stop the run's processes (checked against their PID files), remove PID files of
    dead processes and orphan temporary shards; with --start, launch again."""
    if options["run_id"] is not None:
        layout = existing_run(obj.root, options["run_id"])
    else:
        layout = RunLayout(
            obj.root, resolve_run_id(obj.root, None, resume=True, now=datetime.now())
        )
    run_id = layout.run_id
    report = stop_recorded_processes(layout, grace=obj.config().supervision.stop_grace_seconds)
    lines = [*report.lines(), *remove_orphan_temps(layout)]
    click.echo(f"restart {run_id}:" + ("" if lines else " nothing to stop or remove"))
    for line in lines:
        click.echo(f"  {line}")
    if start:
        sys.exit(run_launch(obj, LaunchOptions(**{**options, "run_id": run_id})))
