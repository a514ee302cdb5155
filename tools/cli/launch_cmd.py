"""``intraday-events launch``: N supervised workers over the run's remaining symbols."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich import get_console

from detector.config import AppConfig
from detector.errors import ExitCode
from orchestrator.backends.base import BackendFactory
from orchestrator.backends.local import LocalProcesses
from orchestrator.backends.processes import no_huge_pages
from orchestrator.backends.ray_backend import RayTasks
from orchestrator.launch.launcher import LaunchConfig, Launcher
from orchestrator.launch.outcome import NotConfirmedError
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
from orchestrator.run.spec import DEFAULTS, max_attempts_of
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
    click.option(
        "--workers", type=click.IntRange(min=1), default=DEFAULTS.workers, show_default=True
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        help=f"Symbols per shard (default: the run's, else {DEFAULTS.batch_size}).",
    ),
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
        help="Failed attempts (errors or worker deaths on it) before a symbol is quarantined "
        f"(default: the run's, else {DEFAULTS.max_attempts}).",
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
        default=DEFAULTS.ray_task_retries,
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
    sys.exit(run_launch(obj, LaunchOptions(**options)))


def choose_backend(
    obj: CliContext, name: str, ray_address: str | None, ray_task_retries: int
) -> BackendFactory:
    """The backend ``--backend`` names, with its own options."""
    if name == "ray":
        return RayTasks(ray_address, ray_task_retries)
    if ray_address is not None:
        raise click.UsageError("--ray-address needs --backend ray")
    return LocalProcesses(worker_cli(obj))


@dataclass(frozen=True)
class LaunchOptions:
    """The options of ``launch`` (and ``restart --start``, ``demo``), as parsed."""

    workers: int = DEFAULTS.workers
    batch_size: int | None = None
    checkpoint_interval: int = 1  # accepted for compatibility; every commit checkpoints
    from_file: Path | None = None
    symbol_args: tuple[str, ...] = ()
    bars: Path | None = None
    run_id: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    yes: bool = False
    no_dashboard: bool = False
    force_config: bool = False
    max_attempts: int | None = None
    backend: str = "local"
    ray_address: str | None = None
    ray_task_retries: int = DEFAULTS.ray_task_retries
    retry_quarantined: bool = False
    extra_symbols: tuple[str, ...] = ()
    allow_missing: bool = False
    skip_unreadable: bool = False
    redo_changed: bool = False
    no_timezone_check: bool = False


def run_launch(obj: CliContext, opts: LaunchOptions) -> ExitCode:
    """Build the launch from the options, run it, print the summary; return the exit code."""
    no_huge_pages()  # the launcher's merge, and its workers, which inherit it
    factory = choose_backend(obj, opts.backend, opts.ray_address, opts.ray_task_retries)
    factory.check_available()  # e.g. no Ray: how to install it, before anything happens
    symbols = gather_symbols((*opts.symbol_args, *opts.extra_symbols), opts.from_file)
    check_date_range(opts.start_date, opts.end_date)
    app = obj.config()
    now = datetime.now()
    chosen = resolve_run_id(obj.root, opts.run_id, resume=True, now=now)
    layout = RunLayout(obj.root, chosen)
    setup_logging(layout.main_log(now, None, os.getpid()), console=True)
    bars_root = obj.bars_root(opts.bars).resolve()
    # The main log's first line: what this launcher was asked to do (the file only).
    log.debug(
        "launch start: run=%s root=%s bars=%s workers=%d batch_size=%s config=%s pid=%d",
        chosen, obj.root, bars_root, opts.workers, opts.batch_size or "the run's",
        run_hash(app, opts.start_date, opts.end_date), os.getpid(),
    )  # fmt: skip
    cfg = LaunchConfig(
        root=obj.root,
        run_id=chosen,
        bars_root=bars_root,
        config_path=obj.config_path,
        symbols=tuple(symbols) if symbols else None,
        workers=opts.workers,
        batch_size=opts.batch_size,
        max_attempts=opts.max_attempts,
        start_date=opts.start_date,
        end_date=opts.end_date,
        force_config=opts.force_config,
        yes=opts.yes,
        inputs=input_policy(opts.allow_missing, opts.skip_unreadable, opts.redo_changed),
        check_timezone=not opts.no_timezone_check,
        retry_quarantined=opts.retry_quarantined,
    )
    attempts = max_attempts_of(layout.spec, opts.max_attempts)
    monitor = _monitor(app, layout, dashboard=not opts.no_dashboard, max_attempts=attempts)
    launcher = Launcher(
        cfg, app, factory, confirm=_confirm, echo=click.echo, stop=StopRequest(),
        monitor=monitor, handle_signals=True,
    )  # fmt: skip
    return _launch_and_report(launcher, chosen)


def _launch_and_report(launcher: Launcher, run_id: str) -> ExitCode:
    """Run the launch and print its summary; the exit code."""
    try:
        outcome = launcher.run()
    except Exception:
        # The full traceback goes to the main log only; the CLI shows one line.
        log.debug("launcher of run %s ended by an error", run_id, exc_info=True)
        raise
    summary = format_summary(outcome)
    # Into the launcher's main log too (DEBUG: the file only), where operators grep
    # for DETECTION COMPLETE as they did in the old logs.
    log.debug("summary\n%s", summary)
    click.echo(summary)
    if outcome.environment_error:
        click.echo(f"Error: {outcome.environment_error}", err=True)
    return outcome.exit_code
