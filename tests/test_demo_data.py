"""The demo bar generator: layout, dtypes, time zones, determinism, and detectors firing."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import polars as pl
import pytest
from click.testing import CliRunner

from detector import detect_symbol
from detector.symbols import is_valid_symbol
from tools.cli import cli
from tools.demo.data import (
    DEFAULT_START,
    DemoDataSpec,
    DemoDataSummary,
    demo_symbols,
    generate_demo_bars,
)

ET = "America/New_York"
EXPECTED_SCHEMA = {
    "timestamp": pl.Datetime("ms", "UTC"),
    "open": pl.Float32,
    "high": pl.Float32,
    "low": pl.Float32,
    "close": pl.Float32,
    "volume": pl.Int64,
    "vwap": pl.Float32,
    "transactions": pl.Int32,
}
DAILY_FILE = re.compile(r"^symbol=([A-Z0-9._-]+)/date=(\d{4}-\d{2}-\d{2})\.parquet$")


def _generate(
    out: Path,
    *,
    symbols: int = 2,
    days: int = 4,
    seed: int = 0,
    layout: Literal["daily", "symbol"] = "daily",
    start: dt.date = DEFAULT_START,
) -> DemoDataSummary:
    spec = DemoDataSpec(out, symbols, days, seed=seed, layout=layout, start=start)
    return generate_demo_bars(spec)


def _bar_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if p.name != "symbols.parquet")


def _read_daily(root: Path) -> pl.DataFrame:
    """Every bar with its ``symbol`` and its file's ``file_date``, checking file names."""
    frames = []
    for path in _bar_files(root):
        match = DAILY_FILE.match(path.relative_to(root).as_posix())
        assert match, path
        frame = pl.read_parquet(path)
        assert dict(frame.schema) == EXPECTED_SCHEMA, path
        frames.append(
            frame.with_columns(
                symbol=pl.lit(match[1]), file_date=pl.lit(dt.date.fromisoformat(match[2]))
            )
        )
    return pl.concat(frames).sort("symbol", "timestamp")


def _with_et(bars: pl.DataFrame) -> pl.DataFrame:
    et = pl.col("timestamp").dt.convert_time_zone(ET)
    return bars.with_columns(
        et_date=et.dt.date(), et_minute=et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute()
    )


def test_same_seed_same_rows_other_seed_differs(tmp_path: Path) -> None:
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    _generate(tmp_path / "c", seed=1)
    first, second, other = (_read_daily(tmp_path / n) for n in "abc")
    assert first.equals(second)
    names = [p.relative_to(tmp_path / "a") for p in _bar_files(tmp_path / "a")]
    assert names == [p.relative_to(tmp_path / "b") for p in _bar_files(tmp_path / "b")]
    assert not first.equals(other)


def test_daily_layout_dtypes_and_symbols_file(tmp_path: Path) -> None:
    summary = _generate(tmp_path, symbols=3, days=5)
    bars = _read_daily(tmp_path)  # checks every file name and schema
    assert summary.symbols == tuple(demo_symbols(3))
    assert summary.symbol_days == 15
    assert summary.bars == bars.height
    assert summary.files == len(_bar_files(tmp_path))
    assert sorted(bars["symbol"].unique()) == list(summary.symbols)
    listing = pl.read_parquet(tmp_path / "symbols.parquet")
    assert dict(listing.schema) == {"symbol": pl.String}
    assert listing["symbol"].to_list() == list(summary.symbols)
    assert not list(tmp_path.rglob("*.tmp"))
    assert pl.read_parquet_schema(_bar_files(tmp_path)[0]) == EXPECTED_SCHEMA


def test_partitions_are_utc_dates_and_winter_evenings_move_to_next_date(tmp_path: Path) -> None:
    _generate(tmp_path, symbols=3, days=5)  # 2026-02-02..06: EST, UTC-5
    bars = _with_et(_read_daily(tmp_path))
    assert (bars["timestamp"].dt.date() == bars["file_date"]).all()
    moved = bars.filter(pl.col("file_date") != pl.col("et_date"))
    # ET 19:00-19:59 is 00:00-00:59 UTC of the next day in winter; nothing else moves.
    assert moved.height > 0
    assert (moved["et_minute"] >= 19 * 60).all()
    assert (moved["file_date"] == moved["et_date"] + dt.timedelta(days=1)).all()
    assert dt.date(2026, 2, 7) in set(moved["file_date"])  # Friday evening -> Saturday file


def test_bars_only_in_extended_hours_on_weekdays_with_consistent_ohlc(tmp_path: Path) -> None:
    _generate(tmp_path, symbols=2, days=6)
    bars = _with_et(_read_daily(tmp_path))
    assert bars["et_minute"].is_between(4 * 60, 20 * 60, closed="left").all()
    assert (bars["et_date"].dt.weekday() <= 5).all()
    assert bars.group_by("symbol").agg(pl.col("et_date").n_unique())["et_date"].to_list() == [6, 6]
    assert not bars.select("symbol", "timestamp").is_duplicated().any()
    assert (bars["timestamp"].dt.second() == 0).all()
    checks = bars.select(
        (pl.col("low") > 0).all().alias("positive"),
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
        pl.col("vwap").is_between(pl.col("low"), pl.col("high")).all().alias("vwap"),
        (pl.col("volume") >= 1).all().alias("volume"),
        (pl.col("transactions") >= 1).all().alias("transactions"),
    )
    assert all(checks.row(0)), checks
    # RTH has a bar almost every minute, PM/AH are sparse.
    rth = pl.col("et_minute").is_between(9 * 60 + 30, 16 * 60, closed="left")
    per_day = bars.group_by("symbol", "et_date").agg(rth=rth.sum(), ext=(~rth).sum())
    assert (per_day["rth"] >= 370).all()
    assert (per_day["ext"] <= 0.5 * 570).all()


def test_et_to_utc_follows_the_dst_change(tmp_path: Path) -> None:
    # Friday 2026-03-06 is EST (09:30 ET = 14:30 UTC), Monday 03-09 EDT (= 13:30 UTC).
    _generate(tmp_path, symbols=2, days=2, start=dt.date(2026, 3, 6))
    bars = _read_daily(tmp_path)
    utc = pl.col("timestamp")
    window = utc.dt.hour().cast(pl.Int32) * 60 + utc.dt.minute()
    counts = (
        bars.filter(window.is_between(13 * 60 + 30, 14 * 60, closed="left"))
        .group_by("symbol", pl.col("timestamp").dt.date().alias("d"))
        .len()
    )
    winter = counts.filter(pl.col("d") == dt.date(2026, 3, 6))["len"]
    summer = counts.filter(pl.col("d") == dt.date(2026, 3, 9))["len"]
    assert (winter < 20).all()  # 08:30-09:00 ET: pre-market, sparse
    assert (summer >= 28).all() and summer.len() == 2  # 09:30-10:00 ET: every minute


def test_symbol_layout_holds_the_same_rows(tmp_path: Path) -> None:
    _generate(tmp_path / "daily", symbols=2, days=3)
    summary = _generate(tmp_path / "symbol", symbols=2, days=3, layout="symbol")
    daily = _read_daily(tmp_path / "daily").drop("file_date")
    files = _bar_files(tmp_path / "symbol")
    assert [p.name for p in files] == [f"{s}.parquet" for s in summary.symbols]
    assert summary.files == 2
    assert (tmp_path / "symbol" / "symbols.parquet").is_file()
    per_symbol = pl.concat(
        pl.read_parquet(p).with_columns(symbol=pl.lit(p.stem)) for p in files
    ).sort("symbol", "timestamp")
    assert all(dict(pl.read_parquet_schema(p)) == EXPECTED_SCHEMA for p in files)
    assert per_symbol.equals(daily)


def test_demo_symbols_are_plain_stable_and_unique() -> None:
    names = demo_symbols(20_000)  # past 26**3: the names widen but stay unique
    assert names[:3] == ["DAAA", "DAAB", "DAAC"]
    assert demo_symbols(5) == names[:5]
    assert len(set(names)) == len(names)
    assert all(is_valid_symbol(s) for s in names)


def test_spec_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DemoDataSpec(out=tmp_path, symbols=0, days=5)
    with pytest.raises(ValueError):
        DemoDataSpec(out=tmp_path, symbols=1, days=0)


def test_cli_writes_bars_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "bars"
    result = CliRunner().invoke(
        cli, ["demo-data", "--out", str(out), "--symbols", "2", "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "2 symbols" in result.output and "6 symbol-days" in result.output
    assert str(out) in result.output
    assert _read_daily(out)["symbol"].unique().sort().to_list() == ["DAAA", "DAAB"]
    assert (out / "symbols.parquet").is_file()


def test_demo_data_makes_all_six_detectors_fire(tmp_path: Path) -> None:
    summary = generate_demo_bars(DemoDataSpec(out=tmp_path, symbols=20, days=60))
    events = pl.concat(detect_symbol(s, tmp_path) for s in summary.symbols)
    found = set(events.select("event_type", "direction").unique().iter_rows())
    two_way = (
        "volume_spike",
        "vwap_break",
        "price_momentum",
        "consolidation_break",
        "opening_range_break",
    )
    expected = {(t, d) for t in two_way for d in ("up", "down")} | {("flush", "down")}
    assert expected <= found, expected - found
    # Volume bursts are injected outside RTH too.
    spikes = events.filter(pl.col("event_type") == "volume_spike")
    assert {"PM", "RTH", "AH"} <= set(spikes["session"])


def test_demo_bars_carry_the_opening_and_closing_auction_surges(tmp_path: Path) -> None:
    generate_demo_bars(DemoDataSpec(out=tmp_path, symbols=3, days=10))
    bars = _read_daily(tmp_path).with_columns(
        et=pl.col("timestamp").dt.convert_time_zone("America/New_York")
    )
    bars = bars.with_columns(
        day=pl.col("et").dt.date(),
        clock=pl.col("et").dt.strftime("%H:%M"),
        day_median=pl.col("volume").median().over("symbol", pl.col("et").dt.date()),
    )
    auctions = bars.filter(pl.col("clock").is_in(["09:30", "16:00"]))
    # Every symbol-day has both crosses, each many times the day's median minute.
    assert auctions.height == 3 * 10 * 2
    assert (auctions["volume"] >= 10 * auctions["day_median"]).all()
    events = pl.concat(detect_symbol(s, tmp_path) for s in demo_symbols(3))
    assert not events["timestamp_et"].dt.strftime("%H:%M").is_in(["09:30", "16:00"]).any()
