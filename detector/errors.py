"""Exceptions with fields, and the exit status each one maps to at the CLI.

Every error the project raises on purpose derives from :class:`IntradayEventsError`;
the CLI turns it into one line on stderr and ``exit_code``.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the run finished but something in it failed
    USAGE = 2  # bad arguments or configuration: nothing was started
    DATA = 3  # input data unreadable or malformed
    BUSY = 4  # another live process owns the run (a second launch of it)
    ENVIRONMENT = 5  # a write was refused (read-only, disk full, file too large)
    INTERRUPTED = 130  # SIGINT
    TERMINATED = 143  # SIGTERM


class IntradayEventsError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code: ExitCode = ExitCode.FAILURE


class ConfigError(IntradayEventsError):
    """A configuration value or key is not acceptable."""

    exit_code = ExitCode.USAGE

    def __init__(self, key_path: str, problem: str, source: str | None = None) -> None:
        self.key_path = key_path
        self.problem = problem
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"config{where}: {key_path}: {problem}")


class InvalidSymbolError(IntradayEventsError):
    """One or more symbols are not plain tickers; no path is ever built from them."""

    exit_code = ExitCode.USAGE

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        shown = ", ".join(repr(s) for s in symbols[:20])
        more = f" (and {len(symbols) - 20} more)" if len(symbols) > 20 else ""
        super().__init__(
            f"invalid symbol{'s' if len(symbols) > 1 else ''}: {shown}{more} "
            "(a symbol is 1-16 characters of A-Z 0-9 . - _)"
        )


class RootNotFoundError(IntradayEventsError):
    """``--root`` names no directory: nothing is created under a mistyped path."""

    exit_code = ExitCode.USAGE

    def __init__(self, root: Path, problem: str) -> None:
        self.root = root
        self.problem = problem
        super().__init__(
            f"root {root} {problem} (--root or INTRADAY_EVENTS_ROOT): give the workspace "
            f"that holds raw/, logs/ and processed/; nothing was created"
        )


class BarsError(IntradayEventsError):
    """Bar files exist but cannot be used."""

    exit_code = ExitCode.DATA


class BarsSchemaError(BarsError):
    """A bar file lacks a required column or holds it with an unusable type."""

    def __init__(self, path: Path, column: str, problem: str) -> None:
        self.path = path
        self.column = column
        self.problem = problem
        super().__init__(f"{path}: column {column!r}: {problem}")


class NoBarsError(BarsError):
    """No bar file exists for the symbol under the bars root."""

    def __init__(self, symbol: str, bars_root: Path) -> None:
        self.symbol = symbol
        self.bars_root = bars_root
        super().__init__(f"no bar files for {symbol} under {bars_root}")


class UnreadableBarFileError(BarsError):
    """A bar file of the symbol cannot be read (corrupt, truncated, empty, no permission)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"unreadable bar file {path}: {reason} (fix or remove the file, or pass "
            f"--skip-unreadable to detect the symbol without it)"
        )


class MissingBarsError(BarsError):
    """Symbols of the run have no bar file under the bars root: nothing was started."""

    def __init__(self, bars_root: Path, missing: tuple[str, ...], total: int) -> None:
        self.bars_root = bars_root
        self.missing = missing
        self.total = total
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        where = "" if bars_root.is_dir() else " (no such folder)"
        super().__init__(
            f"no bar files for {len(missing)} of {total} symbols under {bars_root}{where}: "
            f"{shown}; check --bars (it must hold symbol=SYM/ folders or SYM.parquet files), "
            f"or pass --allow-missing to record them as no_bars and go on"
        )


class TimezoneMismatchError(IntradayEventsError):
    """The bars' volume peaks are not on the auctions in the configured reading.

    Naive timestamps: the setting is wrong (exit 2). Zone-aware ones: the files are
    (exit 3), and no setting of ours changes how they are read.
    """

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        *,
        naive: bool,
        naive_timezone: str,
        distance: str,
        details: str,
        sampled: int,
        fitting_zone: str | None,
    ) -> None:
        self.naive = naive
        self.naive_timezone = naive_timezone
        self.distance = distance
        self.details = details
        self.sampled = sampled
        self.fitting_zone = fitting_zone
        if not naive:
            self.exit_code = ExitCode.DATA
        key = "intraday_events.bars.naive_timezone"
        peaks = (
            f"put the volume peaks {distance} away from the 09:30/16:00 auctions in "
            f"{sampled} sampled symbol{'s' if sampled != 1 else ''} ({details})"
        )
        if naive:
            fix = (
                f"the bars look like {fitting_zone} local time; set {key}: {fitting_zone}"
                if fitting_zone
                else f"set {key} to the zone the files were written in"
            )
            line = f"naive timestamps read as {naive_timezone} ({key}) {peaks}: {fix}"
        else:
            looks = (
                f"they look like {fitting_zone} local time written as UTC; "
                if fitting_zone == "America/New_York"
                else ""
            )
            line = (
                f"the bar files' zone-aware timestamps {peaks}: {looks}{key} ({naive_timezone}) "
                f"applies to naive timestamps only: correct the files"
            )
        super().__init__(f"{line}, or pass --no-timezone-check")
