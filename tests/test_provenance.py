"""Provenance in the data: what produced a final file is written into it, summary.json and
status --json carry a schema version and zone-aware timestamps, --version works."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from test_launch import RUN_ID, checkpoint, launch_args, run_cli

from detector.config import AppConfig, config_hash
from detector.schema import EVENT_KEY
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import read_provenance
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root of a completed launch over 5 demo symbols."""
    bars = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=bars, symbols=5, days=5, seed=11))
    root = tmp_path_factory.mktemp("root")
    done = run_cli(root, launch_args(bars, workers=2, batch_size=2))
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_version() -> None:
    from click.testing import CliRunner

    from tools.cli import cli

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("intraday-events ") and result.output.strip()[-1].isdigit()


def test_the_final_file_says_what_produced_it_and_how_it_is_sorted(finished: Path) -> None:
    final = RunLayout(finished, RUN_ID).final
    found = read_provenance(final)
    recorded = checkpoint(finished)
    assert found["run_id"] == RUN_ID
    assert found["config_hash"] == recorded["config_hash"] == config_hash(AppConfig())
    assert found["config"]["detector"]["session_bounds"]["auction_minutes"] == ["09:30", "16:00"]
    assert found["config"]["bars"]["naive_timezone"] == "UTC"
    assert found["package_version"] not in ("", None)
    assert found["created_at"].endswith("+00:00")
    assert found["inputs"]["completed"] == len(recorded["completed_symbols"]) == 5
    assert found["inputs"]["bar_files"] > 0 and found["inputs"]["bars_root"]
    # The sort order is declared, and true.
    sorting = pq.ParquetFile(final).metadata.row_group(0).sorting_columns
    names = pq.ParquetFile(final).schema_arrow.names
    assert tuple(names[c.column_index] for c in sorting) == EVENT_KEY
    assert all(not c.descending for c in sorting)
    events = pl.read_parquet(final)
    assert events.equals(events.sort(EVENT_KEY))
    # merge rebuilds the same rows with the same provenance (a new created_at).
    rebuilt = run_cli(finished, ["merge", "--run-id", RUN_ID])
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    again = read_provenance(final)
    assert {k: v for k, v in again.items() if k != "created_at"} == {
        k: v for k, v in found.items() if k != "created_at"
    }
    assert pl.read_parquet(final).equals(events)


def test_summary_json_has_a_schema_version_utc_times_and_the_counts(finished: Path) -> None:
    layout = RunLayout(finished, RUN_ID)
    summary = json.loads(layout.summary_json.read_text())
    final = pl.read_parquet(layout.final)
    assert summary["schema_version"] == 1
    assert summary["run_id"] == RUN_ID and summary["exit_code"] == 0
    assert summary["started_at"].endswith("+00:00") and summary["finished_at"].endswith("+00:00")
    assert summary["events"]["total"] == final.height
    assert sum(summary["events"]["by_symbol"].values()) == final.height
    assert summary["events"]["by_type"] == dict(
        final.group_by("event_type").len().sort("event_type").rows()
    )
    assert summary["symbols"]["completed"] == 5 and summary["failures"] == {}
    assert summary["provenance"]["config_hash"] == config_hash(AppConfig())


def test_status_json_has_a_schema_version_and_zone_aware_times(finished: Path) -> None:
    shown = run_cli(finished, ["status", "--run-id", RUN_ID, "--json"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    status = json.loads(shown.stdout)
    assert status["schema_version"] == 2
    assert status["taken_at"].endswith("+00:00")
    assert all(
        w["updated_at"] is None or w["updated_at"].endswith("+00:00") for w in status["workers"]
    )


def test_every_shard_carries_its_provenance_and_sort_order(finished: Path) -> None:
    from orchestrator.run.shards import read_shard_info

    layout = RunLayout(finished, RUN_ID)
    shards = list(layout.committed_shards().values())
    assert shards
    timed: dict[str, float] = {}
    for path in shards:
        found = read_provenance(path)
        assert found["run_id"] == RUN_ID and found["config_hash"] == config_hash(AppConfig())
        assert found["config"]["detector"]["opening_range_break"]["max_breaks_per_day"] == 1
        assert found["package_version"] and found["created_at"].endswith("+00:00")
        info = read_shard_info(path)
        assert set(info.inputs) == set(info.symbols)  # what each symbol was computed from
        timed.update(info.seconds)
        sorting = pq.ParquetFile(path).metadata.row_group(0).sorting_columns
        names = pq.ParquetFile(path).schema_arrow.names
        assert tuple(names[c.column_index] for c in sorting) == EVENT_KEY
        rows = pl.read_parquet(path)
        assert rows.equals(rows.sort(EVENT_KEY))
    assert len(timed) == 5 and all(t > 0 for t in timed.values())
    summary = json.loads(layout.summary_json.read_text())
    assert summary["events"]["seconds_by_symbol"] == pytest.approx(timed)
