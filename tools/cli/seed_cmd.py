"""``intraday-events seed-checkpoint SRC [DST]``: mark in DST what run SRC completed."""

from __future__ import annotations

import click

from orchestrator.worker.loop import run_hash
from tools.cli.context import CliContext
from tools.seed.core import seed_checkpoint
from tools.seed.report import format_report


@click.command("seed-checkpoint")
@click.argument("src_run")
@click.argument("dst_run", required=False)
@click.option(
    "--import-events",
    is_flag=True,
    help="Also commit SRC's events of the symbols DST has no shard for as one shard of "
    "DST, so that DST's final file holds them (once).",
)
@click.pass_obj
def seed_checkpoint_cmd(
    obj: CliContext, src_run: str, dst_run: str | None, import_events: bool
) -> None:
    """Mark as completed in DST_RUN every symbol SRC_RUN covered.

    SRC_RUN is read from our shards (zero-event symbols too), old shards, its
    checkpoint (ours or legacy) and its final file; nothing of it is changed. DST_RUN
    (default: today's run id, events_intraday_YYYYMMDD) only gains symbols: seeding
    twice changes nothing, several sources accumulate in `seeded_from`. Then
    `launch` or `detect --resume --run-id DST_RUN` skips them.

    Exit status 2 for SRC_RUN = DST_RUN or a bad run id, 3 when SRC_RUN is not found
    or a file of it is unreadable.
    """
    report = seed_checkpoint(
        obj.root,
        src_run,
        dst_run,
        import_events=import_events,
        # Loaded only when imported events' config is recorded by neither run.
        current_hash=lambda: run_hash(obj.config(), None, None),
        # Its session bounds, only when an older file lacks the column session.
        detector=lambda: obj.config().detector,
    )
    click.echo(format_report(report))
