"""What a launch ends with, and the errors that end it before any worker starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from detector.bars import discover_symbols
from detector.errors import ExitCode, IntradayEventsError
from detector.symbols import read_symbol_file
from orchestrator.run.merge import MergeResult
from orchestrator.run.plan import Plan

# The users' usual universe file (LEGACY.md), used when no symbols are given.
REFERENCE_SYMBOLS = Path("processed") / "reference" / "symbols_with_1m.parquet"


@dataclass(frozen=True)
class LaunchOutcome:
    run_id: str
    plan: Plan
    completed: int  # symbols of the run completed, in all
    completed_now: int  # ... of which by this launch
    bars_now: int  # expected bars of the symbols completed by this launch
    failed: dict[str, str]  # failed, not yet quarantined: retried by the next launch
    quarantined: dict[str, str]
    unfinished: tuple[str, ...]  # neither completed nor failed (a worker was given up)
    given_up: tuple[int, ...]
    merged: MergeResult | None
    wall_s: float
    stopped: str | None
    exit_code: ExitCode
    no_bars: tuple[str, ...] = ()  # no bar file (--allow-missing): settled, not completed
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    suspect_timezone: Mapping[str, str] = field(default_factory=dict)  # symbol -> shifts
    worker_errors: dict[int, str] = field(default_factory=dict)  # given up: their last exit
    environment_error: str | None = None  # a worker's refused write that stopped the run


class NotConfirmedError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NoSymbolsError(IntradayEventsError):
    """No symbols were given and the bars folder holds none: input data is missing."""

    exit_code = ExitCode.DATA

    def __init__(self, bars_root: Path) -> None:
        self.bars_root = bars_root
        where = "" if bars_root.is_dir() else " (no such folder)"
        super().__init__(
            f"no symbols: no bar files under {bars_root}{where} (symbol=SYM/ directories or "
            f"SYM.parquet files); check --bars, or give --from-file F or --symbols"
        )


def refused_line(worker_id: int, line: str, *, root: Path) -> str:
    """The launcher's line for a worker that exited 5: the worker's own line, or, when
    even that could not be written (its console log is on the full disk), what is known."""
    if "cannot write" not in line:
        line = (
            f"{line}: a write was refused and the worker's own line could not be written "
            f"either (disk full?); free space or make {root} writable, then run the same "
            "`intraday-events launch` again (it continues the run); nothing committed was lost"
        )
    return f"worker {worker_id}: {line}"


def launch_universe(
    given: tuple[str, ...] | None, known: frozenset[str], root: Path, bars_root: Path
) -> frozenset[str]:
    """The symbols of the launch: those given, else the run's own, else the users'
    reference file, else every symbol found under the bars root."""
    if given is not None:
        return frozenset(given)
    if known:
        return known
    reference = root / REFERENCE_SYMBOLS
    found = read_symbol_file(reference) if reference.is_file() else []
    found = found or discover_symbols(bars_root)
    if not found:
        raise NoSymbolsError(bars_root)
    return frozenset(found)
