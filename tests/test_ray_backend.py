"""``launch --backend ray`` on a local Ray: same final file, exactly once when tasks die.

Each test runs the command line in a child process, which starts its own local Ray
(``--ray-address local``) and shuts it down at the end; the ``no_stray_processes``
fixture fails a test if any Ray process (raylet, GCS, task workers) outlives it.
Skipped, with the reason, only when ray cannot be imported.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from test_launch import (
    RUN_ID,
    TIMEOUT_S,
    assert_final_equals,
    checkpoint,
    child_env,
    config,
    finish,
    run_cli,
    start_cli,
    wait_for,
)

from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import ONCE_ENV, PAUSE_ENV
from orchestrator.run.heartbeat import parse_heartbeat
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars


def _ray_importable() -> str | None:
    """None when ray imports, else why not."""
    try:
        importlib.import_module("ray")
    except Exception as exc:  # not installed, or broken
        return f"ray cannot be imported ({exc}): pip install 'intraday-events[ray]'"
    return None


WHY_NO_RAY = _ray_importable()
needs_ray = pytest.mark.skipif(WHY_NO_RAY is not None, reason=WHY_NO_RAY or "")
pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raybars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=8, days=12, seed=5))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    return sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))


@pytest.fixture(scope="module")
def local_final(tmp_path_factory: pytest.TempPathFactory, bars: Path) -> pl.DataFrame:
    """The final file of the local backend over the same bars and config."""
    root = tmp_path_factory.mktemp("local")
    config(root)
    done = run_cli(root, ray_args(bars, backend="local"))
    assert done.returncode == 0, done.stdout + done.stderr
    return pl.read_parquet(RunLayout(root, RUN_ID).final)


def ray_args(bars: Path, *, backend: str = "ray", extra: tuple[str, ...] = ()) -> list[str]:
    args = [
        "launch", "--bars", str(bars), "--run-id", RUN_ID, "--workers", "2",
        "--batch-size", "3", "--yes", "--no-dashboard", "--backend", backend,
    ]  # fmt: skip
    if backend == "ray":
        args += ["--ray-address", "local"]
    return [*args, *extra]


def lane_beat(root: Path, lane: int):  # type: ignore[no-untyped-def]
    path = RunLayout(root, RUN_ID).worker_heartbeat(lane)
    try:
        return parse_heartbeat(path.read_text(encoding="utf-8"), RUN_ID)
    except OSError:
        return None


def on_symbol(root: Path, symbol: str) -> int | None:
    """The pid of the task process detecting ``symbol`` now, if any."""
    for lane in (0, 1):
        beat = lane_beat(root, lane)
        if beat is not None and beat.current_symbol == symbol and beat.status == "running":
            return beat.pid
    return None


@needs_ray
def test_final_file_is_identical_to_the_local_backends(
    tmp_path: Path, bars: Path, local_final: pl.DataFrame
) -> None:
    config(tmp_path)
    layout = RunLayout(tmp_path, RUN_ID)
    launch = start_cli(tmp_path, ray_args(bars), **{PAUSE_ENV: "before_detection:0.2"})
    try:
        wait_for(lambda: lane_beat(tmp_path, 0) is not None, "a first heartbeat",
                 timeout=TIMEOUT_S)  # fmt: skip
        # A stop file that is not this launch's (an earlier one's, still shown by a
        # network filesystem's cache) stops nothing.
        layout.stop_file.write_text("12345-earlier-launch\n")
    finally:
        code, out = finish(launch)
    assert code == 0, out
    assert_final_equals(tmp_path, local_final)
    assert not layout.stop_file.exists()
    beats = [lane_beat(tmp_path, lane) for lane in (0, 1)]
    assert [b.status for b in beats if b is not None] == ["completed", "completed"]
    assert sum(b.symbols_done for b in beats if b is not None) == 8


@needs_ray
def test_task_killed_mid_batch_is_retried_by_ray_and_commits_exactly_once(
    tmp_path: Path, bars: Path, symbols: list[str], local_final: pl.DataFrame
) -> None:
    victim = symbols[4]  # the second batch of lane 0: a shard was committed before
    once = tmp_path / "once"
    once.mkdir()
    config(tmp_path)
    launch = start_cli(
        tmp_path,
        ray_args(bars),
        **{PAUSE_ENV: f"before_detection:60@{victim}", ONCE_ENV: str(once)},
    )
    try:
        pid: list[int] = []
        wait_for(lambda: bool(pid.append(on_symbol(tmp_path, victim) or 0) or pid[-1]),
                 f"a task on {victim}", timeout=TIMEOUT_S)  # fmt: skip
        # status reads the Ray task's heartbeat like a local worker's
        status = run_cli(tmp_path, ["status", "--run-id", RUN_ID, "--json"])
        workers = json.loads(status.stdout)["workers"]
        assert any(w["current_symbol"] == victim and w["alive"] for w in workers), workers
        os.kill(pid[-1], signal.SIGKILL)
    finally:
        code, out = finish(launch)
    assert code == 0, out
    assert_final_equals(tmp_path, local_final)
    # Ray's own retry did the work: nothing was counted against the symbol.
    assert victim not in checkpoint(tmp_path).get("failed", {})


@needs_ray
def test_task_lost_for_good_counts_an_attempt_and_its_batch_is_sent_again(
    tmp_path: Path, bars: Path, symbols: list[str], local_final: pl.DataFrame
) -> None:
    victim = symbols[1]
    once = tmp_path / "once"
    once.mkdir()
    config(tmp_path)
    done = run_cli(
        tmp_path,
        ray_args(bars, extra=("--ray-task-retries", "0")),
        **{CRASH_ENV: f"during_detection@{victim}", ONCE_ENV: str(once)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_final_equals(tmp_path, local_final)
    log = "".join(p.read_text() for p in (tmp_path / "logs" / "detect_events").glob("*pid*.log"))
    assert f"lost while detecting {victim} (failed attempt 1)" in log
    assert "sending it again" in log


@needs_ray
def test_stopped_driver_commits_what_its_tasks_did_and_a_new_launch_finishes(
    tmp_path: Path, bars: Path, symbols: list[str], local_final: pl.DataFrame
) -> None:
    victim = symbols[5]  # its task is stuck on it past the stop's grace period
    once = tmp_path / "once"
    once.mkdir()
    config(tmp_path, grace=1.0)
    args = ray_args(bars, extra=("--batch-size", "8"))  # one batch per lane
    env = {PAUSE_ENV: f"before_detection:60@{victim}", ONCE_ENV: str(once)}
    launch = start_cli(tmp_path, args, **env)
    try:
        wait_for(lambda: on_symbol(tmp_path, victim) is not None, f"a task on {victim}",
                 timeout=TIMEOUT_S)  # fmt: skip
        launch.send_signal(signal.SIGTERM)
    finally:
        code, out = finish(launch)
    assert code == 143, out
    layout = RunLayout(tmp_path, RUN_ID)
    cp = checkpoint(tmp_path)
    assert len(cp["completed_symbols"]) < 8
    assert not cp.get("failed"), "a stop must not count against a symbol"
    assert not layout.stop_file.exists()
    again = run_cli(tmp_path, ray_args(bars))
    assert again.returncode == 0, again.stdout + again.stderr
    assert_final_equals(tmp_path, local_final)


def test_without_ray_the_backend_says_how_to_install_it(tmp_path: Path, bars: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None; from tools.cli import main; "
        f"sys.argv = ['intraday-events', '--root', {str(tmp_path)!r}, *{ray_args(bars)!r}]; "
        "main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'intraday-events[ray]'" in done.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started or written
