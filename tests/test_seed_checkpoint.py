"""``seed-checkpoint``: every source of a run, a union that never overwrites, and runs
that go on after it (real ``detect``/``launch`` processes, every wait bounded)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from polars.testing import assert_frame_equal

from detector.schema import EVENT_KEY, empty_events
from orchestrator.run import checkpoint as ck
from orchestrator.run.errors import RunExistsError
from orchestrator.run.layout import RunLayout, new_run_id
from orchestrator.run.shards import read_shard_info
from orchestrator.run.store import ImportConfigMismatchError, RunStore
from tools.cli import cli as cli_group
from tools.demo.data import DemoDataSpec, generate_demo_bars

from builders import bars_frame, flat_bars, write_daily

SRC = "events_intraday_20251012"
DST = "events_intraday_20251014"
NO_BARS = "ZZZZ"  # a quiet symbol: its bars are read, it has zero events
TIMEOUT_S = 120
KEY = list(EVENT_KEY)
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
    poll_interval_seconds: 0.1
    progress_interval_seconds: 1.0
"""


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=6, days=4, seed=3))
    # A symbol without bars is never completed (it is no_bars): a zero-event symbol has
    # bars in which nothing happens.
    write_daily(out, NO_BARS, bars_frame(flat_bars("2026-03-04", "09:30", 30)))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    found = (p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))
    return sorted(s for s in found if s != NO_BARS)


@pytest.fixture(scope="module")
def src_symbols(symbols: list[str]) -> list[str]:
    """What SRC detected: three symbols with events and one with none."""
    return [*symbols[:3], NO_BARS]


@pytest.fixture(scope="module")
def src_template(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, src_symbols: list[str]
) -> Path:
    """A workspace where a real ``detect`` completed SRC: 2 shards, checkpoint, final."""
    root = tmp_path_factory.mktemp("src")
    done = cli(root, "detect", "--bars", str(bars), "--run-id", SRC, "--batch-size", "2",
               "--symbols", " ".join(src_symbols))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(RunLayout(root, SRC).committed_shards()) == 2
    return root


@pytest.fixture
def root(tmp_path: Path, src_template: Path) -> Path:
    """A fresh copy of the SRC workspace for one test."""
    out = tmp_path / "ws"
    shutil.copytree(src_template, out)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: list[str]) -> Path:
    """The final file of one uninterrupted ``detect`` of every symbol."""
    root = tmp_path_factory.mktemp("reference")
    done = cli(root, "detect", "--bars", str(bars), "--run-id", "ref",
               "--symbols", " ".join([*symbols, NO_BARS]))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return RunLayout(root, "ref").final


# -- helpers --------------------------------------------------------------------------
def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tools", "--root", str(root)]
    if (root / "supervision.yaml").exists():
        argv += ["--config", str(root / "supervision.yaml")]
    return subprocess.run(
        [*argv, *args],
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def run_seed(root: Path, *args: str) -> Result:
    """``seed-checkpoint`` in-process (the error boundary and exit statuses are the
    CLI's own; the subprocess test below checks them in a real process too)."""
    return CliRunner().invoke(cli_group, ["--root", str(root), "seed-checkpoint", *args])


def seed(root: Path, *args: str) -> Result:
    done = run_seed(root, *args)
    assert done.exit_code == 0, done.output
    return done


def counts(stdout: str, kind: str) -> tuple[int, int]:
    """(files, symbols) of one source row of the report."""
    match = re.search(rf"^  {re.escape(kind)}\s+(\d+)\s+(\d+)$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match[1]), int(match[2])


def newly(stdout: str) -> int:
    match = re.search(r"^newly marked completed: (\d+)$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match[1])


def checkpoint(root: Path, run_id: str = DST) -> dict[str, object]:
    return json.loads(RunLayout(root, run_id).checkpoint.read_text())


def src_files(root: Path, *, checkpoint: bool = True, shards: bool = True, final: bool = True):
    """Remove the kinds of SRC's files not wanted, to seed from the others only."""
    layout = RunLayout(root, SRC)
    if not checkpoint:
        layout.checkpoint.unlink()
    if not shards:
        for path in layout.committed_shards().values():
            path.unlink()
    if not final:
        layout.final.unlink()


def write_legacy_checkpoint(root: Path, run_id: str, symbols: list[str]) -> None:
    path = RunLayout(root, run_id).checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id, "completed_symbols": sorted(symbols),
                                "total_completed": len(symbols),
                                "last_updated": "2025-10-12T23:59:01"}))  # fmt: skip


def legacy_frame(events: pl.DataFrame) -> pl.DataFrame:
    """Events as the old script wrote them: naive ns UTC timestamps, no timestamp_et."""
    return events.drop("timestamp_et").with_columns(
        pl.col("timestamp").dt.replace_time_zone(None).dt.cast_time_unit("ns"),
        pl.col("tier").cast(pl.Int64),
    )


def write_old_shards(root: Path, events: pl.DataFrame, symbols: list[str]) -> int:
    """The legacy layout: shards/worker_N/{run}_shardNNNN.parquet without our footer.

    The same name in two worker folders (legacy item 5), and the first symbol's rows
    written twice, as restarts did. Returns the number of duplicated rows.
    """
    shards = RunLayout(root, SRC).shards_root
    first, second, third = symbols[:3]
    parts = {
        shards / "worker_0" / f"{SRC}_shard0001.parquet": [first, second],
        shards / "worker_1" / f"{SRC}_shard0001.parquet": [third],
        shards / "worker_1" / f"{SRC}_shard0002.parquet": [first],  # a restart redid it
    }
    for path, part in parts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        legacy_frame(events.filter(pl.col("symbol").is_in(part))).write_parquet(path)
    return events.filter(pl.col("symbol") == first).height


# -- where SRC's symbols come from ------------------------------------------------------
def test_from_our_shards_only_zero_event_symbol_included(
    root: Path, src_symbols: list[str]
) -> None:
    src_files(root, checkpoint=False, final=False)
    done = seed(root, SRC, DST)
    assert counts(done.stdout, "shards (ours)") == (2, 4)
    assert counts(done.stdout, "old shards") == (0, 0)
    assert newly(done.stdout) == 4
    cp = checkpoint(root)
    assert cp["completed_symbols"] == sorted(src_symbols)  # NO_BARS had no event anywhere
    assert cp["seeded"] == dict.fromkeys(sorted(src_symbols), SRC)
    assert cp["shards"] == {}  # marks only: no shard of DST
    assert "total completed in events_intraday_20251014: 4" in done.stdout


def test_from_our_checkpoint_only(root: Path, src_symbols: list[str]) -> None:
    src_files(root, shards=False, final=False)
    done = seed(root, SRC, DST)
    assert counts(done.stdout, "checkpoint (ours)") == (1, 4)
    assert checkpoint(root)["completed_symbols"] == sorted(src_symbols)


def test_from_final_file_only(root: Path, src_symbols: list[str]) -> None:
    src_files(root, checkpoint=False, shards=False)
    done = seed(root, SRC, DST)
    assert counts(done.stdout, "final file") == (1, 3)
    # A zero-event symbol is not in a final file: only shards or a checkpoint know it.
    assert checkpoint(root)["completed_symbols"] == sorted(src_symbols[:3])


def test_from_legacy_checkpoint_keeps_legacy_fields(tmp_path: Path) -> None:
    write_legacy_checkpoint(tmp_path, SRC, ["CCC", "AAA", "BBB"])
    done = seed(tmp_path, SRC, DST)
    assert counts(done.stdout, "checkpoint (legacy)") == (1, 3)
    cp = checkpoint(tmp_path)
    assert cp["run_id"] == DST and cp["completed_symbols"] == ["AAA", "BBB", "CCC"]
    assert cp["total_completed"] == 3 and isinstance(cp["last_updated"], str)
    assert cp["seeded_from"] == [SRC] and isinstance(cp["seeded_at"], str)
    # The source is read, never written.
    assert json.loads(RunLayout(tmp_path, SRC).checkpoint.read_text())["total_completed"] == 3
    # No file holds their events: importing marks them, never claims "zero events".
    imported = seed(tmp_path, SRC, DST, "--import-events")
    assert (
        "imported: nothing new" in imported.stdout and "marked without events: 3" in imported.stdout
    )
    assert checkpoint(tmp_path)["shards"] == {}


def test_from_old_shards_in_the_legacy_layout(
    tmp_path: Path, src_template: Path, src_symbols: list[str]
) -> None:
    events = pl.read_parquet(RunLayout(src_template, SRC).final)
    write_old_shards(tmp_path, events, src_symbols)
    shards = RunLayout(tmp_path, SRC).shards_root
    # Files of other runs whose names contain SRC's id are not SRC's.
    other = f"{SRC}_2"
    write_legacy_checkpoint(tmp_path, other, ["XXXX"])
    pl.DataFrame({"symbol": ["XXXX"]}).write_parquet(shards / f"{other}_shard0001.parquet")
    pl.DataFrame({"symbol": ["YYYY"]}).write_parquet(shards / f"{SRC}0_shard0001.parquet")
    done = seed(tmp_path, SRC, DST)
    assert counts(done.stdout, "old shards") == (3, 3)
    assert counts(done.stdout, "shards (ours)") == (0, 0)
    assert checkpoint(tmp_path)["completed_symbols"] == sorted(src_symbols[:3])


# -- a union, never a replacement -------------------------------------------------------
def test_seeding_twice_changes_nothing_and_sources_accumulate(
    root: Path, src_symbols: list[str], symbols: list[str]
) -> None:
    first = seed(root, SRC, DST)
    before = RunLayout(root, DST).checkpoint.read_bytes()
    again = seed(root, SRC, DST)
    assert newly(again.stdout) == 0 and newly(first.stdout) == 4
    assert RunLayout(root, DST).checkpoint.read_bytes() == before
    other = "events_intraday_20251001"
    write_legacy_checkpoint(root, other, [symbols[0], symbols[4]])
    third = seed(root, other, DST)
    assert newly(third.stdout) == 1  # symbols[0] was already there
    cp = checkpoint(root)
    assert cp["seeded_from"] == [SRC, other]
    assert cp["completed_symbols"] == sorted({*src_symbols, symbols[4]})
    assert cp["total_completed"] == 5
    assert cp["seeded"][symbols[4]] == other and cp["seeded"][symbols[0]] == SRC


def test_existing_completions_of_dst_are_kept(
    root: Path, bars: Path, symbols: list[str], src_symbols: list[str]
) -> None:
    done = cli(root, "detect", "--bars", str(bars), "--run-id", DST,
               "--symbols", f"{symbols[0]} {symbols[4]}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    before = checkpoint(root)
    seeded = seed(root, SRC, DST)
    assert newly(seeded.stdout) == 3  # symbols[0] was completed by DST itself
    cp = checkpoint(root)
    assert cp["shards"] == before["shards"]
    assert set(cp["completed_symbols"]) == {*src_symbols, symbols[4]}
    assert set(cp["seeded"]) == set(src_symbols) - {symbols[0]}


# -- the checkpoint model keeps seeded symbols -----------------------------------------
def test_store_keeps_seeded_symbols_through_reconcile_open_run_and_commits(
    tmp_path: Path,
) -> None:
    store = RunStore(RunLayout(tmp_path, DST))
    result = store.seed(source=SRC, symbols=["AAA", "BBB"])
    assert result.newly_completed == ("AAA", "BBB") and result.shard is None
    assert store.reconcile().completed == {"AAA", "BBB"}  # type: ignore[union-attr]
    with pytest.raises(RunExistsError):  # seeded symbols are work: only --resume goes on
        store.open_run(config_hash="h1", symbols=["AAA"], resume=False, force_config=False)
    cp = store.open_run(config_hash="h1", symbols=["AAA", "CCC"], resume=True, force_config=False)
    assert cp.completed == {"AAA", "BBB"} and cp.config_hash == "h1"
    store.commit_batch(shard_dir=store.layout.shard_dir(None), worker_id=None,
                       events=empty_events(), symbols=("AAA", "CCC"), failures={},
                       config_hash="h1")  # fmt: skip
    cp = store.reconcile()
    assert cp is not None and cp.completed == {"AAA", "BBB", "CCC"}
    assert dict(cp.seeded) == {"AAA": SRC, "BBB": SRC}  # the commit dropped AAA as done
    assert list(cp.shards.values()) == [("CCC",)]
    # A shard the checkpoint misses (a crash after its rename) is added; seeds stay.
    lagging = replace(cp, shards={}, completed=cp.completed - {"CCC"})
    store.layout.checkpoint.write_text(ck.to_json(lagging))
    cp = store.reconcile()
    assert (
        cp is not None
        and cp.completed == {"AAA", "BBB", "CCC"}
        and set(cp.seeded) == {"AAA", "BBB"}
    )
    # Documented limit: seeded-only symbols live in the checkpoint file alone.
    store.layout.checkpoint.unlink()
    assert store.reconcile().completed == {"CCC"}  # type: ignore[union-attr]


def test_pure_seeding_model() -> None:
    now = datetime(2025, 10, 14, 9, 30)
    cp = ck.Checkpoint(run_id=DST, completed=frozenset({"AAA"}),
                       failed={"BBB": ck.FailedSymbol("boom", 2, "x")})  # fmt: skip
    seeded, new = ck.with_seeded(cp, ["AAA", "BBB"], source=SRC, now=now)
    assert new == {"BBB"} and seeded.completed == {"AAA", "BBB"} and not seeded.failed
    assert dict(seeded.seeded) == {"BBB": SRC} and seeded.seeded_from == (SRC,)
    same, none = ck.with_seeded(seeded, ["BBB"], source=SRC, now=now)
    assert same is seeded and not none
    back = ck.from_json(ck.to_json(seeded), DST)
    assert back.seeded == seeded.seeded and back.seeded_at == "2025-10-14T09:30:00"
    # The old tool wrote one source as a string: kept so until another source joins.
    legacy = ck.from_json(json.dumps({"completed_symbols": ["A"], "seeded_from": SRC}), DST)
    assert legacy.seeded_from == (SRC,) and "seeded_from" not in ck.to_json(cp)
    assert json.loads(ck.to_json(legacy))["seeded_from"] == SRC
    more, _ = ck.with_seeded(legacy, ["B"], source="other", now=now)
    assert json.loads(ck.to_json(more))["seeded_from"] == [SRC, "other"]


# -- runs go on after seeding ----------------------------------------------------------
def test_detect_resume_skips_seeded_symbols_and_merges(
    root: Path, bars: Path, symbols: list[str], src_symbols: list[str]
) -> None:
    seed(root, SRC, DST)
    args = ["detect", "--bars", str(bars), "--run-id", DST, "--symbols", " ".join(symbols)]
    refused = cli(root, *args)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    done = cli(root, *args, "--resume")
    assert done.returncode == 0, done.stderr
    layout = RunLayout(root, DST)
    covered = {s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols}
    assert covered == set(symbols) - set(src_symbols)  # seeded ones were skipped
    final = pl.read_parquet(layout.final)
    assert set(final["symbol"]) <= covered and final.select(KEY).is_unique().all()
    assert checkpoint(root)["total_completed"] == len(set(symbols) | set(src_symbols))


@pytest.mark.usefixtures("no_stray_processes")
def test_launch_skips_seeded_symbols_and_merges(
    root: Path, bars: Path, symbols: list[str], src_symbols: list[str]
) -> None:
    seed(root, SRC, DST)
    (root / "supervision.yaml").write_text(SUPERVISION)
    done = cli(root, "launch", "--bars", str(bars), "--run-id", DST, "--workers", "2",
               "--yes", "--no-dashboard", "--symbols", " ".join(symbols))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Completed symbols (checkpoint): 3" in done.stdout  # ZZZZ is not in this universe
    assert "Remaining symbols: 3" in done.stdout
    layout = RunLayout(root, DST)
    covered = {s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols}
    assert covered == set(symbols) - set(src_symbols)
    final = pl.read_parquet(layout.final)
    assert set(final["symbol"]) <= covered and final.select(KEY).is_unique().all()


# -- --import-events ----------------------------------------------------------------------
def test_import_events_final_file_holds_them_once(
    root: Path, bars: Path, symbols: list[str], src_symbols: list[str], reference: Path
) -> None:
    done = seed(root, SRC, DST, "--import-events")
    assert "as events_intraday_20251014_shard0001.parquet" in done.stdout
    layout = RunLayout(root, DST)
    (shard,) = layout.committed_shards().values()
    assert read_shard_info(shard).symbols == tuple(sorted(src_symbols))  # zero-event one too
    assert checkpoint(root)["seeded"] == {}  # every symbol has its shard: rebuildable
    before = layout.checkpoint.read_bytes()
    again = seed(root, SRC, DST, "--import-events")
    assert "imported: nothing new" in again.stdout
    assert len(layout.committed_shards()) == 1 and layout.checkpoint.read_bytes() == before
    done = cli(root, "detect", "--bars", str(bars), "--run-id", DST, "--resume",
               "--symbols", " ".join([*symbols, NO_BARS]))  # fmt: skip
    assert done.returncode == 0, done.stderr
    final = pl.read_parquet(layout.final)
    assert final.select(KEY).is_unique().all()
    # Imported plus detected is exactly what one uninterrupted run gives.
    assert_frame_equal(final, pl.read_parquet(reference))


def test_import_after_marks_only_brings_the_events(root: Path, src_symbols: list[str]) -> None:
    seed(root, SRC, DST)
    done = seed(root, SRC, DST, "--import-events")
    assert newly(done.stdout) == 0 and "imported: 4 symbols" in done.stdout
    assert checkpoint(root)["seeded"] == {}


def test_import_from_old_shards_drops_exact_duplicates(
    tmp_path: Path, src_template: Path, src_symbols: list[str]
) -> None:
    events = pl.read_parquet(RunLayout(src_template, SRC).final)
    duplicated = write_old_shards(tmp_path, events, src_symbols)
    done = seed(tmp_path, SRC, DST, "--import-events")
    assert f"{duplicated} exact duplicate rows of {SRC} dropped" in done.stdout
    (shard,) = RunLayout(tmp_path, DST).committed_shards().values()
    # Converted back to the output schema, each row once.
    assert_frame_equal(pl.read_parquet(shard), events)


def test_import_refuses_rows_that_differ_under_one_key(
    tmp_path: Path, src_template: Path, src_symbols: list[str]
) -> None:
    events = pl.read_parquet(RunLayout(src_template, SRC).final)
    write_old_shards(tmp_path, events, src_symbols)
    path = RunLayout(tmp_path, SRC).shards_root / "worker_1" / f"{SRC}_shard0002.parquet"
    pl.read_parquet(path).with_columns(pl.col("score") + 1).write_parquet(path)
    done = run_seed(tmp_path, SRC, DST, "--import-events")
    assert done.exit_code == 3 and "share an event key" in done.stderr
    assert not RunLayout(tmp_path, DST).checkpoint.exists()  # nothing was seeded


def test_import_leaves_symbols_src_only_had_seeded(root: Path, src_symbols: list[str]) -> None:
    older = "events_intraday_20251001"
    write_legacy_checkpoint(root, older, ["QQQQ"])
    seed(root, older, SRC)  # SRC completed QQQQ by seeding: its events are not in SRC
    seed(root, SRC, DST, "--import-events")
    cp = checkpoint(root)
    assert cp["seeded"] == {"QQQQ": SRC}
    assert list(cp["shards"].values()) == [sorted(src_symbols)]


def test_import_refuses_events_of_another_config(root: Path) -> None:
    RunStore(RunLayout(root, DST)).open_run(
        config_hash="0therconfig0", symbols=["AAA"], resume=False, force_config=False
    )
    done = run_seed(root, SRC, DST, "--import-events")
    assert done.exit_code == 2 and "mix events of two configs" in done.stderr
    with pytest.raises(ImportConfigMismatchError):
        RunStore(RunLayout(root, DST)).seed(source=SRC, symbols=["X"], events=empty_events(),
                                            config_hash="another")  # fmt: skip
    seed(root, SRC, DST)  # marks alone mix nothing


def test_import_never_replaces_an_old_shard_of_dst(root: Path) -> None:
    old = RunLayout(root, DST).shard_path(RunLayout(root, DST).shards_root, 1)
    pl.DataFrame({"symbol": ["OLD"]}).write_parquet(old)  # no footer: the legacy system's
    before = old.read_bytes()
    done = run_seed(root, SRC, DST, "--import-events")
    assert done.exit_code == 0, done.output
    assert old.read_bytes() == before  # the import took the next free number instead
    assert list(checkpoint(root)["shards"]) == [f"{DST}_shard0002.parquet"]


# -- errors and the default DST -----------------------------------------------------------
def test_errors_have_one_line_and_their_exit_status(root: Path) -> None:
    missing = cli(root, "seed-checkpoint", "events_intraday_19990101", DST)
    assert missing.returncode == 3
    assert missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr
    same = cli(root, "seed-checkpoint", SRC, SRC)
    assert same.returncode == 2 and "same run" in same.stderr
    assert cli(root, "seed-checkpoint", "../etc", DST).returncode == 2
    RunLayout(root, SRC).checkpoint.write_text("{not json")
    broken = cli(root, "seed-checkpoint", SRC, DST)
    assert broken.returncode == 3 and "unreadable checkpoint" in broken.stderr
    assert not RunLayout(root, DST).checkpoint.exists()


def test_dst_defaults_to_todays_run_id(root: Path) -> None:
    days = {new_run_id(datetime.now())}
    done = seed(root, SRC)
    days.add(new_run_id(datetime.now()))  # the test may run across midnight
    (today,) = [d for d in days if RunLayout(root, d).checkpoint.exists()]
    assert f"-> {today} (default: today's run id)" in done.stdout
    if len(days) == 1:  # (across midnight, "today" has moved on)
        # Seeding today's run into the default DST, itself, is refused.
        assert run_seed(root, today).exit_code == 2
