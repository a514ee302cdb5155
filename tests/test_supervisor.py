"""The supervision state machine with fake processes, a fake port and a fake clock.

No process is started and nothing sleeps: a :class:`FakeProcess` exits when a test
sets its ``returncode``, the :class:`FakePort` records what the supervisor does to
the world and answers ``remaining`` and ``heartbeat`` from what the test scripted,
and time is the float passed to each :meth:`Supervisor.tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from detector.config import SupervisionConfig
from orchestrator.backends.supervisor import (
    HeartbeatView,
    Notice,
    ProcessHandle,
    SlotState,
    Supervisor,
    describe_exit,
)

# -- fakes ---------------------------------------------------------------------------


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None  # set by the test to make it exit

    def poll(self) -> int | None:
        return self.returncode


class FakePort:
    """A :class:`orchestrator.backends.supervisor.WorkerPort` that records every call."""

    def __init__(self, assignments: dict[int, Iterable[str]]) -> None:
        self.left: dict[int, tuple[str, ...]] = {k: tuple(v) for k, v in assignments.items()}
        self.beats: dict[int, HeartbeatView | None] = {}
        self.spawns: list[tuple[int, tuple[str, ...], FakeProcess]] = []
        self.terminates: list[int] = []  # pids
        self.kills: list[int] = []  # pids
        self.forgets: list[tuple[int, int]] = []  # (worker_id, pid)
        self.crashes: list[tuple[int, str, str]] = []  # (worker_id, symbol, reason)
        self.errors: dict[int, str] = {}  # worker id -> its last error line
        self._next_pid = 1000

    # -- WorkerPort ---------------------------------------------------------------
    def remaining(self, worker_id: int) -> tuple[str, ...]:
        return self.left.get(worker_id, ())

    def spawn(self, worker_id: int, symbols: tuple[str, ...]) -> FakeProcess:
        self._next_pid += 1
        process = FakeProcess(self._next_pid)
        self.spawns.append((worker_id, symbols, process))
        return process

    def heartbeat(self, worker_id: int) -> HeartbeatView | None:
        return self.beats.get(worker_id)

    def terminate(self, handle: ProcessHandle) -> None:
        self.terminates.append(handle.pid)

    def kill(self, handle: ProcessHandle) -> None:
        self.kills.append(handle.pid)

    def forget(self, worker_id: int, handle: ProcessHandle) -> None:
        self.forgets.append((worker_id, handle.pid))

    def last_error(self, worker_id: int) -> str | None:
        return self.errors.get(worker_id)

    def record_crash(self, worker_id: int, symbol: str, reason: str) -> None:
        self.crashes.append((worker_id, symbol, reason))

    # -- scripting ----------------------------------------------------------------
    def process(self, worker_id: int) -> FakeProcess:
        """The worker's latest process."""
        return [p for k, _, p in self.spawns if k == worker_id][-1]

    def spawned(self, worker_id: int) -> list[tuple[str, ...]]:
        return [symbols for k, symbols, _ in self.spawns if k == worker_id]

    def beat(
        self,
        worker_id: int,
        token: Hashable,
        *,
        current_symbol: str | None = None,
        symbols_done: int = 0,
        pid: int | None = None,
    ) -> None:
        """The worker's heartbeat file now reads so (by default from its latest process)."""
        self.beats[worker_id] = HeartbeatView(
            pid=self.process(worker_id).pid if pid is None else pid,
            token=token,
            current_symbol=current_symbol,
            symbols_done=symbols_done,
        )

    def die(self, worker_id: int, returncode: int) -> FakeProcess:
        process = self.process(worker_id)
        process.returncode = returncode
        return process


def config(**overrides: Any) -> SupervisionConfig:
    values: dict[str, Any] = {
        "max_restarts": 10,
        "backoff_initial_seconds": 1.0,
        "backoff_max_seconds": 8.0,
        "stall_timeout_seconds": 60.0,
        "stop_grace_seconds": 10.0,
    }
    values.update(overrides)
    return SupervisionConfig(**values)


def supervisor(port: FakePort, **overrides: Any) -> Supervisor:
    return Supervisor(sorted(port.left), port, config(**overrides))


def messages(notices: list[Notice]) -> str:
    return "\n".join(n.message for n in notices)


def state(sup: Supervisor, worker_id: int = 0) -> SlotState:
    return sup.slots[worker_id].state


# -- describe_exit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (-9, "SIGKILL(-9)"),
        (-15, "SIGTERM(-15)"),
        (-2, "SIGINT(-2)"),
        (-11, "SIGSEGV(-11)"),
        (1, "exit 1"),
        (0, "exit 0"),
        (143, "exit 143"),
    ],
)
def test_describe_exit(returncode: int, text: str) -> None:
    assert describe_exit(returncode) == text


@pytest.mark.parametrize("returncode", [-200, -1000, -(2**31)])
def test_describe_exit_of_an_unknown_signal_does_not_raise(returncode: int) -> None:
    text = describe_exit(returncode)
    assert str(returncode) in text


# -- starting and exit 0 ---------------------------------------------------------------


def test_first_tick_starts_every_worker_with_its_remaining_symbols() -> None:
    port = FakePort({0: ["A", "C"], 1: ["B", "D"]})
    sup = supervisor(port)
    assert not sup.finished

    notices = sup.tick(0.0)

    assert port.spawned(0) == [("A", "C")]
    assert port.spawned(1) == [("B", "D")]
    assert state(sup, 0) is SlotState.RUNNING
    assert state(sup, 1) is SlotState.RUNNING
    assert len(notices) == 2
    assert f"started pid {port.process(0).pid} with 2 symbols" in messages(notices)
    assert "restart" not in messages(notices)
    assert not sup.finished
    sup.tick(1.0)
    assert len(port.spawns) == 2  # a running worker is not started again


def test_slot_with_nothing_remaining_is_done_without_spawning() -> None:
    port = FakePort({0: [], 1: ["B"]})
    sup = supervisor(port)

    sup.tick(0.0)

    assert port.spawned(0) == []
    assert state(sup, 0) is SlotState.DONE
    assert state(sup, 1) is SlotState.RUNNING
    assert not sup.finished
    port.die(1, 0)
    sup.tick(1.0)
    assert sup.finished
    assert sup.given_up() == []


def test_exit_0_is_done_and_never_restarted_even_with_symbols_remaining() -> None:
    port = FakePort({0: ["A", "B", "C"]})
    sup = supervisor(port)
    sup.tick(0.0)
    process = port.die(0, 0)  # remaining still lists A, B and C

    notices = sup.tick(1.0)

    assert state(sup) is SlotState.DONE
    assert f"pid {process.pid} finished (exit 0)" in messages(notices)
    assert all(n.level == logging.INFO for n in notices)
    for now in (2.0, 100.0, 10_000.0):
        assert sup.tick(now) == []
    assert len(port.spawns) == 1
    assert port.crashes == []
    assert port.forgets == [(0, process.pid)]
    assert sup.finished
    assert sup.given_up() == []


def test_exit_0_is_done_even_while_detecting_a_symbol() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    port.die(0, 0)

    sup.tick(1.0)

    assert state(sup) is SlotState.DONE
    assert port.crashes == []


# -- deaths and backoff ----------------------------------------------------------------


def test_death_by_signal_is_reported_with_the_signal_name() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    process = port.die(0, -9)

    notices = sup.tick(5.0)

    assert len(notices) == 1
    assert notices[0].worker_id == 0
    assert notices[0].level == logging.WARNING
    assert f"pid {process.pid} died (SIGKILL(-9))" in notices[0].message
    assert "restarting in 1 s" in notices[0].message
    assert state(sup) is SlotState.WAITING
    assert sup.slots[0].last_exit == "SIGKILL(-9)"
    assert sup.slots[0].start_at == 6.0
    assert not sup.finished


@pytest.mark.parametrize(("deaths", "wait"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (30, 8)])
def test_backoff_doubles_from_the_initial_value_up_to_the_maximum(deaths: int, wait: float) -> None:
    sup = supervisor(FakePort({0: ["A"]}))
    assert sup.backoff(deaths) == wait


def test_deaths_in_a_row_without_progress_wait_1_2_4_8_8_seconds() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port, max_restarts=10)
    sup.tick(0.0)
    now = 0.0
    for restart, wait in enumerate([1.0, 2.0, 4.0, 8.0, 8.0], start=1):
        now += 3.0
        port.beat(0, f"beat {restart}", current_symbol=None, symbols_done=0)
        sup.tick(now)  # a heartbeat, but no symbol done
        now += 3.0
        port.die(0, -9)
        notices = sup.tick(now)
        assert f"restarting in {wait:g} s" in messages(notices)
        assert state(sup) is SlotState.WAITING
        start_at = now + wait

        assert sup.tick(start_at - 0.001) == []
        assert sup.tick(now + wait / 2) == []
        assert len(port.spawns) == restart  # not yet
        assert state(sup) is SlotState.WAITING

        notices = sup.tick(start_at)
        assert len(port.spawns) == restart + 1
        assert state(sup) is SlotState.RUNNING
        assert f"(restart {restart}/10)" in messages(notices)
        assert sup.slots[0].restarts == restart
        now = start_at


def test_tick_well_after_start_at_starts_the_worker() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.die(0, 1)
    sup.tick(10.0)  # restart at 11

    sup.tick(500.0)

    assert len(port.spawns) == 2
    assert state(sup) is SlotState.RUNNING


def test_death_after_progress_resets_the_backoff_to_the_initial_value() -> None:
    port = FakePort({0: ["A", "B", "C", "D"]})
    sup = supervisor(port, max_restarts=10)
    sup.tick(0.0)
    now = 0.0
    waits: list[float] = []
    # three deaths without progress, one after progress, then two more without
    for symbols_done in [0, 0, 0, 2, 0, 0]:
        now += 1.0
        port.beat(0, f"t{now}", current_symbol="A", symbols_done=symbols_done)
        sup.tick(now)
        now += 1.0
        port.die(0, -9)
        sup.tick(now)
        waits.append(sup.slots[0].start_at - now)
        now = sup.slots[0].start_at
        sup.tick(now)
        assert state(sup) is SlotState.RUNNING
    assert waits == [1.0, 2.0, 4.0, 1.0, 1.0, 2.0]


def test_progress_in_the_heartbeat_of_an_older_process_does_not_reset_the_backoff() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port, max_restarts=10)
    sup.tick(0.0)
    old_pid = port.process(0).pid
    port.beat(0, "t1", symbols_done=5)
    port.die(0, -9)
    sup.tick(1.0)  # progress: restart in 1 s
    assert sup.slots[0].start_at == 2.0
    sup.tick(2.0)
    assert port.process(0).pid != old_pid

    # the new process dies before writing its first heartbeat: the file is the old one
    port.die(0, -9)
    sup.tick(3.0)
    assert sup.slots[0].start_at == 4.0  # 1st death in a row without progress
    sup.tick(4.0)
    port.die(0, -9)
    sup.tick(5.0)
    assert sup.slots[0].start_at == 7.0  # 2nd


# -- restart cap -----------------------------------------------------------------------


def test_after_max_restarts_the_next_death_gives_up() -> None:
    port = FakePort({0: ["A", "B"], 1: ["C"]})
    sup = supervisor(port, max_restarts=2)
    sup.tick(0.0)
    now = 0.0
    for _ in range(2):
        now += 1.0
        port.die(0, -9)
        sup.tick(now)
        assert state(sup, 0) is SlotState.WAITING
        now = sup.slots[0].start_at
        sup.tick(now)
        assert state(sup, 0) is SlotState.RUNNING
    assert len(port.spawned(0)) == 3
    last = port.process(0)
    port.beat(0, "t", current_symbol="B")

    now += 1.0
    port.die(0, -9)
    notices = sup.tick(now)

    assert state(sup, 0) is SlotState.GAVE_UP
    [notice] = notices
    assert notice.level == logging.ERROR
    assert notice.worker_id == 0
    assert f"pid {last.pid} died (SIGKILL(-9)) while detecting B" in notice.message
    assert "given up after 2 restarts" in notice.message
    assert "max_restarts" in notice.message
    assert sup.given_up() == [0]
    assert not sup.finished  # worker 1 still runs
    for t in (now + 100, now + 10_000):
        sup.tick(t)
    assert len(port.spawned(0)) == 3  # never again
    assert port.crashes[-1][:2] == (0, "B")  # the attempt still counts

    port.die(1, 0)
    sup.tick(now + 20_000)
    assert sup.finished
    assert sup.given_up() == [0]


def test_max_restarts_0_gives_up_at_the_first_death() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, max_restarts=0)
    sup.tick(0.0)
    port.die(0, 1)

    notices = sup.tick(1.0)

    assert state(sup) is SlotState.GAVE_UP
    assert notices[0].level == logging.ERROR
    assert "given up after 0 restarts (supervision.max_restarts)" in notices[0].message
    assert sup.finished


def test_restart_is_spawned_with_the_current_remaining_symbols() -> None:
    port = FakePort({0: ["A", "B", "C", "D"]})
    sup = supervisor(port)
    sup.tick(0.0)
    assert port.spawned(0) == [("A", "B", "C", "D")]
    port.beat(0, "t1", current_symbol="C", symbols_done=2)
    port.left[0] = ("C", "D")  # A and B committed
    port.die(0, -9)
    sup.tick(1.0)

    port.left[0] = ("D",)  # meanwhile C got quarantined
    sup.tick(2.0)

    assert port.spawned(0) == [("A", "B", "C", "D"), ("D",)]


def test_nothing_left_when_the_restart_is_due_is_done_without_spawning() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.die(0, -9)
    sup.tick(1.0)
    assert state(sup) is SlotState.WAITING

    port.left[0] = ()  # e.g. its last symbol got quarantined meanwhile
    sup.tick(2.0)

    assert state(sup) is SlotState.DONE
    assert len(port.spawns) == 1
    assert sup.finished


# -- crash attribution -----------------------------------------------------------------


def test_death_while_detecting_a_symbol_records_a_crash_for_it() -> None:
    port = FakePort({0: ["A", "B"], 1: ["C"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="B", symbols_done=1)
    sup.tick(1.0)
    assert port.crashes == []  # a heartbeat alone records nothing

    port.die(0, -9)
    notices = sup.tick(2.0)

    [(worker_id, symbol, reason)] = port.crashes
    assert (worker_id, symbol) == (0, "B")
    assert "worker 0" in reason
    assert "SIGKILL(-9)" in reason
    assert "while detecting B" in messages(notices)


def test_crash_reason_says_how_the_worker_died() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    port.die(0, 3)

    sup.tick(1.0)

    [(_, _, reason)] = port.crashes
    assert "worker 0" in reason
    assert "exit 3" in reason


def test_heartbeat_of_an_older_process_is_not_used_for_crash_attribution() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    port.die(0, -9)
    sup.tick(1.0)
    assert [c[1] for c in port.crashes] == ["A"]
    sup.tick(2.0)  # restarted; its heartbeat file still shows the old pid on A

    port.die(0, -9)
    notices = sup.tick(3.0)

    assert [c[1] for c in port.crashes] == ["A"]  # not blamed a second time
    assert "while detecting" not in messages(notices)


def test_heartbeat_of_an_explicitly_older_pid_is_ignored() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A", pid=port.process(0).pid - 1)
    port.die(0, -11)

    sup.tick(1.0)

    assert port.crashes == []


def test_death_between_symbols_records_no_crash() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol=None, symbols_done=1)
    port.die(0, -9)

    notices = sup.tick(1.0)

    assert port.crashes == []
    assert "while detecting" not in messages(notices)
    assert state(sup) is SlotState.WAITING


def test_death_without_any_heartbeat_records_no_crash() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.die(0, -9)

    sup.tick(1.0)

    assert port.crashes == []
    assert state(sup) is SlotState.WAITING


# -- non-zero exits --------------------------------------------------------------------


def test_exit_1_with_nothing_remaining_is_done_and_not_restarted() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    process = port.die(0, 1)
    port.left[0] = ()

    notices = sup.tick(1.0)

    assert state(sup) is SlotState.DONE
    assert f"pid {process.pid} ended (exit 1); nothing left for it" in messages(notices)
    for t in (2.0, 100.0):
        sup.tick(t)
    assert len(port.spawns) == 1
    assert sup.finished
    assert sup.given_up() == []


def test_exit_1_with_symbols_remaining_is_restarted() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.die(0, 1)

    notices = sup.tick(1.0)
    assert "died (exit 1); restarting in 1 s" in messages(notices)
    sup.tick(2.0)

    assert port.spawned(0) == [("A", "B"), ("A", "B")]


# -- stalls ----------------------------------------------------------------------------


def test_unchanged_heartbeat_for_stall_timeout_terminates_once_then_kills_after_grace() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port, stall_timeout_seconds=60, stop_grace_seconds=10)
    sup.tick(0.0)
    process = port.process(0)
    port.beat(0, "t1", current_symbol="B", symbols_done=0)
    sup.tick(5.0)  # first sight of the heartbeat

    assert sup.tick(64.9) == []
    assert port.terminates == []
    notices = sup.tick(65.0)  # 60 s without a change
    assert port.terminates == [process.pid]
    assert state(sup) is SlotState.STOPPING
    [notice] = notices
    assert notice.level == logging.WARNING
    assert f"pid {process.pid} stalled" in notice.message
    assert "SIGTERM" in notice.message

    assert sup.tick(70.0) == []
    assert sup.tick(74.9) == []
    assert port.terminates == [process.pid]  # once
    assert port.kills == []
    notices = sup.tick(75.0)  # stop_grace after the SIGTERM
    assert port.kills == [process.pid]
    assert "SIGKILL" in messages(notices)
    assert notices[0].level == logging.WARNING
    sup.tick(76.0)
    sup.tick(84.9)
    assert port.kills == [process.pid]  # once
    assert state(sup) is SlotState.STOPPING
    assert port.forgets == []

    process.returncode = -9
    notices = sup.tick(85.0)
    assert state(sup) is SlotState.WAITING
    assert port.forgets == [(0, process.pid)]
    assert "was stopped after stalling (SIGKILL(-9)) while detecting B" in messages(notices)
    [(worker_id, symbol, reason)] = port.crashes
    assert (worker_id, symbol) == (0, "B")
    assert "worker 0" in reason
    assert "stalled" in reason

    assert sup.tick(85.5) == []  # backoff: 1 s
    sup.tick(86.0)
    assert state(sup) is SlotState.RUNNING
    assert port.spawned(0) == [("A", "B"), ("A", "B")]


def test_stalled_worker_that_exits_on_sigterm_is_not_killed_and_is_restarted() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port, stall_timeout_seconds=60, stop_grace_seconds=10)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    sup.tick(1.0)
    sup.tick(61.0)
    assert state(sup) is SlotState.STOPPING

    port.die(0, 143)  # stopped between symbols: ExitCode.TERMINATED
    notices = sup.tick(62.0)

    assert port.kills == []
    assert state(sup) is SlotState.WAITING
    assert "was stopped after stalling (exit 143)" in messages(notices)
    assert [c[1] for c in port.crashes] == ["A"]
    assert "stalled" in port.crashes[0][2]
    sup.tick(100.0)
    assert sup.tick(200.0) == []  # the kill deadline of the old process is long gone
    assert port.kills == []


def test_heartbeat_changes_reset_the_stall_timer() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60)
    sup.tick(0.0)
    now = 0.0
    for n in range(20):  # a new token every 50 s, ticks every 10 s
        port.beat(0, n, current_symbol="A")
        for _ in range(5):
            now += 10.0
            sup.tick(now)
    assert port.terminates == []
    assert state(sup) is SlotState.RUNNING
    last_change = now - 40.0  # the last token was first seen 40 s ago

    sup.tick(last_change + 59.0)
    assert port.terminates == []
    sup.tick(last_change + 60.0)
    assert port.terminates == [port.process(0).pid]


def test_same_token_from_a_new_pid_is_a_change() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60)
    sup.tick(0.0)
    port.beat(0, "same", pid=1)
    sup.tick(10.0)
    port.beat(0, "same")  # now from the running process
    sup.tick(50.0)

    sup.tick(100.0)
    assert port.terminates == []
    sup.tick(110.0)
    assert len(port.terminates) == 1


def test_worker_that_never_writes_a_heartbeat_stalls_after_the_timeout() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60)
    sup.tick(100.0)

    sup.tick(159.0)
    assert port.terminates == []
    sup.tick(160.0)
    assert port.terminates == [port.process(0).pid]
    assert state(sup) is SlotState.STOPPING


def test_stall_timer_restarts_with_each_new_process() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60)
    sup.tick(0.0)
    port.beat(0, "t1")
    sup.tick(1.0)
    port.die(0, -9)
    sup.tick(50.0)
    sup.tick(51.0)  # restarted; the heartbeat file is still the old one, unchanged
    sup.tick(52.0)  # the first pass of the new process sees it: a change

    sup.tick(111.0)
    assert port.terminates == []  # not 60 s after the old process's last change
    sup.tick(112.0)
    assert port.terminates == [port.process(0).pid]


# -- stop_all --------------------------------------------------------------------------


def test_stop_all_terminates_running_workers_and_starts_none_again() -> None:
    port = FakePort({0: ["A"], 1: ["B"], 2: ["C"], 3: ["D"]})
    sup = supervisor(port, stop_grace_seconds=10)
    sup.tick(0.0)
    p0, p1, p2, p3 = (port.process(k) for k in range(4))
    port.die(2, -9)
    sup.tick(1.0)  # worker 2 waits for its restart at 2.0
    assert state(sup, 2) is SlotState.WAITING
    port.die(3, 0)
    sup.tick(1.5)
    assert state(sup, 3) is SlotState.DONE

    notices = sup.stop_all(1.8, "Ctrl-C")

    assert sorted(port.terminates) == [p0.pid, p1.pid]
    assert state(sup, 0) is SlotState.STOPPING
    assert state(sup, 1) is SlotState.STOPPING
    assert state(sup, 2) is SlotState.STOPPED
    assert state(sup, 3) is SlotState.DONE
    assert f"stopping pid {p0.pid}: Ctrl-C" in messages(notices)
    assert f"stopping pid {p1.pid}: Ctrl-C" in messages(notices)
    assert not sup.finished

    sup.tick(5.0)  # worker 2's restart was due at 2.0
    assert len(port.spawns) == 4
    assert port.kills == []

    port.beat(0, "t", current_symbol="A")
    p0.returncode = -15  # stopped by the SIGTERM, mid-symbol
    sup.tick(6.0)
    assert state(sup, 0) is SlotState.STOPPED
    assert port.crashes == []  # being stopped is not a failed attempt

    sup.tick(11.7)
    assert port.kills == []
    sup.tick(11.8)  # grace over for worker 1
    assert port.kills == [p1.pid]
    sup.tick(12.0)
    assert port.kills == [p1.pid]
    assert not sup.finished
    p1.returncode = -9
    sup.tick(12.5)

    assert state(sup, 1) is SlotState.STOPPED
    assert sup.finished
    assert len(port.spawns) == 4
    assert sorted(port.forgets) == sorted([(0, p0.pid), (1, p1.pid), (2, p2.pid), (3, p3.pid)])
    sup.tick(1000.0)
    assert len(port.spawns) == 4


def test_worker_exiting_0_after_stop_all_is_done() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    sup.stop_all(1.0, "shutdown")
    port.die(0, 0)

    sup.tick(2.0)

    assert state(sup) is SlotState.DONE
    assert sup.finished
    assert sup.given_up() == []


def test_stop_all_twice_terminates_once() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)

    sup.stop_all(1.0, "first")
    assert sup.stop_all(2.0, "second") == []

    assert port.terminates == [port.process(0).pid]


def test_stop_all_during_a_stall_stop_records_no_crash() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60, stop_grace_seconds=10)
    sup.tick(0.0)
    port.beat(0, "t", current_symbol="A")
    sup.tick(1.0)
    sup.tick(61.0)
    assert state(sup) is SlotState.STOPPING

    sup.stop_all(62.0, "Ctrl-C")
    sup.tick(71.0)
    assert port.kills == [port.process(0).pid]
    assert port.terminates == [port.process(0).pid]
    port.die(0, -9)
    sup.tick(72.0)

    assert state(sup) is SlotState.STOPPED
    assert sup.finished
    assert len(port.spawns) == 1


def test_stop_all_before_the_first_tick_starts_nothing() -> None:
    port = FakePort({0: ["A"], 1: ["B"]})
    sup = supervisor(port)

    assert sup.stop_all(0.0, "Ctrl-C") == []
    sup.tick(0.0)

    assert port.spawns == []
    assert sup.finished


# -- bookkeeping -----------------------------------------------------------------------


def test_forget_is_called_exactly_once_per_exited_process() -> None:
    port = FakePort({0: ["A", "B"], 1: ["C"], 2: ["D"]})
    sup = supervisor(port, max_restarts=1, stall_timeout_seconds=60, stop_grace_seconds=10)
    sup.tick(0.0)
    port.die(1, 0)  # done
    port.die(2, 1)  # restarted once, then given up
    port.beat(0, "t0")
    sup.tick(1.0)
    sup.tick(2.0)
    port.die(2, -9)
    kills = 0
    for t in range(3, 400):  # worker 0 stalls and is killed, twice
        sup.tick(float(t))
        if len(port.kills) > kills:
            kills = len(port.kills)
            port.die(0, -9)
    assert sup.finished
    assert sup.given_up() == [0, 2]

    spawned = sorted((k, p.pid) for k, _, p in port.spawns)
    assert len(spawned) == 5
    assert sorted(port.forgets) == spawned


def test_finished_with_no_workers() -> None:
    sup = Supervisor([], FakePort({}), config())
    assert sup.finished
    assert sup.tick(0.0) == []
    assert sup.given_up() == []


def test_process_surviving_sigkill_for_a_grace_is_abandoned_not_waited_for_forever() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60, stop_grace_seconds=10)
    sup.tick(0.0)
    sup.tick(60.0)  # stalled: SIGTERM
    sup.tick(70.0)  # grace over: SIGKILL
    assert port.kills == [port.process(0).pid]
    assert sup.tick(79.9) == []

    notices = sup.tick(80.0)

    assert state(sup) is SlotState.GAVE_UP
    assert sup.finished
    assert notices[0].level == logging.ERROR
    assert "did not exit" in notices[0].message
    assert len(port.spawns) == 1


def test_unreadable_heartbeat_is_no_news_and_does_not_hide_a_stall() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port, stall_timeout_seconds=60)
    sup.tick(0.0)
    port.beat(0, "t", current_symbol="A")
    sup.tick(1.0)
    for now in range(2, 63):
        if now % 2:
            port.beats[0] = None  # being replaced: unreadable this pass
        else:
            port.beat(0, "t", current_symbol="A")
        sup.tick(float(now))

    assert port.terminates == [port.process(0).pid]
    assert state(sup) is SlotState.STOPPING


# -- a worker's last error line, and refused writes --------------------------------------


def test_a_death_with_an_error_line_shows_it_and_records_it_with_the_symbol() -> None:
    port = FakePort({0: ["A", "B"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    port.errors[0] = "ZeroDivisionError: division by zero"
    port.die(0, 1)
    notices = sup.tick(1.0)
    assert "died (exit 1: ZeroDivisionError: division by zero) while detecting A" in (
        messages(notices)
    )
    assert port.crashes == [
        (0, "A", "worker 0 died (exit 1: ZeroDivisionError: division by zero) while detecting it")
    ]
    assert sup.slots[0].last_exit == "exit 1: ZeroDivisionError: division by zero"
    assert state(sup) is SlotState.WAITING  # restarted as any death


def test_a_signal_death_reads_no_error_line() -> None:
    port = FakePort({0: ["A"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.errors[0] = "an older process's line"
    port.die(0, -9)
    assert "died (SIGKILL(-9));" in messages(sup.tick(1.0))


def test_exit_5_is_a_refused_write_not_restarted_and_no_symbol_blamed() -> None:
    port = FakePort({0: ["A", "B"], 1: ["C"]})
    sup = supervisor(port)
    sup.tick(0.0)
    port.beat(0, "t1", current_symbol="A")
    port.errors[0] = "cannot write x: No space left on device (ENOSPC); ..."
    port.die(0, 5)
    notices = sup.tick(1.0)
    assert state(sup, 0) is SlotState.STOPPED and port.crashes == []
    assert sup.environment_failure == (0, "cannot write x: No space left on device (ENOSPC); ...")
    assert "could not write (exit 5: cannot write x" in messages(notices)
    assert state(sup, 1) is SlotState.RUNNING  # the launcher decides to stop the others
    sup.tick(30.0)
    assert len(port.spawned(0)) == 1  # never restarted
