"""The durable worker in-process: checkpoint repair, failures, run identity, logs."""

from __future__ import annotations

import errno
import json
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from click.testing import CliRunner

from detector.config import AppConfig
from orchestrator.run.errors import ConfigMismatchError, RunExistsError
from orchestrator.run.layout import RunLayout
from orchestrator.run.select import resolve_run_id
from orchestrator.run.shards import read_shard_info
from orchestrator.worker.loop import Worker, WorkerConfig, WorkerOutcome
from tools.cli import cli
from tools.demo.data import DemoDataSpec, generate_demo_bars

from tests_config import app_with

BARS = "raw/market_data/bars/1m"


@pytest.fixture(scope="module")
def bars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=root, symbols=6, days=4, seed=3))
    return root


@pytest.fixture
def symbols(bars_root: Path) -> tuple[str, ...]:
    return tuple(pl.read_parquet(bars_root / "symbols.parquet")["symbol"].to_list())


def run(root: Path, bars_root: Path, symbols: tuple[str, ...], **kw: object) -> WorkerOutcome:
    app = kw.pop("app", AppConfig())
    clock = kw.pop("clock", datetime.now)
    cfg = WorkerConfig(root=root, run_id=str(kw.pop("run_id", "r1")), symbols=symbols,
                       bars_root=bars_root, **kw)  # type: ignore[arg-type]  # fmt: skip
    return Worker(cfg, app, clock=clock).run()  # type: ignore[arg-type]


def checkpoint(root: Path, run_id: str = "r1") -> dict[str, object]:
    return json.loads(RunLayout(root, run_id).checkpoint.read_text())


def test_complete_run_merges_and_checkpoint_keeps_legacy_fields(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    outcome = run(tmp_path, bars_root, symbols, batch_size=4)
    layout = RunLayout(tmp_path, "r1")
    assert outcome.ok and outcome.merged is not None and outcome.shards == 2
    cp = checkpoint(tmp_path)
    assert cp["completed_symbols"] == sorted(symbols) and cp["total_completed"] == len(symbols)
    assert cp["run_id"] == "r1" and cp["last_updated"]
    final = pl.read_parquet(layout.final)
    assert final.height == outcome.merged.events > 0
    assert final.select("symbol", "timestamp", "event_type", "direction").is_unique().all()
    covered = [s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols]
    assert sorted(covered) == sorted(symbols)


def test_zero_event_symbols_are_recorded_in_shard_metadata(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    # A price filter that nothing passes: every symbol has zero events.
    outcome = run(tmp_path, bars_root, symbols, app=app_with(min_price=1e6))
    assert outcome.events == 0
    (shard,) = RunLayout(tmp_path, "r1").committed_shards().values()
    assert read_shard_info(shard).symbols == tuple(sorted(symbols))


def test_garbage_or_truncated_checkpoint_is_rebuilt_from_shards(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    run(tmp_path, bars_root, symbols, batch_size=2, limit=4, merge=False)
    layout = RunLayout(tmp_path, "r1")
    shards_before = set(layout.committed_shards())
    for damage in (b"\x00garbage{", layout.checkpoint.read_bytes()[:40]):
        layout.checkpoint.write_bytes(damage)
        outcome = run(tmp_path, bars_root, symbols, batch_size=2, resume=True, merge=False, limit=1)
        assert "corrupt" in caplog.text
        # The four committed symbols were not redone: one new symbol per resume.
        assert outcome.committed == 1
    assert len(checkpoint(tmp_path)["completed_symbols"]) == 6  # type: ignore[arg-type]
    assert shards_before < set(layout.committed_shards())


def test_legacy_checkpoint_is_read(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    layout = RunLayout(tmp_path, "events_intraday_20251014")
    layout.checkpoint.parent.mkdir(parents=True)
    layout.checkpoint.write_text(json.dumps({
        "run_id": "events_intraday_20251014", "completed_symbols": sorted(symbols[:2]),
        "total_completed": 2, "last_updated": "2025-10-14T11:02:03", "seeded_from": "x",
    }))  # fmt: skip
    outcome = run(tmp_path, bars_root, symbols, run_id=layout.run_id, resume=True, merge=False)
    assert outcome.committed == 4
    cp = checkpoint(tmp_path, layout.run_id)
    assert cp["completed_symbols"] == sorted(symbols) and cp["seeded_from"] == "x"


def test_disk_full_marks_nothing_and_resume_completes(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    with (
        mock.patch("orchestrator.run.store.write_shard_file", side_effect=full),
        pytest.raises(OSError, match="No space left"),  # one line, exit 5, at the CLI
    ):
        run(tmp_path, bars_root, symbols, batch_size=3)
    assert checkpoint(tmp_path)["completed_symbols"] == []
    assert RunLayout(tmp_path, "r1").temp_shards() == []
    outcome = run(tmp_path, bars_root, symbols, batch_size=3, resume=True)
    assert outcome.ok and outcome.committed == len(symbols)


def test_disk_full_through_the_cli_exits_non_zero(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("orchestrator.run.store.write_shard_file", side_effect=full):
        result = CliRunner().invoke(
            cli,
            [
                "--root",
                str(tmp_path),
                "detect",
                "--bars",
                str(bars_root),
                "--run-id",
                "r1",
                "--symbols",
                *symbols,
            ],
        )
    assert result.exit_code == 5  # the environment refused a write
    assert "cannot write processed/events/shards/.r1_solo_" in result.output
    assert "No space left on device (ENOSPC); free space" in result.output


def test_failing_symbol_is_retried_then_quarantined(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    import orchestrator.worker.batch as worker_module

    real = worker_module.detect_symbol_result
    poison = symbols[1]

    def flaky(symbol: str, *args: object, **kwargs: object) -> object:
        if symbol == poison:
            raise ZeroDivisionError("poisoned bars")
        return real(symbol, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(worker_module, "detect_symbol_result", side_effect=flaky):
        for attempt in (1, 2, 3):
            outcome = run(tmp_path, bars_root, symbols, resume=attempt > 1, batch_size=2)
            failed = checkpoint(tmp_path)["failed"]
            assert failed[poison]["attempts"] == attempt  # type: ignore[index]
            assert "ZeroDivisionError: poisoned bars" in failed[poison]["error"]  # type: ignore[index]
        assert outcome.quarantined == (poison,) and outcome.failed == ()
        assert outcome.merged is not None  # the run completes without it
        again = run(tmp_path, bars_root, symbols, resume=True)
    assert again.committed == 0 and again.quarantined == (poison,)
    assert poison not in checkpoint(tmp_path)["completed_symbols"]  # type: ignore[operator]


def test_run_with_committed_work_is_not_restarted_without_resume(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    run(tmp_path, bars_root, symbols, limit=2)
    with pytest.raises(RunExistsError, match="--resume"):
        run(tmp_path, bars_root, symbols)
    result = CliRunner().invoke(
        cli,
        [
            "--root",
            str(tmp_path),
            "detect",
            "--bars",
            str(bars_root),
            "--run-id",
            "r1",
            "--symbols",
            symbols[0],
        ],
    )
    assert result.exit_code == 2 and "--resume" in result.output and "new --run-id" in result.output


def test_resume_on_missing_run_starts_it(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    assert run(tmp_path, bars_root, symbols, resume=True).ok


def test_changed_config_is_refused_unless_forced(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    run(tmp_path, bars_root, symbols, limit=2)
    changed = app_with(min_price=2.0)
    with pytest.raises(ConfigMismatchError, match="--force-config"):
        run(tmp_path, bars_root, symbols, resume=True, app=changed)
    outcome = run(tmp_path, bars_root, symbols, resume=True, app=changed, force_config=True)
    assert outcome.ok
    assert len(checkpoint(tmp_path)["config_overrides"]) == 1  # type: ignore[arg-type]


def test_resume_after_midnight_continues_the_same_run(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    day1 = datetime(2026, 3, 9, 23, 50)
    run_id = resolve_run_id(tmp_path, None, resume=False, now=day1)
    assert run_id == "events_intraday_20260309"
    run(tmp_path, bars_root, symbols, run_id=run_id, limit=2, clock=lambda: day1)
    day2 = day1 + timedelta(minutes=20)
    assert resolve_run_id(tmp_path, None, resume=True, now=day2) == run_id
    outcome = run(tmp_path, bars_root, symbols, run_id=run_id, resume=True, clock=lambda: day2)
    assert outcome.ok and outcome.committed == len(symbols) - 2
    assert resolve_run_id(tmp_path, None, resume=True, now=day2) == "events_intraday_20260310"


def test_heartbeats_and_tsv_logs(tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]) -> None:
    run(tmp_path, bars_root, symbols, batch_size=4, worker_id=None)
    layout = RunLayout(tmp_path, "r1")
    legacy = json.loads(layout.run_heartbeat.read_text())
    assert legacy["status"] == "completed" and legacy["total_symbols"] == len(symbols)
    assert set(legacy) == {"run_id", "status", "total_events", "total_symbols", "completed_at"}
    beat = json.loads(layout.worker_heartbeat(0).read_text())
    for key in ("run_id", "worker_id", "pid", "status", "current_symbol", "last_symbol", "symbols_done",
                "symbols_total", "bars_done", "bars_total", "events", "batch_num", "total_batches",
                "rss_gb", "started_at", "updated_at"):  # fmt: skip
        assert key in beat
    assert beat["symbols_done"] == len(symbols) and beat["bars_done"] > 0
    (hb_log,) = layout.logs_dir.glob("heartbeat_*.log")
    lines = [line.split("\t") for line in hb_log.read_text().splitlines()]
    assert len(lines) == len(symbols) and all(len(f) == 6 for f in lines)
    assert {f[1] for f in lines} == set(symbols)
    (batch_log,) = layout.logs_dir.glob("batches_*.log")
    batches = [line.split("\t") for line in batch_log.read_text().splitlines()]
    assert [b[4] for b in batches] == ["r1_shard0001.parquet", "r1_shard0002.parquet"]


def test_cli_detect_from_file_and_invalid_tickers(
    tmp_path: Path, bars_root: Path, symbols: tuple[str, ...]
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(
        "\n".join([symbols[0], "", symbols[1], symbols[0], "bad one", "../x"]) + "\n"
    )
    result = CliRunner().invoke(
        cli,
        ["--root", str(tmp_path), "detect", "--bars", str(bars_root), "--from-file", str(listing)],
    )
    assert result.exit_code == 2 and "'bad one'" in result.output and "'../x'" in result.output
    listing.write_text(f"{symbols[0]}\n\n{symbols[1]}\n{symbols[0]}\n")
    result = CliRunner().invoke(
        cli,
        [
            "--root",
            str(tmp_path),
            "detect",
            "--bars",
            str(bars_root),
            "--from-file",
            str(listing),
            "--run-id",
            "r9",
        ],
    )
    assert result.exit_code == 0, result.output
    assert checkpoint(tmp_path, "r9")["completed_symbols"] == sorted(symbols[:2])


def test_a_commit_never_replaces_an_old_scripts_shard_of_the_same_run_id(tmp_path: Path) -> None:
    """LEGACY item 5: a file named like shard 1 of the run, without our footer, is kept."""
    from detector.schema import empty_events
    from orchestrator.run.layout import RunLayout
    from orchestrator.run.store import RunStore

    layout = RunLayout(tmp_path, "events_intraday_20251014")
    store = RunStore(layout)
    store.open_run(config_hash="h", symbols=["AAA", "BBB"], resume=False, force_config=False)
    shard_dir = layout.shard_dir(0)
    shard_dir.mkdir(parents=True)
    old = layout.shard_path(shard_dir, 1)
    pl.DataFrame({"symbol": ["OLD"], "x": [1]}).write_parquet(old)
    before = old.read_bytes()

    result = store.commit_batch(
        shard_dir=shard_dir, worker_id=0, events=empty_events(), symbols=("AAA",),
        failures={}, config_hash="h",
    )  # fmt: skip

    assert result.shard == layout.shard_path(shard_dir, 2)
    assert old.read_bytes() == before
    assert not list(shard_dir.glob(".*"))  # no temp file left


def test_resume_without_run_id_never_picks_an_old_scripts_run(tmp_path: Path) -> None:
    """Its events live in old shards our merge does not read: continuing it would lose them."""
    import json
    from datetime import datetime

    from orchestrator.run.select import resolve_run_id

    old = "events_intraday_20251012"
    checkpoints = tmp_path / "logs" / "checkpoints"
    checkpoints.mkdir(parents=True)
    legacy = {"run_id": old, "completed_symbols": ["AAA"], "total_completed": 1,
              "last_updated": "2025-10-12T10:00:00"}  # fmt: skip
    (checkpoints / f"{old}_completed.json").write_text(json.dumps(legacy))

    chosen = resolve_run_id(tmp_path, None, resume=True, now=datetime(2026, 11, 21, 9))

    assert chosen == "events_intraday_20261121"
    assert resolve_run_id(tmp_path, old, resume=True, now=datetime(2026, 11, 21, 9)) == old
