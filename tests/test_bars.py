"""Bars loading: both layouts, cleaning counts, corrupt and malformed files, symbols."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from detector.bars import bar_files, load_symbol_bars
from detector.cleaning import clean_bars, normalize_types
from detector.errors import BarsSchemaError, InvalidSymbolError, NoBarsError, UnreadableBarFileError
from detector.pipeline import detect_bars, detect_symbol, detect_symbol_result
from detector.symbols import is_valid_symbol, validate_symbols

from builders import bars_frame, busy_days, flat_bars, loose_config, write_daily


def test_daily_and_symbol_layouts_give_identical_events(tmp_path: Path) -> None:
    frame = busy_days(4)
    write_daily(tmp_path / "daily", "ABC", frame)
    (tmp_path / "single").mkdir()
    frame.write_parquet(tmp_path / "single" / "ABC.parquet")
    cfg = loose_config()
    daily = detect_symbol("ABC", tmp_path / "daily", cfg)
    single = detect_symbol("ABC", tmp_path / "single", cfg)
    assert daily.height > 0
    assert daily.equals(single)


def test_reads_only_required_columns_and_counts_files(tmp_path: Path) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(2))
    loaded = load_symbol_bars("ABC", tmp_path)
    assert loaded.stats.files_read == len(files) == bar_files("ABC", tmp_path).__len__()
    assert set(loaded.bars.columns) == {
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "ts_et",
        "date",
        "minute",
    }
    assert loaded.bars.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert loaded.bars.schema["open"] == pl.Float64


@pytest.mark.parametrize("damage", [b"PAR1 this is not parquet", b""])
def test_unreadable_day_file_fails_naming_the_file(tmp_path: Path, damage: bytes) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(3))
    files[1].write_bytes(damage)
    with pytest.raises(UnreadableBarFileError) as info:
        detect_symbol_result("ABC", tmp_path, loose_config())
    assert info.value.path == files[1] and info.value.reason
    assert str(files[1]) in str(info.value) and "--skip-unreadable" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_corrupt_day_file_is_skipped_named_and_counted_when_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(3))
    good_rows = sum(pl.read_parquet(f).height for i, f in enumerate(files) if i != 1)
    files[1].write_bytes(b"PAR1 this is not parquet")
    with caplog.at_level(logging.WARNING):
        result = detect_symbol_result("ABC", tmp_path, loose_config(), skip_unreadable=True)
    assert result.stats.files_skipped == (str(files[1]),)
    assert result.stats.files_read == len(files) - 1
    assert str(files[1]) in caplog.text
    assert result.stats.rows_read == good_rows  # the other days still count
    assert result.events.height > 0


def test_truncated_day_file_is_skipped(tmp_path: Path) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(2))
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableBarFileError):
        load_symbol_bars("ABC", tmp_path)
    skipped = load_symbol_bars("ABC", tmp_path, skip_unreadable=True).stats.files_skipped
    assert skipped == (str(files[0]),)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(2))
    pl.read_parquet(files[1]).drop("volume").write_parquet(files[1])
    with pytest.raises(BarsSchemaError) as info:
        load_symbol_bars("ABC", tmp_path)
    assert info.value.path == files[1] and info.value.column == "volume"
    assert "missing" in str(info.value)


def test_unusable_type_names_file_and_column(tmp_path: Path) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(2))
    pl.read_parquet(files[0]).with_columns(pl.col("timestamp").cast(pl.String)).write_parquet(
        files[0]
    )
    with pytest.raises(BarsSchemaError) as info:
        load_symbol_bars("ABC", tmp_path)
    assert info.value.path == files[0] and info.value.column == "timestamp"


def test_mixed_but_usable_types_across_files_are_normalised(tmp_path: Path) -> None:
    files = write_daily(tmp_path, "ABC", busy_days(2))
    pl.read_parquet(files[0]).with_columns(
        pl.col("timestamp").dt.cast_time_unit("us"),
        pl.col("volume").cast(pl.Float64),
        pl.col("close").cast(pl.Float64),
    ).write_parquet(files[0])
    loaded = load_symbol_bars("ABC", tmp_path)
    assert loaded.stats.files_skipped == ()
    assert loaded.bars.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert loaded.bars.schema["volume"] == pl.Int64


def test_no_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoBarsError, match="no bar files for ZZZ"):
        detect_symbol("ZZZ", tmp_path)


@pytest.mark.parametrize("bad", ["../etc", "abc", "A" * 17, "", "..", "A/B", "A B", "ÄBC", "."])
def test_symbols_that_are_not_plain_tickers_are_rejected_before_any_path(
    tmp_path: Path, bad: str
) -> None:
    assert not is_valid_symbol(bad)
    with pytest.raises(InvalidSymbolError):
        detect_symbol(bad, tmp_path)


def test_valid_symbols_and_list_validation() -> None:
    for good in ("A", "BRK.B", "ABC-W", "X_1", "A" * 16, "1234"):
        assert is_valid_symbol(good)
    assert validate_symbols(["AAA", " BBB ", "", "AAA"]) == ["AAA", "BBB"]
    with pytest.raises(InvalidSymbolError) as info:
        validate_symbols(["AAA", "bad", "../x"])
    assert info.value.symbols == ["bad", "../x"]


def test_cleaning_counts_each_step() -> None:
    day = "2026-03-10"
    rows = flat_bars(day, "09:30", 10, price=5.0, spread=0.1)
    rows += [
        (day, "09:40", 0.0, 5.1, 4.9, 5.0, 100),  # non-positive price
        (day, "09:41", 5.0, 4.8, 4.9, 5.0, 100),  # high < low
        (day, "09:42", 5.0, 5.1, 4.9, 5.0, -1),  # negative volume
        (day, "03:59", 5.0, 5.1, 4.9, 5.0, 100),  # before 04:00 ET
        (day, "20:00", 5.0, 5.1, 4.9, 5.0, 100),  # at 20:00 ET
        (day, "09:35", 6.0, 6.1, 5.9, 6.0, 777),  # repeats 09:35: the later row wins
    ]
    frame = bars_frame(rows)
    frame = pl.concat(
        [
            frame,
            bars_frame([(day, "09:43", 5.0, 5.1, 4.9, 5.0, 1)]).with_columns(
                close=pl.lit(float("nan"))
            ),
        ]
    )
    frame = pl.concat(
        [
            frame,
            bars_frame([(day, "09:44", 5.0, 5.1, 4.9, 5.0, 1)]).with_columns(
                open=pl.lit(None, pl.Float64)
            ),
        ]
    )
    canonical = normalize_types(frame, "UTC")  # rows out of time order in, sorted out
    clean, stats = clean_bars(canonical, day_start_minute=240, day_end_minute=1200)
    assert stats.rows_read == len(rows) + 2
    assert stats.dropped_bad_price == 3  # zero, NaN, null
    assert stats.dropped_high_below_low == 1
    assert stats.dropped_bad_volume == 1
    assert stats.dropped_duplicate_timestamp == 1
    assert stats.dropped_outside_hours == 2
    assert stats.rows_kept == clean.height == 10
    assert clean["timestamp"].is_sorted()
    assert clean.filter(pl.col("minute") == 9 * 60 + 35)["volume"].to_list() == [777]


def test_duplicate_timestamps_across_files_keep_the_later_file(tmp_path: Path) -> None:
    frame = busy_days(1)
    write_daily(tmp_path, "ABC", frame)
    # The per-symbol file is read after the daily files: its rows win.
    frame.with_columns(volume=pl.lit(1, pl.Int64)).write_parquet(tmp_path / "ABC.parquet")
    loaded = load_symbol_bars("ABC", tmp_path)
    assert loaded.stats.dropped_duplicate_timestamp == frame.height
    assert loaded.bars["volume"].unique().to_list() == [1]


def test_detect_bars_matches_detect_symbol(tmp_path: Path) -> None:
    frame = busy_days(3)
    write_daily(tmp_path, "ABC", frame)
    cfg = loose_config()
    assert detect_bars("ABC", frame, cfg).events.equals(detect_symbol("ABC", tmp_path, cfg))


@pytest.mark.parametrize("naive_first", [True, False])
def test_naive_and_zone_aware_files_of_one_symbol_are_each_read_right(
    tmp_path: Path, naive_first: bool
) -> None:
    """With a non-UTC naive zone, a naive day beside zone-aware days keeps its own meaning
    (a scan over all files would read every file with the first file's type)."""
    files = write_daily(tmp_path, "ABC", busy_days(3))
    expected = pl.concat([pl.read_parquet(f) for f in files]).get_column("timestamp")
    naive = files[0] if naive_first else files[-1]
    # The same instants written as New York wall-clock times without a zone.
    pl.read_parquet(naive).with_columns(
        pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
    ).write_parquet(naive)
    loaded = load_symbol_bars("ABC", tmp_path, naive_timezone="America/New_York")
    got = loaded.bars.get_column("timestamp")
    assert got.to_list() == expected.dt.cast_time_unit("ms").dt.convert_time_zone("UTC").to_list()


# -- cleaning's fast paths against its definition -------------------------------------------


def reference_clean(frame: pl.DataFrame) -> tuple[pl.DataFrame, tuple[int, ...]]:
    """The cleaning steps written plainly: stable sort, flags, keep the last repeat, ET clock."""
    frame = frame.sort("timestamp", maintain_order=True)
    prices = ("open", "high", "low", "close")
    flags = frame.select(
        bad_ts=pl.col("timestamp").is_null(),
        bad_price=~pl.all_horizontal([pl.col(c).is_not_null() & (pl.col(c) > 0) for c in prices]),
        high_low=(pl.col("high") < pl.col("low")).fill_null(False),
        bad_volume=pl.col("volume").is_null() | (pl.col("volume") < 0),
    )
    bad_ts = flags["bad_ts"]
    bad_price = ~bad_ts & flags["bad_price"]
    high_low = ~bad_ts & ~bad_price & flags["high_low"]
    bad_volume = ~bad_ts & ~bad_price & ~high_low & flags["bad_volume"]
    valid = frame.filter(~(bad_ts | bad_price | high_low | bad_volume))
    deduped = valid.unique("timestamp", keep="last", maintain_order=True)
    et = pl.col("timestamp").dt.convert_time_zone("America/New_York")
    clocked = deduped.with_columns(
        ts_et=et, date=et.dt.date(), minute=et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute()
    )
    kept = clocked.filter(pl.col("minute").is_between(240, 1200, "left"))
    counts = (
        int(bad_ts.sum()),
        int(bad_price.sum()),
        int(high_low.sum()),
        int(bad_volume.sum()),
        valid.height - deduped.height,
        clocked.height - kept.height,
    )
    return kept, counts


def dirty_frame(seed: int, *, shuffle: bool, dirty: bool) -> pl.DataFrame:
    """Two days of bars as two files would give them: repeats within and across the
    files (the second file's rows later), bad rows, bars outside 04:00-20:00 ET."""
    import random

    rng = random.Random(seed)
    first = busy_days(2, start="2026-03-06").select(
        "timestamp",
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close")),
        "volume",
    )
    again = first.sample(300, seed=seed).with_columns(volume=pl.col("volume") + 1)
    frame = pl.concat([first, again])
    if dirty:
        n = frame.height
        picks = {k: set(rng.sample(range(n), 25)) for k in ("ts", "price", "hl", "vol", "nan")}
        index = pl.int_range(pl.len())

        def where(k: str) -> pl.Expr:
            return index.is_in(sorted(picks[k]))

        frame = frame.with_columns(
            timestamp=pl.when(where("ts")).then(None).otherwise(pl.col("timestamp")),
            open=pl.when(where("price")).then(0.0).otherwise(pl.col("open")),
            low=pl.when(where("hl")).then(pl.col("high") + 1).otherwise(pl.col("low")),
            volume=pl.when(where("vol")).then(-3).otherwise(pl.col("volume")),
            close=pl.when(where("nan")).then(float("nan")).otherwise(pl.col("close")),
        )
        frame = pl.concat(
            [frame, first.head(5).with_columns(pl.col("timestamp").dt.offset_by("-9h"))]
        )
    if shuffle:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    return normalize_types(frame, "UTC")


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dirty", [False, True])
def test_cleaning_equals_its_plain_definition(seed: int, shuffle: bool, dirty: bool) -> None:
    frame = dirty_frame(seed, shuffle=shuffle, dirty=dirty)
    expected, counts = reference_clean(frame)
    clean, stats = clean_bars(frame, day_start_minute=240, day_end_minute=1200)
    assert clean.equals(expected)
    assert (
        stats.dropped_bad_timestamp,
        stats.dropped_bad_price,
        stats.dropped_high_below_low,
        stats.dropped_bad_volume,
        stats.dropped_duplicate_timestamp,
        stats.dropped_outside_hours,
    ) == counts
    assert stats.rows_read == frame.height
    assert stats.rows_kept + sum(counts) == frame.height
    assert clean["timestamp"].is_sorted()


def test_sorted_clean_bars_go_through_unchanged() -> None:
    frame = normalize_types(busy_days(2), "UTC")
    clean, stats = clean_bars(frame, day_start_minute=240, day_end_minute=1200)
    assert stats.rows_kept == stats.rows_read == frame.height
    assert clean.select(frame.columns).equals(frame)


def test_repeated_timestamps_across_daily_files_keep_the_later_file(tmp_path: Path) -> None:
    frame = busy_days(2)
    files = write_daily(tmp_path, "ABC", frame)
    # The second day's file repeats the first day's last 30 bars with other volumes:
    # the later file wins, however the rows lie within it.
    first = pl.read_parquet(files[0])
    repeat = first.tail(30).with_columns(volume=pl.lit(7, pl.Int64))
    second = pl.concat([pl.read_parquet(files[1]), repeat]).sample(
        fraction=1.0, seed=3, shuffle=True
    )
    second.write_parquet(files[1])
    loaded = load_symbol_bars("ABC", tmp_path)
    assert loaded.stats.dropped_duplicate_timestamp == 30
    repeated = loaded.bars.filter(pl.col("timestamp").is_in(repeat["timestamp"].implode()))
    assert repeated["volume"].to_list() == [7] * 30
    assert loaded.bars["timestamp"].is_sorted()


@pytest.mark.parametrize("arrow_schema", [True, False])
def test_a_naive_day_among_zone_aware_ones_is_found_with_or_without_an_arrow_schema(
    tmp_path: Path, arrow_schema: bool
) -> None:
    """The footer of every file is judged, with or without an embedded Arrow schema
    (store_schema=False: the type comes from the Parquet column's logical type)."""
    import pyarrow.parquet as pq

    from detector.bars import _mixed_time_zones

    files = write_daily(tmp_path, "ABC", busy_days(4))
    assert not _mixed_time_zones(files)
    odd = files[2]
    naive = pl.read_parquet(odd).with_columns(
        pl.col("timestamp").dt.convert_time_zone("America/New_York").dt.replace_time_zone(None)
    )
    pq.write_table(naive.to_arrow(), odd, store_schema=arrow_schema)
    assert _mixed_time_zones(files)
    expected = pl.concat([pl.read_parquet(f) for f in files[:2]]).get_column("timestamp")
    loaded = load_symbol_bars("ABC", tmp_path, naive_timezone="America/New_York")
    got = loaded.bars.get_column("timestamp").head(expected.len())
    assert got.to_list() == expected.dt.cast_time_unit("ms").dt.convert_time_zone("UTC").to_list()
