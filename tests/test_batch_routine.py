"""The batch routine both backends run (``detect_batch``), on real bar files.

What it leaves for the committing process (a temporary shard named after it), what
it says on the way (the heartbeat, the heartbeat-log lines handed to a sink), how it
stops between symbols, and that its shard is committed once or removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from detector.config import AppConfig
from orchestrator.run.heartbeat import WorkerHeartbeat, local_stamp
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import read_shard_info
from orchestrator.run.store import RunStore
from orchestrator.worker.batch import Batch, DetectedBatch, detect_batch, detect_for_run
from orchestrator.worker.beat import HeartbeatWriter

from builders import busy_days, write_daily

RUN = "r1"
HASH = "h1"
NOW = datetime(2026, 3, 9, 10, 30, 0)
SYMBOLS = ("AAA", "BBB")


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars")
    for symbol in SYMBOLS:
        write_daily(root, symbol, busy_days(3))
    return root


def start_beat(worker_id: int | None) -> WorkerHeartbeat:
    at = NOW.isoformat(timespec="seconds")
    return WorkerHeartbeat(
        run_id=RUN, worker_id=worker_id, pid=os.getpid(), status="starting",
        current_symbol=None, last_symbol=None, symbols_done=5, symbols_total=9, bars_done=100,
        bars_total=0, events=7, batch_num=0, total_batches=3, rss_gb=0.0, started_at=at,
        updated_at=at,
    )  # fmt: skip


def batch_of(
    root: Path, bars: Path, symbols: tuple[str, ...], *, worker_id: int | None = 3, owner: int = 0
) -> Batch:
    layout = RunLayout(root, RUN)
    return Batch(
        symbols=symbols, number=2, total_batches=3, shard_dir=layout.shard_dir(worker_id),
        worker_id=worker_id, owner_pid=owner or os.getpid(), bars_root=bars, config_hash=HASH,
    )  # fmt: skip


def detect(
    root: Path, batch: Batch, stop: Callable[[], bool] = lambda: False
) -> tuple[DetectedBatch, list[tuple[object, ...]], HeartbeatWriter]:
    layout = RunLayout(root, RUN)
    beat = HeartbeatWriter(layout, start_beat(batch.worker_id), clock=lambda: NOW)
    lines: list[tuple[object, ...]] = []
    found = detect_batch(batch, AppConfig(), layout, beat, emit=lines.append, stop=stop)
    return found, lines, beat


def test_a_batch_leaves_its_temporary_shard_heartbeat_and_log_lines(
    tmp_path: Path, bars: Path
) -> None:
    layout = RunLayout(tmp_path, RUN)
    batch = batch_of(tmp_path, bars, (*SYMBOLS, "GHOST"))
    found, lines, beat = detect(tmp_path, batch)

    expected = {s: detect_for_run(s, bars, AppConfig(), None, None).events for s in SYMBOLS}
    rows = {s: e.height for s, e in expected.items() if e is not None}
    assert found.covered == list(SYMBOLS) and not found.stopped
    assert list(found.failures) == ["GHOST"] and "NoBarsError" in found.failures["GHOST"]
    assert set(found.inputs) == set(found.seconds) == set(SYMBOLS)
    # The temporary shard: named after the committing process, holding the covered rows.
    assert found.temp is not None and found.temp.parent == layout.shard_dir(3)
    assert (
        found.temp.name.startswith(f".{RUN}_w3_{os.getpid()}_")
        and found.temp in layout.temp_shards()
    )
    info = read_shard_info(found.temp)
    assert info.run_id == RUN and info.symbols == SYMBOLS and info.config_hash == HASH
    assert set(info.inputs) == set(SYMBOLS)
    table = pl.read_parquet(found.temp)
    assert found.events == table.height == sum(rows.values()) > 0
    assert dict(table["symbol"].value_counts().iter_rows()) == {s: n for s, n in rows.items() if n}
    # The heartbeat continues the counters it started from, and says it is committing.
    written = json.loads(layout.worker_heartbeat(3).read_text())
    assert written == json.loads(json.dumps(beat.current.__dict__))
    assert written["status"] == "committing" and written["current_symbol"] is None
    assert written["last_symbol"] == "GHOST" and written["symbols_done"] == 5 + 3
    assert written["bars_done"] == 100 + found.bars and found.bars > 0
    assert written["events"] == 7 + found.events and written["batch_num"] == 2
    assert written["updated_at"] == NOW.isoformat(timespec="seconds")
    assert not layout.run_heartbeat.exists()  # a worker with an id: no legacy heartbeat
    # One heartbeat-log line per symbol, to the sink only.
    assert [line[:5] for line in lines] == [
        (local_stamp(NOW), "AAA", 2, 3, rows["AAA"]),
        (local_stamp(NOW), "BBB", 2, 3, rows["BBB"]),
        (local_stamp(NOW), "GHOST", 2, 3, 0),
    ]
    assert all(isinstance(line[5], float) for line in lines)
    assert not layout.logs_dir.exists()


def test_the_committed_temporary_shard_records_the_batch(tmp_path: Path, bars: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    store = RunStore(layout)
    store.open_run(config_hash=HASH, symbols=[*SYMBOLS, "GHOST"], resume=False, force_config=False)
    found, _, _ = detect(tmp_path, batch_of(tmp_path, bars, (*SYMBOLS, "GHOST")))
    records = found.records({"k": 1})
    assert records.seconds == found.seconds and records.config == {"k": 1}

    result = store.commit_written(
        found.temp, shard_dir=layout.shard_dir(3), symbols=tuple(found.covered),
        failures=found.failures, config_hash=HASH, outcomes=records,
    )  # fmt: skip

    assert result.shard == layout.shard_path(layout.shard_dir(3), 1)
    assert result.committed == SYMBOLS and result.events == found.events
    assert found.temp is not None and not found.temp.exists() and not layout.temp_shards()
    cp = store.reconcile()
    assert cp is not None and cp.completed == set(SYMBOLS) and set(cp.failed) == {"GHOST"}
    assert set(cp.inputs) == set(SYMBOLS)


def test_the_stop_predicate_is_asked_between_symbols(tmp_path: Path, bars: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    asked: list[int] = []

    def stop_after_one() -> bool:
        asked.append(1)
        return len(asked) > 1

    found, lines, _ = detect(tmp_path, batch_of(tmp_path, bars, SYMBOLS), stop_after_one)
    assert found.stopped and found.covered == ["AAA"] and len(lines) == 1
    assert found.temp is not None and read_shard_info(found.temp).symbols == ("AAA",)
    found.temp.unlink()

    other = tmp_path / "other"
    never, lines, _ = detect(other, batch_of(other, bars, SYMBOLS), lambda: True)
    assert never.stopped and never.empty and never.temp is None and lines == []
    assert not RunLayout(other, RUN).worker_heartbeat(3).exists()  # nothing was started
    assert not layout.temp_shards()


def test_a_lone_worker_keeps_the_legacy_heartbeat_and_a_solo_shard(
    tmp_path: Path, bars: Path
) -> None:
    layout = RunLayout(tmp_path, RUN)
    found, _, _ = detect(tmp_path, batch_of(tmp_path, bars, SYMBOLS[:1], worker_id=None))
    assert found.temp is not None and found.temp.parent == layout.shard_dir(None)
    assert found.temp.name.startswith(f".{RUN}_solo_{os.getpid()}_")
    assert json.loads(layout.worker_heartbeat(0).read_text())["status"] == "committing"
    legacy = json.loads(layout.run_heartbeat.read_text())  # its format knows no "committing"
    assert legacy["status"] == "running" and legacy["last_symbol"] == "AAA"


def test_a_temporary_shard_never_committed_is_removed_once_its_owner_is_gone(
    tmp_path: Path, bars: Path
) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    owner = int(gone.stdout)
    layout = RunLayout(tmp_path, RUN)
    store = RunStore(layout)
    store.open_run(config_hash=HASH, symbols=SYMBOLS, resume=False, force_config=False)
    found, _, _ = detect(tmp_path, batch_of(tmp_path, bars, SYMBOLS, owner=owner))
    assert found.temp is not None and f"_{owner}_" in found.temp.name

    cp = store.open_run(config_hash=HASH, symbols=SYMBOLS, resume=True, force_config=False)

    assert not found.temp.exists() and not layout.temp_shards()
    assert not cp.completed and not layout.committed_shards()
