"""``launch`` with real processes: same final file whatever the split, chaos, poison, signals.

Every launch runs the command line in a child process (its workers are grandchildren
in their own sessions); the ``no_stray_processes`` fixture fails a test if any of
them outlives it, including workers re-parented after their launcher was killed.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal

from detector.schema import EVENT_KEY
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import read_shard_info
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")

RUN_ID = "launch_run"
TIMEOUT_S = 90.0
KEY = list(EVENT_KEY)
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
    backoff_max_seconds: 0.4
    poll_interval_seconds: 0.1
    progress_interval_seconds: 1.0
    stop_grace_seconds: {grace}
    stall_timeout_seconds: {stall}
    max_restarts: {restarts}
"""


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=12, days=15, seed=3))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    return sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: list[str]
) -> pl.DataFrame:
    """The final file of one uninterrupted lone ``detect`` over the same bars."""
    root = tmp_path_factory.mktemp("reference")
    done = run_cli(
        root, ["detect", "--bars", str(bars), "--run-id", RUN_ID, "--symbols", " ".join(symbols)]
    )
    assert done.returncode == 0, done.stdout
    return pl.read_parquet(RunLayout(root, RUN_ID).final)


def config(root: Path, *, stall: float = 60.0, grace: float = 5.0, restarts: int = 50) -> Path:
    path = root / "supervision.yaml"
    path.write_text(SUPERVISION.format(stall=stall, grace=grace, restarts=restarts))
    return path


# -- running the command line ---------------------------------------------------------
def cli_argv(root: Path, args: Sequence[str]) -> list[str]:
    argv = [sys.executable, "-m", "tools", "--root", str(root)]
    if (root / "supervision.yaml").exists():
        argv += ["--config", str(root / "supervision.yaml")]
    return [*argv, *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(root: Path, args: Sequence[str], **env: str) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        cli_argv(root, args),
        cwd=root,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def start_cli(root: Path, args: Sequence[str], **env: str) -> subprocess.Popen[str]:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        cli_argv(root, args),
        cwd=root,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def launch_args(
    bars: Path, *, workers: int, batch_size: int, extra: Sequence[str] = ()
) -> list[str]:
    return [
        "launch", "--bars", str(bars), "--run-id", RUN_ID, "--workers", str(workers),
        "--batch-size", str(batch_size), "--yes", *extra,
    ]  # fmt: skip


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_for_workers(layout: RunLayout, count: int) -> list[int | None]:
    """Wait until ``count`` worker PID files exist; return their pids."""
    wait_for(lambda: len(list(layout.launch_dir.glob("worker_*.pid"))) == count, "the workers")
    return [recorded_pid(p) for p in layout.launch_dir.glob("worker_*.pid")]


def recorded_pid(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out


# -- checks ---------------------------------------------------------------------------
def assert_final_equals(root: Path, reference: pl.DataFrame) -> None:
    layout = RunLayout(root, RUN_ID)
    final = pl.read_parquet(layout.final)
    assert final.select(KEY).n_unique() == final.height, "duplicate event keys"
    assert_frame_equal(final, reference)
    assert layout.temp_shards() == []
    assert layout.pid_files() == []
    shard_symbols: list[str] = []
    for path in layout.committed_shards().values():
        shard_symbols += read_shard_info(path).symbols
    assert len(shard_symbols) == len(set(shard_symbols)), "a symbol committed twice"


def checkpoint(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(RunLayout(root, RUN_ID).checkpoint.read_text())


# -- tests ----------------------------------------------------------------------------
@pytest.mark.parametrize(("workers", "batch_size"), [(1, 50), (2, 7), (4, 1)])
def test_final_file_is_identical_for_any_number_of_workers_and_batch_size(
    tmp_path: Path, bars: Path, reference: pl.DataFrame, workers: int, batch_size: int
) -> None:
    config(tmp_path)
    done = run_cli(tmp_path, launch_args(bars, workers=workers, batch_size=batch_size))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "DETECTION COMPLETE" in done.stdout
    assert f"Worker {workers - 1}: " in done.stdout
    assert_final_equals(tmp_path, reference)
    shard_dirs = {p.parent.name for p in RunLayout(tmp_path, RUN_ID).committed_shards().values()}
    assert shard_dirs <= {f"worker_{k}" for k in range(workers)}
    # Only the launcher merges (the old system's workers each wrote the final file).
    layout = RunLayout(tmp_path, RUN_ID)
    for k in range(workers):
        assert "DETECTION COMPLETE" not in layout.worker_console_log(k).read_text()
    # ... and its main log keeps the line operators grep for.
    main_logs = [
        p for p in layout.logs_dir.glob("detect_events_intraday_*.log") if "_worker_" not in p.name
    ]
    assert ["DETECTION COMPLETE" in p.read_text() for p in main_logs] == [True]
    heartbeat = json.loads(layout.run_heartbeat.read_text())
    assert heartbeat["status"] == "completed"
    assert heartbeat["total_events"] == reference.height


def test_plan_is_printed_in_the_legacy_form_and_splits_by_stride(
    tmp_path: Path, bars: Path, symbols: list[str]
) -> None:
    config(tmp_path)
    done = run_cli(tmp_path, launch_args(bars, workers=3, batch_size=50))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Total symbols: 12" in done.stdout
    assert "Completed symbols (checkpoint): 0" in done.stdout
    assert "Remaining symbols: 12" in done.stdout
    plan = json.loads(RunLayout(tmp_path, RUN_ID).plan.read_text())
    ordered = sorted(symbols, key=lambda s: (-plan["bars"][s], s))
    assert plan["workers"] == [ordered[k::3] for k in range(3)]
    for k in range(3):
        first, last = plan["workers"][k][0], plan["workers"][k][-1]
        assert f"Worker {k}: 4 symbols ({first} ... {last})" in done.stdout

    again = run_cli(tmp_path, launch_args(bars, workers=3, batch_size=50))
    assert again.returncode == 0
    assert "Completed symbols (checkpoint): 12" in again.stdout
    assert "Remaining symbols: 0" in again.stdout


def test_poison_symbol_is_quarantined_after_three_attempts_and_the_run_completes(
    tmp_path: Path, bars: Path, reference: pl.DataFrame, symbols: list[str]
) -> None:
    config(tmp_path)
    poison_bars = tmp_path / "bars"
    poison_bars.mkdir()
    for entry in bars.iterdir():
        (poison_bars / entry.name).symlink_to(entry)
    # Detection raises on this file every time: its close column holds text.
    bad = pl.read_parquet(next(bars.glob("symbol=*/date=*.parquet")))
    (poison_bars / "symbol=POISON").mkdir()
    bad.with_columns(pl.col("close").cast(pl.Utf8)).write_parquet(
        poison_bars / "symbol=POISON" / "date=2026-02-02.parquet"
    )

    done = run_cli(
        tmp_path,
        launch_args(
            poison_bars,
            workers=2,
            batch_size=5,
            extra=["--symbols", " ".join([*symbols, "POISON"])],
        ),
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "DETECTION COMPLETE" in done.stdout
    assert "1 quarantined" in done.stdout
    assert "POISON: BarsSchemaError" in done.stdout
    assert checkpoint(tmp_path)["failed"]["POISON"]["attempts"] == 3
    assert_final_equals(tmp_path, reference)


def test_symbol_that_kills_its_worker_is_quarantined_after_three_crashes(
    tmp_path: Path, bars: Path, reference: pl.DataFrame, symbols: list[str]
) -> None:
    config(tmp_path)
    victim = symbols[5]

    done = run_cli(
        tmp_path,
        launch_args(bars, workers=2, batch_size=3),
        **{CRASH_ENV: f"during_detection@{victim}"},
    )

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{victim}: worker " in done.stdout and "SIGKILL(-9)" in done.stdout
    failed = checkpoint(tmp_path)["failed"][victim]
    assert failed["attempts"] == 3
    expected = reference.filter(pl.col("symbol") != victim)
    assert_final_equals(tmp_path, expected)


def test_stalled_worker_is_stopped_and_its_symbol_quarantined(
    tmp_path: Path, bars: Path, symbols: list[str]
) -> None:
    config(tmp_path, stall=1.0, grace=0.5)
    slow = symbols[0]
    done = run_cli(
        tmp_path,
        launch_args(bars, workers=1, batch_size=50, extra=["--symbols", f"{slow} {symbols[1]}"]),
        **{PAUSE_ENV: f"before_detection:30@{slow}"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stalled" in done.stdout + done.stderr
    assert "stalled and was stopped" in checkpoint(tmp_path)["failed"][slow]["error"]
    assert symbols[1] in checkpoint(tmp_path)["completed_symbols"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_launch_stops_workers_cleanly_and_a_new_launch_finishes(
    tmp_path: Path, bars: Path, reference: pl.DataFrame, sig: signal.Signals, code: int
) -> None:
    config(tmp_path)
    layout = RunLayout(tmp_path, RUN_ID)
    launch = start_cli(
        tmp_path, launch_args(bars, workers=2, batch_size=2), **{PAUSE_ENV: "before_detection:0.2"}
    )
    try:
        workers = wait_for_workers(layout, 2)
        launch.send_signal(sig)
    finally:
        returncode, out = finish(launch)

    assert returncode == code, out
    assert "stopped" in out and "nothing is lost" in out
    assert layout.pid_files() == []
    assert not any(alive(pid) for pid in workers if pid is not None)

    done = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_final_equals(tmp_path, reference)


def test_second_launch_of_a_live_run_is_refused_naming_its_pid(tmp_path: Path, bars: Path) -> None:
    config(tmp_path)
    layout = RunLayout(tmp_path, RUN_ID)
    first = start_cli(
        tmp_path, launch_args(bars, workers=1, batch_size=2), **{PAUSE_ENV: "before_detection:0.2"}
    )
    try:
        wait_for(lambda: layout.worker_pid_file(0).exists(), "the first launch's worker")
        second = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2))
        assert second.returncode == 4, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr
        first.send_signal(signal.SIGINT)
    finally:
        returncode, out = finish(first)
    assert returncode == 130, out


def test_killed_launcher_leaves_no_worker_and_no_lock_behind(
    tmp_path: Path, bars: Path, reference: pl.DataFrame
) -> None:
    config(tmp_path)
    layout = RunLayout(tmp_path, RUN_ID)
    launch = start_cli(
        tmp_path, launch_args(bars, workers=2, batch_size=2), **{PAUSE_ENV: "before_detection:0.2"}
    )
    try:
        workers = wait_for_workers(layout, 2)
        launch.kill()
    finally:
        finish(launch)

    # Workers notice their parent is gone: they commit what they detected and exit.
    wait_for(lambda: not any(alive(p) for p in workers if p is not None), "workers to exit", 15)
    done = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_final_equals(tmp_path, reference)


def test_chaos_random_worker_kills_and_a_killed_launcher_lose_and_duplicate_nothing(
    tmp_path: Path, bars: Path, reference: pl.DataFrame
) -> None:
    """SIGKILL random workers 10+ times and the launcher once, then launch until done.

    Quarantine is pushed out of reach (--max-attempts 100): a symbol may be under
    several of these kills, and this test is about losing and duplicating nothing.
    """
    config(tmp_path)
    layout = RunLayout(tmp_path, RUN_ID)
    rng = random.Random(7)
    args = launch_args(bars, workers=3, batch_size=2, extra=["--max-attempts", "100"])
    killed = 0
    launch = start_cli(tmp_path, args, **{PAUSE_ENV: "before_detection:0.3"})
    try:
        deadline = time.monotonic() + 60
        while killed < 12 and launch.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.2, 0.5))
            pid = recorded_pid(layout.worker_pid_file(rng.randrange(3)))
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed += 1
        assert killed >= 10, f"only {killed} workers killed before the run ended"
        launch.kill()
    finally:
        finish(launch)

    for _ in range(5):
        done = run_cli(tmp_path, args)
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stdout + done.stderr
    assert checkpoint(tmp_path)["failed"] == {}
    assert_final_equals(tmp_path, reference)
