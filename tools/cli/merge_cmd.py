"""``intraday-events merge``: rebuild a run's final file from its committed shards."""

from __future__ import annotations

import click

from orchestrator.launch.summary import format_merged
from orchestrator.run.final_merge import merge_run
from tools.cli.context import CliContext
from tools.cli.options import existing_run_layout, viewer_max_attempts_option


@click.command("merge")
@click.option("--run-id", help="Run to merge (default: the run whose checkpoint changed last).")
@click.option(
    "--partial",
    is_flag=True,
    help="Merge even though some symbols are not completed (or quarantined).",
)
@viewer_max_attempts_option()
@click.pass_obj
def merge(obj: CliContext, run_id: str | None, partial: bool, max_attempts: int | None) -> None:
    """Rebuild processed/events/{run_id}.parquet from the committed shards (as launch does)."""
    layout = existing_run_layout(obj.root, run_id)
    report = merge_run(layout, max_attempts=max_attempts, partial=partial, app=obj.config())
    shards = report.merged.shards
    click.echo(
        f"Merged {shards} committed shard{'' if shards == 1 else 's'} of run {layout.run_id}: "
        f"{report.completed:,} of {report.universe:,} symbols completed"
        + (f", {len(report.left):,} not completed" if report.left else "")
        + (f", {len(report.quarantined):,} quarantined" if report.quarantined else "")
        + (f", {len(report.no_bars):,} without bar files (no_bars)" if report.no_bars else "")
    )
    for line in format_merged(report.merged):
        click.echo(line)
