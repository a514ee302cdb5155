"""One worker process: symbols in batches, one committed shard per batch.

The loop is plain: detect each symbol of a batch (a failure is recorded, the
worker goes on), commit the batch through :class:`RunStore`, write heartbeats
and logs. When every symbol of the run is done it merges the final file, unless
told not to (a launched worker leaves that to the orchestrator).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path

import polars as pl
import psutil

from detector.bars import bar_files, input_changes, symbols_without_bars
from detector.config import AppConfig, config_hash
from detector.input_fingerprint import InputFingerprint
from detector.schema import empty_events
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.faults import crash_point, pause_point
from orchestrator.run.heartbeat import (
    Status,
    WorkerHeartbeat,
    append_line,
    local_stamp,
    write_heartbeat,
    write_legacy_run_heartbeat,
    write_run_completed,
)
from orchestrator.run.input_check import NoBarsUpdate, check_no_bars
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import MergeResult, merge_shards
from orchestrator.run.provenance import Provenance, effective_config
from orchestrator.run.store import BatchRecords, RunStore
from orchestrator.worker.batch import InputPolicy, detect_for_run
from orchestrator.worker.stopping import StopRequest

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class WorkerConfig:
    root: Path
    run_id: str
    symbols: tuple[str, ...]
    bars_root: Path
    batch_size: int = 50
    limit: int | None = None
    resume: bool = False
    worker_id: int | None = None
    output_dir: Path | None = None  # shard directory; default from the run layout
    start_date: date | None = None
    end_date: date | None = None
    merge: bool = True
    force_config: bool = False
    max_attempts: int = 3
    inputs: InputPolicy = field(default_factory=InputPolicy)
    # Launched workers: the launcher looked for every symbol's bar files at plan time,
    # so symbols whose files vanish since are per-symbol outcomes, not a refusal.
    inputs_checked: bool = False


@dataclass(frozen=True)
class WorkerOutcome:
    run_id: str
    committed: int
    failed: tuple[str, ...]
    quarantined: tuple[str, ...]
    events: int
    shards: int
    merged: MergeResult | None
    stopped: str | None = None  # why the worker stopped before its list was done
    no_bars: tuple[str, ...] = ()  # of its symbols: recorded without bar files
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # of its symbols
    suspect_timezone: tuple[str, ...] = ()  # committed by this process, peaks off the auctions

    @property
    def ok(self) -> bool:
        return not self.failed


def run_hash(app: AppConfig, start: date | None, end: date | None) -> str:
    """Config hash of the run; a date range is part of what the run produces."""
    base = config_hash(app)
    if start is None and end is None:
        return base
    return hashlib.sha256(f"{base}|{start}|{end}".encode()).hexdigest()[:12]


class Worker:
    def __init__(
        self,
        cfg: WorkerConfig,
        app: AppConfig,
        *,
        clock: Clock = datetime.now,
        stop: StopRequest | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop = stop or StopRequest()
        self.app = app
        self.clock = clock
        self.layout = RunLayout(cfg.root, cfg.run_id)
        self.store = RunStore(self.layout, clock=clock)
        self.hash = run_hash(app, cfg.start_date, cfg.end_date)
        self.shard_dir = cfg.output_dir or self.layout.shard_dir(cfg.worker_id)
        self.started_at = clock()
        self.process = psutil.Process()
        self._beat = WorkerHeartbeat(
            run_id=cfg.run_id,
            worker_id=cfg.worker_id,
            pid=os.getpid(),
            status="starting",
            current_symbol=None,
            last_symbol=None,
            symbols_done=0,
            symbols_total=0,
            bars_done=0,
            bars_total=0,
            events=0,
            batch_num=0,
            total_batches=0,
            rss_gb=0.0,
            started_at=self.started_at.isoformat(timespec="seconds"),
            updated_at=self.started_at.isoformat(timespec="seconds"),
        )

    # -- heartbeats ----------------------------------------------------------------
    def beat(self, status: Status, **changes: object) -> None:
        now = self.clock()
        rss = self.process.memory_info().rss / 2**30
        self._beat = replace(
            self._beat,
            status=status,
            rss_gb=round(rss, 3),
            updated_at=now.isoformat(timespec="seconds"),
            **changes,  # type: ignore[arg-type]
        )
        if self.cfg.worker_id is not None:
            write_heartbeat(self.layout.worker_heartbeat(self.cfg.worker_id), self._beat)
        else:
            write_heartbeat(self.layout.worker_heartbeat(0), self._beat)
            write_legacy_run_heartbeat(
                self.layout.run_heartbeat, self._beat, completed=status == "completed"
            )

    # -- the loop ------------------------------------------------------------------
    def run(self) -> WorkerOutcome:
        cfg = self.cfg
        self.beat("starting")
        update = None if cfg.inputs_checked else self._check_inputs()
        cp = self.store.open_run(
            config_hash=self.hash,
            symbols=cfg.symbols,
            resume=cfg.resume,
            force_config=cfg.force_config,
        )
        if update is not None and (update.missing or update.found):
            cp = self.store.record_no_bars(update.missing, update.found)
        if cp.no_bars & set(cfg.symbols):
            log.warning(
                "%d symbols have no bar files under %s and are recorded as no_bars: %s",
                len(cp.no_bars & set(cfg.symbols)), cfg.bars_root,
                " ".join(sorted(cp.no_bars & set(cfg.symbols))[:20]),
            )  # fmt: skip
        quarantined = cp.quarantined(cfg.max_attempts)
        redo = self._changed_inputs(cp) if cfg.inputs.redo_changed else {}
        settled = cp.settled(cfg.max_attempts, redo)
        todo = [s for s in cfg.symbols if s not in settled]
        if cfg.limit is not None:
            todo = todo[: cfg.limit]
        for symbol in sorted(quarantined & set(cfg.symbols)):
            log.warning(
                "%s is quarantined after %d failed attempts: %s",
                symbol,
                cp.failed[symbol].attempts,
                cp.failed[symbol].error,
            )
        batches = [todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
        sizes = {s: _bytes_of(s, cfg.bars_root) for s in todo}
        total_bytes = max(sum(sizes.values()), 1)
        log.info(
            "run %s (config %s): %d symbols requested, %d already completed, %d quarantined, "
            "%d to do in %d batches of up to %d",
            cfg.run_id, self.hash, len(cfg.symbols), len(set(cfg.symbols) & cp.completed),
            len(quarantined & set(cfg.symbols)), len(todo), len(batches), cfg.batch_size,
        )  # fmt: skip
        self.beat("running", symbols_total=len(todo), total_batches=len(batches))
        failed: list[str] = []
        suspect: list[str] = []
        committed = events_total = shards = 0
        bytes_done = bars_done = 0
        for number, batch in enumerate(batches, start=1):
            frames: list[pl.DataFrame] = []
            covered: list[str] = []
            failures: dict[str, str] = {}
            records = _Records()
            for symbol in batch:
                if self.stop.requested:
                    break
                self.beat("running", current_symbol=symbol, batch_num=number)
                pause_point("before_detection", symbol)
                bars, result = self._detect(symbol, failures, records)
                crash_point("during_detection", symbol)
                bytes_done += sizes.get(symbol, 0)
                bars_done += bars
                if result is not None:
                    frames.append(result)
                    covered.append(symbol)
                estimate = int(bars_done * total_bytes / max(bytes_done, 1))
                self.beat(
                    "running",
                    current_symbol=None,
                    last_symbol=symbol,
                    symbols_done=self._beat.symbols_done + 1,
                    bars_done=bars_done,
                    bars_total=estimate,
                    events=self._beat.events + (result.height if result is not None else 0),
                )
                append_line(
                    self.layout.heartbeat_log(self.clock()),
                    [local_stamp(self.clock()), symbol, number, len(batches),
                     result.height if result is not None else 0, self._beat.rss_gb],
                )  # fmt: skip
            if not covered and not failures and not records.no_bars:
                break  # stopped before the batch's first symbol: nothing to commit
            self.beat("committing")
            events = pl.concat(frames) if frames else empty_events()
            commit_started = time.perf_counter()
            outcome = self.store.commit_batch(
                shard_dir=self.shard_dir,
                worker_id=cfg.worker_id,
                events=events,
                symbols=tuple(covered),
                failures=failures,
                config_hash=self.hash,
                outcomes=BatchRecords(
                    tuple(records.no_bars),
                    dict(records.skipped),
                    dict(records.inputs),
                    dict(records.suspects),
                    dict(records.seconds),
                    effective_config(self.app),
                ),
            )
            suspect.extend(s for s in outcome.committed if s in records.suspects)
            commit_ms = (time.perf_counter() - commit_started) * 1000
            del frames, events  # memory stays bounded by one batch
            failed.extend(failures)
            committed += len(outcome.committed)
            events_total += outcome.events
            if outcome.shard is not None:
                shards += 1
                append_line(
                    self.layout.batch_log(self.clock()),
                    [local_stamp(self.clock()), number, len(outcome.committed), outcome.events,
                     outcome.shard.name, self._beat.rss_gb],
                )  # fmt: skip
                log.info(
                    "batch %d/%d committed as %s: %d symbols, %d events in %.0f ms%s",
                    number, len(batches), outcome.shard.name, len(outcome.committed),
                    outcome.events, commit_ms,
                    f" ({len(outcome.already_committed)} already committed elsewhere)"
                    if outcome.already_committed else "",
                )  # fmt: skip
            elif outcome.already_committed:
                log.info(
                    "batch %d/%d: every symbol already committed elsewhere", number, len(batches)
                )
            if self.stop.requested:
                break
        if self.stop.requested:
            log.warning(
                "stopping early (%s): %d symbols committed by this process, the rest remain",
                self.stop.reason,
                committed,
            )
        return replace(
            self._finish(committed, failed, events_total, shards),
            suspect_timezone=tuple(sorted(suspect)),
        )

    def _check_inputs(self) -> NoBarsUpdate:
        """Refuse before anything is written when symbols to do have no bar file
        (unless --allow-missing); see :mod:`orchestrator.run.input_check`."""
        cfg = self.cfg
        existing = self.store.reconcile()
        settled = existing.completed | existing.quarantined(cfg.max_attempts) if existing else set()
        candidates = [s for s in cfg.symbols if s not in settled]
        return check_no_bars(
            candidates,
            symbols_without_bars(candidates, cfg.bars_root),
            existing.no_bars if existing else frozenset(),
            bars_root=cfg.bars_root,
            allow_missing=cfg.inputs.allow_missing,
        )

    def _changed_inputs(self, cp: Checkpoint) -> dict[str, InputFingerprint]:
        """This worker's completed symbols whose bars changed since their commit, with
        the fingerprint of their bars now."""
        mine = {s: cp.inputs[s] for s in self.cfg.symbols if s in cp.completed and s in cp.inputs}
        redo = input_changes(mine, self.cfg.bars_root).redo
        if redo:
            log.info(
                "%d completed symbols' bars changed since their commit, recomputed now "
                "(--redo-changed): %s",
                len(redo), " ".join(sorted(redo)[:20]),
            )  # fmt: skip
        return redo

    def _detect(
        self, symbol: str, failures: dict[str, str], records: _Records
    ) -> tuple[int, pl.DataFrame | None]:
        cfg = self.cfg
        outcome = detect_for_run(
            symbol, cfg.bars_root, self.app, cfg.start_date, cfg.end_date, cfg.inputs
        )
        if outcome.error is not None:
            failures[symbol] = outcome.error
        if outcome.no_bars:
            records.no_bars.append(symbol)
        if outcome.skipped_files:
            records.skipped[symbol] = outcome.skipped_files
        if outcome.inputs is not None and outcome.events is not None:
            records.inputs[symbol] = outcome.inputs
        if outcome.suspect_timezone is not None:
            records.suspects[symbol] = outcome.suspect_timezone
        if outcome.events is not None:
            records.seconds[symbol] = outcome.seconds
        return outcome.bars, outcome.events

    def _finish(self, committed: int, failed: list[str], events: int, shards: int) -> WorkerOutcome:
        cp = self.store.reconcile()
        assert cp is not None
        quarantined = cp.quarantined(self.cfg.max_attempts)
        settled = cp.settled(self.cfg.max_attempts)
        still_failed = tuple(sorted(s for s in set(failed) if s not in settled))
        merged = None
        run_done = not cp.remaining(self.cfg.max_attempts)
        if run_done and self.cfg.merge and not self.stop.requested:
            provenance = Provenance.of_run(self.app, cp, bars_root=self.cfg.bars_root)
            merged = merge_shards(self.layout, cp.shards, provenance)
            log.info(
                "DETECTION COMPLETE run=%s symbols=%d events=%d by_type=%s by_direction=%s "
                "by_session=%s final=%s",
                self.cfg.run_id, len(cp.completed), merged.events, merged.by_type,
                merged.by_direction, merged.by_session, merged.path,
            )  # fmt: skip
        status: Status = "failed" if still_failed else "completed"
        if self.stop.requested:
            status = "stopped"
        self.beat(status, current_symbol=None)
        if merged is not None and self.cfg.worker_id is None:
            # The legacy run heartbeat's last word counts the whole run, not this process.
            write_run_completed(
                self.layout.run_heartbeat,
                run_id=self.cfg.run_id,
                total_events=merged.events,
                total_symbols=len(cp.completed),
                completed_at=self.clock().isoformat(timespec="seconds"),
            )
        return WorkerOutcome(
            run_id=self.cfg.run_id,
            committed=committed,
            failed=still_failed,
            quarantined=tuple(sorted(quarantined & set(self.cfg.symbols))),
            events=events,
            shards=shards,
            merged=merged,
            stopped=self.stop.reason,
            no_bars=tuple(sorted(cp.no_bars & set(self.cfg.symbols))),
            skipped_files={
                s: f for s, f in sorted(cp.skipped_files.items()) if s in self.cfg.symbols
            },
        )


@dataclass
class _Records:
    """One batch's symbols without bars and unreadable files skipped, as detected."""

    no_bars: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inputs: dict[str, InputFingerprint] = field(default_factory=dict)
    suspects: dict[str, str] = field(default_factory=dict)  # time zone (detector.zone_check)
    seconds: dict[str, float] = field(default_factory=dict)  # detection time


def _bytes_of(symbol: str, bars_root: Path) -> int:
    """Expected work of a symbol, from file sizes (a stat, no read)."""
    total = 0
    for path in bar_files(symbol, bars_root):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total
