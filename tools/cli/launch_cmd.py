"""``intraday-events launch``: N supervised workers over the run's remaining symbols."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich import get_console

from detector.config import AppConfig
from detector.errors import ExitCode
from orchestrator.backends.ray_backend import import_ray
from orchestrator.launch.launcher import LaunchConfig, Launcher, NotConfirmedError
from orchestrator.launch.summary import format_summary
from orchestrator.observe.dashboard_live import (
    InlineDashboard,
    KeyReader,
    LiveView,
    ViewOptions,
    in_foreground,
)
from orchestrator.observe.monitors import Monitor, ProgressLines
from orchestrator.run.layout import RunLayout
from orchestrator.run.logs import setup_logging
from orchestrator.run.plan import Plan
from orchestrator.run.select import resolve_run_id
from orchestrator.worker.loop import run_hash
from orchestrator.worker.stopping import StopRequest
from tools.cli.context import CliContext
from tools.cli.options import (
    check_date_range,
    date_option,
    gather_symbols,
    input_options,
    input_policy,
)

log = logging.getLogger(__name__)


def worker_cli(obj: CliContext) -> tuple[str, ...]:
    """The command line a worker runs: this interpreter, this CLI, the same root and config."""
    argv = [sys.executable, "-m", "tools", "--root", str(obj.root)]
    if obj.config_path is not None:
        argv += ["--config", str(obj.config_path.resolve())]
    return tuple(argv)


def _confirm(plan: Plan) -> bool:
    if not sys.stdin.isatty():
        raise NotConfirmedError(
            "no terminal to confirm the plan on: pass --yes to launch without asking"
        )
    return click.confirm(f"Start {len(plan.assignments)} workers?", default=True)


DASHBOARD_REFRESH_S = 1.0


def _monitor(app: AppConfig, layout: RunLayout, *, dashboard: bool, max_attempts: int) -> Monitor:
    """The live dashboard when stdout is a terminal (unless turned off), else progress lines."""
    lines = ProgressLines(
        layout,
        click.echo,
        interval_s=app.supervision.progress_interval_seconds,
        max_attempts=max_attempts,
    )
    if not dashboard or not sys.stdout.isatty() or not in_foreground(sys.stdout):
        # A launch started with `&` draws nothing over the user's shell.
        return lines
    options = ViewOptions(
        stall_after_s=app.supervision.stall_timeout_seconds,
        max_attempts=max_attempts,
        footer="q closes this view (the run goes on) · Ctrl-C stops the run (resume with launch)",
    )
    # The console rich's log handler prints to, so that log records land above the view.
    view = LiveView(layout, get_console(), options)
    return InlineDashboard(
        view, KeyReader(), refresh_s=DASHBOARD_REFRESH_S, fallback=lines, echo=click.echo
    )


_LAUNCH_OPTIONS = [
    click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True),
    click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True),
    click.option(
        "--checkpoint-interval",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Accepted for compatibility: every shard commit updates the checkpoint.",
    ),
    click.option(
        "--from-file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help=".parquet (column symbol) or .txt/.csv; default: the run's symbols, else "
        "processed/reference/symbols_with_1m.parquet, else every symbol under the bars root.",
    ),
    click.option(
        "--symbols", "symbol_args", multiple=True, help="Symbols (repeat or space-separate)."
    ),
    click.option("--bars", type=click.Path(file_okay=False, path_type=Path), help="Bars root."),
    click.option("--run-id", help="Run to start or continue (default: the newest unfinished one)."),
    date_option("--start-date", "First ET trading day of events."),
    date_option("--end-date", "Last ET trading day of events."),
    click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
    click.option(
        "--no-dashboard",
        is_flag=True,
        help="Print progress lines instead of the live view (always so without a terminal).",
    ),
    click.option("--force-config", is_flag=True, help="Continue even though the config changed."),
    click.option(
        "--max-attempts",
        type=click.IntRange(min=1),
        default=3,
        show_default=True,
        help="Failed attempts (errors or worker deaths on it) before a symbol is quarantined.",
    ),
    click.option(
        "--retry-quarantined",
        is_flag=True,
        help="Give the run's quarantined symbols another --max-attempts attempts "
        "(recorded in the checkpoint).",
    ),
    click.option(
        "--backend",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="local: worker processes on this machine; ray: tasks on a Ray cluster "
        "(needs the ray extra; see docs/cluster.md).",
    ),
    click.option(
        "--ray-address",
        metavar="auto|local|ray://HOST:PORT",
        help="With --backend ray: the cluster to use (auto: the running one; local: start one "
        "here). Default: RAY_ADDRESS, else a running local cluster, else a new one.",
    ),
    click.option(
        "--ray-task-retries",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="With --backend ray: times Ray sends a task again when its process or node dies.",
    ),
    click.option(
        "--no-timezone-check",
        is_flag=True,
        help="Start even when the volume peaks of a sample of symbols are not on the "
        "09:30/16:00 auctions in the configured time zone (intraday_events.bars.naive_timezone).",
    ),
    # `--symbols A B` as detect takes it: symbols after the first are arguments.
    click.argument("extra_symbols", nargs=-1),
]


def launch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``launch``, shared with ``restart --start``."""
    command = input_options(command)
    for option in reversed(_LAUNCH_OPTIONS):
        command = option(command)
    return command


@click.command("launch")
@launch_options
@click.pass_obj
def launch(obj: CliContext, **options: Any) -> None:
    """Split the remaining symbols over N supervised workers; merge once at the end."""
    sys.exit(run_launch(obj, **options))


def run_launch(
    obj: CliContext,
    *,
    workers: int,
    batch_size: int,
    checkpoint_interval: int,
    from_file: Path | None,
    symbol_args: tuple[str, ...],
    bars: Path | None,
    run_id: str | None,
    start_date: date | None,
    end_date: date | None,
    yes: bool,
    no_dashboard: bool,
    force_config: bool,
    max_attempts: int,
    backend: str,
    ray_address: str | None,
    ray_task_retries: int,
    retry_quarantined: bool = False,
    extra_symbols: tuple[str, ...] = (),
    allow_missing: bool = False,
    skip_unreadable: bool = False,
    redo_changed: bool = False,
    no_timezone_check: bool = False,
) -> ExitCode:
    """Build the launch from the options, run it, print the summary; return the exit code."""
    if backend == "ray":
        import_ray()  # not installed: how to install it, before anything else happens
    elif ray_address is not None:
        raise click.UsageError("--ray-address needs --backend ray")
    symbols = gather_symbols((*symbol_args, *extra_symbols), from_file)
    check_date_range(start_date, end_date)
    app = obj.config()
    now = datetime.now()
    chosen = resolve_run_id(obj.root, run_id, resume=True, now=now)
    setup_logging(RunLayout(obj.root, chosen).main_log(now, None, os.getpid()), console=True)
    bars_root = obj.bars_root(bars).resolve()
    # The main log's first line: what this launcher was asked to do (the file only).
    log.debug(
        "launch start: run=%s root=%s bars=%s workers=%d batch_size=%d config=%s pid=%d",
        chosen, obj.root, bars_root, workers, batch_size,
        run_hash(app, start_date, end_date), os.getpid(),
    )  # fmt: skip
    cfg = LaunchConfig(
        root=obj.root,
        run_id=chosen,
        bars_root=bars_root,
        worker_cli=worker_cli(obj),
        symbols=tuple(symbols) if symbols else None,
        workers=workers,
        batch_size=batch_size,
        max_attempts=max_attempts,
        start_date=start_date,
        end_date=end_date,
        force_config=force_config,
        yes=yes,
        backend="ray" if backend == "ray" else "local",
        ray_address=ray_address,
        ray_task_retries=ray_task_retries,
        inputs=input_policy(allow_missing, skip_unreadable, redo_changed),
        check_timezone=not no_timezone_check,
        retry_quarantined=retry_quarantined,
    )
    launcher = Launcher(
        cfg,
        app,
        confirm=_confirm,
        echo=click.echo,
        stop=StopRequest(),
        monitor=_monitor(
            app, RunLayout(obj.root, chosen), dashboard=not no_dashboard, max_attempts=max_attempts
        ),
        handle_signals=True,
    )
    try:
        outcome = launcher.run()
    except Exception:
        # The full traceback goes to the main log only; the CLI shows one line.
        log.debug("launcher of run %s ended by an error", chosen, exc_info=True)
        raise
    summary = format_summary(outcome)
    # Into the launcher's main log too (DEBUG: the file only), where operators grep
    # for DETECTION COMPLETE as they did in the old logs.
    log.debug("summary\n%s", summary)
    click.echo(summary)
    if outcome.environment_error:
        click.echo(f"Error: {outcome.environment_error}", err=True)
    return outcome.exit_code
