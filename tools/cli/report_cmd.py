"""``intraday-events report``: (re)build a run's HTML report from its files."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.observe.report import build_report
from tools.cli.context import CliContext
from tools.cli.options import existing_run_layout, viewer_max_attempts_option


@click.command("report")
@click.option("--run-id", help="Run to report (default: the run whose checkpoint changed last).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page here (default: logs/launch/{run_id}/report.html).",
)
@viewer_max_attempts_option()
@click.pass_obj
def report(obj: CliContext, run_id: str | None, out: Path | None, max_attempts: int | None) -> None:
    """Write one self-contained HTML page about a run (partial runs are marked as such)."""
    layout = existing_run_layout(obj.root, run_id)
    result = build_report(layout, obj.config(), out=out, max_attempts=max_attempts)
    click.echo(
        f"Report of run {layout.run_id}{' (partial)' if result.partial else ''}: {result.path} "
        f"({result.figures} figures, {result.events:,} events, "
        f"{result.bytes / 1e6:.1f} MB, {result.seconds:.2f} s)"
    )
