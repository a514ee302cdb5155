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
from tools.bench.figures import (
    evaluate_targets,
    layout_row,
    project,
    scaling_row,
    target,
)
from tools.bench.processes import BareRun, LaunchRun, WorkerRun
from tools.bench.report import build_report
from tools.bench.run import (
    LONG_DIR,
    MARKER,
    BenchData,
    BenchResult,
    BenchSpec,
    ForeignBenchDirError,
    LayoutTiming,
    Machine,
    TryRuns,
    ensure_bench_bars,
    ensure_long_bars,
)
from tools.bench.stats import (
    NO_FIT,
    Fit,
    bars_per_symbol_day,
    efficiency,
    fit_two_sizes,
    marginal_overhead_pct,
    marginal_ratio,
    overhead_pct,
    per_100_days,
    projected_seconds,
    rate,
    ratio,
    scaled_rate,
    speedup,
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


def test_fit_through_two_sizes_gives_seconds_per_symbol_and_fixed_seconds() -> None:
    fit = fit_two_sizes(10, 5.0, 20, 8.0)
    assert fit.marginal_s == pytest.approx(0.3)
    assert fit.fixed_s == pytest.approx(2.0)
    assert fit_two_sizes(1, 1.5, 3, 1.9).fixed_s == pytest.approx(1.3)
    negative = fit_two_sizes(10, 0.5, 20, 3.5)  # a negative intercept is kept as measured
    assert negative.fixed_s == pytest.approx(-2.5)


def test_no_positive_slope_is_not_a_number() -> None:
    # The half run took as long as, or longer than, the whole one: noise, not a cost.
    assert fit_two_sizes(10, 5.0, 20, 5.0) == NO_FIT
    assert fit_two_sizes(10, 5.5, 20, 5.0) == Fit(None, None)
    assert fit_two_sizes(10, math.inf, 20, 5.0) == NO_FIT
    with pytest.raises(ValueError, match="grow"):
        fit_two_sizes(20, 5.0, 20, 8.0)


def test_marginal_speedup_and_overhead_are_ratios_of_slopes_or_none() -> None:
    assert marginal_ratio(0.3, 0.16) == pytest.approx(1.875)
    assert marginal_ratio(None, 0.16) is None and marginal_ratio(0.3, None) is None
    assert marginal_overhead_pct(0.3, 0.25) == pytest.approx(20.0)
    assert marginal_overhead_pct(0.3, None) is None and marginal_overhead_pct(None, 0.2) is None


def test_projection_adds_the_fixed_seconds_to_the_two_worker_rate() -> None:
    p = project(
        400.0, two_worker_mbars_per_s=2.0, one_worker_mbars_per_s=1.1, fixed_s=3.0,
        whole_run_two_worker_mbars_per_s=1.5, cpu_workers=8, measured_efficiency=0.9,
        measured_workers=2, marginal=True,
    )  # fmt: skip
    bars = 1996 * 750 * 400
    assert p.bars == pytest.approx(bars)
    assert (p.workers, p.basis, p.fixed_s) == (2, "marginal", 3.0)
    assert p.seconds == pytest.approx(3.0 + bars / 2e6)
    assert p.whole_run_seconds == pytest.approx(bars / 1.5e6)
    assert p.cpu_seconds == pytest.approx(3.0 + bars / (1.1e6 * 8 * 0.9))
    assert "400 bars per symbol-day" in p.assumption and "(0.90)" in p.assumption
    assert "3.0 s fixed" in p.assumption and "marginal efficiency" in p.assumption


def test_projection_on_the_whole_runs_rates_says_so() -> None:
    p = project(
        400.0, two_worker_mbars_per_s=1.5, one_worker_mbars_per_s=1.0, fixed_s=0.0,
        whole_run_two_worker_mbars_per_s=1.5, cpu_workers=2, measured_efficiency=0.75,
        measured_workers=2, marginal=False,
    )  # fmt: skip
    assert p.basis == "whole run" and p.seconds == pytest.approx(p.whole_run_seconds)
    assert "no positive slope" in p.assumption and "pessimistic" in p.assumption


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
    assert row.marginal_s_per_symbol is None and row.marginal_speedup is None


def test_scaling_row_marginal_values_from_the_fits() -> None:
    row = scaling_row(
        2, 5.0, one_worker_wall_s=8.0, symbols=20, bars=2_000_000, half_wall_s=3.4,
        fit=Fit(0.16, 1.8), one_worker_marginal_s=0.3,
    )  # fmt: skip
    assert row.half_wall_s == 3.4 and row.fixed_s == 1.8
    assert row.marginal_s_per_symbol == pytest.approx(0.16)
    assert row.marginal_mbars_per_s == pytest.approx(100_000 / 0.16 / 1e6)
    assert row.marginal_speedup == pytest.approx(1.875)
    assert row.marginal_efficiency == pytest.approx(0.9375)
    assert row.speedup == pytest.approx(1.6)  # the whole runs', unchanged


def test_targets_met_and_not_met() -> None:
    met = evaluate_targets(
        detect_read_ratio=2.0, two_worker_speedup=1.8, whole_run_speedup=1.2, overhead=4.9,
        whole_run_overhead=56.0, peak_worker_rss_mb=299.0, bench_days_rss_mb=180.0,
        projection_s=180.0, whole_run_projection_s=900.0, long_days=750, launch_fixed_s=0.5,
    )  # fmt: skip
    assert [t.met for t in met] == [True] * 6
    assert met[3].name == "peak worker RSS, 750 days"
    assert met[5].name == "fixed cost of a launch, over a bare loop" and met[5].unit == "s"
    # The whole runs only alongside: they decide nothing.
    assert [t.at_bench_size for t in met] == [None, 1.2, 56.0, 180.0, 15.0, None]
    missed = evaluate_targets(
        detect_read_ratio=2.1, two_worker_speedup=None, whole_run_speedup=1.9, overhead=5.1,
        whole_run_overhead=4.0, peak_worker_rss_mb=None, bench_days_rss_mb=None,
        projection_s=181.0, whole_run_projection_s=100.0, long_days=750, launch_fixed_s=0.51,
    )  # fmt: skip
    assert [t.met for t in missed] == [False, None, False, None, False, False]
    assert missed[4].value == pytest.approx(181 / 60) and missed[4].unit == "min"
    assert target("x", math.nan, 1.0, "x", True).met is None


# -- the report from measurements -----------------------------------------------------------
def measured(two_worker_half_s: float = 3.4) -> BenchResult:
    """20 symbols x 250 days, 400 bars per symbol-day; launches and bare loop at 10 and 20."""
    spec = BenchSpec(symbols=20, days=250)
    data = BenchData(Path("bars"), tuple(f"S{i}" for i in range(20)), 2_000_000, False, 0.1)
    long = BenchData(Path("bars/long"), ("S0",), 300_000, True, 2.0)
    layout = LayoutTiming("daily", 5000, 1.0, 1.5, 1.1, 1.6)
    mb = 10**6
    runs = TryRuns(
        launches=(LaunchRun(1, 20, 8.0, 170 * mb, 140 * mb), LaunchRun(2, 20, 5.0, 180 * mb, None)),
        half_launches=(LaunchRun(1, 10, 5.0, None, None),
                       LaunchRun(2, 10, two_worker_half_s, None, None)),
        bare=BareRun(20, 6.3, 0.9, 5.0, 200 * mb, 100), half_bare=BareRun(10, 3.4, 0.9, 2.1, mb, 50),
        long_detect=WorkerRun(3.0, 250 * mb),
    )  # fmt: skip
    return BenchResult(
        spec=spec, data=data, layouts=(layout, LayoutTiming("symbol", 20, 0.2, 1.4, 0.2, 1.5)),
        tries=(runs,), long_data=long,
        machine=Machine(2, 2, None, 8.0, "linux", "3.11", "1", "1", None), wall_s=60.0,
    )  # fmt: skip


def test_report_judges_the_targets_on_the_marginal_values() -> None:
    report = build_report(measured())
    o = report.overhead
    assert report.half_symbols == 10
    assert o.launch_marginal_s_per_symbol == pytest.approx(0.3)
    assert o.launch_fixed_s == pytest.approx(2.0)
    assert o.bare_marginal_s_per_symbol == pytest.approx(0.29)
    assert o.bare_fixed_s == pytest.approx(0.5)
    assert o.marginal_overhead_pct == pytest.approx((0.3 / 0.29 - 1) * 100)
    assert o.overhead_pct == pytest.approx((8.0 / 6.3 - 1) * 100)
    p = report.projection
    assert p.basis == "marginal" and p.fixed_s == pytest.approx(1.8)
    bars = 1996 * 750 * 400
    assert p.seconds == pytest.approx(1.8 + bars / (100_000 / 0.16))
    assert p.whole_run_seconds == pytest.approx(bars / (2_000_000 / 5.0))
    # 2 CPUs at the marginal efficiency of 2 workers: the 2-worker projection again.
    assert p.cpu_seconds == pytest.approx(p.seconds)
    assert report.long_run.peak_worker_rss_mb == pytest.approx(250.0)
    assert report.peak_worker_rss_mb == pytest.approx(180.0)
    daily, per_symbol, speed, overhead, rss, projection, fixed = report.targets
    assert daily.name == "detect / read, daily layout" and daily.limit == 2.0
    assert daily.value == pytest.approx(1.6 / 1.1)  # no passes recorded: the medians' ratio
    assert per_symbol.name == "detect / read, one file per symbol" and per_symbol.limit == 3.0
    assert per_symbol.value == pytest.approx(1.5 / 0.2) and per_symbol.met is False
    assert speed.value == pytest.approx(1.875) and speed.at_bench_size == pytest.approx(1.6)
    assert speed.met is True
    assert overhead.value == pytest.approx(o.marginal_overhead_pct)
    assert overhead.at_bench_size == pytest.approx(o.overhead_pct) and overhead.met is True
    assert rss.value == pytest.approx(250.0) and rss.at_bench_size == pytest.approx(180.0)
    assert projection.value == pytest.approx(p.seconds / 60)
    assert projection.at_bench_size == pytest.approx(p.whole_run_seconds / 60)
    assert fixed.value == pytest.approx(o.launch_fixed_s - o.bare_fixed_s) and fixed.limit == 0.5


def test_report_with_a_slope_lost_in_noise_says_n_a_and_projects_on_whole_runs() -> None:
    report = build_report(measured(two_worker_half_s=5.5))  # the half run took longer
    two = report.scaling[1]
    assert two.marginal_s_per_symbol is None and two.marginal_speedup is None
    assert two.speedup == pytest.approx(1.6)
    speed = report.targets[2]
    assert speed.value is None and speed.met is None and speed.at_bench_size == pytest.approx(1.6)
    assert report.projection.basis == "whole run"
    assert report.projection.seconds == pytest.approx(report.projection.whole_run_seconds)
    assert report.targets[3].value is not None  # 1 worker and the bare loop still have slopes


def test_bench_needs_two_symbols_for_two_sizes() -> None:
    assert BenchSpec(symbols=5).half_symbols == 2
    with pytest.raises(ValueError, match="half"):
        BenchSpec(symbols=1)


# -- the bars directory -------------------------------------------------------------------
def test_keep_dir_is_reused_at_the_same_size_and_regenerated_at_another(tmp_path: Path) -> None:
    notes: list[str] = []
    keep = tmp_path / "keep"
    first = ensure_bench_bars(keep, BenchSpec(symbols=3, days=2), notes.append)
    assert first.generated and first.bars > 0
    assert (keep / "daily" / "symbol=DAAC").is_dir()
    assert (keep / "symbol" / "DAAC.parquet").is_file()

    again = ensure_bench_bars(keep, BenchSpec(symbols=3, days=2), notes.append)
    assert not again.generated and again.bars == first.bars
    assert notes[-1] == f"reusing the bars in {keep}"

    other = ensure_bench_bars(keep, BenchSpec(symbols=2, days=3), notes.append)
    assert other.generated
    assert not (keep / "daily" / "symbol=DAAC").exists()  # the old size is gone
    assert json.loads((keep / MARKER).read_text()) == {"symbols": 2, "days": 3, "seed": 0}


def test_keep_dir_with_foreign_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not the benchmark's")
    with pytest.raises(ForeignBenchDirError):
        ensure_bench_bars(tmp_path, BenchSpec(symbols=2, days=1), lambda _line: None)
    assert ForeignBenchDirError.exit_code == ExitCode.USAGE


def test_long_symbol_has_its_own_marker_and_outlives_another_size(tmp_path: Path) -> None:
    notes: list[str] = []
    keep = tmp_path / "keep"
    ensure_bench_bars(keep, BenchSpec(symbols=2, days=2, long_days=3), notes.append)
    first = ensure_long_bars(keep, BenchSpec(symbols=2, days=2, long_days=3), notes.append)
    assert first.generated and first.bars > 0 and first.symbols == ("DAAA",)
    assert (keep / LONG_DIR / "daily" / "symbol=DAAA").is_dir()

    other_size = BenchSpec(symbols=3, days=2, long_days=3)
    assert ensure_bench_bars(keep, other_size, notes.append).generated
    again = ensure_long_bars(keep, other_size, notes.append)
    assert not again.generated and again.bars == first.bars
    assert notes[-1] == f"reusing the 3-day symbol in {keep / LONG_DIR}"

    longer = ensure_long_bars(keep, BenchSpec(symbols=3, days=2, long_days=4), notes.append)
    assert longer.generated and longer.bars > first.bars
    assert not ensure_bench_bars(keep, other_size, notes.append).generated  # left alone


# -- the real command ---------------------------------------------------------------------
def bench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), "bench", "--symbols", "4",
         "--days", "5", "--repeat", "1", "--long-days", "5", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


SECTIONS = (
    "1. read vs detect_symbol",
    "2. launch on the daily layout",
    "3. orchestrator overhead",
    "4. peak worker RSS, 5 days",
    "5. projection to 1,996 symbols x 750 days",
    "6. machine",
    "targets (issue 8",
    "bench wall time",
)
KEYS = {
    "schema", "spec", "data", "layouts", "launch", "overhead", "peak_worker_rss_mb",
    "long_run", "projection", "machine", "targets", "wall_s", "peak_worker_rss_spread",
}  # fmt: skip
SPREAD_KEYS = {"min", "median", "max", "missing"}


def slope_or_none(value: float | None) -> bool:
    """A marginal value is n/a (the noise of a tiny run can eat its slope) or positive."""
    return value is None or value > 0


@pytest.mark.usefixtures("no_stray_processes")
def test_bench_smoke_text_then_json_reusing_kept_bars(tmp_path: Path) -> None:
    keep = tmp_path / "bars"
    text = bench(tmp_path, "--keep", str(keep))
    assert text.returncode == 0, text.stdout + text.stderr
    for section in SECTIONS:
        assert section in text.stdout, section
    assert "daily" in text.stdout and "symbol" in text.stdout
    assert "generating 4 symbols x 5 days" in text.stderr
    assert "generating 1 symbol x 5 days" in text.stderr
    assert "fixed + marginal, through 2 symbols (the first half) and 4" in text.stdout

    done = bench(tmp_path, "--keep", str(keep), "--json")
    assert done.returncode == 0, done.stderr
    assert "reusing the bars" in done.stderr and "reusing the 5-day symbol" in done.stderr
    report = json.loads(done.stdout)
    assert set(report) == KEYS
    assert report["schema"] == 3
    assert report["spec"] | {"keep": None} == {
        "symbols": 4, "days": 5, "repeat": 1, "workers_max": 2, "seed": 0, "keep": None,
        "long_days": 5,
    }  # fmt: skip
    data = report["data"]
    assert data["generated"] is False and data["dir"] == str(keep.resolve())
    assert data["bars"] > 0 and data["symbol_days"] == 20 and data["bars_per_symbol_day"] > 0
    assert data["half_symbols"] == 2
    assert set(report["layouts"]) == {"daily", "symbol"}
    for row in report["layouts"].values():
        assert row["files"] > 0
        timed = {k: v for k, v in row.items() if k not in ("files", "spread")}
        assert len(timed) == 6 and all(v > 0 for v in timed.values()), row
        assert set(row["spread"]) == {"read_ms_per_100d", "detect_ms_per_100d", "ratio"}
        for s in row["spread"].values():
            assert set(s) == SPREAD_KEYS and 0 < s["min"] <= s["median"] <= s["max"], row
    assert report["layouts"]["symbol"]["files"] == 4
    assert [s["workers"] for s in report["launch"]] == [1, 2]
    for s in report["launch"]:
        assert s["wall_s"] > 0 and s["symbols_per_s"] > 0 and s["mbars_per_s"] > 0
        assert s["speedup"] > 0 and s["efficiency"] > 0
        assert s["peak_worker_rss_mb"] > 0 and s["launcher_rss_mb"] > 0
        assert s["half_wall_s"] > 0
        for key in ("marginal_s_per_symbol", "marginal_mbars_per_s", "marginal_speedup"):
            assert slope_or_none(s[key]), (key, s)
        assert (s["fixed_s"] is None) == (s["marginal_s_per_symbol"] is None)
    assert report["launch"][0]["speedup"] == 1.0
    overhead = report["overhead"]
    assert overhead["launch_wall_s"] > 0 and overhead["bare_wall_s"] > 0
    assert overhead["bare_loop_s"] > 0 and overhead["bare_rss_mb"] > 0
    assert overhead["launch_half_wall_s"] > 0 and overhead["bare_half_wall_s"] > 0
    assert isinstance(overhead["overhead_pct"], float)
    assert slope_or_none(overhead["bare_marginal_s_per_symbol"])
    assert slope_or_none(overhead["launch_marginal_s_per_symbol"])
    assert {"marginal_overhead_pct", "launch_fixed_s", "bare_fixed_s"} <= set(overhead)
    assert report["peak_worker_rss_mb"] > 0
    long_run = report["long_run"]
    assert long_run["days"] == 5 and long_run["bars"] > 0 and long_run["generated"] is False
    assert long_run["detect_wall_s"] > 0 and long_run["peak_worker_rss_mb"] > 0
    projection = report["projection"]
    assert (projection["symbols"], projection["days"], projection["workers"]) == (1996, 750, 2)
    assert projection["seconds"] > 0 and projection["cpu_seconds"] > 0
    assert projection["whole_run_seconds"] > 0 and projection["fixed_s"] >= 0
    assert projection["basis"] in ("marginal", "whole run")
    assert projection["cpu_workers"] >= 1 and projection["assumption"]
    machine = report["machine"]
    assert machine["cpus"] >= 1 and machine["cpus_available"] >= 1
    assert machine["python"] and machine["polars"] and machine["pyarrow"]
    assert "load_1m" in machine
    assert len(report["targets"]) == 7
    for t in report["targets"]:
        assert set(t) == {
            "name", "value", "limit", "unit", "at_most", "met", "at_bench_size", "spread"
        }  # fmt: skip
        assert t["met"] in (True, False, None)
        assert t["spread"] is None or set(t["spread"]) == SPREAD_KEYS
    assert [t["limit"] for t in report["targets"][:2]] == [2.0, 3.0]
    assert report["targets"][0]["value"] == report["layouts"]["daily"]["spread"]["ratio"]["median"]
    assert report["wall_s"] > 0


def test_bench_refuses_a_keep_dir_it_did_not_write(tmp_path: Path) -> None:
    keep = tmp_path / "theirs"
    keep.mkdir()
    (keep / "data.parquet").write_text("x")
    done = bench(tmp_path, "--keep", str(keep))
    assert done.returncode == ExitCode.USAGE
    assert "did not write" in done.stderr


def test_a_marginal_speedup_beyond_the_worker_count_is_noise_not_a_result() -> None:
    from tools.bench.figures import scaling_row
    from tools.bench.stats import Fit

    row = scaling_row(
        2, 2.3, 3.0, 20, 2_000_000, half_wall_s=2.1, fit=Fit(0.02, 1.9), one_worker_marginal_s=0.08
    )
    assert row.marginal_speedup is None and row.marginal_s_per_symbol is None
    assert row.speedup == pytest.approx(3.0 / 2.3)  # the whole run's is still reported
    ok = scaling_row(
        2, 2.3, 3.0, 20, 2_000_000, half_wall_s=1.9, fit=Fit(0.045, 1.4), one_worker_marginal_s=0.08
    )
    assert ok.marginal_speedup == pytest.approx(0.08 / 0.045)
