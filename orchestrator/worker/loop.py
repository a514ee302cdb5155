"""One worker process: symbols in batches, one committed shard per batch.

The loop is plain: detect each batch with the batch routine a Ray task runs too
(:func:`orchestrator.worker.batch.detect_batch`: a failure is recorded, the worker
goes on; heartbeats and heartbeat-log lines after each symbol), then commit its
temporary shard through :meth:`RunStore.commit_written`, as the Ray driver does.
When every symbol of the run is done it merges the final file, unless told not to
(a launched worker leaves that to the orchestrator).
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

from detector.bars import input_changes, symbol_bytes, symbols_without_bars
from detector.config import AppConfig, config_hash
from detector.input_fingerprint import InputFingerprint
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.files import run_plan
from orchestrator.run.heartbeat import (
    Status,
    WorkerHeartbeat,
    append_line,
    local_stamp,
    write_run_completed,
)
from orchestrator.run.input_check import NoBarsUpdate, check_no_bars
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import MergeResult, merge_shards
from orchestrator.run.provenance import Provenance, effective_config
from orchestrator.run.spec import DEFAULTS, previous_spec, spec_of_run, write_spec
from orchestrator.run.store import CommitResult, RunStore
from orchestrator.worker.batch import Batch, InputPolicy, detect_batch
from orchestrator.worker.beat import HeartbeatWriter
from orchestrator.worker.stopping import StopRequest

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class WorkerConfig:
    root: Path
    run_id: str
    symbols: tuple[str, ...]
    bars_root: Path
    batch_size: int = DEFAULTS.batch_size
    limit: int | None = None
    resume: bool = False
    worker_id: int | None = None
    output_dir: Path | None = None  # shard directory; default from the run layout
    start_date: date | None = None
    end_date: date | None = None
    merge: bool = True
    force_config: bool = False
    max_attempts: int = DEFAULTS.max_attempts
    inputs: InputPolicy = field(default_factory=InputPolicy)
    # Launched workers: the launcher looked for every symbol's bar files at plan time,
    # so symbols whose files vanish since are per-symbol outcomes, not a refusal.
    inputs_checked: bool = False
    # A lone `detect` saves the run's spec (a launch saves its own): `status`, `merge`
    # and the dashboard then count quarantine with this run's max_attempts.
    save_spec: bool = False
    config_path: Path | None = None  # the config file, recorded in the spec


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
        started = self.started_at.isoformat(timespec="seconds")
        self.heartbeat = HeartbeatWriter(
            self.layout,
            WorkerHeartbeat(
                run_id=cfg.run_id, worker_id=cfg.worker_id, pid=os.getpid(), status="starting",
                current_symbol=None, last_symbol=None, symbols_done=0, symbols_total=0,
                bars_done=0, bars_total=0, events=0, batch_num=0, total_batches=0, rss_gb=0.0,
                started_at=started, updated_at=started,
            ),
            clock=clock,
        )  # fmt: skip

    def beat(self, status: Status, **changes: object) -> None:
        self.heartbeat.write(status, **changes)

    # -- the loop ------------------------------------------------------------------
    def run(self) -> WorkerOutcome:
        cfg = self.cfg
        self.beat("starting")
        todo = self._todo()
        batches = [todo[i : i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
        self.heartbeat.estimate = _BarsEstimate(self._expected_work(todo))
        self.beat("running", symbols_total=len(todo), total_batches=len(batches))
        tally = _Tally()
        for number, symbols in enumerate(batches, start=1):
            batch = Batch(
                symbols=tuple(symbols), number=number, total_batches=len(batches),
                shard_dir=self.shard_dir, worker_id=cfg.worker_id, owner_pid=os.getpid(),
                bars_root=cfg.bars_root, config_hash=self.hash, start_date=cfg.start_date,
                end_date=cfg.end_date, inputs=cfg.inputs,
            )  # fmt: skip
            if not self._batch(batch, tally) or self.stop.requested:
                break
        if self.stop.requested:
            log.warning(
                "stopping early (%s): %d symbols committed by this process, the rest remain",
                self.stop.reason,
                tally.committed,
            )
        return replace(
            self._finish(tally.committed, tally.failed, tally.events, tally.shards),
            suspect_timezone=tuple(sorted(tally.suspect)),
        )

    def _todo(self) -> list[str]:
        """Open the run (after checking the inputs) and say what it holds: the
        symbols of this worker still to do, in order."""
        cfg = self.cfg
        update = None if cfg.inputs_checked else self._check_inputs()
        cp = self.store.open_run(
            config_hash=self.hash,
            symbols=cfg.symbols,
            resume=cfg.resume,
            force_config=cfg.force_config,
        )
        if update is not None and (update.missing or update.found):
            cp = self.store.record_no_bars(update.missing, update.found)
        if cfg.save_spec:
            self._save_spec()
        mine = set(cfg.symbols)
        if cp.no_bars & mine:
            log.warning(
                "%d symbols have no bar files under %s and are recorded as no_bars: %s",
                len(cp.no_bars & mine), cfg.bars_root, " ".join(sorted(cp.no_bars & mine)[:20]),
            )  # fmt: skip
        quarantined = cp.quarantined(cfg.max_attempts)
        redo = self._changed_inputs(cp) if cfg.inputs.redo_changed else {}
        todo = list(cp.remaining_of(cfg.symbols, cfg.max_attempts, redo))
        if cfg.limit is not None:
            todo = todo[: cfg.limit]
        for symbol in sorted(quarantined & mine):
            log.warning(
                "%s is quarantined after %d failed attempts: %s",
                symbol,
                cp.failed[symbol].attempts,
                cp.failed[symbol].error,
            )
        batches = -(-len(todo) // cfg.batch_size)
        log.info(
            "run %s (config %s): %d symbols requested, %d already completed, %d quarantined, "
            "%d to do in %d batches of up to %d",
            cfg.run_id, self.hash, len(cfg.symbols), len(mine & cp.completed),
            len(quarantined & mine), len(todo), batches, cfg.batch_size,
        )  # fmt: skip
        return todo

    def _expected_work(self, todo: list[str]) -> dict[str, int]:
        """Each symbol's expected work for the heartbeat's ``bars_total``: the launch
        plan's bar counts when it has them all (no file is touched), else file sizes."""
        plan = run_plan(self.layout)
        if plan is not None and all(s in plan.bars for s in todo):
            return {s: plan.bars[s] for s in todo}
        return {s: symbol_bytes(s, self.cfg.bars_root) for s in todo}

    def _save_spec(self) -> None:
        cfg = self.cfg
        spec = spec_of_run(
            run_id=cfg.run_id, bars_root=cfg.bars_root, config_hash=self.hash,
            config_path=cfg.config_path, app=self.app, batch_size=cfg.batch_size,
            max_attempts=cfg.max_attempts, start_date=cfg.start_date, end_date=cfg.end_date,
            inputs=cfg.inputs, previous=previous_spec(self.layout.spec),
        )  # fmt: skip
        write_spec(self.layout.spec, spec)

    def _batch(self, batch: Batch, tally: _Tally) -> bool:
        """Detect and commit one batch; False when stopped before its first symbol."""
        found = detect_batch(
            batch,
            self.app,
            self.layout,
            self.heartbeat,
            emit=self._log_line,
            stop=lambda: self.stop.requested,
        )
        if found.empty:
            return False  # nothing to commit
        commit_started = time.perf_counter()
        outcome = self.store.commit_written(
            found.temp,
            shard_dir=self.shard_dir,
            symbols=tuple(found.covered),
            failures=found.failures,
            config_hash=self.hash,
            outcomes=found.records(effective_config(self.app)),
        )
        commit_ms = (found.write_seconds + time.perf_counter() - commit_started) * 1000
        tally.suspect.extend(s for s in outcome.committed if s in found.suspects)
        tally.failed.extend(found.failures)
        tally.committed += len(outcome.committed)
        tally.events += outcome.events
        if outcome.shard is not None:
            tally.shards += 1
        self._log_commit(batch, outcome, commit_ms)
        return True

    def _log_line(self, line: tuple[object, ...]) -> None:
        """One heartbeat-log line, appended at once."""
        append_line(self.layout.heartbeat_log(self.clock()), list(line))

    def _log_commit(self, batch: Batch, outcome: CommitResult, commit_ms: float) -> None:
        number, total = batch.number, batch.total_batches
        if outcome.shard is not None:
            append_line(
                self.layout.batch_log(self.clock()),
                [local_stamp(self.clock()), number, len(outcome.committed), outcome.events,
                 outcome.shard.name, self.heartbeat.rss],
            )  # fmt: skip
            log.info(
                "batch %d/%d committed as %s: %d symbols, %d events in %.0f ms%s",
                number, total, outcome.shard.name, len(outcome.committed),
                outcome.events, commit_ms,
                f" ({len(outcome.already_committed)} already committed elsewhere)"
                if outcome.already_committed else "",
            )  # fmt: skip
        elif outcome.already_committed:
            log.info("batch %d/%d: every symbol already committed elsewhere", number, total)

    def _check_inputs(self) -> NoBarsUpdate:
        """Refuse before anything is written when symbols to do have no bar file
        (unless --allow-missing); see :mod:`orchestrator.run.input_check`."""
        cfg = self.cfg
        existing = self.store.reconcile()
        finished = existing.finished(cfg.max_attempts) if existing else frozenset()
        candidates = [s for s in cfg.symbols if s not in finished]
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
class _Tally:
    """What this process committed so far."""

    committed: int = 0
    events: int = 0
    shards: int = 0
    failed: list[str] = field(default_factory=list)
    suspect: list[str] = field(default_factory=list)  # committed, peaks off the auctions


class _BarsEstimate:
    """The bars a worker reads in all, from those read so far and the share of its
    symbols' file sizes they came from."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.sizes = sizes
        self.total = max(sum(sizes.values()), 1)
        self.done = 0

    def __call__(self, symbol: str, bars_done: int) -> int:
        self.done += self.sizes.get(symbol, 0)
        return int(bars_done * self.total / max(self.done, 1))
