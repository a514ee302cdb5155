"""``status``: a run's snapshot read from real run files, damaged files, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import psutil
import pytest
from click.testing import CliRunner

from detector.config import AppConfig
from orchestrator.observe.status import (
    RunSnapshot,
    progress_line,
    read_snapshot,
    render_text,
    snapshot_to_json,
)
from orchestrator.run import checkpoint as ck
from orchestrator.run.heartbeat import WorkerHeartbeat, write_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import record_for, write_pid_file
from orchestrator.run.plan import make_plan, write_plan
from orchestrator.worker.loop import Worker, WorkerConfig
from tools.cli import cli
from tools.demo.data import DemoDataSpec, generate_demo_bars

RUN = "r1"


@pytest.fixture(scope="module")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=root, symbols=5, days=5, seed=7))
    return root


@pytest.fixture(scope="module")
def symbols(bars_root: Path) -> tuple[str, ...]:
    return tuple(sorted(pl.read_parquet(bars_root / "symbols.parquet")["symbol"].to_list()))


def detect(root: Path, bars_root: Path, symbols: tuple[str, ...], **kw: object) -> None:
    cfg = WorkerConfig(root=root, run_id=RUN, symbols=symbols, bars_root=bars_root, batch_size=2,
                       **kw)  # type: ignore[arg-type]  # fmt: skip
    Worker(cfg, AppConfig()).run()


@pytest.fixture(scope="module")
def completed_root(
    tmp_path_factory: pytest.TempPathFactory, bars_root: Path, symbols: tuple[str, ...]
) -> Path:
    # Shared by several tests: status never writes, which test_status_writes_nothing checks.
    root = tmp_path_factory.mktemp("completed")
    detect(root, bars_root, symbols, worker_id=0, merge=True)
    return root


@pytest.fixture
def partial_root(tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]) -> Path:
    detect(tmp_path, bars_root, symbols, worker_id=1, limit=2, merge=False)
    return tmp_path


def snap(root: Path, **kw: object) -> RunSnapshot:
    return read_snapshot(RunLayout(root, RUN), now=datetime.now(), **kw)  # type: ignore[arg-type]


def beat(**changes: object) -> WorkerHeartbeat:
    base = WorkerHeartbeat(
        run_id=RUN, worker_id=0, pid=os.getpid(), status="running", current_symbol="DAAD",
        last_symbol="DAAC", symbols_done=1, symbols_total=3, bars_done=0, bars_total=0, events=7,
        batch_num=1, total_batches=2, rss_gb=0.25, started_at=_our_start().isoformat(),
        updated_at=_our_start().isoformat(),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def _our_start() -> datetime:
    """A heartbeat start time that this test process passes the pid-reuse check with."""
    return datetime.fromtimestamp(int(psutil.Process().create_time()) + 1)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}  # fmt: skip


def test_completed_run(completed_root: Path, symbols: tuple[str, ...]) -> None:
    layout = RunLayout(completed_root, RUN)
    s = snap(completed_root)
    assert s.state == "completed" and s.problem is None
    assert s.completed == s.universe == symbols and s.remaining == () and s.quarantined == ()
    assert s.final == layout.final and s.shards == 3  # 5 symbols in batches of 2
    assert s.events_so_far == pl.read_parquet(layout.final).height > 0
    assert s.config_hash == json.loads(layout.checkpoint.read_text())["config_hash"]
    (w,) = s.workers
    # The in-process worker's pid is this test process: alive, but finished.
    assert (w.worker_id, w.status, w.pid, w.alive) == (0, "completed", os.getpid(), True)
    assert w.symbols_done == w.symbols_total == len(symbols) and w.bars_done and w.bars_done > 0
    assert w.heartbeat_age_s is not None and 0 <= w.heartbeat_age_s < 60
    assert s.rate_bars_per_s is None and s.eta_s is None  # nothing is working
    assert progress_line(s).startswith(f"progress 5/5 symbols (100.0%), {s.events_so_far:,} events")
    text = render_text(s)
    assert "state      completed" in text and str(layout.final) in text


def test_partial_run_with_plan_gives_remaining_bars_and_eta(
    partial_root: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    layout = RunLayout(partial_root, RUN)
    s = snap(partial_root)
    assert s.state == "stopped" and s.completed == symbols[:2] and s.remaining == symbols[2:]
    assert s.remaining_bars is None and s.final is None  # no plan, not merged
    bars = {sym: 1000 * (i + 1) for i, sym in enumerate(symbols)}
    plan = make_plan(run_id=RUN, universe=frozenset(symbols), completed=frozenset(symbols[:2]),
                     quarantined=frozenset(), bars=bars, workers=2)  # fmt: skip
    write_plan(layout.plan, plan, created_at="2026-01-01T00:00:00", batch_size=2)
    assert snap(partial_root).remaining_bars == 3000 + 4000 + 5000
    # One more symbol completed after the plan was made: its bars are no longer remaining.
    detect(partial_root, bars_root, symbols, worker_id=1, limit=1, merge=False, resume=True)
    assert snap(partial_root).remaining_bars == 4000 + 5000
    # A live worker (this process) that did 1,000,000 bars in 20 s gives the rate and ETA.
    start = _our_start()
    updated = (start + timedelta(seconds=20)).isoformat()
    write_heartbeat(layout.worker_heartbeat(0), beat(bars_done=1_000_000, updated_at=updated))
    s = snap(partial_root)
    assert s.state == "running"
    w0 = next(w for w in s.workers if w.worker_id == 0)
    assert w0.live and w0.bars_per_s == 50_000.0
    assert s.rate_bars_per_s == 50_000.0 and s.eta_s == pytest.approx(9000 / 50_000)
    line = progress_line(s)
    assert (
        line.startswith("progress 3/5 symbols (60.0%), ") and "50.0 k bars/s, ETA 0:00:00" in line
    )
    assert "| w0 running DAAD 1/3 |" in line and "| w1 completed - 1/1" in line


def test_damaged_and_foreign_files_never_raise(partial_root: Path) -> None:
    layout = RunLayout(partial_root, RUN)
    events = snap(partial_root).events_so_far
    write_heartbeat(layout.worker_heartbeat(2), beat(pid=dead_pid()))
    # A live pid whose process started long after the heartbeat: the pid was reused.
    write_heartbeat(layout.worker_heartbeat(3), beat(started_at="2001-01-01T00:00:00"))
    layout.worker_heartbeat(4).write_text("{broken")
    layout.worker_heartbeat(5).write_text(json.dumps(asdict(beat()))[:60])  # half-written
    layout.worker_heartbeat(6).write_text(json.dumps({"run_id": RUN, "version": 9, "pid": 1}))
    layout.worker_heartbeat(7).write_text(json.dumps(asdict(beat(run_id="other"))))
    (layout.heartbeats_dir / f"{RUN}_worker_x.json").write_text("{}")  # not a worker file
    layout.plan.parent.mkdir(parents=True)
    layout.plan.write_text('{"run_id": "r1", "workers": [[')
    shard_dir = layout.shard_dir(1)
    layout.shard_path(shard_dir, 99).write_bytes(b"PAR1 not really")
    # The orchestrator's pid is alive, but with another create time: not our process.
    record = record_for(os.getpid(), run_id=RUN, role="orchestrator")
    write_pid_file(layout.orchestrator_pid_file, replace(record, create_time=1e9))
    s = snap(partial_root)
    statuses = {w.worker_id: (w.status, w.alive) for w in s.workers}
    assert statuses == {1: ("completed", True), 2: ("dead", False), 3: ("dead", False),
                        4: ("unknown", None), 5: ("unknown", None), 6: ("unknown", None),
                        7: ("unknown", None)}  # fmt: skip
    assert s.state == "stopped" and s.orchestrator_pid == os.getpid() and not s.orchestrator_alive
    assert s.remaining_bars is None and s.events_so_far == events
    assert s.unreadable_shards == (f"{RUN}_shard0099.parquet",) and s.shards == 2
    layout.checkpoint.write_bytes(b"\x00garbage{")
    s = snap(partial_root)
    assert s.state == "unknown" and "checkpoint unreadable" in (s.problem or "")
    assert s.completed is None and s.remaining is None and s.events_so_far == events
    for render in (render_text, progress_line, lambda x: json.dumps(snapshot_to_json(x))):
        assert render(s)
    assert progress_line(s).startswith("progress ?/? symbols, ")


def test_live_pid_files_make_the_run_running(partial_root: Path) -> None:
    layout = RunLayout(partial_root, RUN)
    write_pid_file(layout.orchestrator_pid_file, record_for(os.getpid(), run_id=RUN, role="orchestrator"))  # fmt: skip
    # A worker spawned and recorded that has not written a heartbeat yet.
    write_pid_file(layout.worker_pid_file(4), record_for(os.getpid(), run_id=RUN, role="worker", worker_id=4))  # fmt: skip
    s = snap(partial_root)
    assert s.state == "running" and s.orchestrator_alive
    w4 = next(w for w in s.workers if w.worker_id == 4)
    assert (w4.status, w4.alive, w4.pid, w4.symbols_done) == ("starting", True, os.getpid(), None)
    assert "orchestrator pid" in render_text(s) and "alive" in render_text(s)


def test_failed_and_quarantined_symbols(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    failed = {"BAD": ck.FailedSymbol("ZeroDivisionError: x", 3, "2026-01-01T00:00:00"),
              "FLAKY": ck.FailedSymbol("OSError: y", 1, "2026-01-01T00:00:00")}  # fmt: skip
    cp = ck.Checkpoint(run_id=RUN, completed=frozenset({"OK"}), failed=failed,
                       universe=frozenset({"OK", "BAD", "FLAKY", "TODO"}), config_hash="abc")  # fmt: skip
    layout.checkpoint.parent.mkdir(parents=True)
    layout.checkpoint.write_text(ck.to_json(cp))
    s = snap(tmp_path)
    assert s.state == "stopped" and s.config_hash == "abc" and s.events_so_far == 0
    assert s.quarantined == ("BAD",) and s.remaining == ("FLAKY", "TODO")
    assert s.failed is not None and set(s.failed) == {"BAD", "FLAKY"}
    assert snap(tmp_path, max_attempts=5).quarantined == ()
    text = render_text(s)
    assert "1/4 completed (25.0%), 2 remaining, 1 failed (retried on resume), 1 quarantined" in text
    assert "BAD attempts 3/3 QUARANTINED: ZeroDivisionError: x" in text


def test_not_started_and_legacy_checkpoint(tmp_path: Path) -> None:
    assert snap(tmp_path).state == "not started"
    layout = RunLayout(tmp_path, RUN)
    layout.checkpoint.parent.mkdir(parents=True)
    layout.checkpoint.write_text(json.dumps({"run_id": RUN, "completed_symbols": ["A", "B"],
                                             "total_completed": 2, "last_updated": "x"}))  # fmt: skip
    s = snap(tmp_path)
    assert s.state == "stopped" and s.completed == ("A", "B") and s.config_hash is None


def test_cli_text_json_and_default_run(completed_root: Path, partial_root: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(completed_root), "status"])
    assert result.exit_code == 0, result.output
    assert (
        result.output.startswith(f"run        {RUN}\n") and "state      completed" in result.output
    )
    result = CliRunner().invoke(cli, ["--root", str(partial_root), "status", "--run-id", RUN, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["state"] == "stopped" and data["counts"]["completed"] == 2
    assert data["counts"]["remaining"] == 3 and data["events_so_far"] > 0
    assert data["workers"][0]["worker_id"] == 1 and data["workers"][0]["status"] == "completed"
    for key in ("run_id", "config_hash", "failed", "quarantined", "remaining_bars",
                "rate_bars_per_s", "eta_s", "final", "orchestrator", "taken_at"):  # fmt: skip
        assert key in data


def test_cli_without_runs_or_with_a_bad_run_id_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "status"])
    assert result.exit_code == 2 and "no run under" in result.output
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "status", "--run-id", "../x"])
    assert result.exit_code == 2 and "invalid run id" in result.output
    assert list(tmp_path.iterdir()) == []


def test_status_writes_nothing(completed_root: Path, partial_root: Path, tmp_path: Path) -> None:
    layout = RunLayout(partial_root, RUN)
    write_heartbeat(layout.worker_heartbeat(0), beat())
    write_pid_file(layout.orchestrator_pid_file, record_for(os.getpid(), run_id=RUN, role="orchestrator"))  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (completed_root, partial_root, empty):
        before = tree(root)
        snap(root)
        for args in ([], ["--json"], ["--run-id", RUN]):
            CliRunner().invoke(cli, ["--root", str(root), "status", *args])
        assert tree(root) == before


def test_a_ray_task_on_another_host_is_not_judged_by_a_local_pid(partial_root: Path) -> None:
    layout = RunLayout(partial_root, RUN)
    # Its pid means nothing here (dead, or another process): liveness is unknown, its
    # status is as written, and it counts as working.
    write_heartbeat(layout.worker_heartbeat(2), beat(pid=dead_pid(), host="node-17.cluster"))
    write_heartbeat(layout.worker_heartbeat(3), beat(pid=dead_pid()))  # this host: dead
    workers = {w.worker_id: w for w in snap(partial_root).workers}
    assert (workers[2].status, workers[2].alive, workers[2].live) == ("running", None, True)
    assert (workers[3].status, workers[3].alive) == ("dead", False)
