"""``bench --bars DIR``: step 1 alone on bars a user already has (either layout, any zone
via the config), and the spread (min / median / max over the repeats) every figure of the
benchmark shows. No thresholds on speed: the numbers are only checked sane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from detector.config import AppConfig, BarsConfig
from detector.errors import ExitCode
from tools.bench.bars_run import BarsBenchError, BarsBenchSpec, run_bars_bench, symbol_layout
from tools.bench.bars_text import build_bars_report, format_bars_text
from tools.bench.figures import layout_row_days
from tools.bench.processes import (
    BareRun,
    BenchError,
    LaunchRun,
    WorkerRun,
    run_bare_loop,
    run_measured,
)
from tools.bench.report import build_report
from tools.bench.run import LayoutTiming, TryRuns
from tools.bench.stats import Spread, combine, median_of, scaled, spread
from tools.bench.text import format_text, report_json, tri
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_SAMPLE = SHARED / "data" / "real-1m-sample"
TIMEOUT_S = 120
SPREAD_KEYS = {"min", "median", "max", "missing"}


# -- the spread ---------------------------------------------------------------------------
def test_spread_is_min_median_max_and_counts_what_is_missing() -> None:
    assert spread([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0, 0)
    assert spread([4.0, 1.0]) == Spread(1.0, 2.5, 4.0, 0)
    assert spread([None, 2.0, float("inf")]) == Spread(2.0, 2.0, 2.0, 2)
    assert spread([None, None]) == Spread(None, None, None, 2)
    assert scaled(Spread(60.0, 120.0, 180.0, 1), 1 / 60) == Spread(1.0, 2.0, 3.0, 1)
    assert median_of([5.0, 1.0, 3.0]) == 2 and median_of([4.0, 1.0]) == 1


def test_combine_takes_the_median_of_each_float_and_keeps_the_rest() -> None:
    rows = [
        WorkerRun(1.0, 10) , WorkerRun(3.0, 30), WorkerRun(2.0, 20),
    ]  # fmt: skip
    combined, spreads = combine(rows, pick=1)
    assert combined == WorkerRun(2.0, 30)  # the int is the picked row's
    assert spreads == {"wall_s": Spread(1.0, 2.0, 3.0, 0)}
    with pytest.raises(ValueError, match="no repeats"):
        combine([])


def test_tri_prints_min_median_max_and_n_a() -> None:
    assert tri(Spread(27.94, 28.5, 31.0), ".1f") == "27.9 / 28.5 / 31.0"
    assert tri(Spread(1.0, 2.0, 3.0, 1), ".2f", "x") == "1.00 / 2.00 / 3.00x (1 n/a)"
    assert tri(None, ".1f") == "n/a" and tri(Spread(None, None, None, 3), ".1f") == "n/a (3 n/a)"


def test_layout_row_spread_is_per_pass_and_its_ratio_each_pass_s_own() -> None:
    timing = LayoutTiming(
        "daily", 10, 1.0, 2.0, 1.1, 2.4, read_passes=(1.0, 1.2, 1.1),
        detect_passes=(2.0, 3.0, 2.4),
    )  # fmt: skip
    row = layout_row_days(timing, symbol_days=200)
    assert row.spread["read_ms_per_100d"] == Spread(500.0, 550.0, 600.0, 0)
    assert row.spread["detect_ms_per_100d"] == Spread(1000.0, 1200.0, 1500.0, 0)
    ratios = sorted([2.0, 3.0 / 1.2, 2.4 / 1.1])
    got = row.spread["ratio"]
    assert (got.min, got.median, got.max) == pytest.approx(ratios)


def three_repeats() -> tuple[TryRuns, ...]:
    """Three repeats of 20 / 10 symbols, 1 and 2 workers, the middle one slowest."""
    mb = 10**6

    def runs(one: float, two: float, rss: int) -> TryRuns:
        return TryRuns(
            launches=(LaunchRun(1, 20, one, rss * mb, 140 * mb), LaunchRun(2, 20, two, rss * mb, None)),
            half_launches=(LaunchRun(1, 10, one - 3.0, None, None),
                           LaunchRun(2, 10, two - 1.6, None, None)),
            bare=BareRun(20, 6.3, 0.9, 5.0, 200 * mb, 100),
            half_bare=BareRun(10, 3.4, 0.9, 2.1, mb, 50),
            long_detect=WorkerRun(3.0, rss * mb),
        )  # fmt: skip

    return runs(8.0, 5.0, 250), runs(9.0, 6.0, 270), runs(8.5, 5.2, 260)


def test_report_figures_are_medians_of_the_repeats_with_their_spread() -> None:
    from test_bench import measured

    result = replace(measured(), tries=three_repeats())
    report = build_report(result)
    one, two = report.scaling
    assert one.wall_s == 8.5 and one.spread["wall_s"] == Spread(8.0, 8.5, 9.0, 0)
    assert two.spread["speedup"].min == pytest.approx(min(8 / 5, 9 / 6, 8.5 / 5.2))
    assert two.speedup == pytest.approx(sorted([8 / 5, 9 / 6, 8.5 / 5.2])[1])
    assert two.marginal_speedup == pytest.approx(0.3 / 0.16)  # the same slopes each repeat
    assert report.long_run.peak_worker_rss_mb == 260.0
    assert report.long_run.spread["peak_worker_rss_mb"] == Spread(250.0, 260.0, 270.0, 0)
    assert report.peak_worker_rss_spread == Spread(250.0, 260.0, 270.0, 0)
    rss = next(t for t in report.targets if t.name.startswith("peak worker RSS"))
    assert rss.value == 260.0 and rss.spread == Spread(250.0, 260.0, 270.0, 0)
    projection = report.targets[-2]
    seconds = report.projection.spread["seconds"]
    assert projection.value == pytest.approx(report.projection.seconds / 60)
    assert projection.spread == scaled(seconds, 1 / 60)
    text = format_text(report)
    assert "min / median / max over the 3 repeats; targets judged on the median" in text
    assert "8.00 / 8.50 / 9.00" in text and "250 / 260 / 270 MB" in text
    document = report_json(report)
    assert document["launch"][0]["wall_s"] == 8.5
    assert document["launch"][0]["spread"]["wall_s"] == {
        "min": 8.0, "median": 8.5, "max": 9.0, "missing": 0
    }  # fmt: skip
    assert document["peak_worker_rss_spread"]["max"] == 270.0


# -- bench --bars on generated bars -------------------------------------------------------
def generated(directory: Path, layout: str, symbols: int, days: int) -> Path:
    spec = DemoDataSpec(directory, symbols, days, layout=layout)  # type: ignore[arg-type]
    generate_demo_bars(spec)
    return directory


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


@pytest.mark.parametrize("layout", ["daily", "symbol"])
def test_bars_bench_measures_either_layout_and_counts_its_days(tmp_path: Path, layout: str) -> None:
    bars = generated(tmp_path / "bars", layout, symbols=3, days=4)
    before = snapshot(bars)
    notes: list[str] = []
    result = run_bars_bench(BarsBenchSpec(bars, repeat=2), AppConfig(), notes.append)
    assert snapshot(bars) == before  # nothing written under DIR
    (group,) = result.groups
    assert group.layout == layout and result.layout == layout
    assert group.symbols == ("DAAA", "DAAB", "DAAC") and result.symbols_found == 3
    assert group.symbol_days == 3 * 4 and group.bars > 0 and group.rows_kept > 0
    assert len(group.timing.read_passes) == 2 and all(t > 0 for t in group.timing.detect_passes)
    report = build_bars_report(result)
    (target,) = report.targets
    assert target.limit == (2.0 if layout == "daily" else 3.0)
    assert target.value == report.layouts[layout].spread["ratio"].median
    text = format_bars_text(report)
    assert f"   {layout:<8} 3 symbols, 12 symbol-days" in text
    assert "min / median / max over the 2 passes" in text
    assert notes == [f"timing read and detect_symbol on 3 symbols, {layout} layout (2 passes)"]


def test_bars_bench_groups_the_symbols_of_a_mixed_directory_and_limits_them(
    tmp_path: Path,
) -> None:
    bars = generated(tmp_path / "bars", "daily", symbols=2, days=3)  # DAAA, DAAB
    single = generated(tmp_path / "single", "symbol", symbols=3, days=3)  # DAAA..DAAC
    shutil.copy(single / "DAAB.parquet", bars / "DAAB.parquet")  # DAAB: both layouts
    shutil.copy(single / "DAAC.parquet", bars / "DAAC.parquet")  # DAAC: one file only
    assert [symbol_layout(s, bars) for s in ("DAAA", "DAAB", "DAAC")] == [
        "daily", "both", "symbol"
    ]  # fmt: skip
    result = run_bars_bench(BarsBenchSpec(bars, repeat=1), AppConfig(), lambda _line: None)
    assert result.layout == "both"
    assert [(g.layout, g.symbols) for g in result.groups] == [
        ("daily", ("DAAA",)), ("symbol", ("DAAC",)), ("both", ("DAAB",))
    ]  # fmt: skip
    assert result.groups[2].symbol_days == 3  # the union of both layouts: the same 3 days
    limits = [t.limit for t in build_bars_report(result).targets]
    assert limits == [2.0, 3.0, 2.0]
    first = run_bars_bench(BarsBenchSpec(bars, 1, symbols=2), AppConfig(), lambda _line: None)
    assert [g.symbols for g in first.groups] == [("DAAA",), ("DAAB",)]
    assert first.symbols_found == 3
    assert "2 symbols (the first 2 by name of 3)" in format_bars_text(build_bars_report(first))


def test_bars_bench_reads_naive_timestamps_in_the_configured_zone(tmp_path: Path) -> None:
    aware = generated(tmp_path / "aware", "symbol", symbols=1, days=3)
    naive = tmp_path / "naive"
    naive.mkdir()
    frame = pl.read_parquet(aware / "DAAA.parquet")
    clock = pl.col("timestamp").dt.convert_time_zone("America/New_York")
    frame.with_columns(clock.dt.replace_time_zone(None)).write_parquet(naive / "DAAA.parquet")
    new_york = AppConfig(bars=BarsConfig(naive_timezone="America/New_York"))

    def kept(directory: Path, config: AppConfig) -> tuple[str, int, int]:
        result = run_bars_bench(BarsBenchSpec(directory, repeat=1), config, lambda _line: None)
        (group,) = result.groups
        return result.naive_timezone, group.symbol_days, group.rows_kept

    tz, days, rows = kept(aware, AppConfig())
    assert kept(naive, new_york) == ("America/New_York", days, rows)
    # Read as UTC, the early pre-market falls before 04:00 ET and is dropped.
    assert kept(naive, AppConfig())[2] < rows and tz == "UTC"


def test_bars_bench_refuses_a_directory_without_bars(tmp_path: Path) -> None:
    with pytest.raises(BarsBenchError, match="no bars in either layout"):
        run_bars_bench(BarsBenchSpec(tmp_path), AppConfig(), lambda _line: None)
    assert BarsBenchError.exit_code == ExitCode.USAGE


# -- the real command ---------------------------------------------------------------------
def bench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), "bench", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def check_json(document: dict, layout: str, symbols: int) -> dict:
    assert document["schema"] == 3 and document["mode"] == "bars"
    assert set(document) == {"schema", "mode", "spec", "data", "layouts", "machine", "targets",
                             "wall_s"}  # fmt: skip
    assert document["data"]["layout"] == layout and document["data"]["symbols"] == symbols
    row = document["layouts"][layout]
    assert row["symbols"] == symbols and row["files"] >= symbols
    assert row["symbol_days"] > 0 and row["bars"] >= row["rows_kept"] > 0
    for key in ("read_ms_per_100d", "detect_ms_per_100d", "ratio"):
        s = row["spread"][key]
        assert set(s) == SPREAD_KEYS and 0 < s["min"] <= s["median"] <= s["max"], (key, s)
    (target,) = document["targets"]
    assert target["value"] == row["spread"]["ratio"]["median"] and target["met"] in (True, False)
    return row


def test_bench_bars_command_text_json_and_refused_options(tmp_path: Path) -> None:
    bars = generated(tmp_path / "bars", "daily", symbols=3, days=3)
    before = snapshot(bars)
    text = bench(tmp_path, "--bars", str(bars), "--repeat", "1")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "1. read vs detect_symbol in this process" in text.stdout
    assert "detect / read, daily layout" in text.stdout and "target <= 2 x" in text.stdout
    for section in ("2. launch", "3. orchestrator", "4. peak worker RSS", "5. projection"):
        assert section not in text.stdout, section
    done = bench(tmp_path, "--bars", str(bars), "--repeat", "2", "--symbols", "2", "--json")
    assert done.returncode == 0, done.stderr
    row = check_json(json.loads(done.stdout), "daily", 2)
    assert row["symbol_days"] == 6
    assert snapshot(bars) == before
    refused = bench(tmp_path, "--bars", str(bars), "--days", "5", "--keep", str(tmp_path / "k"))
    assert refused.returncode == ExitCode.USAGE
    assert "--days, --keep: not with --bars" in refused.stderr
    one = bench(tmp_path, "--symbols", "1")
    assert one.returncode == ExitCode.USAGE and "at least 2" in one.stderr


@pytest.mark.skipif(
    not REAL_SAMPLE.is_dir(),
    reason=f"{REAL_SAMPLE} is absent: the real-data sample lives in ../shared, "
    "which a fresh clone does not have",
)
def test_bench_bars_on_the_real_sample(tmp_path: Path) -> None:
    before = snapshot(REAL_SAMPLE)
    text = bench(tmp_path, "--bars", str(REAL_SAMPLE), "--repeat", "1")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "17 symbols (all 17); one file per symbol (SYM.parquet)" in text.stdout
    assert "detect / read, one file per symbol" in text.stdout
    assert "target <= 3 x" in text.stdout
    done = bench(tmp_path, "--bars", str(REAL_SAMPLE), "--repeat", "1", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    row = check_json(document, "symbol", 17)
    assert row["files"] == 17 and row["bars"] == 599_224  # as its README says
    # 2024 had 252 sessions; a sparse symbol may miss a few days, none has more.
    assert 17 * 200 <= row["symbol_days"] <= 17 * 252
    assert 0.1 < row["ratio"] < 100 and row["read_ms_per_100d"] > 0
    assert document["targets"][0]["limit"] == 3.0
    assert snapshot(REAL_SAMPLE) == before  # nothing written there


# -- peak RSS of a child is its own, not the bench's -----------------------------------------
BIG_MB = 700


@pytest.mark.usefixtures("no_stray_processes")
def test_a_child_s_peak_rss_does_not_count_the_bench_s_own(tmp_path: Path) -> None:
    # On Linux a child's ru_maxrss starts at its parent's RSS: a bench that has read
    # every symbol would see its own memory in each worker it measures.
    big = bytearray(BIG_MB * 2**20)
    big[::4096] = b"\x01" * len(big[::4096])  # touch every page: resident
    run = run_measured([sys.executable, "-c", "pass"], tmp_path / "pass.txt")
    assert 0 < run.peak_rss < 100 * 10**6 and run.wall_s > 0
    bars = generated(tmp_path / "bars", "daily", symbols=1, days=1)
    bare = run_bare_loop(bars, ["DAAA"], None)
    assert 0 < bare.peak_rss < (BIG_MB - 100) * 2**20
    with pytest.raises(BenchError, match="exited 3"):
        run_measured([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "x.txt")
    del big
