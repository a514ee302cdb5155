"""``launch`` and ``detect`` with real processes on missing and unreadable bars.

A symbol is never completed on bars that were not read: a wrong ``--bars`` is
refused (exit 3) before anything is written, ``--allow-missing`` records
``no_bars``, an unreadable file fails its symbol until quarantined, and
``--skip-unreadable`` completes it listing the files. The other symbols' events are
always those of an uninterrupted run over intact bars.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_launch import (
    RUN_ID,
    checkpoint,
    config,
    finish,
    launch_args,
    run_cli,
    start_cli,
    wait_for,
)

from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.heartbeat import parse_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import read_shard_info
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=5, days=5, seed=13))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    return sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: list[str]
) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("reference")
    args = ["detect", "--bars", str(bars), "--run-id", RUN_ID, "--symbols", " ".join(symbols)]
    done = run_cli(root, args)
    assert done.returncode == 0, done.stdout + done.stderr
    return pl.read_parquet(RunLayout(root, RUN_ID).final)


@pytest.fixture(scope="module")
def damaged(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: list[str]
) -> tuple[Path, str, tuple[Path, Path]]:
    """The bars with one symbol's first day a zero-byte file and its third corrupt."""
    out = tmp_path_factory.mktemp("damaged")
    victim = symbols[2]
    for entry in bars.iterdir():
        if entry.name != f"symbol={victim}":
            (out / entry.name).symlink_to(entry)
    shutil.copytree(bars / f"symbol={victim}", out / f"symbol={victim}")
    days = sorted((out / f"symbol={victim}").glob("date=*.parquet"))
    days[0].write_bytes(b"")
    days[2].write_bytes(b"PAR1 half a file")
    return out, victim, (days[0], days[2])


def shard_symbols(root: Path) -> list[str]:
    layout = RunLayout(root, RUN_ID)
    return [s for p in layout.committed_shards().values() for s in read_shard_info(p).symbols]


def status_json(root: Path) -> dict:  # type: ignore[type-arg]
    done = run_cli(root, ["status", "--run-id", RUN_ID, "--json"])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_wrong_bars_folder_is_refused_with_exit_3_and_nothing_is_written(
    tmp_path: Path, bars: Path, symbols: list[str]
) -> None:
    config(tmp_path)
    listing = tmp_path / "universe.txt"
    listing.write_text("\n".join(symbols) + "\n")
    wrong = bars.parent  # one level too high
    expected = (
        f"Error: no bar files for 5 of 5 symbols under {wrong}: {', '.join(symbols)}; "
        "check --bars (it must hold symbol=SYM/ folders or SYM.parquet files), "
        "or pass --allow-missing to record them as no_bars and go on"
    )
    for command in (
        launch_args(wrong, workers=2, batch_size=2, extra=["--from-file", str(listing)]),
        ["detect", "--bars", str(wrong), "--run-id", RUN_ID, "--from-file", str(listing)],
    ):
        done = run_cli(tmp_path, command)
        assert done.returncode == 3, done.stdout + done.stderr
        assert done.stderr.strip().splitlines()[-1] == expected
        assert "Traceback" not in done.stderr
        layout = RunLayout(tmp_path, RUN_ID)
        assert not layout.checkpoint.exists() and layout.committed_shards() == {}
        assert not list(layout.launch_dir.glob("worker_*"))


def test_a_bars_folder_without_any_symbol_is_exit_3_too(tmp_path: Path, bars: Path) -> None:
    """No symbols given, no reference universe: the folder is all there is to go by."""
    config(tmp_path)
    for wrong in (bars.parent, tmp_path / "nowhere"):
        done = run_cli(tmp_path, launch_args(wrong, workers=2, batch_size=2))
        assert done.returncode == 3, done.stdout + done.stderr
        line = done.stderr.strip().splitlines()[-1]
        assert (
            line.startswith(f"Error: no symbols: no bar files under {wrong}") and "--bars" in line
        )
        assert not RunLayout(tmp_path, RUN_ID).checkpoint.exists()


def test_allow_missing_records_no_bars_and_the_final_file_is_unchanged(
    tmp_path: Path, bars: Path, symbols: list[str], reference: pl.DataFrame
) -> None:
    config(tmp_path)
    universe = ["--symbols", " ".join([*symbols, "GHOST"])]
    refused = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2, extra=universe))
    assert refused.returncode == 3
    assert "no bar files for 1 of 6 symbols" in refused.stderr and "GHOST" in refused.stderr

    done = run_cli(
        tmp_path, launch_args(bars, workers=2, batch_size=2, extra=[*universe, "--allow-missing"])
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Symbols without bar files (no_bars, not detected): 1 (GHOST)" in done.stdout
    assert "DETECTION COMPLETE" in done.stdout
    assert "5 of 6 completed" in done.stdout and "1 without bar files" in done.stdout
    assert "no bar files, recorded as no_bars (not completed, no events) (1): GHOST" in done.stdout
    cp = checkpoint(tmp_path)
    assert cp["no_bars"] == ["GHOST"] and "GHOST" not in cp["completed_symbols"]
    assert "GHOST" not in shard_symbols(tmp_path)
    assert_frame_equal(pl.read_parquet(RunLayout(tmp_path, RUN_ID).final), reference)
    status = status_json(tmp_path)
    assert status["state"] == "completed" and status["no_bars"] == ["GHOST"]
    assert status["counts"]["remaining"] == 0
    # Launching again without the flag: recorded, reported, not refused, not retried.
    again = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Remaining symbols: 0" in again.stdout and "no_bars" in again.stdout


RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.mark.parametrize(
    ("allow_missing", "backend"),
    [(False, "local"), (True, "local"), pytest.param(True, "ray", marks=RAY)],
)
def test_files_vanishing_during_a_launch_never_complete_the_symbol(
    tmp_path: Path,
    bars: Path,
    symbols: list[str],
    reference: pl.DataFrame,
    allow_missing: bool,
    backend: str,
) -> None:
    config(tmp_path)
    victim = symbols[3]
    copy = tmp_path / "bars"
    copy.mkdir()
    for entry in bars.iterdir():
        if entry.name != f"symbol={victim}":
            (copy / entry.name).symlink_to(entry)
    shutil.copytree(bars / f"symbol={victim}", copy / f"symbol={victim}")
    extra = ["--allow-missing"] if allow_missing else []
    if backend == "ray":
        extra += ["--no-dashboard", "--backend", "ray", "--ray-address", "local"]
    beat = RunLayout(tmp_path, RUN_ID).worker_heartbeat(0)

    def on_victim() -> bool:
        try:
            found = parse_heartbeat(beat.read_text(encoding="utf-8"), RUN_ID)
        except OSError:
            return False
        return found is not None and found.current_symbol == victim

    launch = start_cli(
        tmp_path,
        launch_args(copy, workers=1, batch_size=2, extra=extra),
        **{PAUSE_ENV: f"before_detection:1.5@{victim}"},
    )
    try:
        wait_for(on_victim, "the worker to reach the victim", timeout=60)
        shutil.rmtree(copy / f"symbol={victim}")  # planned with files, detected without
    finally:
        code, out = finish(launch)

    cp = checkpoint(tmp_path)
    assert victim not in cp["completed_symbols"] and victim not in shard_symbols(tmp_path)
    if allow_missing:
        assert code == 0, out
        assert cp["no_bars"] == [victim] and victim not in cp["failed"]
    else:
        assert code == 1, out
        assert cp["failed"][victim]["attempts"] == 3 and "no_bars" not in cp
        assert f"{victim}: NoBarsError: no bar files for {victim} under {copy}" in out
    final = pl.read_parquet(RunLayout(tmp_path, RUN_ID).final)
    assert_frame_equal(final, reference.filter(pl.col("symbol") != victim))


def test_unreadable_files_fail_the_symbol_until_quarantined(
    tmp_path: Path,
    damaged: tuple[Path, str, tuple[Path, Path]],
    reference: pl.DataFrame,
) -> None:
    config(tmp_path)
    bars, victim, (zero, _) = damaged

    done = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 quarantined" in done.stdout
    assert f"{victim}: UnreadableBarFileError: unreadable bar file {zero}: " in done.stdout
    failure = checkpoint(tmp_path)["failed"][victim]
    assert failure["attempts"] == 3 and str(zero) in failure["error"]
    assert victim not in checkpoint(tmp_path)["completed_symbols"]
    assert victim not in shard_symbols(tmp_path)
    final = pl.read_parquet(RunLayout(tmp_path, RUN_ID).final)
    assert_frame_equal(final, reference.filter(pl.col("symbol") != victim))
    text = run_cli(tmp_path, ["status", "--run-id", RUN_ID])
    assert f"{victim} attempts 3/3 QUARANTINED: UnreadableBarFileError" in text.stdout


def test_skip_unreadable_completes_and_lists_the_skipped_files(
    tmp_path: Path,
    damaged: tuple[Path, str, tuple[Path, Path]],
    reference: pl.DataFrame,
) -> None:
    config(tmp_path)
    bars, victim, files = damaged
    listed = [str(f) for f in files]

    done = run_cli(
        tmp_path, launch_args(bars, workers=2, batch_size=2, extra=["--skip-unreadable"])
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed without unreadable bar files (--skip-unreadable): 2 files" in done.stdout
    assert f"  {victim}: {', '.join(listed)}" in done.stdout
    cp = checkpoint(tmp_path)
    assert cp["skipped_files"] == {victim: listed} and victim in cp["completed_symbols"]
    final = pl.read_parquet(RunLayout(tmp_path, RUN_ID).final)
    others = pl.col("symbol") != victim
    assert_frame_equal(final.filter(others), reference.filter(others))
    status = status_json(tmp_path)
    assert status["skipped_files"] == {victim: listed}
    text = run_cli(tmp_path, ["status", "--run-id", RUN_ID]).stdout
    assert "unreadable bar files skipped (--skip-unreadable)" in text and listed[1] in text


@RAY
def test_ray_backend_records_no_bars_and_skipped_files_as_the_local_one(
    tmp_path: Path,
    damaged: tuple[Path, str, tuple[Path, Path]],
    symbols: list[str],
    reference: pl.DataFrame,
) -> None:
    config(tmp_path)
    bars, victim, files = damaged
    extra = ["--symbols", " ".join([*symbols, "GHOST"]), "--allow-missing", "--skip-unreadable",
             "--no-dashboard", "--backend", "ray", "--ray-address", "local"]  # fmt: skip

    done = run_cli(tmp_path, launch_args(bars, workers=2, batch_size=2, extra=extra))

    assert done.returncode == 0, done.stdout + done.stderr
    cp = checkpoint(tmp_path)
    assert cp["no_bars"] == ["GHOST"] and cp["skipped_files"] == {victim: [str(f) for f in files]}
    assert sorted(shard_symbols(tmp_path)) == symbols
    final = pl.read_parquet(RunLayout(tmp_path, RUN_ID).final)
    others = pl.col("symbol") != victim
    assert_frame_equal(final.filter(others), reference.filter(others))
