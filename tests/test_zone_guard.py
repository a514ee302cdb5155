"""The time-zone guard (issue 15) with real files and real processes.

Demo bars (zone-aware UTC, auction surges at 09:30 and 16:00) are rewritten as naive
New York wall-clock times, as bars from elsewhere come. Read with the default
``naive_timezone: UTC`` they are refused before anything starts; with
``America/New_York`` they run and give the same events as the zone-aware files;
``--no-timezone-check`` runs them and records every symbol as ``suspect_timezone``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from detector.config import AppConfig
from orchestrator.run.checkpoint import Checkpoint, from_json, to_json, with_commit
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from orchestrator.run.spec import RunSpec
from orchestrator.run.store import BatchRecords, RunStore
from orchestrator.worker.batch import BatchTask, LaneProgress, run_batch
from tools.cli import cli
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120.0
FAST = """
intraday_events:
  supervision:
    poll_interval_seconds: 0.05
"""
NEW_YORK = (
    FAST
    + """
  bars:
    naive_timezone: America/New_York
"""
)
# 25 weekdays from 2026-02-02: all before the DST change, so one period (winter).
SYMBOLS, DAYS = 4, 25
REFUSAL = (
    "Error: naive timestamps read as UTC (intraday_events.bars.naive_timezone) put the "
    "volume peaks 5 h away from the 09:30/16:00 auctions in 4 sampled symbols (winter +5 h): "
    "the bars look like America/New_York local time; set "
    "intraday_events.bars.naive_timezone: America/New_York, or pass --no-timezone-check"
)


def rewrite(src: Path, dst: Path, timestamp: pl.Expr) -> Path:
    """Every bar file of ``src`` under ``dst`` (same layout) with ``timestamp`` replaced."""
    for path in src.rglob("*.parquet"):
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame = pl.read_parquet(path)
        if "timestamp" in frame.columns:
            frame = frame.with_columns(timestamp.alias("timestamp"))
        frame.write_parquet(out)
    return dst


NY_WALL = pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)


@pytest.fixture(scope="module")
def aware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("aware")
    generate_demo_bars(DemoDataSpec(out=out, symbols=SYMBOLS, days=DAYS, seed=3))
    return out


@pytest.fixture(scope="module")
def naive(aware: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rewrite(aware, tmp_path_factory.mktemp("naive"), NY_WALL)


def _env() -> dict[str, str]:
    drop = (CRASH_ENV, PAUSE_ENV, "INTRADAY_EVENTS_ROOT", "COLUMNS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(
    root: Path, args: Sequence[str], config: str = FAST
) -> subprocess.CompletedProcess[str]:
    path = root / "config.yaml"
    path.write_text(config)
    argv = [sys.executable, "-m", "tools", "--root", str(root), "--config", str(path), *args]
    return subprocess.run(
        argv, cwd=root, env=_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip


def launch(
    root: Path, bars: Path, run_id: str, *extra: str, config: str = FAST
) -> subprocess.CompletedProcess[str]:
    args = ["launch", "--bars", str(bars), "--run-id", run_id, "--workers", "2", "--yes"]
    return run_cli(root, [*args, "--no-dashboard", *extra], config)


def nothing_committed(root: Path, run_id: str) -> None:
    layout = RunLayout(root, run_id)
    assert not layout.checkpoint.exists()
    assert not list((root / "processed").rglob("*.parquet"))
    assert not list((root / "logs").rglob("*heartbeat*"))  # no worker ever started


def checkpoint(root: Path, run_id: str) -> dict[str, object]:
    return json.loads(RunLayout(root, run_id).checkpoint.read_text())


def final_events(root: Path, run_id: str) -> pl.DataFrame:
    return pl.read_parquet(root / "processed" / "events" / f"{run_id}.parquet")


def test_naive_new_york_bars_read_as_utc_are_refused_before_anything_starts(
    naive: Path, tmp_path: Path, no_stray_processes: str
) -> None:
    result = launch(tmp_path, naive, "tz_refused")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == REFUSAL
    assert "Traceback" not in result.stderr
    nothing_committed(tmp_path, "tz_refused")
    # detect refuses the same way, before any run file exists.
    symbols = ["--symbols", "DAAA", "DAAB", "DAAC", "DAAD"]
    alone = run_cli(tmp_path, ["detect", "--bars", str(naive), "--run-id", "tz_d", *symbols])
    assert alone.returncode == 2 and alone.stderr.strip().splitlines()[-1] == REFUSAL
    assert not RunLayout(tmp_path, "tz_d").checkpoint.exists()


def test_the_same_bars_with_new_york_set_run_and_equal_the_zone_aware_run(
    aware: Path, naive: Path, tmp_path: Path, no_stray_processes: str
) -> None:
    right = launch(tmp_path, aware, "tz_aware")
    assert right.returncode == 0, right.stderr
    assert "suspect" not in right.stdout + right.stderr
    assert "suspect_timezone" not in checkpoint(tmp_path, "tz_aware")
    fixed = launch(tmp_path, naive, "tz_newyork", config=NEW_YORK)
    assert fixed.returncode == 0, fixed.stderr
    assert "suspect" not in fixed.stdout + fixed.stderr
    assert "suspect_timezone" not in checkpoint(tmp_path, "tz_newyork")
    events = final_events(tmp_path, "tz_newyork")
    assert events.height > 0 and events.equals(final_events(tmp_path, "tz_aware"))


def test_no_timezone_check_runs_and_records_every_symbol_as_suspect(
    aware: Path, naive: Path, tmp_path: Path, no_stray_processes: str
) -> None:
    result = launch(tmp_path, naive, "tz_forced", "--no-timezone-check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = (
        "suspect time zone (4): volume peaks on the 09:30/16:00 auctions only once shifted; "
        "events written; check intraday_events.bars.naive_timezone"
    )
    assert header in lines
    symbols = ["DAAA", "DAAB", "DAAC", "DAAD"]
    assert [f"  {s}: winter +5 h" for s in symbols] == lines[lines.index(header) + 1 :][:4]
    cp = checkpoint(tmp_path, "tz_forced")
    assert cp["suspect_timezone"] == dict.fromkeys(symbols, "winter +5 h")
    assert sorted(cp["completed_symbols"]) == symbols  # type: ignore[call-overload]
    assert final_events(tmp_path, "tz_forced").height > 0  # their events are written
    status = run_cli(tmp_path, ["status", "--run-id", "tz_forced", "--json"])
    assert json.loads(status.stdout)["suspect_timezone"] == cp["suspect_timezone"]
    text = run_cli(tmp_path, ["status", "--run-id", "tz_forced"]).stdout
    assert (
        "suspect time zone (4, events written; check intraday_events.bars.naive_timezone)" in text
    )
    # A lone detect worker says so on stderr too.
    alone = run_cli(
        tmp_path,
        ["detect", "--bars", str(naive), "--run-id", "tz_alone", "--no-timezone-check",
         "--symbols", *symbols],
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert alone.stderr.strip().splitlines()[-1] == (
        "4 symbols have their volume peaks off the 09:30/16:00 auctions (events written, "
        "recorded as suspect_timezone in the checkpoint; check "
        "intraday_events.bars.naive_timezone): DAAA DAAB DAAC DAAD"
    )


def test_a_tiny_dataset_is_never_refused(tmp_path: Path, no_stray_processes: str) -> None:
    aware = tmp_path / "tiny_aware"
    generate_demo_bars(DemoDataSpec(out=aware, symbols=2, days=3, seed=1))
    naive = rewrite(aware, tmp_path / "tiny_naive", NY_WALL)
    result = launch(tmp_path, naive, "tz_tiny")
    assert result.returncode == 0, result.stderr
    assert "suspect" not in result.stdout + result.stderr  # 3 days: not judged either way


def test_zone_aware_files_that_hold_new_york_wall_clock_are_data_errors(
    aware: Path, tmp_path: Path, no_stray_processes: str
) -> None:
    # A writer that labelled New York wall-clock times as UTC: no setting of ours helps.
    mislabelled = rewrite(aware, tmp_path / "mislabelled", NY_WALL.dt.replace_time_zone("UTC"))
    result = launch(tmp_path, mislabelled, "tz_labels")
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the bar files' zone-aware timestamps put the volume peaks 5 h away from the "
        "09:30/16:00 auctions in 4 sampled symbols (winter +5 h): they look like "
        "America/New_York local time written as UTC; intraday_events.bars.naive_timezone (UTC) "
        "applies to naive timestamps only: correct the files, or pass --no-timezone-check"
    )
    nothing_committed(tmp_path, "tz_labels")


def test_checkpoints_without_suspects_load_and_suspects_round_trip() -> None:
    old = '{"run_id": "r", "completed_symbols": ["A"], "total_completed": 1}'
    cp = from_json(old, "r")
    assert cp.suspect_timezone == {} and "suspect_timezone" not in to_json(cp)
    now = datetime(2026, 1, 1)
    after = with_commit(
        Checkpoint(run_id="r"), shard_name="r_shard0001.parquet", shard_number=1,
        symbols=["A", "B"], failures={}, now=now, suspects={"B": "winter +5 h", "Z": "x"},
    )  # fmt: skip
    assert after.suspect_timezone == {"B": "winter +5 h"}  # only symbols of the shard
    assert from_json(to_json(after), "r").suspect_timezone == {"B": "winter +5 h"}


def test_a_ray_task_reports_suspects_and_the_driver_records_them(
    naive: Path, tmp_path: Path
) -> None:
    # What a Ray task runs (run_batch) and what the driver commits, without Ray.
    layout = RunLayout(tmp_path, "tz_ray")
    store = RunStore(layout)
    store.open_run(config_hash="h", symbols=["DAAA", "DAAB"], resume=False, force_config=False)
    task = BatchTask(
        root=tmp_path, lane=0, number=1, total_batches=1, symbols=("DAAA", "DAAB"),
        spec=RunSpec(run_id="tz_ray", bars_root=naive, bars_layout="daily", config_hash="h",
                     config_path=None),
        owner_pid=os.getpid(),
        progress=LaneProgress(0, 2, 0, 0, datetime.now().isoformat(timespec="seconds")),
        stop_token="t",
    )  # fmt: skip
    out = run_batch(task, AppConfig())
    assert out.covered == ("DAAA", "DAAB")
    assert out.suspect_timezone == {"DAAA": "winter +5 h", "DAAB": "winter +5 h"}
    store.commit_written(
        out.temp, shard_dir=layout.shard_dir(0), symbols=out.covered, failures=out.failures,
        config_hash="h", outcomes=BatchRecords(suspects=out.suspect_timezone),
    )  # fmt: skip
    assert checkpoint(tmp_path, "tz_ray")["suspect_timezone"] == out.suspect_timezone


def test_detect_symbol_says_when_one_symbol_looks_shifted(aware: Path, naive: Path) -> None:
    runner = CliRunner()
    shifted = runner.invoke(cli, ["detect-symbol", "DAAA", "--bars", str(naive)])
    assert shifted.exit_code == 0, shifted.output
    assert shifted.stderr.startswith(
        "suspect time zone: the volume peaks sit on the 09:30/16:00 auctions only once shifted "
        "by winter +5 h (winter: "
    )
    right = runner.invoke(cli, ["detect-symbol", "DAAA", "--bars", str(aware)])
    assert right.exit_code == 0 and "suspect" not in right.stderr
