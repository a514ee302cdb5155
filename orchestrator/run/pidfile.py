"""PID files: which process is which, checked before anyone signals it.

A PID file records the pid, the process's create time and command line, the run
and the worker. A pid alone proves nothing (pids are reused), so a recorded
process counts as alive only if a process with that pid exists *and* has the
recorded create time and command line. Processes are never looked up by name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.process_identity import live_process


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    cmdline: tuple[str, ...]
    run_id: str
    role: str  # "orchestrator" or "worker"
    worker_id: int | None = None


def record_for(pid: int, *, run_id: str, role: str, worker_id: int | None = None) -> PidRecord:
    """A record of the running process ``pid`` (raises psutil.NoSuchProcess if gone)."""
    process = psutil.Process(pid)
    with process.oneshot():
        return PidRecord(
            pid=pid,
            create_time=process.create_time(),
            cmdline=tuple(process.cmdline()),
            run_id=run_id,
            role=role,
            worker_id=worker_id,
        )


def write_pid_file(path: Path, record: PidRecord) -> None:
    write_text_atomic(path, json.dumps(asdict(record), indent=1) + "\n", durable=False)


class PidFileError(ValueError):
    """A PID file that cannot be read or is not one of ours."""


def read_pid_file(path: Path) -> PidRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PidRecord(
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            cmdline=tuple(str(a) for a in data["cmdline"]),
            run_id=str(data["run_id"]),
            role=str(data["role"]),
            worker_id=None if data.get("worker_id") is None else int(data["worker_id"]),
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PidFileError(f"{path}: {exc}") from exc


def recorded_process(record: PidRecord) -> psutil.Process | None:
    """The live process the record describes, or None (gone, or its pid was reused)."""
    process = live_process(record.pid, created=record.create_time)
    if process is None:
        return None
    try:
        return process if tuple(process.cmdline()) == record.cmdline else None
    except psutil.Error:
        return None
