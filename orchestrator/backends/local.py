"""The supervisor's port to the world on one machine: ``detect`` processes and run files."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from detector.input_fingerprint import InputFingerprint
from orchestrator.backends.base import LaunchWork
from orchestrator.backends.processes import (
    available_cpus,
    signal_group,
    spawn,
    stop_tree,
    worker_environment,
)
from orchestrator.backends.supervisor import HeartbeatView, Notice, ProcessHandle, Supervisor
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.console import console_size, read_last_error
from orchestrator.run.heartbeat import parse_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import PidFileError, read_pid_file, record_for, write_pid_file
from orchestrator.run.spec import DEFAULTS
from orchestrator.run.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerCommand:
    """How to start one ``detect`` worker of the launch: the CLI and the run's spec."""

    cli: tuple[str, ...]  # runs the CLI up to the command name: [python, -m, tools, --root, R]
    spec_file: Path  # every parameter of the run (orchestrator.run.spec)
    env: Mapping[str, str] | None = None

    def argv(self, worker_id: int, symbols_file: Path, parent_pid: int) -> list[str]:
        return [
            *self.cli,
            "detect",
            "--spec", str(self.spec_file),
            "--from-file", str(symbols_file),
            "--worker-id", str(worker_id),
            "--parent-pid", str(parent_pid),
        ]  # fmt: skip


class LocalWorkers:
    """Implements :class:`orchestrator.backends.supervisor.WorkerPort` with local processes."""

    def __init__(
        self,
        layout: RunLayout,
        store: RunStore,
        command: WorkerCommand,
        assignments: Sequence[Sequence[str]],
        redo: Mapping[str, InputFingerprint] | None = None,
        *,
        max_attempts: int = DEFAULTS.max_attempts,
    ) -> None:
        self.layout = layout
        self.store = store
        self.command = command
        self.max_attempts = max_attempts
        self.assignments = [tuple(a) for a in assignments]
        self.redo = dict(redo or {})  # --redo-changed: symbol -> its bars' print now
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._console_from: dict[int, int] = {}  # where each current process's output starts

    # -- state ---------------------------------------------------------------------
    def remaining(self, worker_id: int) -> tuple[str, ...]:
        cp = self.store.current()
        if cp is None:
            return self.assignments[worker_id]
        return cp.remaining_of(self.assignments[worker_id], self.max_attempts, self.redo)

    def heartbeat(self, worker_id: int) -> HeartbeatView | None:
        return heartbeat_view(self.layout, worker_id)

    # -- processes -----------------------------------------------------------------
    def spawn(self, worker_id: int, symbols: tuple[str, ...]) -> ProcessHandle:
        symbols_file = self.layout.worker_symbols_file(worker_id)
        write_text_atomic(symbols_file, "".join(f"{s}\n" for s in symbols), durable=False)
        argv = self.command.argv(worker_id, symbols_file, os.getpid())
        console = self.layout.worker_console_log(worker_id)
        self._console_from[worker_id] = console_size(console)
        process = spawn(argv, console_log=console, env=self.command.env)
        self.processes[worker_id] = process
        try:
            record = record_for(
                process.pid, run_id=self.layout.run_id, role="worker", worker_id=worker_id
            )
        except psutil.Error as exc:  # it already exited: the supervisor sees that next pass
            log.debug("no PID file for worker %d (pid %d): %s", worker_id, process.pid, exc)
        else:
            write_pid_file(self.layout.worker_pid_file(worker_id), record)
        return process

    def last_error(self, worker_id: int) -> str | None:
        return read_last_error(
            self.layout.worker_console_log(worker_id), self._console_from.get(worker_id, 0)
        )

    def terminate(self, handle: ProcessHandle) -> None:
        signal_group(handle.pid, signal.SIGTERM)

    def kill(self, handle: ProcessHandle) -> None:
        signal_group(handle.pid, signal.SIGKILL)

    def forget(self, worker_id: int, handle: ProcessHandle) -> None:
        path = self.layout.worker_pid_file(worker_id)
        try:
            if read_pid_file(path).pid == handle.pid:
                path.unlink(missing_ok=True)
        except PidFileError:
            path.unlink(missing_ok=True)
        self.processes.pop(worker_id, None)

    def record_crash(self, worker_id: int, symbol: str, reason: str) -> None:
        cp = self.store.record_failures({symbol: reason})
        failure = cp.failed.get(symbol)
        attempts = failure.attempts if failure is not None else 0
        if attempts >= self.max_attempts:
            log.error(
                "%s quarantined: in progress during %d failed attempts (%s)",
                symbol,
                attempts,
                reason,
            )
        else:
            log.warning("%s: failed attempt %d recorded (%s)", symbol, attempts, reason)


def heartbeat_view(layout: RunLayout, worker_id: int) -> HeartbeatView | None:
    """Worker ``worker_id``'s heartbeat as the supervisor sees it, None if unreadable."""
    path = layout.worker_heartbeat(worker_id)
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None  # absent or being replaced: the next pass reads it
    beat = parse_heartbeat(text, layout.run_id)
    if beat is None:
        return None
    return HeartbeatView(
        pid=beat.pid,
        token=(stat.st_mtime_ns, stat.st_size, beat.updated_at),
        current_symbol=beat.current_symbol,
        symbols_done=beat.symbols_done,
        batch_num=beat.batch_num,
        node_id=beat.node_id,
    )


@dataclass(frozen=True)
class LocalProcesses:
    """``--backend local``: one ``detect`` process per worker, on this machine."""

    cli: tuple[str, ...]  # runs the CLI up to the command name
    env: Mapping[str, str] | None = None  # None: this process's environment
    cpus: int | None = None  # CPUs the workers share; None: those this process may use

    def check_available(self) -> None:
        return None  # this machine is always at hand

    def start(self, work: LaunchWork) -> LocalBackend:
        env = worker_environment(
            os.environ if self.env is None else self.env,
            workers=len(work.assignments),
            cpus=self.cpus or available_cpus(),
        )
        port = LocalWorkers(
            work.layout,
            work.store,
            WorkerCommand(self.cli, work.layout.spec, env),
            work.assignments,
            work.redo,
            max_attempts=work.spec.max_attempts,
        )
        supervisor = Supervisor(list(range(len(work.assignments))), port, work.app.supervision)
        return LocalBackend(supervisor, port, work)


class LocalBackend:
    """Worker processes under the :class:`Supervisor`; implements ``Backend``."""

    def __init__(self, supervisor: Supervisor, port: LocalWorkers, work: LaunchWork) -> None:
        self.supervisor = supervisor
        self.port = port
        self.work = work

    @property
    def finished(self) -> bool:
        return self.supervisor.finished

    @property
    def stopping(self) -> bool:
        return self.supervisor.stopping_all

    @property
    def environment_failure(self) -> tuple[int, str] | None:
        return self.supervisor.environment_failure

    def tick(self, now: float) -> list[Notice]:
        return self.supervisor.tick(now)

    def wait(self, timeout: float) -> None:
        self.work.sleep(timeout)

    def stop_all(self, now: float, reason: str) -> list[Notice]:
        return self.supervisor.stop_all(now, reason)

    def given_up(self) -> dict[int, str]:
        slots = self.supervisor.slots
        return {k: slots[k].last_exit or "?" for k in self.supervisor.given_up()}

    def close(self) -> None:
        """No worker outlives the launch, however its loop ended."""
        grace = self.work.app.supervision.stop_grace_seconds
        for worker_id, process in list(self.port.processes.items()):
            if process.poll() is None:
                result = stop_tree(psutil.Process(process.pid), grace=grace)
                log.warning(
                    "worker %d: pid %d stopped at exit (%s)", worker_id, process.pid, result.how
                )
            process.wait()
            self.port.forget(worker_id, process)
