"""The launcher against the one backend interface, in process, with a fake clock.

The supervision policy's rules are tested once here, with an injected ``now``; the
launcher is driven with an in-process backend (the real batch routine and the real
commit protocol, no process and no Ray) and a clock that only moves when the
launcher waits, so the whole launch (plan, spec, supervision loop, stop, merge,
summary) runs without sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detector.config import AppConfig, SupervisionConfig
from detector.errors import ExitCode
from orchestrator.backends.base import LaunchWork
from orchestrator.backends.policy import Restart, SupervisionPolicy
from orchestrator.backends.ray_backend import RayBackend, RayTasks
from orchestrator.backends.supervisor import Notice
from orchestrator.launch.launcher import LaunchConfig, Launcher
from orchestrator.run.heartbeat import WorkerHeartbeat, write_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.spec import DEFAULTS, InputPolicy, RunSpec, read_spec
from orchestrator.run.store import BatchRecords, RunStore
from orchestrator.worker.batch import BatchTask, LaneProgress, run_batch
from orchestrator.worker.stopping import StopRequest
from tools.demo.data import DemoDataSpec, generate_demo_bars

RUN = "b1"
POLICY = SupervisionPolicy(
    SupervisionConfig(
        max_restarts=2,
        backoff_initial_seconds=1.0,
        backoff_max_seconds=5.0,
        stall_timeout_seconds=30.0,
    )
)


# -- the policy -------------------------------------------------------------------------
def test_backoff_doubles_with_losses_in_a_row_and_is_capped() -> None:
    assert [POLICY.backoff(n) for n in (0, 1, 2, 3, 4, 10)] == [1.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_unit_is_restarted_max_restarts_times_then_given_up() -> None:
    assert POLICY.after_loss(0, 1, now=100.0) == Restart(at=101.0, delay=1.0)
    assert POLICY.after_loss(1, 2, now=100.0) == Restart(at=102.0, delay=2.0)
    assert POLICY.after_loss(2, 3, now=100.0) is None  # max_restarts = 2


def test_stalled_only_once_seen_to_change_and_then_quiet_for_the_timeout() -> None:
    assert not POLICY.stalled(None, now=1e9)  # never seen to write: queued, not stalled
    assert not POLICY.stalled(10.0, now=39.9)
    assert POLICY.stalled(10.0, now=40.0)


def test_blame_needs_the_units_own_heartbeat_and_no_stop() -> None:
    assert POLICY.blame("AAA", own_heartbeat=True, stopping=False) == "AAA"
    assert POLICY.blame("AAA", own_heartbeat=False, stopping=False) is None
    assert POLICY.blame("AAA", own_heartbeat=True, stopping=True) is None
    assert POLICY.blame(None, own_heartbeat=True, stopping=False) is None


# -- the launcher with an in-process backend ------------------------------------------------
class FakeClock:
    """Monotonic seconds that move only when someone waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waited: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.now += seconds


class InProcessBackend:
    """One batch per lane and pass, detected and committed right here."""

    def __init__(self, work: LaunchWork, stop_after: int | None) -> None:
        self.work = work
        self.stop_after = stop_after  # passes before the fake operator asks to stop
        self.passes = 0
        self.numbers = [0] * len(work.assignments)
        self.stop_reasons: list[str] = []
        self.closed = False

    @property
    def finished(self) -> bool:
        return self.stopping or all(not self._left(k) for k in range(len(self.numbers)))

    @property
    def stopping(self) -> bool:
        return bool(self.stop_reasons)

    @property
    def environment_failure(self) -> tuple[int, str] | None:
        return None

    def _left(self, lane: int) -> tuple[str, ...]:
        cp = self.work.store.read()
        assert cp is not None
        return cp.remaining_of(self.work.assignments[lane], self.work.spec.max_attempts)

    def tick(self, now: float) -> list[Notice]:
        self.passes += 1
        if self.stop_after is not None and self.passes > self.stop_after:
            self.work.stop.request("SIGTERM", ExitCode.TERMINATED)
            return []
        notices = []
        for lane in range(len(self.numbers)):
            batch = self._left(lane)[: self.work.spec.batch_size]
            if batch:
                self._run(lane, batch)
                notices.append(Notice(lane, f"batch {self.numbers[lane]}: {len(batch)} symbols"))
        return notices

    def _run(self, lane: int, batch: tuple[str, ...]) -> None:
        spec, layout = self.work.spec, self.work.layout
        self.numbers[lane] += 1
        task = BatchTask(
            root=layout.root, spec=spec, lane=lane, number=self.numbers[lane],
            total_batches=0, symbols=batch, owner_pid=1,
            progress=LaneProgress(0, 0, 0, 0, datetime.now().isoformat(timespec="seconds")),
            stop_token="in-process",
        )  # fmt: skip
        out = run_batch(task, self.work.app)
        self.work.store.commit_written(
            out.temp, shard_dir=layout.shard_dir(lane), symbols=out.covered,
            failures=out.failures, config_hash=spec.config_hash,
            outcomes=BatchRecords(out.no_bars, out.skipped_files, out.inputs),
        )  # fmt: skip

    def wait(self, timeout: float) -> None:
        self.work.sleep(timeout)

    def stop_all(self, now: float, reason: str) -> list[Notice]:
        self.stop_reasons.append(reason)
        return [Notice(0, f"stopping: {reason}")]

    def given_up(self) -> Mapping[int, str]:
        return {}

    def close(self) -> None:
        self.closed = True


class InProcess:
    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.started: list[InProcessBackend] = []
        self.checked = False

    def check_available(self) -> None:
        self.checked = True

    def start(self, work: LaunchWork) -> InProcessBackend:
        backend = InProcessBackend(work, self.stop_after)
        self.started.append(backend)
        return backend


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=root, symbols=5, days=4, seed=5))
    return root


def launcher(
    root: Path, bars: Path, factory: InProcess, clock: FakeClock, **kw: object
) -> Launcher:
    cfg = LaunchConfig(root=root, run_id=RUN, bars_root=bars, config_path=None, workers=2,
                       yes=True, check_timezone=False, **kw)  # type: ignore[arg-type]  # fmt: skip
    return Launcher(cfg, AppConfig(), factory, confirm=lambda plan: True, echo=lambda line: None,
                    stop=StopRequest(), clock=clock, sleep=clock.sleep)  # fmt: skip


def test_the_launcher_drives_a_backend_to_a_merged_final_file(tmp_path: Path, bars: Path) -> None:
    clock, factory = FakeClock(), InProcess()
    outcome = launcher(tmp_path, bars, factory, clock, batch_size=2).run()

    assert factory.checked and len(factory.started) == 1 and factory.started[0].closed
    assert outcome.exit_code is ExitCode.OK and outcome.completed == 5
    # Five symbols over two lanes in batches of two: two passes, the launcher waited once.
    assert factory.started[0].passes == 2 and clock.waited == [
        AppConfig().supervision.poll_interval_seconds
    ]
    final = pl.read_parquet(RunLayout(tmp_path, RUN).final)
    assert outcome.merged is not None and outcome.merged.events == final.height > 0
    # The same events as a lone in-process worker over the same bars (test_input_truth).
    direct = pl.concat([out for out in _direct(bars)]).sort("symbol", "timestamp", "event_type")
    assert_frame_equal(
        final.sort("symbol", "timestamp", "event_type").select(direct.columns), direct
    )


def _direct(bars: Path) -> list[pl.DataFrame]:
    from detector.pipeline import detect_symbol

    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))
    return [detect_symbol(s, bars, AppConfig()) for s in symbols]


def test_the_spec_is_saved_with_the_run_and_read_by_the_next_launch(
    tmp_path: Path, bars: Path
) -> None:
    clock = FakeClock()
    launcher(tmp_path, bars, InProcess(stop_after=0), clock, batch_size=2, max_attempts=5).run()
    layout = RunLayout(tmp_path, RUN)
    first = read_spec(layout.spec)
    assert first is not None
    assert (first.batch_size, first.max_attempts, first.bars_layout) == (2, 5, "daily")
    assert first.bars_root == bars.absolute() and first.inputs == InputPolicy()
    assert json.loads(layout.spec.read_text())["config"]["detector"]  # the full config

    # A later launch without the options keeps the run's, not the global defaults.
    factory = InProcess()
    outcome = launcher(tmp_path, bars, factory, clock).run()
    spec = factory.started[0].work.spec
    assert (
        (spec.batch_size, spec.max_attempts)
        == (2, 5)
        != (DEFAULTS.batch_size, DEFAULTS.max_attempts)
    )
    assert spec.created_at == first.created_at and outcome.exit_code is ExitCode.OK


def test_a_stop_request_stops_the_backend_and_ends_the_launch_without_a_merge(
    tmp_path: Path, bars: Path
) -> None:
    clock, factory = FakeClock(), InProcess(stop_after=1)
    outcome = launcher(tmp_path, bars, factory, clock, batch_size=1).run()

    backend = factory.started[0]
    assert backend.stop_reasons == ["SIGTERM"] and backend.closed
    assert outcome.stopped == "SIGTERM" and outcome.exit_code == ExitCode.TERMINATED
    assert outcome.merged is None and outcome.completed == 2  # one pass: a batch per lane
    assert not RunLayout(tmp_path, RUN).final.exists()


# -- the Ray lanes under the policy: a dead node's last heartbeat is not a stall ---------------
class FakeRay:
    """The two calls the driver's watch makes, answering as a cluster would."""

    def __init__(self, nodes: list[dict[str, object]]) -> None:
        self._nodes = nodes
        self.cancelled: list[object] = []

    def nodes(self) -> list[dict[str, object]]:
        return self._nodes

    def cancel(self, ref: object, force: bool = False) -> None:
        self.cancelled.append(ref)


def _watched_lane(tmp_path: Path, node_alive: bool) -> tuple[RayBackend, FakeRay]:
    layout = RunLayout(tmp_path, RUN)
    spec = RunSpec(run_id=RUN, bars_root=tmp_path, bars_layout="daily", config_hash="h",
                   config_path=None)  # fmt: skip
    work = LaunchWork(
        layout=layout, store=RunStore(layout), spec=spec, app=AppConfig(), assignments=(("AAA",),),
        redo={}, stop=StopRequest(), handle_signals=False, clock=FakeClock(), sleep=lambda s: None,
    )  # fmt: skip
    backend = RayBackend(RayTasks(), work)
    stamp = datetime.now().isoformat(timespec="seconds")
    write_heartbeat(layout.worker_heartbeat(0), WorkerHeartbeat(
        run_id=RUN, worker_id=0, pid=12345, status="running", current_symbol="AAA",
        last_symbol=None, symbols_done=0, symbols_total=1, bars_done=0, bars_total=0, events=0,
        batch_num=1, total_batches=1, rss_gb=0.1, started_at=stamp, updated_at=stamp,
        host="n2", node_id="node-2",
    ))  # fmt: skip
    lane = backend.lanes[0]
    lane.sent(1, ("AAA",), token=None)
    backend.refs[0] = "ref-0"
    ray = FakeRay([{"NodeID": "head", "Alive": True}, {"NodeID": "node-2", "Alive": node_alive}])
    stall = AppConfig().supervision.stall_timeout_seconds
    backend._watch(ray, now=0.0)  # type: ignore[arg-type]  # the heartbeat is seen to change
    backend._watch(ray, now=stall + 1)  # type: ignore[arg-type]  # then not for too long
    return backend, ray


def test_a_task_whose_node_died_is_not_stalled_ray_sends_it_again(tmp_path: Path) -> None:
    backend, ray = _watched_lane(tmp_path, node_alive=False)
    assert ray.cancelled == [] and backend.cancelled == {}
    task = backend.lanes[0].task
    assert task is not None and task.changed_at == AppConfig().supervision.stall_timeout_seconds + 1


def test_a_task_on_a_live_node_with_a_quiet_heartbeat_is_stalled(tmp_path: Path) -> None:
    backend, ray = _watched_lane(tmp_path, node_alive=True)
    assert ray.cancelled == ["ref-0"]
    assert backend.cancelled[0].startswith("stalled: heartbeat unchanged")
