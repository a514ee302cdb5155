"""Logging for a worker process: a per-process main log and concise console output.

The main log takes everything at DEBUG with tracebacks, in append mode, rotated
at 50 MB with rotated files zipped. Each process has its own file, so no two
processes ever rotate the same file.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import zipfile
from pathlib import Path

from rich.logging import RichHandler

MAX_BYTES = 50 * 1024 * 1024
BACKUPS = 20
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"


def _zip_rotator(source: str, dest: str) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(source, arcname=Path(source).name)
    os.remove(source)


def setup_logging(main_log: Path, *, console: bool = True, max_bytes: int = MAX_BYTES) -> None:
    """Route the project's loggers to ``main_log`` (DEBUG) and the console (INFO)."""
    main_log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
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
        rich = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        rich.setLevel(logging.INFO)
        rich._intraday_events = True  # type: ignore[attr-defined]
        root.addHandler(rich)
    for noisy in ("filelock",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
