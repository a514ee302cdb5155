"""``intraday-events dashboard``: the live view of a run, from its files only."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from orchestrator.observe.dashboard_live import KeyReader, LiveView, ViewOptions, watch
from orchestrator.run.layout import RunLayout
from tools.cli.context import CliContext
from tools.cli.options import viewed_run_id, viewer_max_attempts_option


@click.command("dashboard")
@click.option("--run-id", help="Run to watch (default: the run whose checkpoint changed last).")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between redraws.",
)
@click.option("--once", is_flag=True, help="Draw one frame and exit (also without a terminal).")
@viewer_max_attempts_option()
@click.pass_obj
def dashboard(
    obj: CliContext, run_id: str | None, refresh: float, once: bool, max_attempts: int | None
) -> None:
    """Watch a running or finished run; q or Ctrl-C quits the view, never the run."""
    layout = RunLayout(obj.root, viewed_run_id(obj.root, run_id))
    one_frame = once or not sys.stdout.isatty()
    options = ViewOptions(
        stall_after_s=obj.config().supervision.stall_timeout_seconds,
        max_attempts=max_attempts,
        footer="" if one_frame else "q or Ctrl-C quits the view; the run goes on",
    )
    console = Console()
    view = LiveView(layout, console, options)
    if one_frame:
        # One frame, drawn as plain text when not on a terminal (e.g. into a file).
        view.start()
        view.refresh()
        view.stop()
        if not console.is_terminal:
            console.line()  # rich ends the last line itself only on a terminal
        return
    watch(view, KeyReader(), refresh)
