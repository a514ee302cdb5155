"""Test-only crash points: die by SIGKILL at a named point of the commit protocol.

Set ``INTRADAY_EVENTS_CRASH_AT=point`` (or ``point:N`` to die the N-th time the
point is reached) in a worker's environment. Unset, this costs one dict lookup.
Points: ``during_detection``, ``after_temp_shard``, ``after_rename``,
``during_checkpoint_write``.
"""

from __future__ import annotations

import os
import signal

ENV = "INTRADAY_EVENTS_CRASH_AT"
_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
