"""``launch --backend ray``: the plan's lanes as Ray tasks, every commit by the driver.

Each task detects one batch on whatever node Ray picks and writes the batch's
events as a temporary shard next to the lane's shards (the run root and the bars
sit on a filesystem every node mounts at the same path). It returns the shard's
path; the driver (this process, the launcher) commits it through the run's one
commit protocol, under the run lock, which no other process takes during the
launch. Kernel locks on network filesystems are unreliable between machines;
with one committing process they never have to work between machines.

Exactly once, whatever dies:

- a task's process or node dies: Ray sends the task again (``--ray-task-retries``),
  the new attempt writes a new temporary shard; the lost attempt's file was never
  returned, so never committed, and is removed at the end of the launch (temporary
  shards carry the driver's pid, whose death makes them removable by anyone);
- retries used up, or a task stalled and cancelled: the symbol it was on gets a
  failed attempt and the lane sends the batch again after a backoff
  (:mod:`orchestrator.backends.ray_lanes`);
- the driver dies: Ray stops its tasks; nothing they wrote is committed; the next
  ``launch`` resumes from the checkpoint;
- a batch some of whose symbols were committed meanwhile is committed for the rest
  only, as in any commit.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from detector.config import AppConfig
from detector.errors import ExitCode, IntradayEventsError
from detector.input_fingerprint import InputFingerprint
from orchestrator.backends.local import heartbeat_view
from orchestrator.backends.ray_lanes import Lane
from orchestrator.observe.monitors import Monitor
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.checkpoint import CheckpointFormatError
from orchestrator.run.heartbeat import (
    WorkerHeartbeat,
    append_line,
    local_stamp,
    parse_heartbeat,
    write_heartbeat,
)
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import effective_config
from orchestrator.run.store import BatchRecords, RunStore
from orchestrator.worker.batch import BatchOutput, BatchTask, InputPolicy, LaneProgress, run_batch
from orchestrator.worker.stopping import StopRequest

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'intraday-events[ray]'"
GRACE_CANCEL = "cancelled: still running when the stop's grace period ended"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20  # tasks exchange paths and counts, not data


class RayUnavailableError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"--backend ray needs Ray, which cannot be imported ({detail}); "
            f"install it with: {INSTALL_HINT}"
        )


class RayConnectError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, address: str | None, detail: str) -> None:
        self.address = address
        self.detail = detail
        where = "the default Ray cluster" if address is None else f"Ray at {address!r}"
        super().__init__(f"cannot connect to {where}: {detail}")


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayUnavailableError` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except Exception as exc:  # not installed, or installed but broken
        raise RayUnavailableError(_first_line(exc)) from None


@dataclass(frozen=True)
class RayRun:
    """What the driver needs of the launch."""

    root: Path  # absolute: the path every node sees
    run_id: str
    bars_root: Path  # absolute, likewise
    config_hash: str
    batch_size: int
    max_attempts: int
    address: str | None = None  # None: ray.init()'s own choice; "local": a new local Ray
    task_retries: int = 3  # Ray's retries of a task whose process or node died
    start_date: date | None = None
    end_date: date | None = None
    inputs: InputPolicy = field(default_factory=InputPolicy)
    # --redo-changed: completed symbols to detect again, with their bars' fingerprints
    # now; each is done once a commit records that fingerprint.
    redo: Mapping[str, InputFingerprint] = field(default_factory=dict)


def connect(ray: ModuleType, address: str | None, workers: int) -> None:
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == "local":
        options |= {
            "num_cpus": max(workers, os.cpu_count() or 1),
            "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
            "include_dashboard": False,
        }
    try:
        ray.init(address=address, **options)
    except (ray.exceptions.RayError, ConnectionError, TimeoutError, ValueError, RuntimeError,
            OSError) as exc:  # fmt: skip
        raise RayConnectError(address, _first_line(exc)) from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        log.warning(
            "the Ray cluster has %g CPUs for %d concurrent tasks (--workers): tasks wait "
            "for a free CPU", cpus, workers,
        )  # fmt: skip


Clock = Callable[[], float]


class RayBackend:
    """Runs the plan's assignments as Ray tasks; :meth:`run` returns the lanes given up."""

    def __init__(
        self,
        run: RayRun,
        app: AppConfig,
        store: RunStore,
        assignments: list[tuple[str, ...]],
        *,
        stop: StopRequest,
        monitor: Monitor | None,
        handle_signals: bool,
        clock: Clock,
        sleep: Callable[[float], None],
    ) -> None:
        self.run_spec = run
        self.app = app
        self.store = store
        self.layout = RunLayout(run.root, run.run_id)
        self.stop = stop
        self.monitor = monitor
        self.handle_signals = handle_signals
        self.clock = clock
        self.sleep = sleep
        started = datetime.now().isoformat(timespec="seconds")
        self.lanes = [Lane(k, tuple(a), started) for k, a in enumerate(assignments)]
        self.refs: dict[int, Any] = {}  # lane -> ObjectRef of its task in flight
        self.cancelled: dict[int, str] = {}  # lane -> why the driver cancelled its task
        self.stopping_since: float | None = None
        # Written into the stop file: tasks stop for this launch's file only, never for
        # one left by an earlier launch that a network filesystem still shows them.
        self.stop_token = f"{os.getpid()}-{os.urandom(8).hex()}"

    # -- the whole run -----------------------------------------------------------
    def run(self) -> tuple[int, ...]:
        ray = import_ray()
        self.layout.stop_file.unlink(missing_ok=True)
        connect(ray, self.run_spec.address, len(self.lanes))
        if self.handle_signals:
            self.stop.install_signal_handlers()  # ours, whatever ray.init installed
        try:
            remote = ray.remote(
                num_cpus=1, max_retries=self.run_spec.task_retries, retry_exceptions=False
            )(run_batch)
            app_ref = ray.put(self.app)
            while not all(lane.finished for lane in self.lanes):
                self._pass(ray, remote, app_ref)
        finally:
            try:
                for ref in self.refs.values():
                    ray.cancel(ref, force=True)
                ray.shutdown()
            finally:
                try:
                    self.layout.stop_file.unlink(missing_ok=True)
                finally:
                    if self.monitor is not None:
                        self.monitor.close()
        return tuple(lane.worker_id for lane in self.lanes if lane.state == "given_up")

    def _pass(self, ray: ModuleType, remote: Any, app_ref: Any) -> None:
        sup = self.app.supervision
        now = self.clock()
        if self.stop.requested and self.stopping_since is None:
            self._begin_stop(now)
        if self.stopping_since is None:
            for lane in self.lanes:
                if lane.state in ("ready", "waiting"):
                    self._send(lane, remote, app_ref, now)
        elif now - self.stopping_since > sup.stop_grace_seconds:
            for worker_id, ref in self.refs.items():
                if worker_id not in self.cancelled:
                    self.cancelled[worker_id] = GRACE_CANCEL
                    ray.cancel(ref, force=True)
        self._collect(ray, sup.poll_interval_seconds)
        self._watch(ray, self.clock())
        if self.monitor is not None:
            self.monitor.tick(self.clock())

    def _begin_stop(self, now: float) -> None:
        """Tasks stop between symbols once the stop file exists; their work is committed."""
        self.stopping_since = now
        log.warning("stopping (%s): tasks finish their symbol, then commit", self.stop.reason)
        write_text_atomic(self.layout.stop_file, f"{self.stop_token}\n", durable=False)
        for lane in self.lanes:
            if not lane.finished and lane.task is None:
                self._finish_lane(lane, "stopped")

    # -- sending -----------------------------------------------------------------
    def _skip(self) -> frozenset[str]:
        try:
            cp = self.store.read()
        except CheckpointFormatError:
            # Rebuilt from the shards, under the lock; the tasks' temporary shards kept.
            cp = self.store.reconcile(remove_temps=False)
        if cp is None:
            return frozenset()
        return cp.settled(self.run_spec.max_attempts, self.run_spec.redo)

    def _send(self, lane: Lane, remote: Any, app_ref: Any, now: float) -> None:
        spec = self.run_spec
        if lane.backing_off(now):
            return  # before reading the checkpoint: every poll passes here
        skip = self._skip()
        batch = lane.next_batch(skip, spec.batch_size, now)
        if not batch:
            if lane.state == "done":
                self._finish_lane(lane, "done")
            return
        number = lane.batches_sent + 1
        task = BatchTask(
            root=spec.root,
            run_id=spec.run_id,
            lane=lane.worker_id,
            number=number,
            total_batches=lane.total_batches(len(lane.todo(skip)), spec.batch_size),
            symbols=batch,
            bars_root=spec.bars_root,
            config_hash=spec.config_hash,
            owner_pid=os.getpid(),
            progress=LaneProgress(
                lane.symbols_done, lane.symbols_total, lane.bars_done, lane.events, lane.started_at
            ),
            stop_token=self.stop_token,
            start_date=spec.start_date,
            end_date=spec.end_date,
            inputs=spec.inputs,
        )
        again = f" again (loss {lane.losses})" if lane.losses_in_row else ""
        log.debug(
            "worker %d: batch %d (%d symbols, %s..) sent as a Ray task%s",
            lane.worker_id, number, len(batch), batch[0], again,
        )  # fmt: skip
        view = heartbeat_view(self.layout, lane.worker_id)  # before the task can write it
        self.refs[lane.worker_id] = remote.remote(task, app_ref)
        lane.sent(number, batch, view.token if view is not None else None)

    # -- results -----------------------------------------------------------------
    def _collect(self, ray: ModuleType, timeout: float) -> None:
        if not self.refs:
            self.sleep(timeout)  # every lane waits for its backoff
            return
        by_ref = {ref: worker_id for worker_id, ref in self.refs.items()}
        pending = list(by_ref)
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        if not ready:
            ready, _ = ray.wait(pending, num_returns=1, timeout=timeout)
        for ref in ready:
            lane = self.lanes[by_ref[ref]]
            del self.refs[lane.worker_id]
            try:
                output = ray.get(ref)
            except ray.exceptions.RayError as exc:
                reason = self.cancelled.pop(lane.worker_id, None) or _describe(exc)
                self._lost(lane, reason)
            else:
                self.cancelled.pop(lane.worker_id, None)
                self._commit(lane, output)

    def _commit(self, lane: Lane, out: BatchOutput) -> None:
        spec = self.run_spec
        try:
            result = self.store.commit_written(
                out.temp,
                shard_dir=self.layout.shard_dir(lane.worker_id),
                symbols=out.covered,
                failures=out.failures,
                config_hash=spec.config_hash,
                outcomes=BatchRecords(
                    out.no_bars,
                    out.skipped_files,
                    out.inputs,
                    out.suspect_timezone,
                    out.symbol_seconds,
                    effective_config(self.app),
                ),
            )
        except (IntradayEventsError, OSError) as exc:
            self._lost(lane, f"commit failed: {exc}")
            return
        now = datetime.now()
        for line in out.log_lines:
            append_line(self.layout.heartbeat_log(now), list(line))
        for symbol, error in sorted(out.failures.items()):
            log.error("worker %d: detection failed for %s: %s", lane.worker_id, symbol, error)
        for symbol in out.no_bars:
            log.warning("worker %d: %s has no bar files: no_bars", lane.worker_id, symbol)
        for symbol, files in sorted(out.skipped_files.items()):
            log.warning("worker %d: %s skipped %s", lane.worker_id, symbol, ", ".join(files))
        if result.shard is not None:
            beat = _read_beat(self.layout, lane.worker_id)
            rss = beat.rss_gb if beat is not None else None
            append_line(
                self.layout.batch_log(now),
                [local_stamp(now), out.number, len(result.committed), result.events,
                 result.shard.name, rss],
            )  # fmt: skip
        # The launcher's main log only (its console shows progress, warnings, errors).
        log.debug(
            "worker %d: batch %d committed%s: %d symbols, %d events, %d failed; "
            "detected in %.1f s by pid %d on %s",
            lane.worker_id, out.number, f" as {result.shard.name}" if result.shard else "",
            len(result.committed), result.events, len(out.failures), out.seconds, out.pid,
            out.host,
        )  # fmt: skip
        lane.completed(
            detected=len(out.covered) + len(out.no_bars),  # no_bars: recorded, settled
            failures=out.failures,
            bars=out.bars,
            events=result.events,
            stopped=out.stopped or self.stopping_since is not None,
        )
        if lane.state == "stopped":
            self._finish_lane(lane, "stopped")

    def _lost(self, lane: Lane, reason: str) -> None:
        task = lane.task
        view = heartbeat_view(self.layout, lane.worker_id)
        symbol = None
        if (
            task is not None
            and view is not None
            and view.batch_num == task.number  # written by this task, not an earlier one
            and view.token != task.sent_token
            and view.current_symbol in task.symbols
        ):
            symbol = view.current_symbol
        doing = ""
        # A stop is not the symbol's fault: nothing is counted against it then.
        if symbol is not None and self.stopping_since is None and reason != GRACE_CANCEL:
            cp = self.store.record_failures({symbol: reason})
            attempts = cp.failed[symbol].attempts if symbol in cp.failed else 0
            doing = f" while detecting {symbol} (failed attempt {attempts})"
        number = task.number if task is not None else lane.batches_sent
        delay = lane.lost(self.clock(), self.app.supervision)
        if self.stopping_since is not None:
            self._finish_lane(lane, "stopped")
            log.warning("worker %d: batch %d lost%s: %s", lane.worker_id, number, doing, reason)
        elif delay is None:
            self._finish_lane(lane, "given_up")
            log.error(
                "worker %d: batch %d lost%s: %s; given up after %d lost tasks "
                "(supervision.max_restarts); its symbols remain for the next launch",
                lane.worker_id, number, doing, reason, lane.losses,
            )  # fmt: skip
        else:
            log.warning(
                "worker %d: batch %d lost%s: %s; sending it again in %.0f s",
                lane.worker_id, number, doing, reason, delay,
            )  # fmt: skip

    # -- heartbeats --------------------------------------------------------------
    def _watch(self, ray: ModuleType, now: float) -> None:
        """Follow the heartbeats of tasks in flight; cancel a stalled one."""
        sup = self.app.supervision
        for worker_id, ref in list(self.refs.items()):
            lane = self.lanes[worker_id]
            view = heartbeat_view(self.layout, worker_id)
            if view is not None:
                lane.seen(view.token, now)
            if worker_id not in self.cancelled and lane.stalled(now, sup):
                reason = f"stalled: heartbeat unchanged for {sup.stall_timeout_seconds:g} s"
                self.cancelled[worker_id] = reason
                log.error("worker %d: %s; cancelling its task", worker_id, reason)
                ray.cancel(ref, force=True)

    def _finish_lane(self, lane: Lane, state: str) -> None:
        """Mark the lane finished and say so in its heartbeat, for status and dashboard."""
        lane.state = state  # type: ignore[assignment]
        beat = _read_beat(self.layout, lane.worker_id)
        if beat is None:
            return  # the lane never ran a task: there is nothing to update
        status = {"done": "completed", "given_up": "failed"}.get(state, "stopped")
        write_heartbeat(
            self.layout.worker_heartbeat(lane.worker_id),
            replace(
                beat,
                status=status,  # type: ignore[arg-type]
                current_symbol=None,
                updated_at=datetime.now().isoformat(timespec="seconds"),
            ),
        )


def _read_beat(layout: RunLayout, worker_id: int) -> WorkerHeartbeat | None:
    """Lane ``worker_id``'s heartbeat; None when absent or unreadable."""
    try:
        text = layout.worker_heartbeat(worker_id).read_text(encoding="utf-8")
    except OSError:
        return None
    return parse_heartbeat(text, layout.run_id)


def _describe(exc: BaseException) -> str:
    """One line for a lost task: the exception the task raised, else Ray's own."""
    cause = getattr(exc, "cause", None)  # RayTaskError: what the task itself raised
    if isinstance(cause, BaseException):
        exc = cause
    return f"{type(exc).__name__}: {_first_line(exc)}"[:300]


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s text, without terminal colour codes."""
    text = _ANSI.sub("", str(exc))
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
