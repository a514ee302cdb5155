"""The supervisor's port to the world on one machine: ``detect`` processes and run files."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psutil

from detector.input_fingerprint import InputFingerprint
from orchestrator.backends.processes import signal_group, spawn
from orchestrator.backends.supervisor import HeartbeatView, ProcessHandle
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.checkpoint import Checkpoint, CheckpointFormatError
from orchestrator.run.console import console_size, read_last_error
from orchestrator.run.heartbeat import parse_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import PidFileError, read_pid_file, record_for, write_pid_file
from orchestrator.run.store import RunStore
from orchestrator.worker.batch import InputPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerCommand:
    """How to start one ``detect`` worker of the launch."""

    cli: tuple[str, ...]  # runs the CLI up to the command name: [python, -m, tools, --root, R]
    run_id: str
    bars_root: Path
    batch_size: int
    max_attempts: int
    start_date: date | None = None
    end_date: date | None = None
    env: Mapping[str, str] | None = None
    inputs: InputPolicy = field(default_factory=InputPolicy)

    def argv(self, worker_id: int, symbols_file: Path, parent_pid: int) -> list[str]:
        argv = [
            *self.cli,
            "detect",
            "--run-id", self.run_id,
            "--from-file", str(symbols_file),
            "--worker-id", str(worker_id),
            "--bars", str(self.bars_root),
            "--batch-size", str(self.batch_size),
            "--max-attempts", str(self.max_attempts),
            "--resume",
            "--no-merge",
            "--no-timezone-check",  # the launcher checked the zone before starting workers
            "--parent-pid", str(parent_pid),
        ]  # fmt: skip
        if self.start_date is not None:
            argv += ["--start-date", self.start_date.isoformat()]
        if self.end_date is not None:
            argv += ["--end-date", self.end_date.isoformat()]
        if self.inputs.allow_missing:
            argv.append("--allow-missing")
        if self.inputs.skip_unreadable:
            argv.append("--skip-unreadable")
        if self.inputs.redo_changed:
            argv.append("--redo-changed")
        # The launcher looked for every symbol's bar files when it planned.
        argv.append("--inputs-checked")
        return argv


class LocalWorkers:
    """Implements :class:`orchestrator.backends.supervisor.WorkerPort` with local processes."""

    def __init__(
        self,
        layout: RunLayout,
        store: RunStore,
        command: WorkerCommand,
        assignments: Sequence[Sequence[str]],
        redo: Mapping[str, InputFingerprint] | None = None,
    ) -> None:
        self.layout = layout
        self.store = store
        self.command = command
        self.assignments = [tuple(a) for a in assignments]
        self.redo = dict(redo or {})  # --redo-changed: symbol -> its bars' print now
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._console_from: dict[int, int] = {}  # where each current process's output starts

    # -- state ---------------------------------------------------------------------
    def _checkpoint(self) -> Checkpoint | None:
        try:
            return self.store.read()
        except CheckpointFormatError:
            return self.store.reconcile()  # rebuilt from the shards, under the lock

    def remaining(self, worker_id: int) -> tuple[str, ...]:
        cp = self._checkpoint()
        if cp is None:
            return self.assignments[worker_id]
        skip = cp.settled(self.command.max_attempts, self.redo)
        return tuple(s for s in self.assignments[worker_id] if s not in skip)

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
        if attempts >= self.command.max_attempts:
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
    )
