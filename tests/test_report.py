"""The run report and ``show``: built by the demo's launch and by the commands, one
self-contained page each, and the picture agrees with the events; then opened in a
real headless Chromium (skipped, saying why, only when none is installed)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from browser import find_chromium, png_colours, render, screenshot

from detector.config import AppConfig
from detector.pipeline import detect_symbol
from orchestrator.observe.event_view import event_context
from orchestrator.run.layout import RunLayout

# per day, minute, score, symbol-day, top symbols, direction, session, commits per
# worker, worker memory; then the best event of each type in context
RUN_FIGURES = 9


def report_figures(layout: RunLayout) -> int:
    return RUN_FIGURES + pl.read_parquet(layout.final).get_column("event_type").n_unique()


TYPES = ("volume_spike", "vwap_break", "price_momentum", "opening_range_break", "flush")


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "--root", str(root), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    """A demo run (real launch, two workers): its launch writes the report."""
    directory = tmp_path_factory.mktemp("report") / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "tools", "demo", "--dir", str(directory), "--symbols", "6",
         "--days", "10"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_id,) = RunLayout.run_ids(directory)
    assert "report.html" in done.stdout
    return RunLayout(directory, run_id)


def _self_contained(text: str) -> None:
    # plotly.js once, and nothing fetched: no script or stylesheet from elsewhere.
    assert text.count("plotly.js v") >= 1
    assert (
        len(re.findall(r"<script type=\"text/javascript\">/\*\*\s*\n?\s*\* plotly\.js", text)) <= 1
    )
    assert not re.search(r"<script[^>]*\ssrc=", text)
    assert not re.search(r"<link[^>]*\shref=", text)
    assert not re.search(r"""\s(src|href)=["']?(https?:)?//""", text.split("</script>")[-1])


def test_launch_writes_a_small_self_contained_report(demo: RunLayout) -> None:
    path = demo.launch_dir / "report.html"
    text = path.read_text()
    _self_contained(text)
    assert text.count('class="plotly-graph-div"') == report_figures(demo)
    assert text.count("Best ") == report_figures(demo) - RUN_FIGURES
    assert "Not drawn" not in text
    assert path.stat().st_size < 6_000_000  # plotly.js (~4.7 MB) and small tables
    assert demo.run_id in text and "Partial report" not in text
    assert '<td class="l">state</td><td>completed</td>' in text
    assert "Effective configuration" in text and "&quot;min_spike&quot;" in text
    for kind in ("volume_spike", "opening_range_break"):
        assert "intraday-events show" in text and kind in text


def test_report_rebuilds_and_marks_a_partial_run(demo: RunLayout, tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    done = cli(demo.root, "report", "--run-id", demo.run_id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{report_figures(demo)} figures" in done.stdout and "partial" not in done.stdout
    # Without the final file the events come from the committed shards, marked partial.
    copy = tmp_path / "copy"
    shutil.copytree(demo.root, copy, ignore=shutil.ignore_patterns("raw"))
    copied = RunLayout(copy, demo.run_id)
    plan = json.loads(copied.plan.read_text())
    plan["bars_root"] = str(copy / "raw" / "market_data" / "bars" / "1m")  # not copied
    copied.plan.write_text(json.dumps(plan))
    final = copied.final
    expected = pl.read_parquet(final).height
    final.unlink()
    done = cli(copy, "report", "--run-id", demo.run_id, "--out", str(tmp_path / "p.html"))
    assert done.returncode == 0, done.stderr
    assert "(partial)" in done.stdout and f"{expected:,} events" in done.stdout
    partial = (tmp_path / "p.html").read_text()
    assert "Partial report" in partial
    # Without the bars the events in context are not drawn, saying why.
    assert "Not drawn: " in partial and partial.count("Best ") == report_figures(demo) - RUN_FIGURES


def test_report_of_no_run_is_a_usage_error(tmp_path: Path) -> None:
    done = cli(tmp_path, "report")
    assert done.returncode == 2 and "no run under" in done.stderr


def test_show_draws_the_events_the_run_found(demo: RunLayout) -> None:
    """Every event of the run in a window is one the picture recomputes, and back."""
    events = pl.read_parquet(demo.final)
    rth = events.filter(pl.col("session") == "RTH")  # VWAP runs from the RTH open
    best = rth.sort("score", descending=True).row(0, named=True)
    at = best["timestamp_et"]
    ctx = event_context(best["symbol"], at, demo.root / "raw/market_data/bars/1m", AppConfig())
    lo, hi = at.timestamp() - 3600, at.timestamp() + 3600
    in_run = events.filter(
        (pl.col("symbol") == best["symbol"])
        & pl.col("timestamp_et").dt.epoch("s").is_between(lo, hi)
    )
    key = ["timestamp", "event_type", "direction"]
    assert ctx.events.select(key).sort(key).equals(in_run.select(key).sort(key))
    assert ctx.bars.get_column("vwap").drop_nulls().len() > 0
    assert {"or_high", "or_low", "day_high_so_far", "vol_avg20"} <= set(ctx.bars.columns)


def test_show_cli_single_and_top(demo: RunLayout) -> None:
    events = pl.read_parquet(demo.final)
    first = events.row(0, named=True)
    stamp = first["timestamp_et"].strftime("%Y-%m-%d %H:%M")
    done = cli(demo.root, "show", first["symbol"], stamp, "--minutes", "30")
    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.split(" (")[0])
    _self_contained(page.read_text())
    done = cli(demo.root, "show", "--top", "2", "--type", "vwap_break", "--run-id", demo.run_id)
    assert done.returncode == 0, done.stderr and "2 figures" in done.stdout
    bad = cli(demo.root, "show", first["symbol"], "2001-01-01 10:00")
    assert bad.returncode == 2 and "no bars of" in bad.stderr
    bad = cli(demo.root, "show", first["symbol"], "yesterday")
    assert bad.returncode == 2 and "cannot read the time" in bad.stderr


# -- in a real browser ------------------------------------------------------------------
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary on PATH (chromium, chromium-browser, google-chrome); "
    ".ci/run installs one with apt-get",
)


def _check_in_browser(page: Path, figures: int, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    seen = render(CHROMIUM, page, tmp_path / "profile")
    # plotly draws each figure as a div holding its SVG layers once its script ran.
    assert seen.dom.count('class="plot-container plotly"') == figures, seen.console[-2000:]
    assert len(re.findall(r'class="[^"]*\bsvg-container\b', seen.dom)) == figures
    assert seen.dom.count('class="main-svg"') >= 2 * figures  # plot layers and overlay
    errors = [line for line in seen.console.splitlines() if "Uncaught" in line
              or ("CONSOLE" in line and "rror" in line)]  # fmt: skip
    assert not errors, errors
    png = tmp_path / "shot.png"
    screenshot(CHROMIUM, page, png, tmp_path / "profile")
    assert png_colours(png.read_bytes()) >= 16  # a blank page has one


@needs_chromium
def test_report_renders_in_chromium(demo: RunLayout, tmp_path: Path) -> None:
    _check_in_browser(demo.launch_dir / "report.html", report_figures(demo), tmp_path)


@needs_chromium
def test_show_renders_in_chromium(demo: RunLayout, tmp_path: Path) -> None:
    out = tmp_path / "show.html"
    done = cli(demo.root, "show", "--top", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    _check_in_browser(out, 2, tmp_path)


def test_png_colours_tells_blank_from_drawn() -> None:
    import struct
    import zlib

    def png(rows: list[bytes], width: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body))
            )

        head = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
        raw = b"".join(b"\x00" + r for r in rows)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", head)
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )

    assert png_colours(png([b"\xff" * 30] * 10, 10)) == 1
    assert png_colours(png([bytes(range(i, i + 30)) for i in range(10)], 10)) > 1


@needs_chromium
def test_the_browser_check_sees_a_script_error(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    page = tmp_path / "broken.html"
    page.write_text('<html><body><script>throw new Error("boom")</script></body></html>')
    seen = render(CHROMIUM, page, tmp_path / "profile")
    assert "Uncaught Error: boom" in seen.console


def test_a_run_without_events_still_gets_every_figure(tmp_path: Path) -> None:
    """Zero events (every symbol quiet or failed): empty figures, no error."""
    from datetime import datetime as dt

    from detector.schema import empty_events
    from orchestrator.observe.html_page import figure_count, page
    from orchestrator.observe.report import report_sections
    from orchestrator.observe.run_data import Timeline, aggregate
    from orchestrator.run.snapshot import RunSnapshot

    events = aggregate(empty_events(), "final file")
    empty = pl.DataFrame(schema={"at": pl.Datetime("us"), "worker": pl.Int64, "symbols": pl.Int64})
    timeline = Timeline(empty, empty.rename({"symbols": "rss_gb"}))
    snapshot = RunSnapshot(run_id="events_intraday_20250101", taken_at=dt.now(), state="completed")
    sections = report_sections(snapshot, events, timeline, AppConfig())
    assert figure_count(sections) == RUN_FIGURES
    assert "No events." in page("empty", sections)


def test_show_reads_the_one_file_per_symbol_layout(demo: RunLayout, tmp_path: Path) -> None:
    """The same bars in the symbol layout give the same picture and events."""
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    bars = tmp_path / "bars"
    generate_demo_bars(DemoDataSpec(out=bars, symbols=6, days=10, layout="symbol"))
    events = pl.read_parquet(demo.final)
    row = events.filter(pl.col("session") == "RTH").row(0, named=True)
    daily = event_context(
        row["symbol"], row["timestamp_et"], demo.root / "raw/market_data/bars/1m", AppConfig()
    )
    single = event_context(row["symbol"], row["timestamp_et"], bars, AppConfig())
    assert single.bars.equals(daily.bars) and single.events.equals(daily.events)
    stamp = row["timestamp_et"].strftime("%Y-%m-%dT%H:%M")
    done = cli(
        demo.root,
        "show",
        row["symbol"],
        stamp,
        "--bars",
        str(bars),
        "--out",
        str(tmp_path / "s.html"),
    )
    assert done.returncode == 0, done.stderr
    assert "1 figures" in done.stdout


def test_a_report_that_cannot_be_written_never_fails_the_launch(
    demo: RunLayout, tmp_path: Path
) -> None:
    """A directory where the report goes: the run completes, exit 0, one warning line."""
    run_id = "events_intraday_20250102"
    root = tmp_path / "root"
    (root / "logs" / "launch" / run_id / "report.html").mkdir(parents=True)
    bars = demo.root / "raw" / "market_data" / "bars" / "1m"
    done = cli(root, "launch", "--run-id", run_id, "--bars", str(bars), "--workers", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert (
        "report not written (" in done.stderr
        and "`intraday-events report` retries it" in done.stderr
    )
    assert RunLayout(root, run_id).final.is_file()


@pytest.mark.parametrize("layout", ["daily", "symbol"])
@pytest.mark.parametrize("min_atr_days", [2, 14, 40])
def test_a_context_from_the_days_it_reads_equals_one_from_the_whole_history(
    tmp_path: Path, layout: str, min_atr_days: int
) -> None:
    """The report and `show` read only the window's days and the days before them that
    ATR% and the quiet-base test read: bars, features and events must be those of the
    whole history, for events early in the history (fewer prior days than that), late
    in it, in winter and in summer (an ET day on one or two UTC dates)."""
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    bars = tmp_path / "bars"
    generate_demo_bars(
        DemoDataSpec(out=bars, symbols=2, days=70, layout=layout, start=dt.date(2026, 1, 26))
    )
    app = AppConfig()
    cb = replace(app.detector.consolidation_break, min_atr_days=min_atr_days)
    app = replace(app, detector=replace(app.detector, consolidation_break=cb))
    symbol = "DAAA"
    events = detect_symbol(symbol, bars, app)
    assert events.height > 50
    picks = events.sort("timestamp").gather_every(max(events.height // 12, 1))
    for row in picks.iter_rows(named=True):
        at = row["timestamp_et"]
        recent = event_context(symbol, at, bars, app, minutes=45)
        whole = event_context(symbol, at, bars, app, minutes=45, whole_history=True)
        relative = ["row", "day_no"]  # row numbers counted from the first bar read
        assert recent.bars.drop(relative).equals(whole.bars.drop(relative)), at
        assert recent.events.equals(whole.events), at
        assert recent.events.height >= 1


def _contexts_agree(bars: Path, app: AppConfig, symbol: str = "DAAA") -> int:
    events = detect_symbol(symbol, bars, app)
    picks = events.sort("timestamp").gather_every(max(events.height // 10, 1))
    for row in picks.iter_rows(named=True):
        at = row["timestamp_et"]
        recent = event_context(symbol, at, bars, app, minutes=45)
        whole = event_context(symbol, at, bars, app, minutes=45, whole_history=True)
        relative = ["row", "day_no"]
        assert recent.bars.drop(relative).equals(whole.bars.drop(relative)), at
        assert recent.events.equals(whole.events), at
    return picks.height


def test_a_context_reads_back_past_empty_files_and_gaps(tmp_path: Path) -> None:
    """Files without clean bars (an empty file for every calendar date, two days in three
    missing) do not count as the trading days the features need."""
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    bars = tmp_path / "bars"
    generate_demo_bars(DemoDataSpec(out=bars, symbols=1, days=90, start=dt.date(2026, 1, 26)))
    folder = bars / "symbol=DAAA"
    files = sorted(folder.glob("date=*.parquet"))
    empty = pl.read_parquet(files[0]).clear()
    for i, path in enumerate(files):
        if i % 3:
            path.unlink()
    day = dt.date(2026, 1, 20)
    while day <= dt.date(2026, 6, 30):
        path = folder / f"date={day.isoformat()}.parquet"
        if not path.exists():
            empty.write_parquet(path)
        day += dt.timedelta(days=1)
    assert _contexts_agree(bars, AppConfig()) >= 5


def test_a_context_reads_a_symbol_in_both_layouts_as_its_whole_history_does(
    tmp_path: Path,
) -> None:
    """Daily files for the later days, one file per symbol for all of them: the days the
    context reads come from both, as in the whole history."""
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    bars = tmp_path / "bars"
    start = dt.date(2026, 1, 26)
    generate_demo_bars(DemoDataSpec(out=bars, symbols=1, days=80, start=start))
    other = tmp_path / "single"
    generate_demo_bars(
        DemoDataSpec(out=other, symbols=1, days=80, layout="symbol", start=start, seed=9)
    )
    # Every other minute only: the daily files' rows between them count.
    single = pl.read_parquet(other / "DAAA.parquet")
    single.filter(pl.col("timestamp").dt.minute() % 2 == 0).write_parquet(bars / "DAAA.parquet")
    folder = bars / "symbol=DAAA"
    files = sorted(folder.glob("date=*.parquet"))
    empty = pl.read_parquet(files[0]).clear()
    for path in files[:30]:
        path.unlink()
    day = start
    while day <= dt.date(2026, 6, 30):  # an empty daily file for every calendar date
        path = folder / f"date={day.isoformat()}.parquet"
        if not path.exists():
            empty.write_parquet(path)
        day += dt.timedelta(days=1)
    assert _contexts_agree(bars, AppConfig()) >= 5


def test_a_daily_file_whose_name_is_no_date_makes_the_read_take_the_whole_history(
    tmp_path: Path,
) -> None:
    """Where the oldest daily file of the recent read has no date in its name, the read
    cannot tell which days the per-symbol file alone would give: the whole history."""
    from detector.bars import bar_files, load_recent_bars, load_symbol_bars
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    bars = tmp_path / "bars"
    generate_demo_bars(DemoDataSpec(out=bars, symbols=1, days=60, start=dt.date(2026, 1, 26)))
    folder = bars / "symbol=DAAA"
    (folder / "date=2026-02-27.parquet").rename(folder / "date=2026-02-2x.parquet")
    names = [p.name for p in bar_files("DAAA", bars)]
    odd = names.index("date=2026-02-2x.parquet")
    prior, window = 15, 2 * (15 + 2)
    days = sorted({dt.date.fromisoformat(n[5:15]) for n in names if n != names[odd]})
    # The ET day whose recent read starts at the odd file: window files up to the day after.
    day = next(
        d
        for d in days
        if sum(n[5:15] <= (d + dt.timedelta(days=1)).isoformat() for n in names) == odd + window
    )
    recent = load_recent_bars("DAAA", bars, day, day, prior)
    assert recent.bars.equals(load_symbol_bars("DAAA", bars).bars)
