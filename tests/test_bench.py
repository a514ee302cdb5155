"""``bench``: its arithmetic on plain numbers, its bars directory, and a smoke run of the
real command at a tiny size (no thresholds on speed: the numbers are only checked sane)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detector.errors import ExitCode
from tools.bench import MARKER, BenchSpec, ForeignBenchDirError, LayoutTiming, ensure_bench_bars
from tools.bench_report import (
    bars_per_symbol_day,
    efficiency,
    evaluate_targets,
    layout_row,
    overhead_pct,
    per_100_days,
    project,
    projected_seconds,
    rate,
    ratio,
    scaled_rate,
    scaling_row,
    speedup,
    target,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120


# -- arithmetic ---------------------------------------------------------------------------
def test_per_100_days_divides_by_symbol_hundred_days() -> None:
    assert per_100_days(10.0, symbols=20, days=250) == pytest.approx(0.2)
    assert per_100_days(0.5, symbols=1, days=100) == pytest.approx(0.5)


def test_ratio_rate_and_their_zero_denominators() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(1.0, 0.0) == math.inf
    assert rate(1_000, 4.0) == 250.0
    assert rate(5, 0.0) == math.inf


def test_speedup_and_efficiency() -> None:
    assert speedup(10.0, 5.5) == pytest.approx(10 / 5.5)
    assert efficiency(speedup(10.0, 5.0), 2) == pytest.approx(1.0)
    assert efficiency(1.5, 2) == pytest.approx(0.75)


def test_overhead_is_the_extra_wall_time_in_percent() -> None:
    assert overhead_pct(10.5, 10.0) == pytest.approx(5.0)
    assert overhead_pct(9.0, 10.0) == pytest.approx(-10.0)
    assert overhead_pct(1.0, 0.0) == math.inf


def test_bars_rates_and_projection_arithmetic() -> None:
    assert bars_per_symbol_day(435_000, symbols=4, days=250) == pytest.approx(435.0)
    assert scaled_rate(1.0, workers=4, eff=0.9) == pytest.approx(3.6)
    assert projected_seconds(6e8, 2e6) == pytest.approx(300.0)
    assert projected_seconds(1.0, 0.0) == math.inf


def test_projection_uses_the_two_worker_rate_and_scales_the_one_worker_rate() -> None:
    p = project(
        400.0, two_worker_mbars_per_s=2.0, one_worker_mbars_per_s=1.1, cpu_workers=8,
        measured_efficiency=0.9, measured_workers=2,
    )  # fmt: skip
    assert p.bars == pytest.approx(1996 * 750 * 400)
    assert p.workers == 2
    assert p.seconds == pytest.approx(1996 * 750 * 400 / 2e6)
    assert p.cpu_seconds == pytest.approx(1996 * 750 * 400 / (1.1e6 * 8 * 0.9))
    assert "400 bars per symbol-day" in p.assumption and "(0.90)" in p.assumption


def test_layout_row_is_per_symbol_100_days_in_ms() -> None:
    timing = LayoutTiming(
        "daily", 1000, read_s=0.5, detect_s=1.5, read_median_s=0.6, detect_median_s=1.2
    )
    row = layout_row(timing, symbols=2, days=250)
    assert row.files == 1000
    assert row.read_ms_per_100d == pytest.approx(100.0)
    assert row.detect_ms_per_100d == pytest.approx(300.0)
    assert row.ratio == pytest.approx(3.0)
    assert row.median_ratio == pytest.approx(2.0)


def test_scaling_row_rates_speedup_and_efficiency() -> None:
    row = scaling_row(
        2, 5.0, one_worker_wall_s=9.0, symbols=20, bars=2_000_000, peak_worker_rss=250 * 10**6
    )
    assert row.symbols_per_s == pytest.approx(4.0)
    assert row.mbars_per_s == pytest.approx(0.4)
    assert row.speedup == pytest.approx(1.8)
    assert row.efficiency == pytest.approx(0.9)
    assert row.peak_worker_rss_mb == pytest.approx(250.0)
    assert row.launcher_rss_mb is None


def test_targets_met_and_not_met() -> None:
    met = evaluate_targets(
        detect_read_ratio=2.0, two_worker_speedup=1.8, overhead=4.9, peak_worker_rss_mb=299.0,
        projection_s=600.0, days=750,
    )  # fmt: skip
    assert [t.met for t in met] == [True] * 5
    missed = evaluate_targets(
        detect_read_ratio=2.1, two_worker_speedup=1.79, overhead=5.1, peak_worker_rss_mb=None,
        projection_s=601.0, days=750,
    )  # fmt: skip
    assert [t.met for t in missed] == [False, False, False, None, False]
    assert missed[4].value == pytest.approx(601 / 60) and missed[4].unit == "min"
    assert target("x", math.nan, 1.0, "x", True).met is None


# -- the bars directory -------------------------------------------------------------------
def test_keep_dir_is_reused_at_the_same_size_and_regenerated_at_another(tmp_path: Path) -> None:
    notes: list[str] = []
    keep = tmp_path / "keep"
    first = ensure_bench_bars(keep, BenchSpec(symbols=2, days=2), notes.append)
    assert first.generated and first.bars > 0
    assert (keep / "daily" / "symbol=DAAA").is_dir()
    assert (keep / "symbol" / "DAAA.parquet").is_file()

    again = ensure_bench_bars(keep, BenchSpec(symbols=2, days=2), notes.append)
    assert not again.generated and again.bars == first.bars
    assert notes[-1] == f"reusing the bars in {keep}"

    other = ensure_bench_bars(keep, BenchSpec(symbols=1, days=3), notes.append)
    assert other.generated
    assert not (keep / "daily" / "symbol=DAAB").exists()  # the old size is gone
    assert json.loads((keep / MARKER).read_text()) == {"symbols": 1, "days": 3, "seed": 0}


def test_keep_dir_with_foreign_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not the benchmark's")
    with pytest.raises(ForeignBenchDirError):
        ensure_bench_bars(tmp_path, BenchSpec(symbols=1, days=1), lambda _line: None)
    assert ForeignBenchDirError.exit_code == ExitCode.USAGE


# -- the real command ---------------------------------------------------------------------
def bench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), "bench", "--symbols", "4",
         "--days", "5", "--repeat", "1", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


SECTIONS = (
    "1. read vs detect_symbol",
    "2. launch on the daily layout",
    "3. orchestrator overhead",
    "4. peak RSS of a worker",
    "5. projection to 1,996 symbols x 750 days",
    "6. machine",
    "targets (issue 8",
    "bench wall time",
)
KEYS = {
    "schema", "spec", "data", "layouts", "launch", "overhead", "peak_worker_rss_mb",
    "projection", "machine", "targets", "wall_s",
}  # fmt: skip


@pytest.mark.usefixtures("no_stray_processes")
def test_bench_smoke_text_then_json_reusing_kept_bars(tmp_path: Path) -> None:
    keep = tmp_path / "bars"
    text = bench(tmp_path, "--keep", str(keep))
    assert text.returncode == 0, text.stdout + text.stderr
    for section in SECTIONS:
        assert section in text.stdout, section
    assert "daily" in text.stdout and "symbol" in text.stdout
    assert "generating 4 symbols x 5 days" in text.stderr

    done = bench(tmp_path, "--keep", str(keep), "--json")
    assert done.returncode == 0, done.stderr
    assert "reusing the bars" in done.stderr
    report = json.loads(done.stdout)
    assert set(report) == KEYS
    assert report["schema"] == 1
    assert report["spec"] | {"keep": None} == {
        "symbols": 4, "days": 5, "repeat": 1, "workers_max": 2, "seed": 0, "keep": None,
    }  # fmt: skip
    data = report["data"]
    assert data["generated"] is False and data["dir"] == str(keep.resolve())
    assert data["bars"] > 0 and data["symbol_days"] == 20 and data["bars_per_symbol_day"] > 0
    assert set(report["layouts"]) == {"daily", "symbol"}
    for row in report["layouts"].values():
        assert row["files"] > 0
        timed = {k: v for k, v in row.items() if k != "files"}
        assert len(timed) == 6 and all(v > 0 for v in timed.values()), row
    assert report["layouts"]["symbol"]["files"] == 4
    assert [s["workers"] for s in report["launch"]] == [1, 2]
    for s in report["launch"]:
        assert s["wall_s"] > 0 and s["symbols_per_s"] > 0 and s["mbars_per_s"] > 0
        assert s["speedup"] > 0 and s["efficiency"] > 0
        assert s["peak_worker_rss_mb"] > 0 and s["launcher_rss_mb"] > 0
    assert report["launch"][0]["speedup"] == 1.0
    overhead = report["overhead"]
    assert overhead["launch_wall_s"] > 0 and overhead["bare_wall_s"] > 0
    assert overhead["bare_loop_s"] > 0 and overhead["bare_rss_mb"] > 0
    assert isinstance(overhead["overhead_pct"], float)
    assert report["peak_worker_rss_mb"] > 0
    projection = report["projection"]
    assert (projection["symbols"], projection["days"], projection["workers"]) == (1996, 750, 2)
    assert projection["seconds"] > 0 and projection["cpu_seconds"] > 0
    assert projection["cpu_workers"] >= 1 and projection["assumption"]
    machine = report["machine"]
    assert machine["cpus"] >= 1 and machine["cpus_available"] >= 1
    assert machine["python"] and machine["polars"] and machine["pyarrow"]
    assert "load_1m" in machine
    assert len(report["targets"]) == 5
    for t in report["targets"]:
        assert set(t) == {"name", "value", "limit", "unit", "at_most", "met"}
        assert t["met"] in (True, False, None)
    assert report["wall_s"] > 0


def test_bench_refuses_a_keep_dir_it_did_not_write(tmp_path: Path) -> None:
    keep = tmp_path / "theirs"
    keep.mkdir()
    (keep / "data.parquet").write_text("x")
    done = bench(tmp_path, "--keep", str(keep))
    assert done.returncode == ExitCode.USAGE
    assert "did not write" in done.stderr
