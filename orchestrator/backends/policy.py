"""The supervision rules every backend obeys: backoff, stall, give-up, blame.

Pure: no process, no file, no clock of its own; every time is the caller's
``now`` (monotonic seconds). A *unit* is what a backend runs and may lose: a
local worker process, or a Ray lane's batch task. The rules, for every unit:

- a unit lost (died, exited non-zero, cancelled, stalled and stopped) counts a
  failed attempt for the symbol it was detecting, when its own heartbeat says
  which, unless the launch is stopping (an operator's stop is nobody's fault);
- it is started again after a backoff that doubles with each loss in a row
  without progress, capped at ``backoff_max_seconds``;
- after ``max_restarts`` restarts in one launch it is given up, and its symbols
  stay remaining for the next launch;
- it is stalled when its heartbeat has not changed for ``stall_timeout_seconds``
  since it was last seen to change (a unit not yet seen to write one, such as a
  Ray task still queued for a CPU, is not stalled).
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.config import SupervisionConfig


@dataclass(frozen=True)
class Restart:
    """Start the unit again at ``at``, after waiting ``delay`` seconds."""

    at: float
    delay: float


@dataclass(frozen=True)
class SupervisionPolicy:
    config: SupervisionConfig

    def backoff(self, losses_in_row: int) -> float:
        """The wait before a restart after ``losses_in_row`` losses without progress."""
        cfg = self.config
        doubled = cfg.backoff_initial_seconds * 2 ** max(losses_in_row - 1, 0)
        return min(doubled, cfg.backoff_max_seconds)

    def after_loss(self, restarts: int, losses_in_row: int, now: float) -> Restart | None:
        """What follows a loss of a unit already restarted ``restarts`` times in this
        launch: a restart, or None when it is given up (``max_restarts`` reached)."""
        if restarts >= self.config.max_restarts:
            return None
        delay = self.backoff(losses_in_row)
        return Restart(now + delay, delay)

    def stalled(self, last_change: float | None, now: float) -> bool:
        """The unit's heartbeat, once seen to change, has not changed for too long."""
        if last_change is None:
            return False
        return now - last_change >= self.config.stall_timeout_seconds

    def blame(
        self, current_symbol: str | None, *, own_heartbeat: bool, stopping: bool
    ) -> str | None:
        """The symbol a lost unit's failed attempt is counted against, if any.

        ``own_heartbeat``: the heartbeat was written by the lost unit itself (not an
        earlier process or task of its slot), so its ``current_symbol`` is the one it
        was on. Nothing is counted while the launch is stopping.
        """
        if stopping or not own_heartbeat:
            return None
        return current_symbol or None
