"""Every command of the group: its name, and where it is defined.

A command's module is imported only when that command runs (or ``--help`` lists
them all): a worker process that runs ``detect`` does not import the report's,
the benchmark's or the dedupe's code, which every launch would pay once per
process.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute); the help lists them sorted by name
COMMANDS: dict[str, tuple[str, str]] = {
    "detect-symbol": ("tools.cli.detect_symbol_cmd", "detect_symbol"),
    "demo-data": ("tools.cli.demo_data_cmd", "demo_data"),
    "detect": ("tools.cli.detect_cmd", "detect"),
    "launch": ("tools.cli.launch_cmd", "launch"),
    "restart": ("tools.cli.restart_cmd", "restart"),
    "status": ("tools.cli.status_cmd", "status"),
    "dedupe": ("tools.cli.dedupe_cmd", "dedupe"),
    "dashboard": ("tools.cli.dashboard_cmd", "dashboard"),
    "merge": ("tools.cli.merge_cmd", "merge"),
    "demo": ("tools.cli.demo_cmd", "demo"),
    "seed-checkpoint": ("tools.cli.seed_cmd", "seed_checkpoint_cmd"),
    "bench": ("tools.cli.bench_cmd", "bench"),
    "compact": ("tools.cli.compact_cmd", "compact"),
    "report": ("tools.cli.report_cmd", "report"),
    "show": ("tools.cli.show_cmd", "show"),
}


def load(name: str) -> click.Command | None:
    """The command ``name``, its module imported now; None for an unknown name."""
    where = COMMANDS.get(name)
    if where is None:
        return None
    command = getattr(importlib.import_module(where[0]), where[1])
    assert isinstance(command, click.Command), f"{where} is not a click command"
    return command
