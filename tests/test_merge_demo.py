"""``merge`` rebuilds the launcher's final file; ``demo`` runs end to end; the README's
commands work as written. Real processes throughout."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from filelock import FileLock

from detector.errors import ExitCode
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]
RUN = "events_intraday_20261121"
TIMEOUT_S = 120

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def cli(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars") / "1m"
    generate_demo_bars(DemoDataSpec(out=root, symbols=8, days=15))
    return root


def launch(root: Path, bars: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        root, "launch", "--run-id", RUN, "--bars", str(bars), "--workers", "2",
        "--batch-size", "2", "--yes", *extra,
    )  # fmt: skip


# -- merge ------------------------------------------------------------------------------
def test_merge_rebuilds_the_file_launch_wrote(tmp_path: Path, bars: Path) -> None:
    done = launch(tmp_path, bars)
    assert done.returncode == 0, done.stdout + done.stderr
    final = RunLayout(tmp_path, RUN).final
    launched = pl.read_parquet(final)
    final.unlink()

    merged = cli(tmp_path, "merge")

    assert merged.returncode == 0, merged.stderr
    assert f"of run {RUN}: 8 of 8 symbols completed" in merged.stdout
    assert f"events: {launched.height:,} in {final}" in merged.stdout
    assert pl.read_parquet(final).equals(launched)
    heartbeat = json.loads(RunLayout(tmp_path, RUN).run_heartbeat.read_text())
    assert heartbeat["status"] == "completed" and heartbeat["total_events"] == launched.height


def test_merge_refuses_an_incomplete_run_unless_partial(tmp_path: Path, bars: Path) -> None:
    # Three symbols done by a lone worker that was told to stop after them.
    layout = RunLayout(tmp_path, RUN)
    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.iterdir() if p.is_dir())
    done = cli(
        tmp_path, "detect", "--run-id", RUN, "--bars", str(bars), "--symbols", *symbols,
        "--batch-size", "3", "--limit", "3", "--no-merge",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    refused = cli(tmp_path, "merge", "--run-id", RUN)

    assert refused.returncode == ExitCode.FAILURE
    assert "5 symbols not completed" in refused.stderr and "--partial" in refused.stderr
    assert not layout.final.exists()

    heartbeat_before = layout.run_heartbeat.read_text()  # the lone worker's own
    partial = cli(tmp_path, "merge", "--run-id", RUN, "--partial")

    assert partial.returncode == 0, partial.stderr
    assert "3 of 8 symbols completed, 5 not completed" in partial.stdout
    assert pl.read_parquet(layout.final)["symbol"].n_unique() <= 3
    assert layout.run_heartbeat.read_text() == heartbeat_before  # a partial merge says nothing


def test_merge_refuses_while_a_launcher_holds_the_run(tmp_path: Path, bars: Path) -> None:
    assert launch(tmp_path, bars).returncode == 0
    layout = RunLayout(tmp_path, RUN)
    with FileLock(layout.launch_lock):
        busy = cli(tmp_path, "merge", "--run-id", RUN)
    assert busy.returncode == ExitCode.BUSY
    assert f"run {RUN} is already being launched" in busy.stderr


def test_merge_without_runs_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "merge")
    assert result.returncode == ExitCode.USAGE
    assert "no run under" in result.stderr


# -- demo -------------------------------------------------------------------------------
def _final_files(directory: Path) -> list[Path]:
    return sorted((directory / "processed" / "events").glob("events_intraday_demo_*.parquet"))


def test_demo_end_to_end_then_again_reusing_its_bars(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    args = ["demo", "--dir", str(directory), "--symbols", "6", "--days", "10"]

    first = cli(tmp_path, *args)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "Generated demo bars (6 symbols x 10 days" in first.stdout
    assert "DETECTION COMPLETE" in first.stdout
    [final] = _final_files(directory)
    assert f"final events     {final}" in first.stdout
    assert re.search(r"demo wall time \d+\.\d s", first.stdout)
    events = pl.read_parquet(final)
    assert events.height > 0 and events["symbol"].n_unique() <= 6
    assert not events.select("symbol", "timestamp", "event_type", "direction").is_duplicated().any()

    second = cli(tmp_path, *args)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "Reusing demo bars (6 symbols x 10 days)" in second.stdout
    finals = _final_files(directory)
    assert len(finals) == 2  # a new run, same events
    assert pl.read_parquet(finals[1]).equals(events)


def test_demo_of_another_size_replaces_only_its_own_bars(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    assert (
        cli(tmp_path, "demo", "--dir", str(directory), "--symbols", "3", "--days", "5").returncode
        == 0
    )

    bigger = cli(tmp_path, "demo", "--dir", str(directory), "--symbols", "4", "--days", "5")

    assert bigger.returncode == 0, bigger.stderr
    assert "Generated demo bars (4 symbols x 5 days" in bigger.stdout
    bars = directory / "raw" / "market_data" / "bars" / "1m"
    assert len([p for p in bars.iterdir() if p.name.startswith("symbol=")]) == 4


def test_demo_never_touches_bars_it_did_not_write(tmp_path: Path) -> None:
    directory = tmp_path / "project"
    bars = directory / "raw" / "market_data" / "bars" / "1m"
    generate_demo_bars(DemoDataSpec(out=bars, symbols=2, days=3))
    before = sorted(p.relative_to(bars) for p in bars.rglob("*"))

    result = cli(tmp_path, "demo", "--dir", str(directory), "--symbols", "3", "--days", "5")

    assert result.returncode == ExitCode.USAGE
    assert "holds bars the demo did not generate" in result.stderr
    assert sorted(p.relative_to(bars) for p in bars.rglob("*")) == before


# -- the README ---------------------------------------------------------------------------
def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_setup_commands_run_the_demo(tmp_path: Path) -> None:
    install, run = _setup_commands()
    assert install == "pip install -e ."  # done by the test environment already
    argv = shlex.split(run)
    assert argv[0] == "intraday-events"

    result = subprocess.run(
        [sys.executable, "-m", "tools", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "DETECTION COMPLETE" in result.stdout
    [final] = _final_files(tmp_path / "intraday-events-demo")
    assert pl.read_parquet(final)["symbol"].n_unique() > 30  # 40 symbols, a few without events


def test_readme_test_command_is_what_ci_runs() -> None:
    text = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "pip install -e '.[test,ray]' && pytest"
    assert command in text and command in ci
