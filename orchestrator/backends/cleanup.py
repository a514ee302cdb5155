"""Stopping a run's recorded processes and clearing what dead ones left behind.

Used by ``restart`` and by ``launch`` (which stops workers orphaned by a killed
launcher before starting its own). A process is signalled only if it is the one
its PID file recorded (pid, create time and command line); anything else found
under a recorded pid is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.backends.processes import stop_tree
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import PidFileError, read_pid_file, recorded_process
from orchestrator.run.process_identity import is_running
from orchestrator.run.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    stopped: tuple[str, ...] = ()  # processes stopped, one line each
    removed: tuple[str, ...] = ()  # files removed, one line each
    left_alone: tuple[str, ...] = ()  # live processes that are not what a PID file recorded

    def lines(self) -> list[str]:
        return [*self.stopped, *self.left_alone, *self.removed]


def stop_recorded_processes(layout: RunLayout, *, grace: float) -> CleanupReport:
    """Stop every live recorded process of the run (orchestrator first) and drop PID files."""
    stopped: list[str] = []
    removed: list[str] = []
    left_alone: list[str] = []
    files = layout.pid_files()
    # The orchestrator first: told to stop, it stops its workers in order itself.
    files.sort(key=lambda p: p != layout.orchestrator_pid_file)
    for path in files:
        try:
            record = read_pid_file(path)
        except PidFileError as exc:
            if not path.exists():
                continue  # its owner removed it meanwhile (an orchestrator stopping workers)
            path.unlink(missing_ok=True)
            removed.append(f"removed unreadable PID file {path.name} ({exc})")
            continue
        who = record.role if record.worker_id is None else f"worker {record.worker_id}"
        process = recorded_process(record)
        if process is not None:
            # An orchestrator first stops its own workers, each with the same grace.
            wait = 2 * grace + 5 if record.role == "orchestrator" else grace
            # Workers lead their own process group; a launcher may share the shell's.
            result = stop_tree(process, grace=wait, group=record.role == "worker")
            stopped.append(f"stopped {who} pid {record.pid} ({result.how})")
            log.info("stopped %s pid %d (%s)", who, record.pid, result.how)
        elif is_running(record.pid):
            left_alone.append(
                f"left alone pid {record.pid}: it is not the recorded {who} "
                "(different start time or command line; the pid was reused)"
            )
        if path.exists():
            path.unlink(missing_ok=True)
            removed.append(f"removed PID file {path.name}")
    return CleanupReport(tuple(stopped), tuple(removed), tuple(left_alone))


def remove_orphan_temps(layout: RunLayout) -> list[str]:
    """Remove temporary shards and checkpoint temps of dead writers (under the run lock)."""
    before = [*layout.temp_shards(), *layout.temp_checkpoints()]
    if not before or not layout.checkpoints_dir.exists():
        return []
    RunStore(layout).reconcile()
    return [f"removed orphan temporary file {p.name}" for p in before if not p.exists()]
