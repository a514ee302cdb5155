"""``restart`` (and the launch guards it relies on) with real processes and real signals.

``restart`` signals a process only if it is the one its PID file recorded (pid, create
time and command line): a live process that merely has a recorded pid is left alone.
It stops a live launch (orchestrator first, which stops its workers), removes PID
files and the temporary files of dead writers, and with ``--start`` launches again.

Every command runs in a child process of the test, every wait is bounded, and the
``no_stray_processes`` fixture fails a test if any process it started outlives it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal

from detector.schema import EVENT_KEY
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import PidRecord, read_pid_file, record_for, write_pid_file
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")

RUN_ID = "R"
KEY = list(EVENT_KEY)
TIMEOUT_S = 60.0  # one CLI process; the commands here take 1-3 s
WAIT_S = 30.0  # waiting for a state of a running launch
# Each worker sleeps this long before each symbol, so that a launch of 4 symbols per
# worker runs for several seconds: long enough to be stopped while its workers run.
SLOW = "before_detection:1.0"
SUPERVISION = """\
intraday_events:
  supervision: {backoff_initial_seconds: 0.1, backoff_max_seconds: 0.5, poll_interval_seconds: 0.1, progress_interval_seconds: 1.0, stop_grace_seconds: 3.0, stall_timeout_seconds: 60.0, max_restarts: 20}
"""


class KnownBug(AssertionError):
    """Raised exactly where a bug that was found and fixed would show again."""


# -- data, config and the reference run -----------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "raw" / "market_data" / "bars" / "1m"
    generate_demo_bars(DemoDataSpec(out=out, symbols=8, days=10, seed=0))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    return sorted(pl.read_parquet(bars / "symbols.parquet")["symbol"].to_list())


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "supervision.yaml"
    path.write_text(SUPERVISION, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, cfg: Path, symbols: list[str]
) -> pl.DataFrame:
    """The final file of a lone, uninterrupted ``detect`` on the same bars, sorted."""
    root = tmp_path_factory.mktemp("reference")
    done = run_cli(
        root,
        cfg,
        ["detect", "--bars", str(bars), "--symbols", " ".join(symbols), "--run-id", "REF"],
        ["--batch-size", "50"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    final = pl.read_parquet(RunLayout(root, "REF").final)
    assert final.height > 0
    return final.sort(KEY)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


# -- running the command line -----------------------------------------------------------
def _env(pause: str | None = None) -> dict[str, str]:
    # os.environ carries the no_stray_processes tag, which every child inherits.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (CRASH_ENV, PAUSE_ENV, "INTRADAY_EVENTS_ROOT")
    }
    env["COLUMNS"] = "200"  # keeps log lines whole
    if pause is not None:
        env[PAUSE_ENV] = pause
    return env


def _argv(root: Path, cfg: Path, *parts: Sequence[str]) -> list[str]:
    argv = [sys.executable, "-m", "tools", "--root", str(root), "--config", str(cfg)]
    return argv + [a for part in parts for a in part]


def run_cli(
    root: Path, cfg: Path, *parts: Sequence[str], pause: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One CLI command to its end (killed, and the test failed, past TIMEOUT_S)."""
    return subprocess.run(
        _argv(root, cfg, *parts),
        cwd=root,
        env=_env(pause),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def start_cli(
    root: Path, cfg: Path, *parts: Sequence[str], pause: str | None = None, **popen: object
) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        _argv(root, cfg, *parts),
        cwd=root,
        env=_env(pause),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def launch_args(bars: Path, symbols: Sequence[str]) -> list[str]:
    return [
        "launch", "--workers", "2", "--batch-size", "2", "--yes", "--run-id", RUN_ID,
        "--bars", str(bars), "--symbols", " ".join(symbols),
    ]  # fmt: skip


@contextlib.contextmanager
def started(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Stops ``process`` (SIGTERM, then SIGKILL) if the test leaves it running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=TIMEOUT_S)


def wait_until(
    condition: Callable[[], bool], what: str, *, process: subprocess.Popen[str] | None = None
) -> None:
    """Wait (at most WAIT_S) for ``condition``; fail early if ``process`` exits meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process is not None and process.poll() is not None:
            out = process.communicate(timeout=TIMEOUT_S)[0]
            pytest.fail(f"exited {process.returncode} while waiting for {what}:\n{out}")
        assert time.monotonic() < deadline, f"timed out after {WAIT_S} s waiting for {what}"
        time.sleep(0.02)


def workers_running(layout: RunLayout, launch: subprocess.Popen[str]) -> list[PidRecord]:
    """Wait until both workers of the launch have PID files; their records."""
    files = [layout.worker_pid_file(0), layout.worker_pid_file(1)]
    wait_until(lambda: all(p.exists() for p in files), "both worker PID files", process=launch)
    return [read_pid_file(p) for p in files]


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out = process.communicate(timeout=TIMEOUT_S)[0]
    return process.returncode, out


def sleeper() -> subprocess.Popen[bytes]:
    """A live process that is no part of any run."""
    return subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=TIMEOUT_S)


def dead_pid() -> int:
    """The pid of a process that ran and was reaped: nothing runs under it now."""
    process = subprocess.Popen(["true"])
    process.wait(timeout=TIMEOUT_S)
    return process.pid


# -- 1. a recorded pid that now belongs to another process ----------------------------------
@pytest.mark.parametrize(
    ("role", "differs"),
    [("worker", "create_time"), ("worker", "cmdline"), ("orchestrator", "create_time")],
)
def test_restart_leaves_alone_a_live_process_whose_pid_was_reused(
    root: Path, cfg: Path, role: str, differs: str
) -> None:
    layout = RunLayout(root, RUN_ID)
    unrelated = sleeper()
    try:
        worker_id = 0 if role == "worker" else None
        record = record_for(unrelated.pid, run_id=RUN_ID, role=role, worker_id=worker_id)
        if differs == "create_time":
            record = dataclasses.replace(record, create_time=record.create_time - 100)
        else:
            cmdline = (sys.executable, "-m", "tools", "--root", str(root), "detect")
            record = dataclasses.replace(record, cmdline=cmdline)
        path = layout.worker_pid_file(0) if role == "worker" else layout.orchestrator_pid_file
        write_pid_file(path, record)

        done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

        assert done.returncode == 0, done.stdout + done.stderr
        assert f"left alone pid {unrelated.pid}" in done.stdout, done.stdout
        assert "stopped" not in done.stdout, done.stdout
        time.sleep(0.1)  # a signal, had one been sent, has landed
        assert unrelated.poll() is None, f"the unrelated process was signalled: {done.stdout}"
        assert running(unrelated.pid)
        assert not path.exists()
        assert layout.pid_files() == []
    finally:
        end(unrelated)


def test_restart_removes_the_pid_file_of_a_dead_process_without_signalling(
    root: Path, cfg: Path
) -> None:
    layout = RunLayout(root, RUN_ID)
    gone = subprocess.Popen(["sleep", "0.3"])
    record = record_for(gone.pid, run_id=RUN_ID, role="worker", worker_id=3)
    gone.wait(timeout=TIMEOUT_S)
    write_pid_file(layout.worker_pid_file(3), record)

    done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"restart {RUN_ID}:", "  removed PID file worker_3.pid"]
    assert layout.pid_files() == []


def test_restart_does_not_call_an_unreaped_dead_worker_a_reused_pid(root: Path, cfg: Path) -> None:
    layout = RunLayout(root, RUN_ID)
    zombie = subprocess.Popen(["sleep", "0.3"])
    try:
        record = record_for(zombie.pid, run_id=RUN_ID, role="worker", worker_id=0)
        write_pid_file(layout.worker_pid_file(0), record)
        # Exited, not reaped: psutil's status() does not reap it.
        wait_until(lambda: not running(zombie.pid), "the worker to exit")

        done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

        assert done.returncode == 0, done.stdout + done.stderr
        assert layout.pid_files() == []
        assert "stopped" not in done.stdout, done.stdout
        if "left alone" in done.stdout:
            raise KnownBug(done.stdout)
    finally:
        zombie.wait(timeout=TIMEOUT_S)


# -- 2. stopping a live launch, then finishing the run --------------------------------------
def test_restart_stops_a_live_launch_and_restart_start_completes_the_run(
    root: Path, cfg: Path, bars: Path, symbols: list[str], reference: pl.DataFrame
) -> None:
    layout = RunLayout(root, RUN_ID)
    launch = start_cli(root, cfg, launch_args(bars, symbols), pause=SLOW)
    with started(launch):
        workers = workers_running(layout, launch)
        assert all(running(w.pid) for w in workers)

        restart = start_cli(root, cfg, ["restart", "--run-id", RUN_ID])
        with started(restart):
            # Reap the launcher as soon as it exits, as its shell would.
            launch_code, launch_out = finish(launch)
            code, out = finish(restart)

    assert code == 0, out
    assert f"stopped orchestrator pid {launch.pid}" in out, out
    assert launch_code == 143, launch_out
    assert f"Run {RUN_ID} stopped (SIGTERM received)" in launch_out, launch_out
    alive = [w.pid for w in workers if running(w.pid)]
    assert alive == [], f"workers still running after restart: {alive}\n{out}"
    assert layout.pid_files() == []
    assert layout.temp_shards() == []
    assert not layout.final.exists()  # it was stopped before the end

    again = run_cli(
        root, cfg, ["restart", "--start", "--yes", "--run-id", RUN_ID], ["--bars", str(bars)]
    )

    assert again.returncode == 0, again.stdout + again.stderr
    assert f"restart {RUN_ID}: nothing to stop or remove" in again.stdout
    assert layout.pid_files() == []
    assert layout.temp_shards() == []
    final = pl.read_parquet(layout.final)
    assert_frame_equal(final.sort(KEY), reference)


def test_restart_signals_only_the_orchestrator_not_the_rest_of_its_process_group(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    # As a shell with job control starts `launch ... | tee log`: the launcher leads a
    # process group that holds another process of the pipeline.
    launch = start_cli(root, cfg, launch_args(bars, symbols), pause=SLOW, process_group=0)
    with started(launch):
        bystander = subprocess.Popen(
            ["sleep", "60"], stdin=subprocess.DEVNULL, process_group=launch.pid
        )
        try:
            workers_running(layout, launch)
            restart = start_cli(root, cfg, ["restart", "--run-id", RUN_ID])
            with started(restart):
                launch_code, launch_out = finish(launch)
                code, out = finish(restart)
            assert code == 0, out
            assert launch_code == 143, launch_out
            time.sleep(0.1)
            if bystander.poll() is not None:
                raise KnownBug(f"the bystander in the orchestrator's group: {bystander.returncode}")
        finally:
            end(bystander)


def test_restart_after_the_launcher_was_killed_stops_its_workers_and_clears_pid_files(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    launch = start_cli(root, cfg, launch_args(bars, symbols), pause=SLOW)
    with started(launch):
        workers = workers_running(layout, launch)
        launch.kill()
        code, _ = finish(launch)
    assert code == -signal.SIGKILL
    assert layout.orchestrator_pid_file.exists()  # what the killed launcher left

    done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed PID file orchestrator.pid" in done.stdout, done.stdout
    assert layout.pid_files() == []
    assert layout.temp_shards() == []
    # A worker either stopped on its own (its parent is gone) or was stopped by restart.
    wait_until(lambda: not any(running(w.pid) for w in workers), "the workers to be gone")


# -- 3. temporary files of dead writers ---------------------------------------------------
def test_restart_removes_orphan_temp_files_and_keeps_those_of_live_writers(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    # The run exists (checkpoint written) and is unfinished: restart finds it by itself.
    detect = ["detect", "--bars", str(bars), "--symbols", symbols[0], "--run-id", RUN_ID]
    done = run_cli(root, cfg, detect, ["--no-merge"])
    assert done.returncode == 0, done.stdout + done.stderr

    dead = dead_pid()
    orphans = [
        layout.temp_shard(layout.shard_dir(0), 0, dead, "abcd"),
        layout.temp_shard(layout.shard_dir(None), None, dead, "ef01"),
        layout.checkpoints_dir / f".{layout.checkpoint.name}.{dead}.tmp",
    ]
    writer = sleeper()
    try:
        kept = layout.temp_shard(layout.shard_dir(1), 1, writer.pid, "2345")
        for path in [*orphans, kept]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
        now = time.time()
        os.utime(kept, (now, now))  # written after its writer started

        done = run_cli(root, cfg, ["restart"])

        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"restart {RUN_ID}:\n"), done.stdout
        for path in orphans:
            assert not path.exists(), f"{path.name} left behind:\n{done.stdout}"
            assert f"removed orphan temporary file {path.name}" in done.stdout, done.stdout
        assert kept.exists(), done.stdout
        assert kept.name not in done.stdout
        assert layout.temp_shards() == [kept]
    finally:
        end(writer)


def test_restart_removes_the_temp_shard_of_an_unreaped_dead_writer(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    detect = ["detect", "--bars", str(bars), "--symbols", symbols[0], "--run-id", RUN_ID]
    done = run_cli(root, cfg, detect, ["--no-merge"])
    assert done.returncode == 0, done.stdout + done.stderr
    zombie = subprocess.Popen(["sleep", "0.3"])
    try:
        temp = layout.temp_shard(layout.shard_dir(0), 0, zombie.pid, "abcd")
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"partial")
        wait_until(lambda: not running(zombie.pid), "the writer to exit")

        done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

        assert done.returncode == 0, done.stdout + done.stderr
        if temp.exists():
            raise KnownBug(f"{temp.name} kept:\n{done.stdout}")
    finally:
        zombie.wait(timeout=TIMEOUT_S)


# -- 4. nothing to do -----------------------------------------------------------------
def test_restart_with_nothing_to_do_says_so(root: Path, cfg: Path) -> None:
    checkpoint = RunLayout(root, RUN_ID).checkpoint
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text(json.dumps({"run_id": RUN_ID, "completed_symbols": []}))
    before = sorted(root.rglob("*"))

    done = run_cli(root, cfg, ["restart", "--run-id", RUN_ID])

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"restart {RUN_ID}: nothing to stop or remove\n"
    assert sorted(root.rglob("*")) == before  # and it created nothing


def test_restart_of_a_run_that_does_not_exist_exits_2_naming_it(root: Path, cfg: Path) -> None:
    done = run_cli(root, cfg, ["restart", "--run-id", "NOPE"])

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"Error: no run NOPE under {root.resolve()} (no checkpoint, shard, final file or "
        "launch files of it); check --run-id and --root"
    ]
    assert list(root.iterdir()) == []  # nothing created


# -- 5. launch without a terminal to confirm on ---------------------------------------------
def test_launch_without_yes_and_without_a_terminal_refuses_and_starts_nothing(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    args = [a for a in launch_args(bars, symbols) if a != "--yes"]

    done = run_cli(root, cfg, args)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "--yes" in done.stderr, done.stderr
    assert layout.pid_files() == []
    assert not layout.worker_console_log(0).exists()
    assert not layout.worker_heartbeat(0).exists()
    assert layout.committed_shards() == {}
    assert layout.temp_shards() == []
    assert not layout.final.exists()


# -- 6. a second launch of a live run; SIGINT ----------------------------------------------
def test_second_launch_of_a_live_run_exits_4_naming_its_pid_and_sigint_stops_the_first(
    root: Path, cfg: Path, bars: Path, symbols: list[str]
) -> None:
    layout = RunLayout(root, RUN_ID)
    launch = start_cli(root, cfg, launch_args(bars, symbols), pause=SLOW)
    with started(launch):
        workers = workers_running(layout, launch)
        orchestrator = read_pid_file(layout.orchestrator_pid_file).pid
        assert orchestrator == launch.pid

        second = run_cli(root, cfg, launch_args(bars, symbols))

        assert second.returncode == 4, second.stdout + second.stderr
        assert f"pid {orchestrator}" in second.stderr, second.stderr
        # The refused launch touched nothing of the live one.
        assert launch.poll() is None
        assert read_pid_file(layout.orchestrator_pid_file).pid == orchestrator
        assert all(running(w.pid) for w in workers)

        os.kill(orchestrator, signal.SIGINT)
        code, out = finish(launch)

    assert code == 130, out
    assert f"Run {RUN_ID} stopped (SIGINT received)" in out, out
    assert layout.pid_files() == []
    assert [w.pid for w in workers if running(w.pid)] == []
    assert layout.temp_shards() == []
