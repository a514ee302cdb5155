"""One batch detected away from the run's lock, wherever it runs.

:func:`detect_batch` is the batch routine of both backends: it detects a batch's
symbols in turn (a failure is recorded, never raised), heartbeats after each, hands
each heartbeat-log line to a sink, checks a stop predicate between symbols, and
writes the events as a temporary shard for the process that commits the run's
batches (:meth:`orchestrator.run.store.RunStore.commit_written`). A local worker
(:mod:`orchestrator.worker.loop`) commits it itself, appending the log lines as they
come. A task of the Ray backend (:func:`run_batch`) runs on any node of a cluster,
where the run's files sit on a shared filesystem whose kernel locks cannot be
trusted, so it only *detects*: its temporary shard is named after the driver (the
one process that commits it, or removes it if it is never committed) and it returns
that path. It writes nothing else that another process writes: its lane's heartbeat
file is its own, and the log lines are returned for the driver to append.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from detector.config import AppConfig
from detector.errors import BarsError, NoBarsError
from detector.input_fingerprint import InputFingerprint
from detector.pipeline import detect_symbol_result
from detector.schema import empty_events
from orchestrator.run.faults import crash_point, pause_point
from orchestrator.run.heartbeat import WorkerHeartbeat, local_stamp
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import effective_config
from orchestrator.run.spec import InputPolicy, RunSpec
from orchestrator.run.store import BatchRecords, write_temp_shard
from orchestrator.worker.beat import HeartbeatWriter

log = logging.getLogger(__name__)
_ALL_STRICT = InputPolicy()  # missing and unreadable bars are failures


@dataclass(frozen=True)
class SymbolOutcome:
    """One symbol's detection: events, or the error that prevented them, or no bars."""

    symbol: str
    bars: int
    events: pl.DataFrame | None  # None when detection failed or the symbol has no bars
    error: str | None = None
    no_bars: bool = False  # no bar file, and the run allows it: recorded, not covered
    skipped_files: tuple[str, ...] = ()  # unreadable files left out (skip_unreadable)
    inputs: InputFingerprint | None = None  # what the events were computed from
    # Its volume peaks are off the auctions as read (detector.zone_check): the shifts
    # that would put them there, per daylight-saving period. Its events are kept.
    suspect_timezone: str | None = None
    seconds: float = 0.0  # the detection's wall time (reading included)


def detect_for_run(
    symbol: str,
    bars_root: Path,
    app: AppConfig,
    start: date | None,
    end: date | None,
    inputs: InputPolicy = _ALL_STRICT,
) -> SymbolOutcome:
    """Detect ``symbol`` as a run does; a failure is recorded, never raised.

    A symbol without bar files (they may vanish after the plan) is a failure, or with
    ``inputs.allow_missing`` a ``no_bars`` outcome; it never counts as covered.
    """
    started = time.perf_counter()
    try:
        result = detect_symbol_result(
            symbol, bars_root, app, skip_unreadable=inputs.skip_unreadable
        )
    except NoBarsError as exc:
        if inputs.allow_missing:
            log.warning("%s: recorded as no_bars (--allow-missing)", exc)
            return SymbolOutcome(symbol, 0, None, no_bars=True)
        log.error("detection failed for %s: %s", symbol, exc)
        return SymbolOutcome(symbol, 0, None, f"{type(exc).__name__}: {exc}")
    except BarsError as exc:  # one line names the file: no traceback needed
        log.error("detection failed for %s: %s", symbol, exc)
        return SymbolOutcome(symbol, 0, None, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        log.error("detection failed for %s: %s\n%s", symbol, exc, traceback.format_exc())
        return SymbolOutcome(symbol, 0, None, f"{type(exc).__name__}: {exc}")
    events = result.events
    if start or end:
        events = events.filter(pl.col("date").is_between(start or date.min, end or date.max))
    skipped = result.stats.files_skipped
    if skipped:
        log.warning("%s: skipped %d unreadable files (--skip-unreadable)", symbol, len(skipped))
    log.debug("%s: %d bars, %d events, %s", symbol, result.bars, events.height, result.stats)
    zone = result.stats.zone
    suspect = zone.note() if zone is not None and not zone.fits else None
    if suspect:
        log.warning(
            "%s: suspect time zone: its volume peaks sit on the 09:30/16:00 auctions only "
            "shifted by %s (%s); its events are kept; check intraday_events.bars.naive_timezone",
            symbol, suspect, zone.describe() if zone else "",
        )  # fmt: skip
    return SymbolOutcome(
        symbol,
        result.bars,
        events,
        skipped_files=skipped,
        inputs=result.inputs,
        suspect_timezone=suspect,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class LaneProgress:
    """A lane's counters before this batch, carried into its heartbeat."""

    symbols_done: int
    symbols_total: int
    bars_done: int
    events: int
    started_at: str  # ISO, when the lane started


@dataclass(frozen=True)
class BatchTask:
    """One batch of a Ray lane: the run's spec and which symbols, for which lane."""

    root: Path  # the run root, as every node sees it
    spec: RunSpec  # bars, config hash, dates, input policy: the run's own
    lane: int  # the worker id of the plan's assignment
    number: int  # batch number within the lane, from 1
    total_batches: int
    symbols: tuple[str, ...]
    owner_pid: int  # the committing driver; names the temporary shard
    progress: LaneProgress
    stop_token: str  # this launch's: a stop file holding another text is not for it


@dataclass(frozen=True)
class BatchOutput:
    lane: int
    number: int
    temp: Path | None  # the temporary shard; None when no symbol was covered
    covered: tuple[str, ...]  # detected (zero-event ones included), all in ``temp``
    failures: dict[str, str]  # symbol -> error, for the checkpoint
    events: int
    bars: int
    log_lines: tuple[tuple[object, ...], ...]  # heartbeat-log lines, for the driver
    pid: int
    host: str
    stopped: bool  # a stop was requested: the rest of the batch was not started
    seconds: float
    no_bars: tuple[str, ...] = ()  # no bar file (allow_missing): recorded, not covered
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # of covered
    inputs: Mapping[str, InputFingerprint] = field(default_factory=dict)  # of covered
    suspect_timezone: dict[str, str] = field(default_factory=dict)  # symbol -> shifts
    symbol_seconds: dict[str, float] = field(default_factory=dict)  # of covered, detection


@dataclass(frozen=True)
class Batch:
    """One batch to detect and where its temporary shard goes."""

    symbols: tuple[str, ...]
    number: int  # within the worker or lane, from 1
    total_batches: int
    shard_dir: Path
    worker_id: int | None  # names the temporary shard (None: a lone worker)
    owner_pid: int  # the process that commits it; names the temporary shard
    bars_root: Path
    config_hash: str
    start_date: date | None = None
    end_date: date | None = None
    inputs: InputPolicy = field(default_factory=InputPolicy)


@dataclass
class DetectedBatch:
    """What :func:`detect_batch` found, and the temporary shard holding it."""

    temp: Path | None = None  # None when no symbol was covered
    covered: list[str] = field(default_factory=list)  # zero-event ones included, in ``temp``
    failures: dict[str, str] = field(default_factory=dict)  # symbol -> error
    no_bars: list[str] = field(default_factory=list)  # no bar file (allow_missing)
    skipped: dict[str, tuple[str, ...]] = field(default_factory=dict)  # of covered
    inputs: dict[str, InputFingerprint] = field(default_factory=dict)  # of covered
    suspects: dict[str, str] = field(default_factory=dict)  # of covered: time zone shifts
    seconds: dict[str, float] = field(default_factory=dict)  # of covered: detection time
    events: int = 0  # rows in ``temp``
    bars: int = 0
    stopped: bool = False  # a stop was requested: the rest of the batch was not started
    write_seconds: float = 0.0  # writing ``temp``

    @property
    def empty(self) -> bool:
        """Nothing to record: stopped before the batch's first symbol."""
        return not self.covered and not self.failures and not self.no_bars

    def add(self, outcome: SymbolOutcome) -> None:
        self.bars += outcome.bars
        symbol = outcome.symbol
        if outcome.no_bars:
            self.no_bars.append(symbol)
        elif outcome.events is None:
            self.failures[symbol] = outcome.error or "detection failed"
        else:
            self.covered.append(symbol)
            if outcome.skipped_files:
                self.skipped[symbol] = outcome.skipped_files
            if outcome.inputs is not None:
                self.inputs[symbol] = outcome.inputs
            if outcome.suspect_timezone is not None:
                self.suspects[symbol] = outcome.suspect_timezone
            self.seconds[symbol] = outcome.seconds

    def records(self, config: Mapping[str, Any] | None) -> BatchRecords:
        """What the commit records besides the events and failures."""
        return BatchRecords(
            tuple(self.no_bars),
            dict(self.skipped),
            dict(self.inputs),
            dict(self.suspects),
            dict(self.seconds),
            config,
        )


LogSink = Callable[[tuple[object, ...]], None]  # one heartbeat-log line


def detect_batch(
    batch: Batch,
    app: AppConfig,
    layout: RunLayout,
    beat: HeartbeatWriter,
    *,
    emit: LogSink,
    stop: Callable[[], bool],
) -> DetectedBatch:
    """Detect ``batch.symbols`` in turn and write their events as a temporary shard.

    ``stop`` is asked before each symbol: once it says yes, the symbols done so far
    are kept and the rest are left for later. After each symbol ``beat`` is written
    and its heartbeat-log line goes to ``emit``. Unless nothing was detected, the
    heartbeat then says ``committing`` and the covered symbols' events are written to
    a temporary shard (named after ``batch.owner_pid``), which the caller must hand to
    ``commit_written``.
    """
    found = DetectedBatch()
    frames: list[pl.DataFrame] = []
    for symbol in batch.symbols:
        if stop():
            found.stopped = True
            break
        beat.detecting(symbol, batch.number)
        pause_point("before_detection", symbol)
        outcome = detect_for_run(
            symbol, batch.bars_root, app, batch.start_date, batch.end_date, batch.inputs
        )
        crash_point("during_detection", symbol)
        found.add(outcome)
        if outcome.events is not None and not outcome.no_bars:
            frames.append(outcome.events)
        rows = 0 if outcome.events is None else outcome.events.height
        beat.detected(symbol, outcome.bars, rows)
        stamp = local_stamp(beat.clock())
        emit((stamp, symbol, batch.number, batch.total_batches, rows, beat.rss))
    if found.empty:
        return found
    beat.write("committing")
    if found.covered:
        _write_temp(found, frames, batch, app, layout)
        crash_point("after_temp_shard")
    return found


def _write_temp(
    found: DetectedBatch,
    frames: list[pl.DataFrame],
    batch: Batch,
    app: AppConfig,
    layout: RunLayout,
) -> None:
    started = time.perf_counter()
    table = pl.concat(frames) if frames else empty_events()
    temp = layout.temp_shard(batch.shard_dir, batch.worker_id, batch.owner_pid, os.urandom(4).hex())
    records = found.records(effective_config(app))
    write_temp_shard(temp, table, layout.run_id, tuple(found.covered), batch.config_hash, records)
    found.temp = temp
    found.events = table.height
    found.write_seconds = time.perf_counter() - started


def run_batch(task: BatchTask, app: AppConfig) -> BatchOutput:
    """A Ray task: :func:`detect_batch` for lane ``task.lane``, the heartbeat-log lines
    returned, stopping between symbols once the run's stop file holds this launch's
    token. Its temporary shard is the driver's (``task.owner_pid``) to commit."""
    started = time.perf_counter()
    spec = task.spec
    layout = RunLayout(task.root, spec.run_id)
    beat = HeartbeatWriter(layout, lane_heartbeat(task))
    lines: list[tuple[object, ...]] = []
    batch = Batch(
        symbols=task.symbols,
        number=task.number,
        total_batches=task.total_batches,
        shard_dir=layout.shard_dir(task.lane),
        worker_id=task.lane,
        owner_pid=task.owner_pid,
        bars_root=spec.bars_root,
        config_hash=spec.config_hash,
        start_date=spec.start_date,
        end_date=spec.end_date,
        inputs=spec.inputs,
    )
    found = detect_batch(
        batch,
        app,
        layout,
        beat,
        emit=lines.append,
        stop=lambda: _stop_requested(layout.stop_file, task.stop_token),
    )
    return BatchOutput(
        lane=task.lane,
        number=task.number,
        temp=found.temp,
        covered=tuple(found.covered),
        failures=found.failures,
        events=found.events,
        bars=found.bars,
        log_lines=tuple(lines),
        pid=os.getpid(),
        host=socket.gethostname(),
        stopped=found.stopped,
        seconds=time.perf_counter() - started,
        no_bars=tuple(found.no_bars),
        skipped_files=found.skipped,
        inputs=found.inputs,
        suspect_timezone=found.suspects,
        symbol_seconds=found.seconds,
    )


def _stop_requested(path: Path, token: str) -> bool:
    try:
        return path.read_text(encoding="utf-8").strip() == token
    except OSError:  # absent (the usual case), or unreadable: no stop
        return False


def lane_heartbeat(task: BatchTask) -> WorkerHeartbeat:
    """The lane's heartbeat as this task continues it, before its first write."""
    p = task.progress
    return WorkerHeartbeat(
        run_id=task.spec.run_id,
        worker_id=task.lane,
        pid=os.getpid(),
        status="starting",
        current_symbol=None,
        last_symbol=None,
        symbols_done=p.symbols_done,
        symbols_total=p.symbols_total,
        bars_done=p.bars_done,
        bars_total=0,
        events=p.events,
        batch_num=task.number,
        total_batches=task.total_batches,
        rss_gb=None,
        started_at=_lane_start(p.started_at, psutil.Process()),
        updated_at=p.started_at,
        host=socket.gethostname(),
        node_id=_ray_node_id(),
    )


def _ray_node_id() -> str | None:
    """The Ray node this task runs on; None outside a Ray worker. The driver tells a
    dead node's last heartbeat from a stalled task by it."""
    ray = sys.modules.get("ray")  # a task runs in a Ray worker, which imported it
    if ray is None:
        return None
    try:
        node_id = ray.get_runtime_context().get_node_id()
    except Exception:  # not connected (a direct call, as in the tests): no node
        return None
    return str(node_id) if node_id else None


def _lane_start(lane_started_at: str, process: psutil.Process) -> str:
    """The lane's start, or this process's when it started later (a retried task's
    new process): readers check that the heartbeat's pid existed at this moment."""
    created = datetime.fromtimestamp(process.create_time())
    return max(datetime.fromisoformat(lane_started_at), created).isoformat(timespec="seconds")
