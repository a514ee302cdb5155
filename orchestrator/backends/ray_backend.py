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

import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime
from types import ModuleType
from typing import Any

from detector.errors import IntradayEventsError
from orchestrator.backends.base import LaunchWork
from orchestrator.backends.local import heartbeat_view
from orchestrator.backends.policy import SupervisionPolicy
from orchestrator.backends.ray_connect import connect, describe_loss, import_ray
from orchestrator.backends.ray_lanes import Lane
from orchestrator.backends.supervisor import Notice
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.heartbeat import (
    WorkerHeartbeat,
    append_line,
    local_stamp,
    parse_heartbeat,
    write_heartbeat,
)
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import effective_config
from orchestrator.run.spec import DEFAULTS
from orchestrator.run.store import BatchRecords
from orchestrator.worker.batch import BatchOutput, BatchTask, LaneProgress, run_batch

log = logging.getLogger(__name__)

GRACE_CANCEL = "cancelled: still running when the stop's grace period ended"


@dataclass(frozen=True)
class RayTasks:
    """``--backend ray``: the plan's lanes as Ray tasks on a cluster, every commit here."""

    address: str | None = None  # None: ray.init()'s own choice; "local": a new local Ray
    task_retries: int = DEFAULTS.ray_task_retries  # Ray's retries of a task whose node died

    def check_available(self) -> None:
        import_ray()  # without it, say how to install it before anything is written

    def start(self, work: LaunchWork) -> RayBackend:
        backend = RayBackend(self, work)
        backend.connect()
        return backend


class RayBackend:
    """The plan's assignments as Ray lanes; implements ``Backend``."""

    def __init__(self, tasks: RayTasks, work: LaunchWork) -> None:
        self.tasks = tasks
        self.work = work
        self.spec = work.spec
        self.app = work.app
        self.store = work.store
        self.layout = work.layout
        self.stop = work.stop
        self.policy = SupervisionPolicy(work.app.supervision)
        started = datetime.now().isoformat(timespec="seconds")
        self.lanes = [Lane(k, tuple(a), started) for k, a in enumerate(work.assignments)]
        self.refs: dict[int, Any] = {}  # lane -> ObjectRef of its task in flight
        self.cancelled: dict[int, str] = {}  # lane -> why the driver cancelled its task
        self.last_loss: dict[int, str] = {}  # lane -> why its last task was lost
        self.stopping_since: float | None = None
        # Written into the stop file: tasks stop for this launch's file only, never for
        # one left by an earlier launch that a network filesystem still shows them.
        self.stop_token = f"{os.getpid()}-{os.urandom(8).hex()}"
        self.ray: ModuleType | None = None
        self.remote: Any = None
        self.app_ref: Any = None

    def connect(self) -> None:
        ray = import_ray()
        self.layout.stop_file.unlink(missing_ok=True)
        connect(ray, self.tasks.address, len(self.lanes))
        self.ray = ray
        if self.work.handle_signals:
            self.stop.install_signal_handlers()  # ours, whatever ray.init installed
        self.remote = ray.remote(
            num_cpus=1, max_retries=self.tasks.task_retries, retry_exceptions=False
        )(run_batch)
        self.app_ref = ray.put(self.app)

    # -- Backend -----------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return all(lane.finished for lane in self.lanes)

    @property
    def stopping(self) -> bool:
        return self.stopping_since is not None

    @property
    def environment_failure(self) -> tuple[int, str] | None:
        return None  # a refused write in a task loses the task, like any other error

    def tick(self, now: float) -> list[Notice]:
        ray = self._ray()
        if self.stopping_since is None:
            for lane in self.lanes:
                if lane.state in ("ready", "waiting"):
                    self._send(lane, now)
        elif now - self.stopping_since > self.app.supervision.stop_grace_seconds:
            for worker_id, ref in self.refs.items():
                if worker_id not in self.cancelled:
                    self.cancelled[worker_id] = GRACE_CANCEL
                    ray.cancel(ref, force=True)
        self._collect(ray)
        self._watch(ray, now)
        return []  # the lanes log their own lines, with the batch they were on

    def wait(self, timeout: float) -> None:
        if not self.refs:
            self.work.sleep(timeout)  # every lane waits for its backoff
            return
        self._ray().wait(list(self.refs.values()), num_returns=1, timeout=timeout)

    def stop_all(self, now: float, reason: str) -> list[Notice]:
        self._begin_stop(now, reason)
        return []

    def given_up(self) -> dict[int, str]:
        return {
            lane.worker_id: self.last_loss.get(lane.worker_id, "?")
            for lane in self.lanes
            if lane.state == "given_up"
        }

    def close(self) -> None:
        ray = self.ray
        try:
            if ray is not None:
                for ref in self.refs.values():
                    ray.cancel(ref, force=True)
                ray.shutdown()
        finally:
            self.layout.stop_file.unlink(missing_ok=True)

    def _ray(self) -> ModuleType:
        assert self.ray is not None, "connect() first"
        return self.ray

    def _begin_stop(self, now: float, reason: str) -> None:
        """Tasks stop between symbols once the stop file exists; their work is committed."""
        self.stopping_since = now
        log.warning("stopping (%s): tasks finish their symbol, then commit", reason)
        write_text_atomic(self.layout.stop_file, f"{self.stop_token}\n", durable=False)
        for lane in self.lanes:
            if not lane.finished and lane.task is None:
                self._finish_lane(lane, "stopped")

    # -- sending -----------------------------------------------------------------
    def _skip(self) -> frozenset[str]:
        cp = self.store.current(remove_temps=False)  # the tasks' temporary shards kept
        if cp is None:
            return frozenset()
        return cp.settled(self.spec.max_attempts, self.work.redo)

    def _send(self, lane: Lane, now: float) -> None:
        spec = self.spec
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
            root=self.layout.root.absolute(),  # not resolve(): a symlink may be the shared path
            spec=spec,
            lane=lane.worker_id,
            number=number,
            total_batches=lane.total_batches(len(lane.todo(skip)), spec.batch_size),
            symbols=batch,
            owner_pid=os.getpid(),
            progress=LaneProgress(
                lane.symbols_done, lane.symbols_total, lane.bars_done, lane.events, lane.started_at
            ),
            stop_token=self.stop_token,
        )
        again = f" again (loss {lane.losses})" if lane.losses_in_row else ""
        log.debug(
            "worker %d: batch %d (%d symbols, %s..) sent as a Ray task%s",
            lane.worker_id, number, len(batch), batch[0], again,
        )  # fmt: skip
        view = heartbeat_view(self.layout, lane.worker_id)  # before the task can write it
        self.refs[lane.worker_id] = self.remote.remote(task, self.app_ref)
        lane.sent(number, batch, view.token if view is not None else None)

    # -- results -----------------------------------------------------------------
    def _collect(self, ray: ModuleType) -> None:
        """Commit (or count as lost) every task that has come back."""
        if not self.refs:
            return
        by_ref = {ref: worker_id for worker_id, ref in self.refs.items()}
        pending = list(by_ref)
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        for ref in ready:
            lane = self.lanes[by_ref[ref]]
            del self.refs[lane.worker_id]
            try:
                output = ray.get(ref)
            except ray.exceptions.RayError as exc:
                reason = self.cancelled.pop(lane.worker_id, None) or describe_loss(exc)
                self._lost(lane, reason)
            else:
                self.cancelled.pop(lane.worker_id, None)
                self._commit(lane, output)

    def _commit(self, lane: Lane, out: BatchOutput) -> None:
        spec = self.spec
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
        own = (
            task is not None
            and view is not None
            and view.batch_num == task.number  # written by this task, not an earlier one
            and view.token != task.sent_token
            and view.current_symbol in task.symbols
        )
        # A stop (a grace-period cancel included) is not the symbol's fault.
        symbol = self.policy.blame(
            view.current_symbol if view is not None else None,
            own_heartbeat=own,
            stopping=self.stopping_since is not None or reason == GRACE_CANCEL,
        )
        doing = ""
        if symbol is not None:
            cp = self.store.record_failures({symbol: reason})
            attempts = cp.failed[symbol].attempts if symbol in cp.failed else 0
            doing = f" while detecting {symbol} (failed attempt {attempts})"
        number = task.number if task is not None else lane.batches_sent
        self.last_loss[lane.worker_id] = reason
        delay = lane.lost(self.work.clock(), self.policy)
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
            if worker_id not in self.cancelled and lane.stalled(now, self.policy):
                if view is not None and _node_dead(ray, view.node_id):
                    lane.writer_gone(now)  # not stalled: Ray sends the task again
                    continue
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


def _node_dead(ray: ModuleType, node_id: str | None) -> bool:
    """Whether the Ray node ``node_id`` is known to the cluster and dead (asked only of a
    lane that looks stalled)."""
    if node_id is None:
        return False
    try:
        nodes = ray.nodes()
    except Exception:  # the cluster cannot say: judge by the heartbeat alone
        return False
    return any(n.get("NodeID") == node_id and not n.get("Alive", True) for n in nodes)
