"""Bars that change after their symbol was committed: reported, and recomputed exactly once.

Real processes and real files: a run completes; then a day is added to one symbol's
bars and a day removed from another's. ``launch`` reports the two and does nothing
else; ``launch --redo-changed`` recomputes them and the final file equals that of a
fresh run over the changed bars, each symbol's rows from its latest commit only,
also when workers are killed (SIGKILL) in the middle of the redo.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_launch import RUN_ID, checkpoint, config, launch_args, run_cli

from detector.schema import EVENT_KEY
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import ONCE_ENV
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import read_shard_info
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")
GROWN, SHRUNK = "DAAB", "DAAC"  # a day added to one symbol's bars, a day removed from another's


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Demo bars over 12 days, and the same over 13 (one more day per symbol)."""
    short = tmp_path_factory.mktemp("short")
    generate_demo_bars(DemoDataSpec(out=short, symbols=5, days=12, seed=3))
    long = tmp_path_factory.mktemp("long")
    generate_demo_bars(DemoDataSpec(out=long, symbols=5, days=13, seed=3))
    return short, long


def change_bars(bars: Path, long: Path) -> None:
    """GROWN gets the thirteenth day, SHRUNK loses its fifth."""
    for path in sorted((long / f"symbol={GROWN}").glob("date=*.parquet")):
        target = bars / f"symbol={GROWN}" / path.name
        if not target.exists():
            shutil.copy2(path, target)
    sorted((bars / f"symbol={SHRUNK}").glob("date=*.parquet"))[4].unlink()


@pytest.fixture(scope="module")
def changed_reference(
    tmp_path_factory: pytest.TempPathFactory, demo: tuple[Path, Path]
) -> pl.DataFrame:
    """The final file of a fresh run over the changed bars."""
    short, long = demo
    bars = tmp_path_factory.mktemp("changed") / "bars"
    shutil.copytree(short, bars)
    change_bars(bars, long)
    root = tmp_path_factory.mktemp("fresh")
    done = run_cli(root, launch_args(bars, workers=2, batch_size=2))
    assert done.returncode == 0, done.stdout
    return pl.read_parquet(RunLayout(root, RUN_ID).final)


def completed_run(tmp_path: Path, demo: tuple[Path, Path]) -> tuple[Path, Path, pl.DataFrame]:
    """A finished run over the 12-day bars, then the bars changed under it."""
    short, long = demo
    bars = tmp_path / "bars"
    shutil.copytree(short, bars)
    root = tmp_path / "root"
    root.mkdir()
    config(root)
    done = run_cli(root, launch_args(bars, workers=2, batch_size=2))
    assert done.returncode == 0, done.stdout
    before = pl.read_parquet(RunLayout(root, RUN_ID).final)
    recorded = checkpoint(root)
    assert set(recorded["inputs"]) == set(recorded["completed_symbols"])  # every commit's
    change_bars(bars, long)
    return root, bars, before


def assert_latest_commits_only(root: Path, reference: pl.DataFrame) -> None:
    layout = RunLayout(root, RUN_ID)
    final = pl.read_parquet(layout.final)
    assert final.select(EVENT_KEY).n_unique() == final.height, "duplicate event keys"
    assert_frame_equal(final, reference)
    assert layout.temp_shards() == []
    covered = [s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols]
    # The two changed symbols were committed twice (their first commit superseded), no
    # other symbol was.
    twice = sorted({s for s in covered if covered.count(s) > 1})
    assert twice == [GROWN, SHRUNK]


def test_changed_bars_are_reported_then_recomputed_once(
    tmp_path: Path, demo: tuple[Path, Path], changed_reference: pl.DataFrame
) -> None:
    root, bars, before = completed_run(tmp_path, demo)
    assert not before.equals(changed_reference)  # the change changes events

    # status finds them (a stat of every bar file of the folder the launch read).
    shown = run_cli(root, ["status", "--run-id", RUN_ID])
    assert "bars changed since their commit" in shown.stdout and f"{GROWN} {SHRUNK}" in shown.stdout
    as_json = json.loads(run_cli(root, ["status", "--run-id", RUN_ID, "--json"]).stdout)
    assert as_json["changed_inputs"] == [GROWN, SHRUNK]

    # Without the flag: reported, nothing recomputed, the final file as it was.
    plain = run_cli(root, launch_args(bars, workers=2, batch_size=2))
    assert plain.returncode == 0, plain.stdout
    assert (
        f"Completed, but their bars changed since their commit: 2 ({GROWN} {SHRUNK}); "
        "`launch --redo-changed` recomputes them"
    ) in plain.stdout
    assert "Remaining symbols: 0" in plain.stdout
    assert_frame_equal(pl.read_parquet(RunLayout(root, RUN_ID).final), before)

    redo = run_cli(root, launch_args(bars, workers=2, batch_size=2, extra=["--redo-changed"]))
    assert redo.returncode == 0, redo.stdout
    assert f"(--redo-changed): 2 ({GROWN} {SHRUNK})" in redo.stdout
    assert "Remaining symbols: 2" in redo.stdout
    assert_latest_commits_only(root, changed_reference)

    after = json.loads(run_cli(root, ["status", "--run-id", RUN_ID, "--json"]).stdout)
    assert after["changed_inputs"] == []
    assert after["events_so_far"] == changed_reference.height  # superseded rows not counted

    # Done: a further launch has nothing changed to report or recompute.
    again = run_cli(root, launch_args(bars, workers=2, batch_size=2, extra=["--redo-changed"]))
    assert again.returncode == 0, again.stdout
    assert "changed since their commit" not in again.stdout
    assert "Remaining symbols: 0" in again.stdout
    assert_latest_commits_only(root, changed_reference)


@pytest.mark.parametrize(
    "fault",
    [
        f"during_detection@{GROWN}",  # a worker killed while recomputing, before its commit
        "after_rename",  # a worker killed after publishing its new shard, before the checkpoint
        "during_checkpoint_write",  # the first checkpoint write: the launcher's own, killed
    ],
)
def test_a_kill_during_the_redo_loses_and_duplicates_nothing(
    tmp_path: Path, demo: tuple[Path, Path], changed_reference: pl.DataFrame, fault: str
) -> None:
    root, bars, _ = completed_run(tmp_path, demo)
    once = tmp_path / "faults"
    once.mkdir()
    args = launch_args(bars, workers=2, batch_size=2, extra=["--redo-changed"])
    redo = run_cli(root, args, **{CRASH_ENV: fault, ONCE_ENV: str(once)})
    assert list(once.iterdir()), "the fault never fired"
    if redo.returncode == -signal.SIGKILL:
        # The launcher itself was killed: the next launch finishes the redo.
        redo = run_cli(root, args)
    else:
        # A worker really was killed (restarted, unless the other worker's commit had
        # already taken the dead one's shard into the checkpoint: nothing left for it).
        said = (redo.stdout + redo.stderr).lower()
        assert "sigkill" in said, said
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert_latest_commits_only(root, changed_reference)


def test_detect_alone_recomputes_with_redo_changed(
    tmp_path: Path, demo: tuple[Path, Path], changed_reference: pl.DataFrame
) -> None:
    root, bars, _ = completed_run(tmp_path, demo)
    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))
    args = ["detect", "--bars", str(bars), "--run-id", RUN_ID, "--symbols", " ".join(symbols)]
    plain = run_cli(root, [*args, "--resume"])
    assert plain.returncode == 0, plain.stdout + plain.stderr
    redo = run_cli(root, [*args, "--resume", "--redo-changed"])
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert_latest_commits_only(root, changed_reference)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_the_ray_backend_recomputes_changed_bars_too(
    tmp_path: Path, demo: tuple[Path, Path], changed_reference: pl.DataFrame
) -> None:
    root, bars, _ = completed_run(tmp_path, demo)
    extra = ["--redo-changed", "--backend", "ray", "--ray-address", "local"]
    redo = run_cli(root, launch_args(bars, workers=2, batch_size=2, extra=extra))
    assert redo.returncode == 0, redo.stdout
    assert_latest_commits_only(root, changed_reference)


def test_seeding_from_a_recomputed_run_imports_the_latest_commits(
    tmp_path: Path, demo: tuple[Path, Path], changed_reference: pl.DataFrame
) -> None:
    root, bars, _ = completed_run(tmp_path, demo)
    redo = run_cli(root, launch_args(bars, workers=2, batch_size=2, extra=["--redo-changed"]))
    assert redo.returncode == 0, redo.stdout
    seeded = run_cli(root, ["seed-checkpoint", RUN_ID, "copy_run", "--import-events"])
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    merged = run_cli(root, ["merge", "--run-id", "copy_run"])
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert_frame_equal(pl.read_parquet(RunLayout(root, "copy_run").final), changed_reference)
