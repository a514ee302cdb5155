"""Test-only faults: die by SIGKILL, or pause, at a named point of the worker.

``INTRADAY_EVENTS_CRASH_AT=point[:N][@SYMBOL]`` kills the worker the N-th time it
reaches ``point`` (with ``@SYMBOL``: while on that symbol). Points:
``during_detection``, ``after_temp_shard``, ``after_rename``,
``during_checkpoint_write``.

``INTRADAY_EVENTS_PAUSE_AT=point:SECONDS[@SYMBOL]`` sleeps there instead, to make a
worker slow or stalled; the point is ``before_detection``.

Unset, each costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "INTRADAY_EVENTS_CRASH_AT"
PAUSE_ENV = "INTRADAY_EVENTS_PAUSE_AT"
_seen: dict[str, int] = {}


def _matches(spec: str, name: str, symbol: str | None) -> str | None:
    """The ``:`` argument of ``spec`` if it names this point (and symbol), else None."""
    head, _, wanted = spec.partition("@")
    point, _, argument = head.partition(":")
    if point != name or (wanted and wanted != symbol):
        return None
    return argument


def crash_point(name: str, symbol: str | None = None) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    count = _matches(spec, name, symbol)
    if count is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def pause_point(name: str, symbol: str | None = None) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    seconds = _matches(spec, name, symbol)
    if seconds:
        time.sleep(float(seconds))
