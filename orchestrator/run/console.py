"""A dead worker's last error line, from what it printed to its console log.

A worker that fails prints one line (``Error: ...``, the CLI's error boundary) or,
for a bug, a traceback whose last line names the exception. The supervisor's
restart line, the summary and the dashboard show that line instead of a bare
``exit 1``.
"""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 64 * 1024
# What every worker process logs first (orchestrator.worker.loop): where its output begins.
PROCESS_START = " symbols requested, "
MAX_CHARS = 300
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")
_LOGGED_ERROR = re.compile(r"^\d\d:\d\d:\d\d (ERROR|CRITICAL)\s+(?P<message>.+)$")


def last_error_line(text: str) -> str | None:
    """The last error in ``text``: a one-line ``Error:``, else a traceback's last line,
    else the last ERROR log line; None when it holds none."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return _short(line.removeprefix("Error: "))
        if _EXCEPTION.match(line):
            return _short(line)
    for line in reversed(lines):
        logged = _LOGGED_ERROR.match(line)
        if logged:
            return _short(logged["message"])
    return None


def console_size(path: Path) -> int:
    """Where a process about to be started will begin writing ``path``."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_last_error(path: Path, offset: int = 0, *, after: str | None = None) -> str | None:
    """The last error line written to ``path`` from ``offset`` on (its last 64 KiB);
    with ``after``, only from the last line holding that text (the last process's)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(offset, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    if after is not None and after in text:
        text = text[text.rindex(after) :]
    return last_error_line(text)


def _short(line: str) -> str:
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 3] + "..."
