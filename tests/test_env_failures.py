"""A write the system refuses (read-only, full disk, file size limit) is one line and
exit 5, at every place a run writes; nothing committed is lost, and the same command
run again completes with the final file of an uninterrupted run.

Every case runs the real command line in a child process. The failures are injected
at the real write call (``INTRADAY_EVENTS_WRITE_ERROR``, see :mod:`orchestrator.run.faults`),
since the suite runs as root where ``chmod`` cannot make a folder read-only; the file
size limit is also hit for real, with ``ulimit -f``. Every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from orchestrator.launch.outcome import refused_line
from orchestrator.run.faults import WRITE_ENV
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")

RUN = "r"
TIMEOUT_S = 120
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
    backoff_max_seconds: 0.2
    poll_interval_seconds: 0.1
    progress_interval_seconds: 1.0
    max_restarts: 1
"""


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=6, days=4, seed=3))
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, bars: Path) -> Path:
    """The final file of one uninterrupted launch."""
    root = tmp_path_factory.mktemp("reference")
    done = launch(root, bars)
    assert done.returncode == 0, done.stderr
    return RunLayout(root, RUN).final


def cli(
    root: Path, *args: str, env: Mapping[str, str] | None = None, ulimit_kb: int | None = None
) -> subprocess.CompletedProcess[str]:
    config = root / "supervision.yaml"
    config.write_text(SUPERVISION)
    argv = [sys.executable, "-m", "tools", "--root", str(root), "--config", str(config), *args]
    if ulimit_kb is not None:
        # SIGXFSZ is ignored by Python, so a write past the limit fails with EFBIG.
        argv = ["bash", "-c", f'ulimit -f {ulimit_kb}; exec "$@"', "bash", *argv]
    return subprocess.run(
        argv,
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        env={**os.environ, **(env or {})},
    )


def launch(
    root: Path, bars: Path, *args: str, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return cli(root, "launch", "--bars", str(bars), "--run-id", RUN, "--workers", "2",
               "--batch-size", "1", "--yes", *args, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def assert_one_line(done: subprocess.CompletedProcess[str], path: str, name: str) -> str:
    """Exit 5, no traceback, and one error line naming the file, the errno and a remedy."""
    assert done.returncode == 5, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    (line,) = errors
    assert f"cannot write {path}" in line and f"({name});" in line, line
    assert line.endswith("nothing committed was lost"), line
    assert done.stderr.rstrip().endswith(line)  # the last word
    return line


def committed(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in RunLayout(root, RUN).committed_shards().values()}


def assert_completes_identical(root: Path, bars: Path, reference: Path) -> None:
    """Nothing committed is lost, and the launch run again completes as a clean one."""
    before = committed(root)
    again = launch(root, bars)
    assert again.returncode == 0, again.stderr
    after = committed(root)
    assert all(after.get(name) == data for name, data in before.items())
    assert_frame_equal(pl.read_parquet(RunLayout(root, RUN).final), pl.read_parquet(reference))


LAUNCH_CASES = {
    # case: (fault, the path the line names, errno name)
    "shard": ("ENOSPC@.r_w*.tmp:2", "processed/events/shards/worker_", "ENOSPC"),
    "checkpoint": ("ENOSPC@r_completed.json:2", "logs/checkpoints/r_completed.json", "ENOSPC"),
    "plan": ("EROFS@plan.json", "logs/launch/r/plan.json", "EROFS"),
    "pid file": ("EROFS@orchestrator.pid", "logs/launch/r/orchestrator.pid", "EROFS"),
    "worker symbols": ("EACCES@worker_*_symbols.txt", "logs/launch/r/worker_", "EACCES"),
    "console log": ("ENOSPC@worker_*_console.log", "logs/launch/r/worker_", "ENOSPC"),
    "main log": ("EACCES@detect_events_intraday_*.log", "logs/detect_events/detect_", "EACCES"),
    "heartbeat": ("ENOSPC@r_worker_*.json:3", "logs/heartbeats/r_worker_", "ENOSPC"),
    "tsv log": ("ENOSPC@heartbeat_*.log", "logs/detect_events/heartbeat_", "ENOSPC"),
    "final file": ("ENOSPC@r.parquet", "processed/events/r.parquet", "ENOSPC"),
}


@pytest.mark.parametrize("case", list(LAUNCH_CASES))
def test_launch_refused_write_is_one_line_and_a_relaunch_completes(
    case: str, tmp_path: Path, bars: Path, reference: Path
) -> None:
    fault, path, name = LAUNCH_CASES[case]
    done = launch(tmp_path, bars, env={WRITE_ENV: fault})
    assert_one_line(done, path, name)
    assert_completes_identical(tmp_path, bars, reference)


def test_a_main_log_that_fills_up_mid_run_is_one_warning_and_the_run_goes_on(
    tmp_path: Path, bars: Path, reference: Path
) -> None:
    # The 1st write is the log's opening, the 2nd its first record.
    done = launch(tmp_path, bars, env={WRITE_ENV: "ENOSPC@detect_events_intraday_*.log:2"})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "cannot write the main log" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], done.stderr
    assert_frame_equal(pl.read_parquet(RunLayout(tmp_path, RUN).final), pl.read_parquet(reference))


def test_launcher_main_log_opens_with_a_start_line_and_holds_the_traceback(
    tmp_path: Path, bars: Path
) -> None:
    done = launch(tmp_path, bars, env={WRITE_ENV: "EROFS@plan.json"})
    assert_one_line(done, "logs/launch/r/plan.json", "EROFS")
    (main,) = [p for p in (tmp_path / "logs" / "detect_events").glob("*_pid*.log")]
    text = main.read_text()
    first = text.splitlines()[0]
    for part in (f"run={RUN}", f"root={tmp_path}", f"bars={bars}", "workers=2",
                 "batch_size=1", "config="):  # fmt: skip
        assert part in first, first
    assert "Traceback (most recent call last)" in text
    assert "Read-only file system" in text


def test_file_size_limit_for_real_at_the_final_merge(
    tmp_path: Path, bars: Path, reference: Path
) -> None:
    shard = max(len(data) for data in committed(reference.parents[2]).values())
    final = reference.stat().st_size
    limit_kb = (shard + final) // 2 // 1024
    assert shard < limit_kb * 1024 < final  # every shard fits, the final file does not
    done = launch(tmp_path, bars, ulimit_kb=limit_kb)
    assert_one_line(done, "processed/events/r.parquet", "EFBIG")
    assert "ulimit -f" in done.stderr
    assert len(committed(tmp_path)) == 6  # every symbol's shard was committed
    assert_completes_identical(tmp_path, bars, reference)


def test_detect_and_merge_refused_writes(tmp_path: Path, bars: Path, reference: Path) -> None:
    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))
    detect = ["detect", "--bars", str(bars), "--run-id", RUN, "--batch-size", "2", "--resume",
              "--symbols", " ".join(symbols)]  # fmt: skip
    done = cli(tmp_path, *detect, env={WRITE_ENV: "ENOSPC@.r_solo_*.tmp:2"})
    line = assert_one_line(done, "processed/events/shards/.r_solo_", "ENOSPC")
    assert "detect --resume" in line
    assert len(committed(tmp_path)) == 1  # the first batch stays committed
    assert cli(tmp_path, *detect).returncode == 0
    final = RunLayout(tmp_path, RUN).final
    assert_frame_equal(pl.read_parquet(final), pl.read_parquet(reference))
    final.unlink()
    failed = cli(tmp_path, "merge", "--run-id", RUN, env={WRITE_ENV: "ENOSPC@r.parquet"})
    assert_one_line(failed, "processed/events/r.parquet", "ENOSPC")
    assert not final.exists()
    assert cli(tmp_path, "merge", "--run-id", RUN).returncode == 0
    assert_frame_equal(pl.read_parquet(final), pl.read_parquet(reference))


def test_worker_error_line_in_restart_line_summary_status_and_dashboard(
    tmp_path: Path, bars: Path, reference: Path
) -> None:
    """A worker dying of an error that is not the environment's: restarted, and its
    last error line is shown wherever its exit is (not just "exit 1")."""
    done = launch(tmp_path, bars, env={WRITE_ENV: "EIO@heartbeat_*.log"})
    assert done.returncode == 1, done.stderr
    error = "OSError: [Errno 5] Input/output error"
    restart = [line for line in done.stderr.splitlines() if "restarting in" in line]
    assert restart and all(f"(exit 1: {error}" in line for line in restart), done.stderr
    assert f"last exit: exit 1: {error}" in done.stdout
    status = cli(tmp_path, "status", "--run-id", RUN)
    assert f"last error: {error}" in status.stdout, status.stdout
    view = cli(tmp_path, "dashboard", "--run-id", RUN, "--once")
    assert f"last error: {error}" in " ".join(view.stdout.split()), view.stdout
    assert_completes_identical(tmp_path, bars, reference)


def test_seed_import_refused_write(tmp_path: Path, bars: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    assert launch(src, bars).returncode == 0
    done = cli(src, "seed-checkpoint", RUN, "dst", "--import-events",
               env={WRITE_ENV: "ENOSPC@.dst_solo_*.tmp"})  # fmt: skip
    assert_one_line(done, "processed/events/shards/.dst_solo_", "ENOSPC")
    assert not RunLayout(src, "dst").committed_shards()
    assert cli(src, "seed-checkpoint", RUN, "dst", "--import-events").returncode == 0
    assert len(RunLayout(src, "dst").committed_shards()) == 1


def test_dedupe_output_and_report_refused_writes(tmp_path: Path, reference: Path) -> None:
    args = ["dedupe", "--input", str(reference), "--output", str(tmp_path / "out.parquet")]
    done = cli(tmp_path, *args, env={WRITE_ENV: "ENOSPC@out.parquet"})
    assert_one_line(done, "out.parquet", "ENOSPC")
    assert not (tmp_path / "out.parquet").exists()
    report = cli(tmp_path, *args, env={WRITE_ENV: "EFBIG@out.parquet.stats.json"})
    assert_one_line(report, "out.parquet.stats.json", "EFBIG")
    assert cli(tmp_path, *args).returncode == 0
    assert_frame_equal(pl.read_parquet(tmp_path / "out.parquet"), pl.read_parquet(reference))


def test_demo_data_refused_write(tmp_path: Path) -> None:
    args = ["demo-data", "--out", str(tmp_path / "bars"), "--symbols", "2", "--days", "2"]
    done = cli(tmp_path, *args, env={WRITE_ENV: "ENOSPC@date=*.parquet:3"})
    assert_one_line(done, "bars/symbol=", "ENOSPC")
    assert cli(tmp_path, *args).returncode == 0
    clean = tmp_path / "clean"
    clean.mkdir()
    assert cli(clean, *args[:2], str(clean / "bars"), *args[3:]).returncode == 0
    files = sorted(p.relative_to(tmp_path / "bars") for p in (tmp_path / "bars").rglob("*.parquet"))
    assert files == sorted(
        p.relative_to(clean / "bars") for p in (clean / "bars").rglob("*.parquet")
    )


def test_a_worker_whose_own_line_could_not_be_written_still_gets_one() -> None:
    """Its console log on the full disk: the launcher says what it knows."""
    line = refused_line(1, "exit 5", root=Path("/data/ws"))
    assert line.startswith("worker 1: exit 5: a write was refused")
    assert "free space or make /data/ws writable" in line
    assert line.endswith("nothing committed was lost")
    own = "cannot write x: No space left on device (ENOSPC); ...; nothing committed was lost"
    assert refused_line(0, own, root=Path("/data/ws")) == f"worker 0: {own}"
