"""The heartbeat of a process that detects batches: a local worker or a Ray task.

One writer for both: the worker's states from ``starting`` to ``completed``, and
while a batch is detected (:func:`orchestrator.worker.batch.detect_batch`) the
symbol being detected, then the counters after it. A worker without an id (a lone
``detect``) also keeps the legacy run heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import psutil

from orchestrator.run.heartbeat import (
    Status,
    WorkerHeartbeat,
    write_heartbeat,
    write_legacy_run_heartbeat,
)
from orchestrator.run.layout import RunLayout

Clock = Callable[[], datetime]
# (symbol just detected, bars read so far) -> the bars expected in all
Estimate = Callable[[str, int], int]


class HeartbeatWriter:
    """Writes ``current`` with each change, stamped with the time and the process's RSS."""

    def __init__(
        self,
        layout: RunLayout,
        start: WorkerHeartbeat,
        *,
        clock: Clock = datetime.now,
        estimate: Estimate | None = None,
    ) -> None:
        self.layout = layout
        self.current = start
        self.clock = clock
        self.estimate = estimate  # None: ``bars_total`` stays as it is
        self.process = psutil.Process()
        self.legacy = start.worker_id is None
        self.path = layout.worker_heartbeat(0 if start.worker_id is None else start.worker_id)

    @property
    def rss(self) -> float:
        """The resident memory (GiB) of the last heartbeat written."""
        return self.current.rss_gb or 0.0

    def write(self, status: Status, **changes: object) -> None:
        rss = self.process.memory_info().rss / 2**30
        self.current = replace(
            self.current,
            status=status,
            rss_gb=round(rss, 3),
            updated_at=self.clock().isoformat(timespec="seconds"),
            **changes,  # type: ignore[arg-type]
        )
        write_heartbeat(self.path, self.current)
        if self.legacy:
            write_legacy_run_heartbeat(
                self.layout.run_heartbeat, self.current, completed=status == "completed"
            )

    def detecting(self, symbol: str, batch_num: int) -> None:
        self.write("running", current_symbol=symbol, batch_num=batch_num)

    def detected(self, symbol: str, bars: int, events: int) -> None:
        """``symbol`` is done (detected or failed): ``bars`` read, ``events`` found."""
        done = self.current
        bars_done = done.bars_done + bars
        expected = {} if self.estimate is None else {"bars_total": self.estimate(symbol, bars_done)}
        self.write(
            "running",
            current_symbol=None,
            last_symbol=symbol,
            symbols_done=done.symbols_done + 1,
            bars_done=bars_done,
            events=done.events + events,
            **expected,
        )
