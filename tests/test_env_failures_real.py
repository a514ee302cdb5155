"""Refused writes for real: a workspace on a small tmpfs that fills up during a launch,
and one remounted read-only. Exit 5 and one line; once space is freed (or the file
system is writable again) the same command completes with the final file of an
uninterrupted run. Needs ``mount`` (root with CAP_SYS_ADMIN); skipped, saying why,
elsewhere: ``test_env_failures.py`` injects the same failures at the real write calls.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")

RUN = "r"
TIMEOUT_S = 120
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
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
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Not in the workspace: it may be full or read-only."""
    path = tmp_path_factory.mktemp("config") / "supervision.yaml"
    path.write_text(SUPERVISION)
    return path


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "mnt"
    point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30, check=False)


def remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True, timeout=30)


def cli(root: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), "--config", str(config), *args],
        cwd=root.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def launch(root: Path, bars: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return cli(root, config, "launch", "--bars", str(bars), "--run-id", RUN, "--workers", "2",
               "--batch-size", "1", "--yes")  # fmt: skip


def assert_one_line(done: subprocess.CompletedProcess[str], name: str | None) -> str:
    assert done.returncode == 5, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    assert name is None or f"({name});" in errors[0], errors[0]
    assert errors[0].endswith("nothing committed was lost"), errors[0]
    return errors[0]


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_a_disk_that_fills_up_during_a_launch(
    tmp_path: Path, tmpfs: Path, bars: Path, config: Path
) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    assert launch(reference, bars, config).returncode == 0
    # How much a whole run takes on this file system, then leave half of it free.
    before = free_bytes(tmpfs)
    (tmpfs / "measure").mkdir()
    assert launch(tmpfs / "measure", bars, config).returncode == 0
    used = before - free_bytes(tmpfs)
    shutil.rmtree(tmpfs / "measure")
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (free_bytes(tmpfs) - used // 2))

    root = tmpfs / "ws"
    root.mkdir()
    done = launch(root, bars, config)
    # Where the disk runs out decides who says it: the process whose write failed
    # (ENOSPC named), or, when that was a worker whose own console log is on the full
    # disk too, the launcher (which cannot know the errno). Either is one line, exit 5.
    if "own line could not be written" in done.stderr:
        line = assert_one_line(done, None)
        assert "a write was refused" in line and "(disk full?)" in line
    else:
        line = assert_one_line(done, "ENOSPC")
        assert "No space left on device" in line
    filler.unlink()  # space freed: the same command completes the run
    again = launch(root, bars, config)
    assert again.returncode == 0, again.stderr
    assert_frame_equal(
        pl.read_parquet(RunLayout(root, RUN).final),
        pl.read_parquet(RunLayout(reference, RUN).final),
    )


def test_a_read_only_workspace(tmp_path: Path, tmpfs: Path, bars: Path, config: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    assert launch(reference, bars, config).returncode == 0
    root = tmpfs / "ws"
    root.mkdir()
    remount(tmpfs, "ro")
    line = assert_one_line(launch(root, bars, config), "EROFS")
    assert "cannot write logs/" in line and "mount it read-write" in line
    remount(tmpfs, "rw")
    assert launch(root, bars, config).returncode == 0
    final = RunLayout(root, RUN).final
    final.unlink()
    remount(tmpfs, "ro")
    assert "cannot write logs/launch/r/" in assert_one_line(
        cli(root, config, "merge", "--run-id", RUN), "EROFS"
    )
    remount(tmpfs, "rw")
    assert cli(root, config, "merge", "--run-id", RUN).returncode == 0
    assert_frame_equal(pl.read_parquet(final), pl.read_parquet(RunLayout(reference, RUN).final))
