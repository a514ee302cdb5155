"""Test-only faults: die by SIGKILL, or pause, at a named point of the worker.

``INTRADAY_EVENTS_CRASH_AT=point[:N][@SYMBOL]`` kills the worker the N-th time it
reaches ``point`` (with ``@SYMBOL``: while on that symbol). Points:
``during_detection``, ``after_temp_shard``, ``after_rename``,
``during_checkpoint_write``, and ``compact_mid_write`` (``compact``).

``INTRADAY_EVENTS_PAUSE_AT=point:SECONDS[@SYMBOL]`` sleeps there instead, to make a
worker slow or stalled; the point is ``before_detection``.

With ``INTRADAY_EVENTS_FAULT_ONCE_DIR=DIR`` each fault fires once per point and
symbol across all processes (a marker file ``DIR/point@SYMBOL`` is created
exclusively first): a task retried on another process after the fault then runs
normally, as after a real crash.

``INTRADAY_EVENTS_WRITE_ERROR=ERRNO@GLOB[:N]`` makes a write refused by the system:
from the N-th write (default 1) of this process to a file whose name matches GLOB
(``fnmatch``, e.g. ``*_completed.json``, ``.*_w*.tmp`` for a worker's shards, ``plan.json``),
the real write call raises ``OSError(ERRNO)`` (``ENOSPC``, ``EFBIG``, ``EROFS``, ``EACCES``),
as a full disk, a file size limit or a read-only directory would.

Unset, each costs one dict lookup.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
import time
from pathlib import Path

ENV = "INTRADAY_EVENTS_CRASH_AT"
PAUSE_ENV = "INTRADAY_EVENTS_PAUSE_AT"
ONCE_ENV = "INTRADAY_EVENTS_FAULT_ONCE_DIR"
WRITE_ENV = "INTRADAY_EVENTS_WRITE_ERROR"
_seen: dict[str, int] = {}


def _matches(spec: str, name: str, symbol: str | None) -> str | None:
    """The ``:`` argument of ``spec`` if it names this point (and symbol), else None."""
    head, _, wanted = spec.partition("@")
    point, _, argument = head.partition(":")
    if point != name or (wanted and wanted != symbol):
        return None
    return argument


def _first_time(name: str, symbol: str | None) -> bool:
    """False when the fault already fired in some process (only with ONCE_ENV set)."""
    directory = os.environ.get(ONCE_ENV)
    if not directory:
        return True
    try:
        fd = os.open(os.path.join(directory, f"{name}@{symbol or ''}"), os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def crash_point(name: str, symbol: str | None = None) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    count = _matches(spec, name, symbol)
    if count is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(count or 1) and _first_time(name, symbol):
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str, symbol: str | None = None) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    seconds = _matches(spec, name, symbol)
    if seconds and _first_time(name, symbol):
        time.sleep(float(seconds))


def write_fault(path: Path) -> None:
    """Raise the configured ``OSError`` for a write to ``path`` (see the module doc)."""
    spec = os.environ.get(WRITE_ENV)
    if not spec:
        return
    code, _, rest = spec.partition("@")
    pattern, _, nth = rest.partition(":")
    if not fnmatch.fnmatch(path.name, pattern):
        return
    key = f"write@{pattern}"
    _seen[key] = _seen.get(key, 0) + 1
    if _seen[key] >= int(nth or 1):
        number = getattr(errno, code)
        raise OSError(number, os.strerror(number), str(path))
