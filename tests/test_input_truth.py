"""Completion means the input was read: missing bars, unreadable bar files, in-process.

Real bar files and run files throughout; the worker and the Ray task's batch
(``run_batch``, run here without a cluster) are the code the processes run. The
same cases through real ``launch`` processes are in ``test_launch_inputs.py``.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detector.config import AppConfig
from detector.errors import MissingBarsError
from orchestrator.observe.status import read_snapshot, render_text, snapshot_to_json
from orchestrator.run import checkpoint as ck
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import read_shard_info
from orchestrator.run.spec import RunSpec
from orchestrator.run.store import BatchRecords, RunStore
from orchestrator.worker.batch import BatchTask, InputPolicy, LaneProgress, run_batch
from orchestrator.worker.loop import Worker, WorkerConfig, WorkerOutcome, run_hash
from tools.demo.data import DemoDataSpec, generate_demo_bars

RUN = "r1"


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=root, symbols=4, days=4, seed=11))
    return root


@pytest.fixture(scope="module")
def symbols(bars: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*")))


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: tuple[str, ...]
) -> pl.DataFrame:
    """The final file of an uninterrupted run over the intact bars."""
    root = tmp_path_factory.mktemp("reference")
    outcome = run(root, bars, symbols)
    assert outcome.merged is not None
    return pl.read_parquet(RunLayout(root, RUN).final)


def run(root: Path, bars_root: Path, symbols: tuple[str, ...], **kw: object) -> WorkerOutcome:
    cfg = WorkerConfig(root=root, run_id=RUN, symbols=symbols, bars_root=bars_root,
                       batch_size=2, **kw)  # type: ignore[arg-type]  # fmt: skip
    return Worker(cfg, AppConfig()).run()


def damaged(bars: Path, out: Path, symbol: str, damage: dict[int, bytes]) -> list[Path]:
    """``bars`` linked into ``out``, ``symbol``'s folder copied with day ``i`` replaced by
    ``damage[i]`` (b"" = a zero-byte file); returns the damaged files."""
    out.mkdir()
    for entry in bars.iterdir():
        if entry.name != f"symbol={symbol}":
            (out / entry.name).symlink_to(entry)
    shutil.copytree(bars / f"symbol={symbol}", out / f"symbol={symbol}")
    days = sorted((out / f"symbol={symbol}").glob("date=*.parquet"))
    for i, data in damage.items():
        days[i].write_bytes(data)
    return [days[i] for i in sorted(damage)]


def checkpoint(root: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(RunLayout(root, RUN).checkpoint.read_text())


def shard_symbols(root: Path) -> list[str]:
    layout = RunLayout(root, RUN)
    return [s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols]


# -- missing bars ---------------------------------------------------------------------
def test_wrong_bars_folder_refuses_before_anything_is_written(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...]
) -> None:
    for wrong in (bars.parent, tmp_path / "nowhere"):
        with pytest.raises(MissingBarsError) as info:
            run(tmp_path, wrong, symbols)
        err = info.value
        assert err.bars_root == wrong and err.missing == symbols and err.total == len(symbols)
        assert str(wrong) in str(err) and "--allow-missing" in str(err)
        assert f"no bar files for {len(symbols)} of {len(symbols)} symbols" in str(err)
        assert len(str(err).splitlines()) == 1
    layout = RunLayout(tmp_path, RUN)
    assert not layout.checkpoint.exists() and layout.committed_shards() == {}


def test_allow_missing_records_no_bars_outside_every_shard(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...], reference: pl.DataFrame
) -> None:
    ghosts = ("GHOST", "NOPE")
    (bars_copy := tmp_path / "bars").mkdir()
    for entry in bars.iterdir():
        (bars_copy / entry.name).symlink_to(entry)
    (bars_copy / "symbol=NOPE").mkdir()  # an empty folder is no bars either
    root = tmp_path / "root"
    with pytest.raises(MissingBarsError, match="no bar files for 2 of 6 symbols"):
        run(root, bars_copy, (*symbols, *ghosts))

    outcome = run(root, bars_copy, (*symbols, *ghosts), inputs=InputPolicy(allow_missing=True))

    assert outcome.ok and outcome.no_bars == ghosts and outcome.merged is not None
    cp = checkpoint(root)
    assert cp["no_bars"] == list(ghosts)
    assert set(ghosts).isdisjoint(cp["completed_symbols"]) and set(ghosts).isdisjoint(cp["failed"])
    assert sorted(shard_symbols(root)) == sorted(symbols)
    assert_frame_equal(pl.read_parquet(RunLayout(root, RUN).final), reference)
    # A resume without the flag is not refused again for what was recorded; a ghost whose
    # files appear is detected and leaves no_bars.
    shutil.copytree(bars / f"symbol={symbols[0]}", bars_copy / "symbol=GHOST")
    again = run(root, bars_copy, (*symbols, *ghosts), resume=True)
    assert again.committed == 1 and again.no_bars == ("NOPE",)
    cp = checkpoint(root)
    assert cp["no_bars"] == ["NOPE"] and "GHOST" in cp["completed_symbols"]
    snapshot = read_snapshot(RunLayout(root, RUN), now=datetime.now())
    assert snapshot.no_bars == ("NOPE",) and "NOPE" not in (snapshot.remaining or ())
    assert "1 without bar files (no_bars)" in render_text(snapshot)
    assert snapshot_to_json(snapshot)["no_bars"] == ["NOPE"]


@pytest.mark.parametrize("allow_missing", [False, True])
def test_files_vanishing_after_the_plan_never_complete_the_symbol(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...], allow_missing: bool
) -> None:
    """A launched worker (the launcher checked the files) finds a symbol's files gone."""
    bars_copy = tmp_path / "bars"
    damaged(bars, bars_copy, symbols[0], {})
    shutil.rmtree(bars_copy / f"symbol={symbols[0]}")
    inputs = InputPolicy(allow_missing=allow_missing)

    outcome = run(tmp_path, bars_copy, symbols, inputs=inputs, inputs_checked=True, worker_id=0)

    cp = checkpoint(tmp_path)
    assert symbols[0] not in cp["completed_symbols"] and symbols[0] not in shard_symbols(tmp_path)
    if allow_missing:
        assert cp["no_bars"] == [symbols[0]] and outcome.failed == ()
    else:
        assert outcome.failed == (symbols[0],) and "no_bars" not in cp
        assert "NoBarsError: no bar files for" in cp["failed"][symbols[0]]["error"]


# -- unreadable files ------------------------------------------------------------------
def test_unreadable_files_fail_the_symbol_naming_the_file_until_quarantined(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...], reference: pl.DataFrame
) -> None:
    victim = symbols[1]
    zero, corrupt = damaged(bars, tmp_path / "bars", victim, {0: b"", 2: b"PAR1 not parquet"})

    for attempt in (1, 2, 3):
        outcome = run(tmp_path / "root", tmp_path / "bars", symbols, resume=attempt > 1)
        failure = checkpoint(tmp_path / "root")["failed"][victim]
        assert failure["attempts"] == attempt
        assert f"UnreadableBarFileError: unreadable bar file {zero}" in failure["error"]
    assert outcome.quarantined == (victim,) and outcome.merged is not None
    assert victim not in checkpoint(tmp_path / "root")["completed_symbols"]
    final = pl.read_parquet(RunLayout(tmp_path / "root", RUN).final)
    assert_frame_equal(final, reference.filter(pl.col("symbol") != victim))
    zero.unlink()  # the first file removed: the second one is named next (not quarantined)
    run(tmp_path / "other", tmp_path / "bars", (victim,))
    assert str(corrupt) in checkpoint(tmp_path / "other")["failed"][victim]["error"]


def test_skip_unreadable_completes_and_lists_the_files(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...], reference: pl.DataFrame
) -> None:
    victim = symbols[1]
    files = damaged(bars, tmp_path / "bars", victim, {0: b"", 2: b"PAR1 not parquet"})

    outcome = run(
        tmp_path / "root", tmp_path / "bars", symbols, inputs=InputPolicy(skip_unreadable=True)
    )

    assert outcome.ok and outcome.skipped_files == {victim: tuple(str(f) for f in files)}
    cp = checkpoint(tmp_path / "root")
    assert cp["skipped_files"] == {victim: [str(f) for f in files]}
    assert sorted(cp["completed_symbols"]) == sorted(symbols)
    final = pl.read_parquet(RunLayout(tmp_path / "root", RUN).final)
    others = pl.col("symbol") != victim
    assert_frame_equal(final.filter(others), reference.filter(others))
    snapshot = read_snapshot(RunLayout(tmp_path / "root", RUN), now=datetime.now())
    text = render_text(snapshot)
    assert "unreadable bar files skipped" in text and str(files[1]) in text
    data = snapshot_to_json(snapshot)
    assert data["skipped_files"] == {victim: [str(f) for f in files]}
    assert data["counts"]["skipped_files"] == 2
    # The shard's footer keeps the record: a checkpoint rebuilt from the shards has it.
    layout = RunLayout(tmp_path / "root", RUN)
    layout.checkpoint.write_text("garbage")
    rebuilt = RunStore(layout).reconcile()
    assert rebuilt is not None and rebuilt.skipped_files == {victim: tuple(str(f) for f in files)}


def test_a_ray_task_batch_behaves_as_the_local_worker(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...]
) -> None:
    """``run_batch`` (what a Ray task runs) and the driver's ``commit_written``."""
    bars_copy = tmp_path / "bars"
    (corrupt,) = damaged(bars, bars_copy, symbols[1], {1: b"PAR1 not parquet"})
    batch = (*symbols[:2], "GHOST")
    layout = RunLayout(tmp_path, RUN)
    store = RunStore(layout)
    app = AppConfig()
    store.open_run(config_hash=run_hash(app, None, None), symbols=batch, resume=False,
                   force_config=False)  # fmt: skip

    def task(number: int, inputs: InputPolicy) -> BatchTask:
        return BatchTask(
            root=tmp_path, lane=0, number=number, total_batches=2, symbols=batch,
            spec=RunSpec(run_id=RUN, bars_root=bars_copy, bars_layout="daily",
                         config_hash=run_hash(app, None, None), config_path=None, inputs=inputs),
            owner_pid=1,
            progress=LaneProgress(0, 3, 0, 0, datetime.now().isoformat(timespec="seconds")),
            stop_token="t",
        )  # fmt: skip

    strict = run_batch(task(1, InputPolicy()), app)
    assert strict.covered == (symbols[0],) and strict.no_bars == ()
    assert str(corrupt) in strict.failures[symbols[1]] and "NoBarsError" in strict.failures["GHOST"]
    if strict.temp is not None:
        strict.temp.unlink()
    lenient = run_batch(task(2, InputPolicy(allow_missing=True, skip_unreadable=True)), app)
    assert lenient.covered == symbols[:2] and lenient.no_bars == ("GHOST",)
    assert lenient.skipped_files == {symbols[1]: (str(corrupt),)}

    store.commit_written(
        lenient.temp, shard_dir=layout.shard_dir(0), symbols=lenient.covered,
        failures=lenient.failures, config_hash=run_hash(app, None, None),
        outcomes=BatchRecords(lenient.no_bars, lenient.skipped_files),
    )  # fmt: skip
    cp = checkpoint(tmp_path)
    assert cp["no_bars"] == ["GHOST"] and cp["skipped_files"] == {symbols[1]: [str(corrupt)]}
    assert sorted(shard_symbols(tmp_path)) == sorted(symbols[:2])


# -- the checkpoint format ---------------------------------------------------------------
def test_checkpoints_without_the_new_fields_read_and_write_as_before() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    plain = ck.with_commit(ck.Checkpoint(run_id=RUN), shard_name="s1", shard_number=1,
                           symbols=["A"], failures={}, now=now)  # fmt: skip
    text = ck.to_json(plain)
    assert "no_bars" not in text and "skipped_files" not in text
    assert ck.from_json(text, RUN) == plain
    legacy = '{"run_id": "r1", "completed_symbols": ["A"], "total_completed": 1}'
    old = ck.from_json(legacy, RUN)
    assert old.no_bars == frozenset() and old.skipped_files == {}
    assert old.remaining(3) == frozenset()

    recorded = ck.with_commit(plain, shard_name="s2", shard_number=2, symbols=["B"],
                              failures={"C": "boom"}, now=now, no_bars=["D", "C"],
                              skipped_files={"B": ("x.parquet",), "A": ("y",)})  # fmt: skip
    back = ck.from_json(ck.to_json(recorded), RUN)
    assert back == recorded
    assert back.no_bars == {"C", "D"} and "C" not in back.failed  # the newest truth wins
    assert back.skipped_files == {"B": ("x.parquet",)}  # only symbols of this commit
    # Failing again (files back but unreadable) takes a symbol out of no_bars.
    assert "C" not in ck.with_failures(back, {"C": "again"}, now).no_bars
