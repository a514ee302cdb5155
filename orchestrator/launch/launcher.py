"""``launch``: plan, start N workers, supervise them, merge once at the end.

The launcher is the run's only orchestrator: it holds ``launch.lock`` (a kernel
lock, released by the OS however the launcher dies) for its whole life. Workers
commit through the same protocol as a lone ``detect``; the launcher itself only
reads the checkpoint, records crash attributions, and merges the final file once
every symbol is completed or quarantined.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from detector.bars import input_changes, invalid_symbol_folders
from detector.config import AppConfig
from detector.errors import ExitCode
from detector.input_fingerprint import InputFingerprint
from detector.zone_sample import check_bars_zone
from orchestrator.backends.base import Backend, BackendFactory, LaunchWork
from orchestrator.backends.cleanup import stop_recorded_processes
from orchestrator.backends.supervisor import Notice
from orchestrator.launch.outcome import (
    LaunchOutcome,
    NotConfirmedError,
    launch_universe,
    refused_line,
)
from orchestrator.launch.run_end import preload_report, write_launch_summary, write_report
from orchestrator.launch.work_estimate import expected_bars
from orchestrator.observe.monitors import Monitor
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.errors import RunBusyError
from orchestrator.run.final_merge import live_launcher_pid, merge_final
from orchestrator.run.input_check import check_no_bars
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import record_for, write_pid_file
from orchestrator.run.plan import (
    Plan,
    format_invalid_folders,
    format_plan,
    make_plan,
    write_plan,
)
from orchestrator.run.provenance import Provenance
from orchestrator.run.spec import (
    DEFAULTS,
    InputPolicy,
    RunSpec,
    previous_spec,
    spec_of_run,
    write_spec,
)
from orchestrator.run.store import RunStore
from orchestrator.worker.loop import run_hash
from orchestrator.worker.stopping import StopRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchConfig:
    root: Path
    run_id: str
    bars_root: Path
    config_path: Path | None  # recorded in the run's spec: workers read the same file
    symbols: tuple[str, ...] | None = None  # None: the run's universe, else discovered
    workers: int = DEFAULTS.workers
    batch_size: int | None = None  # None: the run's spec's (orchestrator.run.spec)
    max_attempts: int | None = None  # None: the run's spec's
    start_date: date | None = None
    end_date: date | None = None
    force_config: bool = False
    yes: bool = False
    inputs: InputPolicy = field(default_factory=InputPolicy)
    check_timezone: bool = True  # refuse when a sample's volume peaks are off the auctions
    retry_quarantined: bool = False  # give quarantined symbols another --max-attempts


Confirm = Callable[[Plan], bool]
Echo = Callable[[str], None]


class Launcher:
    def __init__(
        self,
        cfg: LaunchConfig,
        app: AppConfig,
        backend: BackendFactory,
        *,
        confirm: Confirm,
        echo: Echo,
        stop: StopRequest,
        monitor: Monitor | None = None,
        handle_signals: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.app = app
        self.backend = backend
        self.confirm = confirm
        self.echo = echo
        self.stop = stop
        self.monitor = monitor
        self.handle_signals = handle_signals
        self.clock = clock
        self.sleep = sleep
        self.layout = RunLayout(cfg.root, cfg.run_id)
        self._environment_error: str | None = None
        self._preload: threading.Thread | None = None
        self._worker_errors: dict[int, str] = {}
        self.previous_spec = previous_spec(self.layout.spec)
        previous = self.previous_spec
        self.batch_size = cfg.batch_size or (
            previous.batch_size if previous else DEFAULTS.batch_size
        )
        self.max_attempts = cfg.max_attempts or (
            previous.max_attempts if previous else DEFAULTS.max_attempts
        )

    # -- the whole launch ----------------------------------------------------------
    def run(self) -> LaunchOutcome:
        layout = self.layout
        self.backend.check_available()  # say what is missing before anything is written
        layout.launch_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(layout.launch_lock, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunBusyError(self.cfg.run_id, live_launcher_pid(layout)) from None
        try:
            # Holding the lock proves no other launcher lives: recorded processes still
            # running are workers of a killed launcher, stopped before ours start.
            leftovers = stop_recorded_processes(
                layout, grace=self.app.supervision.stop_grace_seconds
            )
            for line in leftovers.stopped + leftovers.left_alone:
                self.echo(line)
            write_pid_file(
                layout.orchestrator_pid_file,
                record_for(os.getpid(), run_id=self.cfg.run_id, role="orchestrator"),
            )
            return self._launch()
        finally:
            if self._preload is not None:  # never leave it importing at interpreter exit
                self._preload.join(timeout=30)
            # A read-only launch folder must not hide the error that ended the launch;
            # a PID file left behind is checked against its process before any use.
            with contextlib.suppress(OSError):
                layout.orchestrator_pid_file.unlink(missing_ok=True)
            lock.release()

    def _launch(self) -> LaunchOutcome:
        started = self.clock()
        store = RunStore(self.layout)
        cp, bars, changed, redo = self._open(store)
        plan = self._plan(cp, bars, changed)
        if plan.remaining and not self.cfg.yes and not self.confirm(plan):
            raise NotConfirmedError("launch not confirmed: no worker was started")
        if self.handle_signals:
            # From here on Ctrl-C and SIGTERM stop the workers in order (not before:
            # during the confirmation prompt Ctrl-C simply aborts).
            self.stop.install_signal_handlers()
        spec = self._save_spec(cp)
        given_up: tuple[int, ...] = ()
        if plan.remaining:
            given_up = self._run_backend(store, plan, spec, redo)
        return self._finish(store, plan, given_up, started)

    def _open(
        self, store: RunStore
    ) -> tuple[Checkpoint, Mapping[str, int], frozenset[str], dict[str, InputFingerprint]]:
        """Check the inputs, then open (or continue) the run: its checkpoint, the expected
        bars of the symbols to do, those whose bars changed, and those to redo."""
        cfg = self.cfg
        existing = store.reconcile()
        symbols = self._universe(existing.universe if existing else frozenset())
        if cfg.check_timezone:
            # Before the run is opened: a refusal leaves no checkpoint and starts nothing.
            done = existing.completed if existing else frozenset()
            pending = sorted(symbols - done)
            if pending:
                check_bars_zone(cfg.bars_root, pending, self.app.bars.naive_timezone)
        # Symbols still to do, those recorded as no_bars included (their files may be
        # back), looked for before anything is written: none may "complete" unread.
        finished = existing.finished(self.max_attempts) if existing else frozenset()
        changed, redo_prints = self._changed_inputs(existing)
        candidates = ((existing.universe if existing else frozenset()) | symbols) - finished
        candidates |= frozenset(redo_prints)
        counted = time.perf_counter()
        work = expected_bars(sorted(candidates), cfg.bars_root)
        log.debug(
            "%s bar counts of %d symbols (%d files) in %.2f s",
            "exact" if work.exact else "estimated", len(candidates), work.files,
            time.perf_counter() - counted,
        )  # fmt: skip
        update = check_no_bars(
            candidates,
            work.no_files,
            existing.no_bars if existing else frozenset(),
            bars_root=cfg.bars_root,
            allow_missing=cfg.inputs.allow_missing,
        )
        cp = store.open_run(
            config_hash=run_hash(self.app, cfg.start_date, cfg.end_date),
            symbols=symbols,
            resume=True,
            force_config=cfg.force_config,
        )
        if update.missing or update.found:
            cp = store.record_no_bars(update.missing, update.found)
        if cfg.retry_quarantined:
            cp = self._retry_quarantined(store)
        return cp, work.bars, changed, redo_prints

    def _retry_quarantined(self, store: RunStore) -> Checkpoint:
        cp, retried = store.retry_quarantined(self.max_attempts)
        shown = " ".join(retried[:10]) + (" ..." if len(retried) > 10 else "")
        self.echo(
            f"--retry-quarantined: {len(retried)} quarantined symbols get "
            f"{self.max_attempts} more attempts" + (f": {shown}" if retried else "")
        )
        return cp

    def _plan(self, cp: Checkpoint, bars: Mapping[str, int], changed: frozenset[str]) -> Plan:
        """The plan of this launch, written to the run and shown."""
        cfg = self.cfg
        plan = make_plan(
            run_id=cfg.run_id,
            universe=cp.universe,
            completed=cp.completed,
            quarantined=cp.quarantined(self.max_attempts),
            bars=bars,
            workers=cfg.workers,
            no_bars=cp.no_bars,
            changed=changed,
            redo=cfg.inputs.redo_changed,
            bars_root=str(cfg.bars_root),
        )
        write_plan(
            self.layout.plan,
            plan,
            created_at=datetime.now().isoformat(timespec="seconds"),
            batch_size=self.batch_size,
        )
        self.echo(f"Run {cfg.run_id} (config {cp.config_hash})")
        self.echo(format_plan(plan))
        skipped = invalid_symbol_folders(cfg.bars_root)
        if skipped:
            self.echo(format_invalid_folders(cfg.bars_root, skipped))
        return plan

    def _run_backend(
        self, store: RunStore, plan: Plan, spec: RunSpec, redo: Mapping[str, InputFingerprint]
    ) -> tuple[int, ...]:
        """Hand the plan's assignments to the backend and drive it; the workers given up."""
        backend = self.backend.start(
            LaunchWork(
                layout=self.layout,
                store=store,
                spec=spec,
                app=self.app,
                assignments=tuple(tuple(a) for a in plan.assignments),
                redo=redo,
                stop=self.stop,
                handle_signals=self.handle_signals,
                clock=self.clock,
                sleep=self.sleep,
            )
        )
        self._preload = preload_report()
        self._supervise(backend)
        self._worker_errors = dict(backend.given_up())
        return tuple(sorted(self._worker_errors))

    def _changed_inputs(
        self, existing: Checkpoint | None
    ) -> tuple[frozenset[str], dict[str, InputFingerprint]]:
        """Completed symbols whose bars changed since their commit, and, with
        --redo-changed, the fingerprints they have now (what their new commits record)."""
        if existing is None or not existing.inputs:
            return frozenset(), {}
        recorded = {s: f for s, f in existing.inputs.items() if s in existing.completed}
        started = time.perf_counter()
        changes = input_changes(recorded, self.cfg.bars_root)
        seconds = time.perf_counter() - started
        log.debug("input fingerprints of %d symbols in %.2f s", len(recorded), seconds)
        return frozenset(changes.changed), changes.redo if self.cfg.inputs.redo_changed else {}

    def _universe(self, known: frozenset[str]) -> frozenset[str]:
        return launch_universe(self.cfg.symbols, known, self.cfg.root, self.cfg.bars_root)

    def _save_spec(self, cp: Checkpoint) -> RunSpec:
        """The run's spec, as this launch runs it, for its workers and its readers."""
        cfg = self.cfg
        assert cp.config_hash is not None  # open_run sets it
        spec = spec_of_run(
            run_id=cfg.run_id, bars_root=cfg.bars_root, config_hash=cp.config_hash,
            config_path=cfg.config_path, app=self.app, batch_size=self.batch_size,
            max_attempts=self.max_attempts, start_date=cfg.start_date, end_date=cfg.end_date,
            inputs=cfg.inputs, previous=self.previous_spec,
        )  # fmt: skip
        write_spec(self.layout.spec, spec)
        return spec

    def _supervise(self, backend: Backend) -> None:
        """Drive the backend one pass at a time until every worker is finished."""
        sup = self.app.supervision
        try:
            while not backend.finished:
                now = self.clock()
                if self.stop.requested and not backend.stopping:
                    self._notify(backend.stop_all(now, self.stop.reason or "stop requested"))
                self._notify(backend.tick(now))
                failure = backend.environment_failure
                if failure is not None and not backend.stopping:
                    self._environment_error = refused_line(*failure, root=self.cfg.root)
                    self._notify(backend.stop_all(now, "a worker could not write"))
                if self.monitor is not None:
                    self.monitor.tick(now)
                if not backend.finished:
                    backend.wait(sup.poll_interval_seconds)
        finally:
            # However the loop ends (even by an exception of our own), no worker outlives it,
            # and the terminal is given back.
            try:
                backend.close()
            finally:
                if self.monitor is not None:
                    self.monitor.close()

    def _notify(self, notices: list[Notice]) -> None:
        for notice in notices:
            log.log(notice.level, "worker %d: %s", notice.worker_id, notice.message)

    # -- the end -----------------------------------------------------------------
    def _finish(
        self, store: RunStore, plan: Plan, given_up: tuple[int, ...], started: float
    ) -> LaunchOutcome:
        cfg = self.cfg
        cp = store.reconcile()
        assert cp is not None
        quarantined_set = cp.quarantined(self.max_attempts)
        left = cp.remaining(self.max_attempts)
        merged = None
        provenance = None
        if not left and not self.stop.requested and self._environment_error is None:
            provenance = Provenance.of_run(self.app, cp, bars_root=self.cfg.bars_root)
            merged = merge_final(self.layout, cp, complete=True, provenance=provenance)
        if not self.stop.requested and self._environment_error is None:
            write_report(self.layout, self.app, self.max_attempts)
        planned = {s for a in plan.assignments for s in a}
        done_now = planned & cp.completed
        failed = {s: f.error for s, f in sorted(cp.failed.items()) if s in left}
        quarantined = {s: cp.failed[s].error for s in sorted(quarantined_set)}
        unfinished = tuple(sorted(left - set(failed)))
        if self.stop.requested:
            code = self.stop.exit_code
        elif self._environment_error is not None:
            code = ExitCode.ENVIRONMENT
        elif failed or quarantined or unfinished:
            code = ExitCode.FAILURE
        else:
            code = ExitCode.OK
        wall_s = self.clock() - started
        write_launch_summary(
            self.layout,
            cp,
            merged=merged,
            provenance=provenance,
            code=code,
            completed_now=len(done_now),
            wall_s=wall_s,
            stopped=self.stop.reason,
            max_attempts=self.max_attempts,
        )
        return LaunchOutcome(
            run_id=cfg.run_id,
            plan=plan,
            completed=len(cp.completed & cp.universe),  # seeded symbols may lie outside
            completed_now=len(done_now),
            bars_now=sum(plan.bars.get(s, 0) for s in done_now),
            failed=failed,
            quarantined=quarantined,
            unfinished=unfinished,
            given_up=given_up if not self.stop.requested else (),
            merged=merged,
            wall_s=wall_s,
            stopped=self.stop.reason,
            exit_code=code,
            no_bars=tuple(sorted(cp.no_bars & cp.universe)),
            skipped_files={s: f for s, f in sorted(cp.skipped_files.items()) if s in cp.universe},
            suspect_timezone={
                s: note for s, note in sorted(cp.suspect_timezone.items()) if s in cp.universe
            },
            worker_errors=self._worker_errors,
            environment_error=self._environment_error,
        )
