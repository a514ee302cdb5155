"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import click

from detector.symbols import SymbolFileError, read_symbol_file, validate_symbols
from orchestrator.run.layout import RunLayout, is_valid_run_id
from orchestrator.run.select import InvalidRunIdError, existing_run
from orchestrator.run.snapshot import newest_run_id
from orchestrator.worker.batch import InputPolicy


def _date(_: click.Context, __: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


def viewer_max_attempts_option() -> Callable[[Any], Any]:
    """``--max-attempts`` of a command that reads a run: when a symbol counts as quarantined."""
    return click.option(
        "--max-attempts",
        type=click.IntRange(min=1),
        help="Failed attempts after which a symbol counts as quarantined (default: the "
        "run's, as its launch saved it).",
    )


def input_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--allow-missing``, ``--skip-unreadable`` and ``--redo-changed`` of ``launch`` and
    ``detect``."""
    command = click.option(
        "--redo-changed",
        is_flag=True,
        help="Recompute completed symbols whose bar files changed since their events were "
        "committed (a day added, rewritten or removed); the final file then holds each "
        "symbol's rows from its latest commit only. Default: such symbols are reported, "
        "not recomputed.",
    )(command)
    command = click.option(
        "--skip-unreadable",
        is_flag=True,
        help="Complete a symbol without its unreadable bar files (corrupt, empty, no "
        "permission), listing them in the checkpoint, status and summary. Default: the "
        "symbol fails naming the file, is retried and quarantined after --max-attempts.",
    )(command)
    return click.option(
        "--allow-missing",
        is_flag=True,
        help="Go on when symbols have no bar files: record them as no_bars (not completed, "
        "no events). Default: refuse to start (exit 3), naming the bars folder.",
    )(command)


def input_policy(
    allow_missing: bool, skip_unreadable: bool, redo_changed: bool = False
) -> InputPolicy:
    return InputPolicy(
        allow_missing=allow_missing, skip_unreadable=skip_unreadable, redo_changed=redo_changed
    )


def date_option(name: str, help_text: str) -> Callable[[Any], Any]:
    """A ``YYYY-MM-DD`` option parsed into a :class:`datetime.date`."""
    return click.option(name, callback=_date, metavar="YYYY-MM-DD", help=help_text)


def gather_symbols(args: Iterable[str], from_file: Path | None) -> list[str]:
    """Symbols from arguments (space- or comma-separated) then ``--from-file``, validated,
    first-seen order, no repeats."""
    symbols = validate_symbols(s for arg in args for s in arg.replace(",", " ").split())
    if from_file is not None:
        listed = read_symbol_file(from_file)
        if not listed:
            # Not "every symbol": a file meant to narrow the run must never widen it.
            raise SymbolFileError(from_file, "holds no symbols (one ticker per line expected)")
        symbols = validate_symbols([*symbols, *listed])
    return symbols


def check_date_range(start: date | None, end: date | None) -> None:
    if start and end and start > end:
        raise click.BadParameter("--start-date is after --end-date")


def viewed_run_id(root: Path, run_id: str | None) -> str:
    """The run a viewer shows: the one named, else the one whose checkpoint changed last."""
    if run_id is None:
        return newest_run_id(root)
    if not is_valid_run_id(run_id):
        raise InvalidRunIdError(run_id)
    return run_id


def existing_run_layout(root: Path, run_id: str | None) -> RunLayout:
    """The run ``status``, ``merge`` or ``restart`` acts on: a named run must exist."""
    if run_id is None:
        return RunLayout(root, newest_run_id(root))
    return existing_run(root, run_id)
