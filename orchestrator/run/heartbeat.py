"""Heartbeat files and TSV logs a worker writes while it runs.

- per worker: ``{run_id}_worker_{k}.json`` (ours, atomically replaced after every symbol);
- per run: the legacy ``{run_id}_heartbeat.json`` (written by a lone ``detect`` only,
  so that no two processes ever rewrite it);
- TSV heartbeat and batch logs in their legacy formats, appended, line-buffered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.io_errors import writing

Status = Literal["starting", "running", "committing", "completed", "failed", "stopped"]
STATUSES: frozenset[str] = frozenset(get_args(Status))


@dataclass(frozen=True)
class WorkerHeartbeat:
    run_id: str
    worker_id: int | None
    pid: int
    status: Status
    current_symbol: str | None
    last_symbol: str | None
    symbols_done: int
    symbols_total: int
    bars_done: int
    bars_total: int
    events: int
    batch_num: int
    total_batches: int
    rss_gb: float | None  # None only when read from a file that lacks it
    started_at: str
    updated_at: str
    host: str | None = None  # written by Ray tasks, whose pid is on that machine
    node_id: str | None = None  # written by Ray tasks: the Ray node they ran on

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    @property
    def elapsed_s(self) -> float:
        """Seconds from the process's start to this heartbeat."""
        return (datetime.fromisoformat(self.updated_at) - self.started).total_seconds()


def write_heartbeat(path: Path, beat: WorkerHeartbeat) -> None:
    write_text_atomic(path, json.dumps(asdict(beat), indent=1) + "\n", durable=False)


def parse_heartbeat(text: str, run_id: str) -> WorkerHeartbeat | None:
    """The heartbeat in ``text``, or None for anything that is not one of ``run_id``'s.

    Readers (the supervisor, ``status``) run while workers write, and may meet a
    foreign or damaged file: every field is type-checked, and fields a reader can
    do without may be missing.
    """
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("run_id") != run_id:
            return None
        if data["status"] not in STATUSES:
            return None
        rss = data.get("rss_gb")
        worker_id = data.get("worker_id")
        beat = WorkerHeartbeat(
            run_id=run_id,
            worker_id=None if worker_id is None else _int(worker_id),
            pid=_int(data["pid"]),
            status=data["status"],
            current_symbol=_str(data.get("current_symbol")),
            last_symbol=_str(data.get("last_symbol")),
            symbols_done=_int(data["symbols_done"]),
            symbols_total=_int(data["symbols_total"]),
            bars_done=_int(data["bars_done"]),
            bars_total=_int(data.get("bars_total", 0)),
            events=_int(data["events"]),
            batch_num=_int(data.get("batch_num", 0)),
            total_batches=_int(data.get("total_batches", 0)),
            rss_gb=float(rss) if isinstance(rss, int | float) else None,
            started_at=str(data["started_at"]),
            updated_at=str(data["updated_at"]),
            host=_str(data.get("host")),
            node_id=_str(data.get("node_id")),
        )
        _ = beat.elapsed_s  # raises for an unparsable stamp, or a naive one beside an aware one
        return beat
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def write_legacy_run_heartbeat(path: Path, beat: WorkerHeartbeat, *, completed: bool) -> None:
    if completed:
        write_run_completed(
            path,
            run_id=beat.run_id,
            total_events=beat.events,
            total_symbols=beat.symbols_done,
            completed_at=beat.updated_at,
        )
        return
    total = max(beat.symbols_total, 1)
    data = {
        "run_id": beat.run_id,
        "last_symbol": beat.last_symbol,
        "last_timestamp": beat.updated_at,
        "batch_num": beat.batch_num,
        "total_batches": beat.total_batches,
        "progress_pct": round(100.0 * beat.symbols_done / total, 2),
        "events_detected": beat.events,
        "memory_gb": beat.rss_gb,
        "status": beat.status if beat.status in ("failed", "stopped") else "running",
    }
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", durable=False)


def write_run_completed(
    path: Path, *, run_id: str, total_events: int, total_symbols: int, completed_at: str
) -> None:
    """The legacy run heartbeat's final form, which old monitoring waits for."""
    data = {
        "run_id": run_id,
        "status": "completed",
        "total_events": total_events,
        "total_symbols": total_symbols,
        "completed_at": completed_at,
    }
    write_text_atomic(path, json.dumps(data, indent=1) + "\n", durable=False)


def append_line(path: Path, fields: list[object]) -> None:
    """Append one TSV line; the file is opened per line so it is always flushed."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", buffering=1) as handle:
            handle.write("\t".join(str(f) for f in fields) + "\n")


def local_stamp(now: datetime) -> str:
    """Legacy heartbeat timestamps are local time."""
    return now.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class BatchLogEntry:
    """One line of the legacy batch log: a shard that was committed."""

    timestamp: str  # local time, as written
    batch_num: int
    symbols: int
    events: int
    shard_file: str
    mem_gb: float | None


def parse_batch_log_line(line: str) -> BatchLogEntry | None:
    """A batch log line, or None for a partial, foreign or malformed one."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 6:
        return None
    stamp, batch, symbols, events, shard, mem = fields
    try:
        mem_gb = None if mem in ("", "None") else float(mem)
        return BatchLogEntry(stamp, int(batch), int(symbols), int(events), shard, mem_gb)
    except ValueError:
        return None
