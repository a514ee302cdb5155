"""The Ray driver's bookkeeping of its lanes: pure logic, no Ray, no files.

A lane is one assignment of the launch plan (``remaining[k::N]``), worked through
as a sequence of batch tasks, one in flight at a time, so that ``--workers N`` is
the number of concurrent tasks and worker ``k`` of ``status`` and the dashboard is
lane ``k``. Rules, per lane (those of the local supervisor, where they apply):

- the next batch is the first ``batch_size`` of the lane's symbols not completed,
  not quarantined and not failed by a detection error during this launch (those are
  retried by the next launch, as a local worker does);
- a task lost for good (Ray's own retries used up, cancelled as stalled, or raising)
  is a lost unit under the launch's one :class:`SupervisionPolicy` (blame, backoff,
  give-up and stall, as for a local worker process); the lane then sends the batch
  again, or is given up and its symbols stay remaining.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.backends.policy import SupervisionPolicy

LaneState = Literal["ready", "running", "waiting", "done", "given_up", "stopped"]
FINISHED: frozenset[str] = frozenset({"done", "given_up", "stopped"})


@dataclass
class InFlight:
    """The lane's task in flight."""

    number: int
    symbols: tuple[str, ...]
    token: Hashable  # the heartbeat as last seen
    sent_token: Hashable = None  # ... when the task was sent
    changed_at: float | None = None  # when the heartbeat last changed; None: not yet


@dataclass
class Lane:
    worker_id: int
    assigned: tuple[str, ...]
    started_at: str  # ISO stamp of the lane's start, for its heartbeat
    state: LaneState = "ready"
    batches_sent: int = 0
    symbols_total: int = 0
    symbols_done: int = 0
    bars_done: int = 0
    events: int = 0
    losses: int = 0  # tasks lost for good in this launch
    losses_in_row: int = 0  # ... since the last batch that made progress
    retry_at: float = 0.0
    failed_here: set[str] = field(default_factory=set)
    task: InFlight | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def todo(self, skip: Iterable[str]) -> tuple[str, ...]:
        """The lane's symbols still to detect, given the run's completed or quarantined."""
        excluded = set(skip) | self.failed_here
        return tuple(s for s in self.assigned if s not in excluded)

    def backing_off(self, now: float) -> bool:
        """Waiting out the backoff after a lost task."""
        return self.state == "waiting" and now < self.retry_at

    def next_batch(self, skip: Iterable[str], batch_size: int, now: float) -> tuple[str, ...]:
        """The symbols of the lane's next task; empty (and the lane done) when none is left."""
        if self.backing_off(now):
            return ()
        todo = self.todo(skip)
        if not todo:
            self.state = "done"
            return ()
        if self.batches_sent == 0:
            self.symbols_total = len(todo)
        return todo[:batch_size]

    def total_batches(self, todo: int, batch_size: int) -> int:
        """Batches sent so far plus those the lane's ``todo`` symbols still need."""
        return self.batches_sent + -(-todo // batch_size)

    def sent(self, number: int, symbols: tuple[str, ...], token: Hashable) -> None:
        self.batches_sent = number
        self.task = InFlight(number, symbols, token, token)
        self.state = "running"

    def seen(self, token: Hashable, now: float) -> None:
        """Record the lane's heartbeat as read at ``now``."""
        task = self.task
        if task is not None and token != task.token:
            task.token, task.changed_at = token, now

    def writer_gone(self, now: float) -> None:
        """The heartbeat's writer died with its node: Ray's retry of the task is pending
        (maybe waiting for a CPU the dead node took away), so the stall clock restarts."""
        if self.task is not None:
            self.task.changed_at = now

    def stalled(self, now: float, policy: SupervisionPolicy) -> bool:
        task = self.task
        return task is not None and policy.stalled(task.changed_at, now)

    def completed(
        self, *, detected: int, failures: Iterable[str], bars: int, events: int, stopped: bool
    ) -> None:
        """The task came back; ``detected`` symbols were committed (or already were)."""
        failed = set(failures)
        self.failed_here |= failed
        progress = detected + len(failed)
        self.symbols_done += progress
        self.bars_done += bars
        self.events += events
        if progress:
            self.losses_in_row = 0
        self.task = None
        self.state = "stopped" if stopped else "ready"

    def lost(self, now: float, policy: SupervisionPolicy) -> float | None:
        """The task was lost for good: the backoff before sending again, or None when the
        lane is given up (``max_restarts`` losses in this launch)."""
        restarts = self.losses  # every earlier loss was followed by a restart
        self.task = None
        self.losses += 1
        self.losses_in_row += 1
        restart = policy.after_loss(restarts, self.losses_in_row, now)
        if restart is None:
            self.state = "given_up"
            return None
        self.state, self.retry_at = "waiting", restart.at
        return restart.delay
