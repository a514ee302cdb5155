"""Reading a run's files for a snapshot: every function tolerates any file state.

Workers write while we read, so a file may be missing, half-written, corrupt or
of another run or version: each function returns what it could read, and
nothing (None, 0, empty) for the rest. Nothing here writes, creates or locks.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from orchestrator.run.heartbeat import BatchLogEntry, parse_batch_log_line
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import PidFileError, read_pid_file, recorded_process
from orchestrator.run.plan import Plan, PlanFileError, read_plan

RECENT_SHARDS = 5  # committed shards a snapshot keeps from the batch log
# Bytes read from the end of each batch log: far more than RECENT_SHARDS lines.
_BATCH_LOG_TAIL_BYTES = 64 * 1024


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def run_plan(layout: RunLayout) -> Plan | None:
    try:
        plan = read_plan(layout.plan)
    except PlanFileError:
        return None
    return plan if plan.run_id == layout.run_id else None


def count_events(layout: RunLayout) -> tuple[int, int, tuple[str, ...]]:
    """Rows of the committed shards (footers only), their number, and unreadable ones."""
    try:
        shards = layout.committed_shards()
    except OSError:
        return 0, 0, ()
    rows = 0
    unreadable: list[str] = []
    for path in shards.values():
        try:
            rows += pq.read_metadata(path).num_rows
        except Exception:  # pyarrow raises its own types for truncated or foreign files
            unreadable.append(path.name)
    return rows, len(shards), tuple(unreadable)


def recent_shards(layout: RunLayout) -> tuple[BatchLogEntry, ...]:
    """The run's newest committed shards from the (daily, shared) batch logs."""
    prefix = f"{layout.run_id}_shard"
    found: list[BatchLogEntry] = []
    try:
        logs = layout.batch_logs()[-2:]  # today's and yesterday's cover a run across midnight
    except OSError:
        return ()
    for path in logs:
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - _BATCH_LOG_TAIL_BYTES))
                tail = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        # The first line of a tail may be cut, the last one half-written: both fail to parse.
        for line in tail.splitlines():
            entry = parse_batch_log_line(line)
            if entry is not None and entry.shard_file.startswith(prefix):
                found.append(entry)
    return tuple(found[-RECENT_SHARDS:])


def read_pid_files(layout: RunLayout) -> tuple[int | None, bool, dict[int, tuple[int, bool]]]:
    """Orchestrator pid and liveness, and worker id -> (pid, alive) from the PID files."""
    orchestrator_pid: int | None = None
    orchestrator_alive = False
    workers: dict[int, tuple[int, bool]] = {}
    try:
        paths = layout.pid_files()
    except OSError:
        paths = []
    for path in paths:
        try:
            record = read_pid_file(path)
        except PidFileError:
            continue
        if record.run_id != layout.run_id:
            continue
        # recorded_process checks create time and command line: a reused pid is not ours.
        alive = recorded_process(record) is not None
        if record.role == "orchestrator":
            orchestrator_pid, orchestrator_alive = record.pid, alive
        elif record.role == "worker" and record.worker_id is not None:
            workers[record.worker_id] = (record.pid, alive)
    return orchestrator_pid, orchestrator_alive, workers


def heartbeat_ids(layout: RunLayout) -> list[int]:
    prefix = f"{layout.run_id}_worker_"
    ids = []
    try:
        paths = list(layout.heartbeats_dir.glob(f"{prefix}*.json"))
    except OSError:
        return []
    for path in paths:
        number = path.name.removeprefix(prefix).removesuffix(".json")
        if number.isdigit():  # not another run whose id merely starts like ours
            ids.append(int(number))
    return ids


def mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime)
    except OSError:
        return None
