"""``intraday-events detect``: one durable worker process."""

from __future__ import annotations

import logging
import os
import sys
from datetime import date, datetime
from pathlib import Path

import click

from detector.config import config_notices
from detector.errors import ExitCode
from detector.zone_sample import check_bars_zone
from orchestrator.backends.processes import no_huge_pages
from orchestrator.launch.summary import SUSPECTS_SHOWN, format_inputs
from orchestrator.run.layout import RunLayout
from orchestrator.run.logs import setup_logging
from orchestrator.run.select import resolve_run_id
from orchestrator.run.spec import DEFAULTS, read_spec
from orchestrator.worker.loop import Worker, WorkerConfig
from orchestrator.worker.stopping import StopRequest
from tools.cli.context import CliContext
from tools.cli.options import (
    check_date_range,
    date_option,
    gather_symbols,
    input_options,
    input_policy,
)


@click.command("detect")
@click.option("--symbols", "symbol_args", multiple=True, help="Symbols (repeat or space-separate).")
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=".parquet (column symbol) or .txt/.csv, one symbol per line.",
)
@click.option("--bars", type=click.Path(file_okay=False, path_type=Path), help="Bars root.")
@click.option("--run-id", help="Run to start or continue (default: see --resume).")
@click.option("--limit", type=click.IntRange(min=1), help="Process at most N symbols.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True
)
@click.option(
    "--checkpoint-interval",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Accepted for compatibility: every shard commit updates the checkpoint.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run (the newest unfinished one "
    "when --run-id is not given); a run that does not exist yet is started.",
)
@click.option("--worker-id", type=click.IntRange(min=0), help="Worker number within a launch.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Shard directory (default processed/events/shards[/worker_K]).",
)
@date_option("--start-date", "First ET trading day of events.")
@date_option("--end-date", "Last ET trading day of events.")
@click.option("--no-merge", is_flag=True, help="Do not merge the final file at the end.")
@click.option(
    "--force-config",
    is_flag=True,
    help="Resume even though the detector config changed (recorded).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_attempts,
    show_default=True,
    help="Failed attempts before a symbol is quarantined.",
)
@input_options
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Work for a launched run: every parameter (run, bars, config, batch size, "
    "attempts, dates, input policy) from its spec file; give the symbols and --worker-id.",
)
@click.option(
    "--inputs-checked",
    is_flag=True,
    hidden=True,
    help="The launcher looked for every symbol's bar files: do not refuse on missing ones.",
)
@click.option(
    "--parent-pid",
    type=click.IntRange(min=1),
    hidden=True,
    help="Stop (committing what is detected) as soon as this parent process is gone.",
)
@click.option(
    "--no-timezone-check",
    is_flag=True,
    help="Start even when the volume peaks of a sample of the symbols are not on the "
    "09:30/16:00 auctions in the configured time zone (intraday_events.bars.naive_timezone).",
)
@click.argument("extra_symbols", nargs=-1)
@click.pass_obj
def detect(
    obj: CliContext,
    symbol_args: tuple[str, ...],
    from_file: Path | None,
    bars: Path | None,
    run_id: str | None,
    limit: int | None,
    batch_size: int,
    checkpoint_interval: int,
    resume: bool,
    worker_id: int | None,
    output_dir: Path | None,
    start_date: date | None,
    end_date: date | None,
    no_merge: bool,
    force_config: bool,
    max_attempts: int,
    allow_missing: bool,
    skip_unreadable: bool,
    redo_changed: bool,
    spec_file: Path | None,
    inputs_checked: bool,
    parent_pid: int | None,
    no_timezone_check: bool,
    extra_symbols: tuple[str, ...],
) -> None:
    """Detect events for many symbols, in durable batches (one Parquet shard per batch)."""
    symbols = gather_symbols((*symbol_args, *extra_symbols), from_file)
    if not symbols:
        raise click.UsageError("no symbols: give --symbols A B ... or --from-file F")
    now = datetime.now()
    if spec_file is not None:
        obj, cfg = _launched_worker(obj, spec_file, tuple(symbols), worker_id)
    else:
        check_date_range(start_date, end_date)
        bars_root = obj.bars_root(bars)
        if not no_timezone_check:
            # Before any run file exists: a refusal leaves nothing behind.
            check_bars_zone(bars_root, symbols, obj.config().bars.naive_timezone)
        cfg = WorkerConfig(
            root=obj.root,
            run_id=resolve_run_id(obj.root, run_id, resume=resume, now=now),
            symbols=tuple(symbols),
            bars_root=bars_root,
            batch_size=batch_size,
            limit=limit,
            resume=resume,
            worker_id=worker_id,
            output_dir=output_dir,
            start_date=start_date,
            end_date=end_date,
            merge=not no_merge,
            force_config=force_config,
            max_attempts=max_attempts,
            inputs=input_policy(allow_missing, skip_unreadable, redo_changed),
            inputs_checked=inputs_checked,
            save_spec=True,
            config_path=obj.config_path,
        )
    _run_worker(obj, cfg, now, parent_pid)


def _launched_worker(
    obj: CliContext, spec_file: Path, symbols: tuple[str, ...], worker_id: int | None
) -> tuple[CliContext, WorkerConfig]:
    """A launched worker's context and config, everything from the run's spec: the
    launcher already checked the zone and looked for every symbol's bar files."""
    spec = read_spec(spec_file)
    if spec is None:
        raise click.UsageError(f"no spec file {spec_file}")
    cfg = WorkerConfig(
        root=obj.root,
        run_id=spec.run_id,
        symbols=symbols,
        bars_root=spec.bars_root,
        batch_size=spec.batch_size,
        resume=True,
        worker_id=worker_id,
        start_date=spec.start_date,
        end_date=spec.end_date,
        merge=False,  # the launcher merges once every worker is done
        max_attempts=spec.max_attempts,
        inputs=spec.inputs,
        inputs_checked=True,
    )
    return CliContext(obj.root, spec.config_path), cfg


def _run_worker(obj: CliContext, cfg: WorkerConfig, now: datetime, parent_pid: int | None) -> None:
    """Run the worker; print its outcome; exit non-zero when stopped or a symbol failed."""
    no_huge_pages()  # a bounded, repeatable peak RSS (see the function)
    app = obj.config()
    layout = RunLayout(obj.root, cfg.run_id)
    setup_logging(layout.main_log(now, cfg.worker_id, os.getpid()), console=True)
    for notice in config_notices(app.detector):
        logging.getLogger("detector").info("%s", notice)
    stop = StopRequest()
    stop.install_signal_handlers()
    if parent_pid is not None:
        stop.watch_parent(parent_pid)
    outcome = Worker(cfg, app, stop=stop).run()
    if outcome.merged is not None:  # the run is complete: its report, as launch writes it
        # Imported here: plotly is for the one worker that completes a run, not every one.
        from orchestrator.observe.report import report_at_end

        click.echo(report_at_end(layout, app, max_attempts=cfg.max_attempts), err=True)
    for line in format_inputs(outcome.no_bars, outcome.skipped_files):
        click.echo(line, err=True)
    if outcome.suspect_timezone:
        click.echo(
            f"{len(outcome.suspect_timezone)} symbols have their volume peaks off the "
            "09:30/16:00 auctions (events written, recorded as suspect_timezone in the "
            "checkpoint; check intraday_events.bars.naive_timezone): "
            + " ".join(outcome.suspect_timezone[:SUSPECTS_SHOWN]),
            err=True,
        )
    if outcome.stopped:
        click.echo(f"stopped: {outcome.stopped}; continue with --resume", err=True)
        sys.exit(stop.exit_code)
    if outcome.failed:
        click.echo(
            f"{len(outcome.failed)} symbols failed (retried on --resume): "
            + " ".join(outcome.failed),
            err=True,
        )
        sys.exit(ExitCode.FAILURE)
