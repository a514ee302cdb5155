"""One batch detected away from the run's lock: the unit of work of a Ray task.

A local worker detects and commits its batches itself (:mod:`orchestrator.worker.loop`). A
task of the Ray backend runs on any node of a cluster, where the run's files sit on
a shared filesystem whose kernel locks cannot be trusted, so it only *detects*: it
writes the batch's events as a temporary shard named after the driver (the one
process that commits it, or removes it if it is never committed) and returns that
path. It writes nothing else that another process writes: its lane's heartbeat
file is its own, and the lines it would append to the shared TSV logs are
returned for the driver to append.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import polars as pl
import psutil

from detector.config import AppConfig
from detector.errors import BarsError, NoBarsError
from detector.input_fingerprint import InputFingerprint
from detector.pipeline import detect_symbol_result
from detector.schema import empty_events
from orchestrator.run.faults import crash_point, pause_point
from orchestrator.run.heartbeat import WorkerHeartbeat, local_stamp, write_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import effective_config
from orchestrator.run.shards import write_shard_file
from orchestrator.run.spec import InputPolicy

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
    root: Path  # the run root, as every node sees it
    run_id: str
    lane: int  # the worker id of the plan's assignment
    number: int  # batch number within the lane, from 1
    total_batches: int
    symbols: tuple[str, ...]
    bars_root: Path
    config_hash: str
    owner_pid: int  # the committing driver; names the temporary shard
    progress: LaneProgress
    stop_token: str  # this launch's: a stop file holding another text is not for it
    start_date: date | None = None
    end_date: date | None = None
    inputs: InputPolicy = field(default_factory=InputPolicy)


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


def run_batch(task: BatchTask, app: AppConfig) -> BatchOutput:
    """Detect ``task.symbols`` in turn and write their events as a temporary shard.

    Between symbols it checks the run's stop file: when it holds this launch's
    token, the symbols done so far are returned and the rest are left for later.
    """
    started = time.perf_counter()
    layout = RunLayout(task.root, task.run_id)
    beat = _Beat(layout, task)
    frames: list[pl.DataFrame] = []
    covered: list[str] = []
    failures: dict[str, str] = {}
    no_bars: list[str] = []
    skipped: dict[str, tuple[str, ...]] = {}
    inputs: dict[str, InputFingerprint] = {}
    suspects: dict[str, str] = {}
    seconds: dict[str, float] = {}
    lines: list[tuple[object, ...]] = []
    bars = 0
    stopped = False
    for symbol in task.symbols:
        if _stop_requested(layout.stop_file, task.stop_token):
            stopped = True
            break
        beat.write("running", current_symbol=symbol)
        pause_point("before_detection", symbol)
        outcome = detect_for_run(
            symbol, task.bars_root, app, task.start_date, task.end_date, task.inputs
        )
        crash_point("during_detection", symbol)
        bars += outcome.bars
        if outcome.no_bars:
            no_bars.append(symbol)
        elif outcome.events is None:
            failures[symbol] = outcome.error or "detection failed"
        else:
            frames.append(outcome.events)
            covered.append(symbol)
            if outcome.skipped_files:
                skipped[symbol] = outcome.skipped_files
            if outcome.inputs is not None:
                inputs[symbol] = outcome.inputs
            if outcome.suspect_timezone:
                suspects[symbol] = outcome.suspect_timezone
            seconds[symbol] = outcome.seconds
        found = 0 if outcome.events is None else outcome.events.height
        now = datetime.now()
        beat.write(
            "running",
            current_symbol=None,
            last_symbol=symbol,
            symbols_done=beat.current.symbols_done + 1,
            bars_done=beat.current.bars_done + outcome.bars,
            events=beat.current.events + found,
        )
        lines.append((local_stamp(now), symbol, task.number, task.total_batches, found, beat.rss))
    temp = None
    events = 0
    if covered:
        table = pl.concat(frames) if frames else empty_events()
        events = table.height
        shard_dir = layout.shard_dir(task.lane)
        temp = layout.temp_shard(shard_dir, task.lane, task.owner_pid, os.urandom(4).hex())
        write_shard_file(
            temp, table, run_id=task.run_id, symbols=tuple(covered),
            config_hash=task.config_hash, skipped_files=skipped, inputs=inputs,
            seconds=seconds, config=effective_config(app),
        )  # fmt: skip
        crash_point("after_temp_shard")
    beat.write("committing")
    return BatchOutput(
        lane=task.lane,
        number=task.number,
        temp=temp,
        covered=tuple(covered),
        failures=failures,
        events=events,
        bars=bars,
        log_lines=tuple(lines),
        pid=os.getpid(),
        host=socket.gethostname(),
        stopped=stopped,
        seconds=time.perf_counter() - started,
        no_bars=tuple(no_bars),
        skipped_files=skipped,
        inputs=inputs,
        suspect_timezone=suspects,
        symbol_seconds=seconds,
    )


def _stop_requested(path: Path, token: str) -> bool:
    try:
        return path.read_text(encoding="utf-8").strip() == token
    except OSError:  # absent (the usual case), or unreadable: no stop
        return False


class _Beat:
    """The lane's heartbeat, continued by each of its batches."""

    def __init__(self, layout: RunLayout, task: BatchTask) -> None:
        self.path = layout.worker_heartbeat(task.lane)
        self.process = psutil.Process()
        self.rss = 0.0
        p = task.progress
        self.current = WorkerHeartbeat(
            run_id=task.run_id,
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
            started_at=_lane_start(p.started_at, self.process),
            updated_at=p.started_at,
            host=socket.gethostname(),
        )

    def write(self, status: str, **changes: object) -> None:
        self.rss = round(self.process.memory_info().rss / 2**30, 3)
        self.current = replace(
            self.current,
            status=status,  # type: ignore[arg-type]
            rss_gb=self.rss,
            updated_at=datetime.now().isoformat(timespec="seconds"),
            **changes,  # type: ignore[arg-type]
        )
        write_heartbeat(self.path, self.current)


def _lane_start(lane_started_at: str, process: psutil.Process) -> str:
    """The lane's start, or this process's when it started later (a retried task's
    new process): readers check that the heartbeat's pid existed at this moment."""
    created = datetime.fromtimestamp(process.create_time())
    return max(datetime.fromisoformat(lane_started_at), created).isoformat(timespec="seconds")
