"""``compact``: daily files -> one sorted, month-row-grouped file per symbol, exact rows,
the same detector output, atomic and resumable writes, failures named, exit statuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from filelock import FileLock

import tools.compact as compact_module
from detector.bars import bar_files
from detector.errors import ExitCode
from detector.pipeline import detect_symbol_result
from tools.cli import cli
from tools.compact import (
    LOCK_NAME,
    METADATA_KEY,
    CompactConfig,
    CompactReport,
    SchemaUnifyError,
    read_sources,
    run_compact,
    temp_path,
)
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ("DAAA", "DAAB", "DAAC")
DAYS = 25  # 2026-02-02 .. 2026-03-06: two months, and the DST change of March 8 is not needed


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    generate_demo_bars(DemoDataSpec(root / "daily", len(SYMBOLS), DAYS))
    generate_demo_bars(DemoDataSpec(root / "symbol", len(SYMBOLS), DAYS, layout="symbol"))
    return root


@pytest.fixture
def bars(generated: Path, tmp_path: Path) -> Path:
    """A private copy of the generated daily layout (tests change it)."""
    return Path(shutil.copytree(generated / "daily", tmp_path / "bars"))


def compact(bars: Path, out: Path, **changes: object) -> CompactReport:
    return run_compact(CompactConfig(bars=bars, out=out, **changes))  # type: ignore[arg-type]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["compact", *map(str, args)])


def daily(bars: Path, symbol: str) -> list[Path]:
    return sorted((bars / f"symbol={symbol}").glob("date=*.parquet"))


def counts(report: CompactReport) -> tuple[int, int, int]:
    return report.count("compacted"), report.count("skipped"), report.count("failed")


def mess_up(bars: Path, symbol: str) -> None:
    """Unsorted rows, repeated timestamps within a file and across files (the later file
    must win), and rows the detector drops: all of it must survive compaction."""
    files = daily(bars, symbol)
    first, second, third = (pl.read_parquet(p) for p in files[:3])
    # Rows of the first day again, changed, in the second day's file (later file wins).
    moved = first.head(40).with_columns(
        pl.col("close") * 1.05, pl.col("high") * 1.05, pl.col("volume") * 7
    )
    pl.concat([second, moved]).sample(fraction=1.0, shuffle=True, seed=1).write_parquet(files[1])
    # Repeats within one file, a negative volume, and the file's rows shuffled.
    repeats = third.slice(100, 30).with_columns(pl.col("volume") + 1)
    bad = third.slice(200, 1).with_columns(volume=pl.lit(-5, pl.Int64))
    pl.concat([third, repeats, bad]).reverse().write_parquet(files[2])
    # A file whose schema differs: Float64 prices, no vwap, an extra column.
    fourth = pl.read_parquet(files[3])
    fourth.drop("vwap").with_columns(
        pl.col("open", "high", "low", "close").cast(pl.Float64), note=pl.lit("x")
    ).write_parquet(files[3])


# -- the detector sees the same bars ----------------------------------------------------
@pytest.mark.parametrize("raw", [False, True], ids=["events", "candidates"])
def test_detect_output_is_the_same_on_both_layouts(bars: Path, tmp_path: Path, raw: bool) -> None:
    mess_up(bars, "DAAB")
    out = tmp_path / "out"
    assert counts(compact(bars, out)) == (3, 0, 0)
    for symbol in SYMBOLS:
        before = detect_symbol_result(symbol, bars, raw=raw)
        after = detect_symbol_result(symbol, out, raw=raw)
        assert after.events.height > 0
        assert after.events.equals(before.events), symbol
        assert after.stats.files_read == 1
        assert after.stats.files_skipped == ()
        assert (
            after.stats.rows_read
            == before.stats.rows_read
            == pq.read_metadata(out / f"{symbol}.parquet").num_rows
        )
        for name in ("dropped_duplicate_timestamp", "dropped_bad_volume", "rows_kept"):
            assert getattr(after.stats, name) == getattr(before.stats, name), (symbol, name)
    messy = detect_symbol_result("DAAB", out).stats
    assert messy.dropped_duplicate_timestamp == 70
    assert messy.dropped_bad_volume == 1


def test_rows_and_columns_are_exact_and_sorted(bars: Path, tmp_path: Path) -> None:
    mess_up(bars, "DAAB")
    compact(bars, tmp_path / "out")
    result = pl.read_parquet(tmp_path / "out/DAAB.parquet")
    sources = [pl.read_parquet(p) for p in daily(bars, "DAAB")]
    expected = pl.concat(sources, how="diagonal_relaxed").sort("timestamp", maintain_order=True)
    assert result.height == sum(s.height for s in sources)
    assert result.columns == expected.columns
    assert "note" in result.columns and "vwap" in result.columns
    assert result.equals(expected)
    assert result["timestamp"].is_sorted()


def test_content_equals_the_generators_symbol_layout(generated: Path, tmp_path: Path) -> None:
    compact(generated / "daily", tmp_path / "out")
    for symbol in SYMBOLS:
        mine = pl.read_parquet(tmp_path / f"out/{symbol}.parquet")
        theirs = pl.read_parquet(generated / f"symbol/{symbol}.parquet")
        assert mine.equals(theirs.sort("timestamp", maintain_order=True)), symbol


def test_row_groups_follow_calendar_months(bars: Path, tmp_path: Path) -> None:
    mess_up(bars, "DAAB")
    compact(bars, tmp_path / "out")
    for symbol in SYMBOLS:
        meta = pq.read_metadata(tmp_path / f"out/{symbol}.parquet")
        column = meta.schema.to_arrow_schema().get_field_index("timestamp")
        months = []
        for i in range(meta.num_row_groups):
            chunk = meta.row_group(i).column(column)
            assert chunk.compression == "ZSTD"
            low, high = chunk.statistics.min, chunk.statistics.max
            low, high = (t.astimezone(UTC) for t in (low, high))
            assert (low.year, low.month) == (high.year, high.month), (symbol, i)
            months.append((low.year, low.month))
        assert months == [(2026, 2), (2026, 3)], symbol
        record = json.loads(meta.metadata[METADATA_KEY])
        files = bar_files(symbol, bars)
        assert record["source_files"] == len(files)
        assert record["source_bytes"] == sum(p.stat().st_size for p in files)
        assert record["source_max_mtime_ns"] == max(p.stat().st_mtime_ns for p in files)
        assert record["rows"] == meta.num_rows


def test_a_large_month_may_take_several_row_groups_but_never_two_months(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"timestamp": pl.datetime_range(
            datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC), "1m", eager=True
        ).dt.cast_time_unit("ms")}
    ).with_columns(open=pl.lit(1.0), high=pl.lit(1.0), low=pl.lit(1.0), close=pl.lit(1.0),
                   volume=pl.lit(1, pl.Int64))  # fmt: skip
    target = tmp_path / "X.parquet"
    compact_module.write_compacted(frame, target, {})
    meta = pq.read_metadata(target)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2880, 1441]
    assert pl.read_parquet(target).equals(frame)


# -- resumable, idempotent, atomic ------------------------------------------------------
def test_second_run_skips_and_changed_sources_rebuild_only_that_symbol(
    bars: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert counts(compact(bars, out)) == (3, 0, 0)
    stamps = {s: (out / f"{s}.parquet").stat().st_mtime_ns for s in SYMBOLS}
    assert counts(compact(bars, out)) == (0, 3, 0)
    assert {s: (out / f"{s}.parquet").stat().st_mtime_ns for s in SYMBOLS} == stamps

    touched = daily(bars, "DAAA")[5]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    report = compact(bars, out)
    assert counts(report) == (1, 2, 0)
    assert [o.symbol for o in report.outcomes if o.status == "compacted"] == ["DAAA"]

    rows = pl.read_parquet(out / "DAAC.parquet").height
    last = daily(bars, "DAAC")[-1]
    new_day = pl.read_parquet(last).with_columns(pl.col("timestamp") + pl.duration(days=3))
    new_day.write_parquet(last.with_name("date=2026-03-09.parquet"))
    report = compact(bars, out)
    assert [o.symbol for o in report.outcomes if o.status == "compacted"] == ["DAAC"]
    assert pl.read_parquet(out / "DAAC.parquet").height == rows + new_day.height
    assert counts(compact(bars, out, force=True)) == (3, 0, 0)


@pytest.mark.usefixtures("no_stray_processes")
def test_a_process_killed_mid_write_leaves_no_final_file_and_the_rerun_completes(
    bars: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "tools", "compact", "--bars", str(bars), "--out", str(out)]
    env = {**os.environ, "INTRADAY_EVENTS_CRASH_AT": "compact_mid_write:1@DAAB"}
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert (out / "DAAA.parquet").is_file()
    assert not (out / "DAAB.parquet").exists()
    half = temp_path(out / "DAAB.parquet")
    assert half.is_file() and half.stat().st_size > 0  # one month written, then killed
    assert not (out / "DAAC.parquet").exists()

    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "2 compacted, 1 skipped up to date, 0 failed" in again.stdout
    assert "1 stale temps removed" in again.stdout
    assert not half.exists()
    for symbol in SYMBOLS:
        assert detect_symbol_result(symbol, out).events.equals(
            detect_symbol_result(symbol, bars).events
        )


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp(
    bars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    compact(bars, out)
    old = pl.read_parquet(out / "DAAB.parquet")
    extra = daily(bars, "DAAB")[-1]
    pl.read_parquet(extra).write_parquet(extra.with_name("date=2026-03-10.parquet"))
    real_replace = os.replace

    def failing_replace(src: Path, dst: Path) -> None:
        if Path(dst).name == "DAAB.parquet":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(compact_module.os, "replace", failing_replace)
    report = compact(bars, out)
    assert report.failed == ("DAAB",)
    assert "No space left on device" in (report.outcomes[1].error or "")
    assert "the previous DAAB.parquet is kept as it was" in (report.outcomes[1].error or "")
    assert pl.read_parquet(out / "DAAB.parquet").equals(old)
    assert list(out.glob(".*")) == [out / LOCK_NAME]
    monkeypatch.undo()
    assert counts(compact(bars, out)) == (1, 2, 0)
    assert pl.read_parquet(out / "DAAB.parquet").height > old.height


# -- failures are named, the others go on ------------------------------------------------
def damaged(data: bytes, damage: str) -> bytes:
    if damage == "garbage":
        return b"not parquet at all"
    if damage == "truncated":
        return data[: len(data) // 2]
    pages = bytearray(data)  # the footer intact, the first column's pages scrambled
    pages[200:600] = bytes((b * 7 + 13) % 256 for b in pages[200:600])
    return bytes(pages)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pages"])
def test_a_corrupt_source_fails_its_symbol_only_exit_1(
    bars: Path, tmp_path: Path, damage: str
) -> None:
    broken = daily(bars, "DAAB")[7]
    broken.write_bytes(damaged(broken.read_bytes(), damage))
    out = tmp_path / "out"
    result = invoke("--bars", bars, "--out", out)
    assert result.exit_code == ExitCode.FAILURE, result.output
    assert f"compact: DAAB failed: {broken}: unreadable" in result.output
    assert "2 compacted, 0 skipped up to date, 1 failed" in result.output
    assert "1 symbols not compacted (DAAB)" in result.output
    assert not (out / "DAAB.parquet").exists()
    assert (out / "DAAA.parquet").is_file() and (out / "DAAC.parquet").is_file()


def test_sources_that_cannot_be_unified_are_refused_naming_both_files(
    bars: Path, tmp_path: Path
) -> None:
    first, second = daily(bars, "DAAC")[:2]
    pl.read_parquet(second).with_columns(pl.col("vwap").cast(pl.String)).write_parquet(second)
    with pytest.raises(SchemaUnifyError, match=r"column 'vwap' is Float32 in .* and String in"):
        read_sources([first, second])
    naive = daily(bars, "DAAA")[3]
    pl.read_parquet(naive).with_columns(
        pl.col("timestamp").dt.replace_time_zone(None)
    ).write_parquet(naive)
    report = compact(bars, tmp_path / "out")
    assert report.failed == ("DAAA", "DAAC")
    assert "column 'timestamp'" in (report.outcomes[0].error or "")
    assert str(naive) in (report.outcomes[0].error or "")


def test_time_zones_are_unified_to_utc(bars: Path, tmp_path: Path) -> None:
    one = daily(bars, "DAAA")[2]
    frame = pl.read_parquet(one)
    frame.with_columns(pl.col("timestamp").dt.convert_time_zone("America/New_York")).write_parquet(
        one
    )
    compact(bars, tmp_path / "out")
    result = pl.read_parquet(tmp_path / "out/DAAA.parquet")
    assert result.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert detect_symbol_result("DAAA", tmp_path / "out").events.equals(
        detect_symbol_result("DAAA", bars).events
    )


def test_a_source_without_a_detector_column_fails_the_symbol(bars: Path, tmp_path: Path) -> None:
    path = daily(bars, "DAAB")[4]
    pl.read_parquet(path).drop("volume").write_parquet(path)
    report = compact(bars, tmp_path / "out")
    assert report.failed == ("DAAB",)
    assert report.outcomes[1].error == f"{path}: column 'volume': missing"


# -- command line ------------------------------------------------------------------------
def test_cli_exit_statuses_and_paths(bars: Path, tmp_path: Path) -> None:
    missing = invoke("--bars", tmp_path / "nope", "--out", tmp_path / "out")
    assert missing.exit_code == ExitCode.DATA
    assert "does not exist" in missing.output
    same = invoke("--bars", bars, "--out", bars)
    assert same.exit_code == ExitCode.USAGE and "is the bars root" in same.output
    inside = invoke("--bars", bars, "--out", bars / "symbol=DAAA" / "x")
    assert inside.exit_code == ExitCode.USAGE and "inside a symbol folder" in inside.output
    assert not (bars / "symbol=DAAA" / "x").exists()
    bad = invoke("--bars", bars, "--out", tmp_path / "o", "--symbols", "DAAA,../x")
    assert bad.exit_code == ExitCode.USAGE
    # OUT next to the symbol folders is fine: the detector never reads a sub-folder.
    beside = invoke("--bars", bars, "--out", bars / "compacted", "--symbols", "DAAA")
    assert beside.exit_code == 0, beside.output
    assert sorted(p.name for p in (bars / "compacted").glob("*.parquet")) == ["DAAA.parquet"]


def test_cli_symbols_options_progress_and_summary(bars: Path, tmp_path: Path) -> None:
    listing = tmp_path / "symbols.txt"
    listing.write_text("DAAC\n", encoding="utf-8")
    out = tmp_path / "out"
    result = invoke(
        "--bars", bars, "--out", out, "--symbols", "DAAA,DAAB", "--symbols-file", listing,
        "--progress-every", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "compact: 2/3 symbols, 2 compacted, 0 skipped up to date, 0 failed" in result.output
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("compact: 3 symbols: 3 compacted, 0 skipped up to date, 0 failed;")
    files = sum(len(bar_files(symbol, bars)) for symbol in SYMBOLS)
    rows = sum(pq.read_metadata(out / f"{symbol}.parquet").num_rows for symbol in SYMBOLS)
    assert f"; {rows:,} rows from {files} files, " in summary
    assert "MB ->" in summary and "symbols/s" in summary
    only = invoke("--bars", bars, "--out", tmp_path / "one", "--symbols", "DAAB")
    assert only.exit_code == 0
    assert [p.name for p in (tmp_path / "one").glob("*.parquet")] == ["DAAB.parquet"]
    unknown = invoke("--bars", bars, "--out", out, "--symbols", "ZZZZ")
    assert unknown.exit_code == ExitCode.FAILURE
    assert "no bar files for ZZZZ" in unknown.output


def test_a_second_compact_of_the_same_out_is_refused(bars: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / LOCK_NAME):
        result = invoke("--bars", bars, "--out", out)
    assert result.exit_code == ExitCode.BUSY
    assert "another compact is writing" in result.output
