"""``launch --retry-quarantined``: quarantined symbols get another round on purpose,
recorded in the checkpoint; ``merge`` and the summary point to it. Real processes,
every wait bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from orchestrator.run import checkpoint as ck
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

RUN = "q"
TIMEOUT_S = 120
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
    backoff_max_seconds: 0.2
    poll_interval_seconds: 0.1
    progress_interval_seconds: 1.0
    max_restarts: 10
"""


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=4, days=3, seed=5))
    return out


def cli(
    root: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = root / "supervision.yaml"
    config.write_text(SUPERVISION)
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), "--config", str(config), *args],
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
    return cli(root, "launch", "--bars", str(bars), "--run-id", RUN, "--workers", "1",
               "--batch-size", "2", "--max-attempts", "2", "--yes", *args, **kwargs)  # type: ignore[arg-type]  # fmt: skip


def test_old_checkpoints_load_and_the_retry_record_round_trips() -> None:
    old = json.dumps({"run_id": RUN, "completed_symbols": ["A"], "failed": {
        "B": {"error": "boom", "attempts": 3, "last_failed_at": "2025-01-01T00:00:00"}}})  # fmt: skip
    cp = ck.from_json(old, RUN)
    assert cp.quarantine_retries == () and cp.quarantined(3) == {"B"}
    assert "quarantine_retries" not in ck.to_json(cp)  # unused: checkpoints read as before
    retried, symbols = ck.with_quarantine_retry(cp, 3, datetime(2025, 1, 2))
    assert symbols == ("B",) and retried.quarantined(3) == frozenset() and not retried.failed
    back = ck.from_json(ck.to_json(retried), RUN)
    assert back.quarantine_retries == retried.quarantine_retries
    (record,) = back.quarantine_retries
    assert record["symbols"]["B"]["attempts"] == 3 and record["max_attempts"] == 3
    assert ck.with_quarantine_retry(back, 3, datetime(2025, 1, 3)) == (back, ())


@pytest.mark.usefixtures("no_stray_processes")
def test_quarantined_symbol_is_retried_on_purpose(tmp_path: Path, bars: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    assert launch(clean, bars).returncode == 0
    reference = pl.read_parquet(RunLayout(clean, RUN).final)
    poison = sorted(reference["symbol"].unique())[0]

    root = tmp_path / "run"
    root.mkdir()
    first = launch(root, bars, env={CRASH_ENV: f"during_detection@{poison}"})
    assert first.returncode == 1, first.stderr
    assert "quarantined, skipped from now on (1)" in first.stdout
    assert f"launch --run-id {RUN} --retry-quarantined" in first.stdout

    merged = cli(root, "merge", "--run-id", RUN, "--max-attempts", "2")
    assert merged.returncode == 1
    assert f"`intraday-events launch --run-id {RUN} --retry-quarantined`" in merged.stderr

    plain = launch(root, bars)  # a plain launch still skips it: exit 1 again
    assert plain.returncode == 1 and "quarantined, skipped from now on (1)" in plain.stdout

    retried = launch(root, bars, "--retry-quarantined")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"--retry-quarantined: 1 quarantined symbols get 2 more attempts: {poison}" in (
        retried.stdout
    )
    assert_frame_equal(pl.read_parquet(RunLayout(root, RUN).final), reference)
    data = json.loads(RunLayout(root, RUN).checkpoint.read_text())
    (record,) = data["quarantine_retries"]
    assert record["max_attempts"] == 2 and record["symbols"][poison]["attempts"] == 2
    assert poison in data["completed_symbols"] and poison not in data["failed"]
