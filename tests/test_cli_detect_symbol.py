"""The detect-symbol command: a thin shim with clear errors and exit statuses."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner

from detector.schema import EVENT_SCHEMA
from tools.cli import cli

from builders import busy_days, write_daily


def _workspace(tmp_path: Path) -> Path:
    write_daily(tmp_path / "raw" / "market_data" / "bars" / "1m", "ABC", busy_days(3))
    return tmp_path


def test_detect_symbol_writes_events_and_prints_summary(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    out = tmp_path / "out" / "abc.parquet"
    result = CliRunner().invoke(
        cli, ["--root", str(root), "detect-symbol", "ABC", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    events = pl.read_parquet(out)
    assert dict(events.schema) == EVENT_SCHEMA
    assert f"ABC: {events.height} events" in result.output
    assert "volume_spike" in result.output
    assert not list(out.parent.glob("*.tmp"))


def test_detect_symbol_raw_and_bars_option(tmp_path: Path) -> None:
    bars = tmp_path / "elsewhere"
    write_daily(bars, "ABC", busy_days(2))
    out_raw, out = tmp_path / "raw.parquet", tmp_path / "events.parquet"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli,
            [
                "--root",
                str(tmp_path),
                "detect-symbol",
                "ABC",
                "--bars",
                str(bars),
                "--raw",
                "--out",
                str(out_raw),
            ],
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            cli,
            [
                "--root",
                str(tmp_path),
                "detect-symbol",
                "ABC",
                "--bars",
                str(bars),
                "--out",
                str(out),
            ],
        ).exit_code
        == 0
    )
    assert pl.read_parquet(out_raw).height >= pl.read_parquet(out).height > 0


def test_root_from_environment(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    result = CliRunner().invoke(
        cli, ["detect-symbol", "ABC"], env={"INTRADAY_EVENTS_ROOT": str(root)}
    )
    assert result.exit_code == 0, result.output


def test_invalid_symbol_exit_2_and_missing_bars_exit_3(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["--root", str(tmp_path), "detect-symbol", "../etc"])
    assert bad.exit_code == 2 and "invalid symbol" in bad.output
    missing = runner.invoke(cli, ["--root", str(tmp_path), "detect-symbol", "NOPE"])
    assert missing.exit_code == 3 and "no bar files for NOPE" in missing.output


def test_malformed_bars_exit_3_naming_file_and_column(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    victim = sorted((root / "raw/market_data/bars/1m/symbol=ABC").glob("*.parquet"))[0]
    pl.read_parquet(victim).drop("close").write_parquet(victim)
    result = CliRunner().invoke(cli, ["--root", str(root), "detect-symbol", "ABC"])
    assert result.exit_code == 3
    assert str(victim) in result.output and "'close'" in result.output


def test_reference_data_filters_get_one_notice(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    config = tmp_path / "legacy.yaml"
    config.write_text("processing:\n  intraday_events:\n    global_filters: {min_float: 1000000}\n")
    result = CliRunner().invoke(
        cli, ["--root", str(root), "--config", str(config), "detect-symbol", "ABC"]
    )
    assert result.exit_code == 0, result.output
    assert (
        result.output.count(
            "notice: ignoring filters that need reference data: global_filters.min_float"
        )
        == 1
    )


def test_demo_data_then_detect_symbol_each_symbol(tmp_path: Path) -> None:
    """The acceptance path: demo bars, then detect-symbol (raw and thinned) per symbol."""
    runner = CliRunner()
    bars = tmp_path / "raw/market_data/bars/1m"
    made = runner.invoke(cli, ["demo-data", "--out", str(bars), "--symbols", "3", "--days", "10"])
    assert made.exit_code == 0, made.output
    key = ["symbol", "timestamp", "event_type", "direction"]
    for symbol in pl.read_parquet(bars / "symbols.parquet")["symbol"]:
        paths = {}
        for mode in ("raw", "events"):
            paths[mode] = tmp_path / f"{symbol}_{mode}.parquet"
            args = ["--root", str(tmp_path), "detect-symbol", symbol, "--out", str(paths[mode])]
            result = runner.invoke(cli, [*args, "--raw"] if mode == "raw" else args)
            assert result.exit_code == 0, result.output
        events, raw = pl.read_parquet(paths["events"]), pl.read_parquet(paths["raw"])
        assert dict(events.schema) == EVENT_SCHEMA
        assert events.select(key).is_unique().all()
        assert events.equals(events.sort(key))
        assert raw.height >= events.height > 0
        assert events.select(key).join(raw.select(key), on=key, how="anti").is_empty()


def test_detect_symbol_unreadable_file_is_exit_3_unless_skipped(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    day = sorted((root / "raw" / "market_data" / "bars" / "1m" / "symbol=ABC").glob("*"))[1]
    day.write_bytes(b"")
    runner = CliRunner()
    failed = runner.invoke(cli, ["--root", str(root), "detect-symbol", "ABC"])
    assert failed.exit_code == 3
    assert f"unreadable bar file {day}: " in failed.output and "Traceback" not in failed.output
    skipped = runner.invoke(cli, ["--root", str(root), "detect-symbol", "ABC", "--skip-unreadable"])
    assert skipped.exit_code == 0, skipped.output
    assert f"skipped unreadable bar file {day}" in skipped.output
    assert "1 files skipped" in skipped.output
