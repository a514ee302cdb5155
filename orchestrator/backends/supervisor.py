"""Supervision of a launch's worker processes, one pass per :meth:`Supervisor.tick`.

Pure logic: processes, heartbeats and the checkpoint are reached through the
:class:`WorkerPort` given to it, and time is the ``now`` passed to each tick
(monotonic seconds), so every rule here is unit-tested with fake processes and a
fake clock, without sleeping.

Rules, per worker slot:

- exit status 0: the worker is done and never restarted;
- died (signal) or exited non-zero: the symbol it was detecting, if any, gets a
  recorded failure (three make it quarantined), then the worker is restarted with
  its still-remaining symbols after a backoff that doubles with each death in a row
  without progress (capped), at most ``max_restarts`` times; after that it is
  given up and its symbols stay remaining for the next launch;
- heartbeat unchanged for ``stall_timeout`` seconds: SIGTERM to its process group,
  SIGKILL after ``stop_grace``, then handled as a death;
- no symbols left for it: done, without starting a process.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from detector.config import SupervisionConfig
from detector.errors import ExitCode
from orchestrator.backends.policy import SupervisionPolicy

log = logging.getLogger(__name__)


class ProcessHandle(Protocol):
    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None:
        """Exit status once exited (negative signal number when killed), else None."""
        ...


@dataclass(frozen=True)
class HeartbeatView:
    """What the supervisor reads from a worker's heartbeat file."""

    pid: int
    token: Hashable  # changes whenever the worker writes its heartbeat
    current_symbol: str | None
    symbols_done: int
    batch_num: int = 0  # the batch it is on (Ray tasks: which task wrote it)
    node_id: str | None = None  # Ray tasks: the node the writer ran on


class WorkerPort(Protocol):
    """Everything the supervisor does to the world."""

    def remaining(self, worker_id: int) -> tuple[str, ...]:
        """The worker's assigned symbols not yet completed nor quarantined."""
        ...

    def spawn(self, worker_id: int, symbols: tuple[str, ...]) -> ProcessHandle: ...

    def heartbeat(self, worker_id: int) -> HeartbeatView | None: ...

    def terminate(self, handle: ProcessHandle) -> None:
        """SIGTERM to the worker's process group."""
        ...

    def kill(self, handle: ProcessHandle) -> None:
        """SIGKILL to the worker's process group."""
        ...

    def forget(self, worker_id: int, handle: ProcessHandle) -> None:
        """The process has exited: drop its PID file."""
        ...

    def record_crash(self, worker_id: int, symbol: str, reason: str) -> None:
        """Count a failed attempt for ``symbol``, in progress when its worker died."""
        ...

    def last_error(self, worker_id: int) -> str | None:
        """The last error line the worker's current process printed, if any."""
        ...


class SlotState(Enum):
    WAITING = "waiting"  # to be started at ``start_at``
    RUNNING = "running"
    STOPPING = "stopping"  # SIGTERM sent; SIGKILL at ``kill_at``
    DONE = "done"
    GAVE_UP = "gave up"  # restart cap reached, or it would not die even after SIGKILL
    STOPPED = "stopped"  # by stop_all: an operator's Ctrl-C or SIGTERM


@dataclass
class WorkerSlot:
    worker_id: int
    state: SlotState = SlotState.WAITING
    handle: ProcessHandle | None = None
    start_at: float = 0.0
    kill_at: float = 0.0
    restarts: int = 0
    deaths_without_progress: int = 0
    last_token: Hashable = None
    last_change: float = 0.0
    stop_reason: str | None = None  # "stalled" or the stop_all reason while STOPPING
    killed_at: float | None = None  # SIGKILL sent while STOPPING
    last_exit: str | None = None


@dataclass(frozen=True)
class Notice:
    """Something the operator should read about a worker."""

    worker_id: int
    message: str
    level: int = logging.INFO


def describe_exit(returncode: int) -> str:
    """``SIGKILL(-9)`` for a signal, ``exit 1`` for an exit status."""
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name}({returncode})"
        except ValueError:
            return f"signal({returncode})"
    return f"exit {returncode}"


class Supervisor:
    def __init__(self, worker_ids: list[int], port: WorkerPort, config: SupervisionConfig) -> None:
        self.port = port
        self.config = config
        self.policy = SupervisionPolicy(config)
        self.slots = {k: WorkerSlot(k) for k in worker_ids}
        self.stopping_all = False
        # (worker, its error line) of the first worker that exited because the system
        # refused a write (exit 5): no symbol is to blame, and no restart can help.
        self.environment_failure: tuple[int, str] | None = None

    # -- queries ---------------------------------------------------------------
    @property
    def finished(self) -> bool:
        ended = (SlotState.DONE, SlotState.GAVE_UP, SlotState.STOPPED)
        return all(s.state in ended for s in self.slots.values())

    def given_up(self) -> list[int]:
        return [k for k, s in self.slots.items() if s.state is SlotState.GAVE_UP]

    def backoff(self, deaths: int) -> float:
        """Wait before a restart after ``deaths`` deaths in a row without progress (≥ 1)."""
        return self.policy.backoff(deaths)

    # -- one pass --------------------------------------------------------------
    def tick(self, now: float) -> list[Notice]:
        notices: list[Notice] = []
        for slot in self.slots.values():
            if slot.state is SlotState.WAITING:
                self._start(slot, now, notices)
            elif slot.state is SlotState.RUNNING:
                self._watch(slot, now, notices)
            elif slot.state is SlotState.STOPPING:
                self._watch_stopping(slot, now, notices)
        return notices

    def stop_all(self, now: float, reason: str) -> list[Notice]:
        """Stop every worker (SIGTERM now, SIGKILL after the grace); start none again."""
        self.stopping_all = True
        notices = []
        for slot in self.slots.values():
            if slot.state is SlotState.WAITING:
                slot.state = SlotState.STOPPED
                slot.last_exit = f"not restarted: {reason}"
            elif slot.state is SlotState.RUNNING:
                assert slot.handle is not None
                self.port.terminate(slot.handle)
                slot.state = SlotState.STOPPING
                slot.stop_reason = reason
                slot.kill_at = now + self.config.stop_grace_seconds
                notices.append(Notice(slot.worker_id, f"stopping pid {slot.handle.pid}: {reason}"))
        return notices

    # -- transitions -----------------------------------------------------------
    def _start(self, slot: WorkerSlot, now: float, notices: list[Notice]) -> None:
        if now < slot.start_at:
            return
        symbols = self.port.remaining(slot.worker_id)
        if not symbols:
            slot.state = SlotState.DONE
            return
        slot.handle = self.port.spawn(slot.worker_id, symbols)
        slot.state = SlotState.RUNNING
        slot.last_token = None
        slot.last_change = now
        slot.killed_at = None
        again = f" (restart {slot.restarts}/{self.config.max_restarts})" if slot.restarts else ""
        notices.append(
            Notice(
                slot.worker_id,
                f"started pid {slot.handle.pid} with {len(symbols)} symbols{again}",
            )
        )

    def _watch(self, slot: WorkerSlot, now: float, notices: list[Notice]) -> None:
        assert slot.handle is not None
        returncode = slot.handle.poll()
        if returncode is not None:
            self._exited(slot, returncode, now, notices)
            return
        beat = self.port.heartbeat(slot.worker_id)
        # An unreadable heartbeat is no news: it neither proves life nor restarts the timer.
        token = (beat.pid, beat.token) if beat is not None else slot.last_token
        if token != slot.last_token:
            slot.last_token = token
            slot.last_change = now
        elif self.policy.stalled(slot.last_change, now):
            self.port.terminate(slot.handle)
            slot.state = SlotState.STOPPING
            slot.stop_reason = "stalled"
            slot.kill_at = now + self.config.stop_grace_seconds
            notices.append(
                Notice(
                    slot.worker_id,
                    f"pid {slot.handle.pid} stalled: no heartbeat for "
                    f"{now - slot.last_change:.0f} s; sent SIGTERM to its process group",
                    logging.WARNING,
                )
            )

    def _watch_stopping(self, slot: WorkerSlot, now: float, notices: list[Notice]) -> None:
        assert slot.handle is not None
        returncode = slot.handle.poll()
        if returncode is not None:
            self._exited(slot, returncode, now, notices)
        elif slot.killed_at is not None:
            if now - slot.killed_at >= self.config.stop_grace_seconds:
                # Not even SIGKILL ended it (uninterruptible sleep on a dead disk, say):
                # abandon it rather than wait forever, and say so.
                slot.state = SlotState.GAVE_UP
                slot.last_exit = "did not exit after SIGKILL"
                notices.append(
                    Notice(
                        slot.worker_id,
                        f"pid {slot.handle.pid} did not exit {self.config.stop_grace_seconds:g} s "
                        "after SIGKILL; abandoned (check it with ps)",
                        logging.ERROR,
                    )
                )
        elif now >= slot.kill_at:
            self.port.kill(slot.handle)
            slot.killed_at = now
            notices.append(
                Notice(
                    slot.worker_id,
                    f"pid {slot.handle.pid} ignored SIGTERM for "
                    f"{self.config.stop_grace_seconds:g} s; sent SIGKILL to its process group",
                    logging.WARNING,
                )
            )

    def _exited(self, slot: WorkerSlot, returncode: int, now: float, notices: list[Notice]) -> None:
        assert slot.handle is not None
        handle = slot.handle
        how = describe_exit(returncode)
        error = self.port.last_error(slot.worker_id) if returncode > 0 else None
        if error:
            how = f"{how}: {error}"
        slot.last_exit = how
        beat = self.port.heartbeat(slot.worker_id)
        own_beat = beat if beat is not None and beat.pid == handle.pid else None
        self.port.forget(slot.worker_id, handle)
        slot.handle = None
        if returncode == 0:
            slot.state = SlotState.DONE
            notices.append(Notice(slot.worker_id, f"pid {handle.pid} finished ({how})"))
            return
        stalled = slot.state is SlotState.STOPPING and slot.stop_reason == "stalled"
        if self.stopping_all:
            slot.state = SlotState.STOPPED
            notices.append(Notice(slot.worker_id, f"pid {handle.pid} stopped ({how})"))
        elif returncode == ExitCode.ENVIRONMENT:
            self._refused_write(slot, handle, how, error, notices)
        else:
            self._lost(slot, handle, how, own_beat, stalled, now, notices)

    def _refused_write(
        self,
        slot: WorkerSlot,
        handle: ProcessHandle,
        how: str,
        error: str | None,
        notices: list[Notice],
    ) -> None:
        """A full disk or a read-only folder: not the symbol's fault (no attempt is
        counted) and not worth a restart; the launcher stops the run."""
        slot.state = SlotState.STOPPED
        if self.environment_failure is None:
            self.environment_failure = (slot.worker_id, error or how)
        notices.append(
            Notice(
                slot.worker_id,
                f"pid {handle.pid} could not write ({how}); not restarted",
                logging.ERROR,
            )
        )

    def _lost(
        self,
        slot: WorkerSlot,
        handle: ProcessHandle,
        how: str,
        own_beat: HeartbeatView | None,
        stalled: bool,
        now: float,
        notices: list[Notice],
    ) -> None:
        """The worker died or was stopped as stalled: blame, then restart or give up."""
        in_progress = self.policy.blame(
            own_beat.current_symbol if own_beat is not None else None,
            own_heartbeat=own_beat is not None,
            stopping=self.stopping_all,
        )
        if in_progress:
            cause = "stalled and was stopped" if stalled else f"died ({how})"
            self.port.record_crash(
                slot.worker_id,
                in_progress,
                f"worker {slot.worker_id} {cause} while detecting it",
            )
        progressed = own_beat is not None and own_beat.symbols_done > 0
        slot.deaths_without_progress = 0 if progressed else slot.deaths_without_progress + 1
        doing = f" while detecting {in_progress}" if in_progress else ""
        if not self.port.remaining(slot.worker_id):
            slot.state = SlotState.DONE
            notices.append(
                Notice(slot.worker_id, f"pid {handle.pid} ended ({how}); nothing left for it")
            )
            return
        restart = self.policy.after_loss(slot.restarts, slot.deaths_without_progress, now)
        if restart is None:
            slot.state = SlotState.GAVE_UP
            notices.append(
                Notice(
                    slot.worker_id,
                    f"pid {handle.pid} died ({how}){doing}; given up after "
                    f"{slot.restarts} restarts (supervision.max_restarts)",
                    logging.ERROR,
                )
            )
            return
        delay = restart.delay
        slot.restarts += 1
        slot.state = SlotState.WAITING
        slot.start_at = restart.at
        notices.append(
            Notice(
                slot.worker_id,
                f"pid {handle.pid} {'was stopped after stalling' if stalled else 'died'} "
                f"({how}){doing}; restarting in {delay:g} s",
                logging.WARNING,
            )
        )
