"""What the launcher shows while it supervises: a :class:`Monitor` ticked on every pass.

The launcher calls ``tick(now)`` with its monotonic clock on each supervision
pass and ``close()`` once when supervision ends, before the merge. Without a
terminal it prints one progress line every few seconds (:class:`ProgressLines`);
on a terminal the live dashboard (:mod:`orchestrator.observe.dashboard_live`) draws
instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from orchestrator.observe.status import progress_line, read_snapshot
from orchestrator.run.layout import RunLayout


class Monitor(Protocol):
    def tick(self, now: float) -> None: ...

    def close(self) -> None: ...


class ProgressLines:
    """One ``progress ...`` line every ``interval_s`` seconds, the first after one interval."""

    def __init__(
        self,
        layout: RunLayout,
        echo: Callable[[str], None],
        *,
        interval_s: float,
        max_attempts: int | None = None,
        wallclock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.layout = layout
        self.echo = echo
        self.interval_s = interval_s
        self.max_attempts = max_attempts
        self.wallclock = wallclock
        self._next: float | None = None

    def tick(self, now: float) -> None:
        if self._next is None:
            self._next = now + self.interval_s
            return
        if now < self._next:
            return
        self._next = now + self.interval_s
        snapshot = read_snapshot(self.layout, now=self.wallclock(), max_attempts=self.max_attempts)
        self.echo(progress_line(snapshot))

    def close(self) -> None:
        pass
