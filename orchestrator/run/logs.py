"""Logging for a worker process: a per-process main log and concise console output.

Console output is rich on a terminal and plain unwrapped lines on stderr otherwise.

The main log takes everything at DEBUG with tracebacks, in append mode, rotated
at 50 MB with rotated files zipped. Each process has its own file, so no two
processes ever rotate the same file.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import zipfile
from pathlib import Path
from typing import TextIO

from rich import get_console
from rich.console import Console
from rich.logging import RichHandler

from orchestrator.run.faults import write_fault
from orchestrator.run.io_errors import writing

MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 20
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"


def _zip_rotator(source: str, dest: str) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, arcname=Path(source).name)
    os.remove(source)


CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Plain lines on whatever ``sys.stderr`` is when a record is emitted."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _console_handler() -> logging.Handler:
    """On a terminal, rich lines (through rich's console, which the live dashboard also
    draws on, so records land above it); otherwise plain lines on stderr, one record per
    line whatever its length, never wrapped at 80 columns (``grep`` finds them)."""
    if sys.stderr.isatty():
        console = get_console() if sys.stdout.isatty() else Console(stderr=True)
        return RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
    return handler


class _MainLogHandler(logging.handlers.RotatingFileHandler):
    """The main log; a write the system refuses (full disk, read-only) is one line on
    stderr, once, not logging's traceback per record: the run goes on without it."""

    _failed = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_fault(Path(self.baseFilename))  # tests: a disk that fills up mid-run
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if self._failed or not isinstance(exc, OSError):
            if not self._failed:
                super().handleError(record)
            return
        self._failed = True
        reason = exc.strerror or str(exc)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                f"warning: cannot write the main log {self.baseFilename}: {reason}; "
                "its lines are lost until the next start (console lines go on)\n"
            )


def setup_logging(main_log: Path, *, console: bool = True, max_bytes: int = MAX_BYTES) -> None:
    """Route the project's loggers to ``main_log`` (DEBUG) and the console (INFO)."""
    with writing(main_log):
        main_log.parent.mkdir(parents=True, exist_ok=True)
        handler = _MainLogHandler(
            main_log, mode="a", maxBytes=max_bytes, backupCount=BACKUPS, encoding="utf-8"
        )
    handler.namer = lambda name: name + ".zip"
    handler.rotator = _zip_rotator
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for old in list(root.handlers):
        if getattr(old, "_intraday_events", False):
            root.removeHandler(old)
            old.close()
    handler._intraday_events = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if console:
        shown = _console_handler()
        shown.setLevel(logging.INFO)
        shown._intraday_events = True  # type: ignore[attr-defined]
        root.addHandler(shown)
    for noisy in ("filelock",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
