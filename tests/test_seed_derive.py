"""``seed-checkpoint --import-events`` from older event files: the columns that follow
from the others are derived as the detector derives them; any other missing column is
refused with one line naming it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from detector.pipeline import detect_symbol
from detector.schema import EVENT_KEY
from orchestrator.run.layout import RunLayout
from tools.cli import cli
from tools.demo.data import DemoDataSpec, generate_demo_bars

SRC = "events_intraday_20240101"
DST = "events_intraday_20240102"
DERIVABLE = ["timestamp_et", "date", "session", "event_bias", "close_vs_open", "tier"]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    bars = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=bars, symbols=6, days=4, seed=3))
    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))
    found = pl.concat([detect_symbol(s, bars) for s in symbols]).sort(EVENT_KEY)
    assert set(found["session"]) == {"PM", "RTH", "AH"}  # every session is derived below
    return found


def old_shard(root: Path, frame: pl.DataFrame) -> None:
    """An older system's shard: no footer of ours, naive UTC timestamps."""
    path = RunLayout(root, SRC).shards_root / f"{SRC}_shard0001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.with_columns(pl.col("timestamp").dt.replace_time_zone(None)).write_parquet(path)


def seed(root: Path) -> tuple[int, str, str]:
    done = CliRunner().invoke(
        cli, ["--root", str(root), "seed-checkpoint", SRC, DST, "--import-events"]
    )
    return done.exit_code, done.stdout, done.stderr


def test_missing_derivable_columns_are_derived(tmp_path: Path, events: pl.DataFrame) -> None:
    old_shard(tmp_path, events.drop(DERIVABLE))
    code, out, err = seed(tmp_path)
    assert code == 0, err
    assert (
        "derived (older files lacked them): date, session, event_bias, close_vs_open, tier" in out
    )
    (shard,) = RunLayout(tmp_path, DST).committed_shards().values()
    assert_frame_equal(pl.read_parquet(shard), events)  # as the detector wrote them


def test_missing_columns_that_cannot_be_derived_are_refused(
    tmp_path: Path, events: pl.DataFrame
) -> None:
    old_shard(tmp_path, events.drop(["score", "spike_x", "tier"]))
    code, out, err = seed(tmp_path)
    assert code == 3, out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no column spike_x, score to import events from (not derivable)" in lines[0]
    assert "nothing was seeded" in lines[0]
    assert not RunLayout(tmp_path, DST).checkpoint.exists()
