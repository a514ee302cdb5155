"""Registers every command module on the group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from tools.cli import (
        bench_cmd,
        compact_cmd,
        dashboard_cmd,
        dedupe_cmd,
        demo_cmd,
        demo_data_cmd,
        detect_cmd,
        detect_symbol_cmd,
        launch_cmd,
        merge_cmd,
        report_cmd,
        restart_cmd,
        seed_cmd,
        show_cmd,
        status_cmd,
    )

    group.add_command(detect_symbol_cmd.detect_symbol)
    group.add_command(demo_data_cmd.demo_data)
    group.add_command(detect_cmd.detect)
    group.add_command(launch_cmd.launch)
    group.add_command(restart_cmd.restart)
    group.add_command(status_cmd.status)
    group.add_command(dedupe_cmd.dedupe)
    group.add_command(dashboard_cmd.dashboard)
    group.add_command(merge_cmd.merge)
    group.add_command(demo_cmd.demo)
    group.add_command(seed_cmd.seed_checkpoint_cmd)
    group.add_command(bench_cmd.bench)
    group.add_command(compact_cmd.compact)
    group.add_command(report_cmd.report)
    group.add_command(show_cmd.show)
