"""Input fingerprints (what a commit was computed from) and the merge's latest-commit rule."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from detector.input_fingerprint import InputFingerprint, changed, fingerprint
from detector.schema import EVENT_KEY
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import latest_owners, merge_shards
from orchestrator.run.shards import write_shard_file
from tools.demo.data import DemoDataSpec, generate_demo_bars

from builders import busy_days


def day_files(root: Path) -> list[Path]:
    return sorted((root / "symbol=DAAA").glob("date=*.parquet"))


def test_fingerprint_changes_with_a_new_a_rewritten_or_a_removed_day(tmp_path: Path) -> None:
    generate_demo_bars(DemoDataSpec(out=tmp_path, symbols=1, days=5))
    files = day_files(tmp_path)
    before = fingerprint(files)
    assert (before.files, before.bytes) == (len(files), sum(f.stat().st_size for f in files))
    assert fingerprint(files) == before  # stat only: the same files give the same print
    assert InputFingerprint.from_json(before.to_json()) == before

    # Rewritten in place with the same size, one second later: its time tells.
    st = files[2].stat()
    os.utime(files[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    touched = fingerprint(files)
    assert touched.digest != before.digest and touched.bytes == before.bytes
    # A new day, and a day removed.
    extra = files[0].with_name("date=2030-01-01.parquet")
    extra.write_bytes(files[0].read_bytes())
    assert fingerprint(day_files(tmp_path)).files == len(files) + 1
    assert fingerprint(files[1:]).digest != before.digest


def test_changed_reports_only_recorded_symbols_whose_print_differs() -> None:
    a = InputFingerprint(3, 300, 10, "aaaa")
    b = InputFingerprint(2, 200, 10, "bbbb")
    recorded = {"A": a, "B": b, "C": a}
    current = {"A": a, "B": InputFingerprint(3, 250, 11, "cccc"), "C": None, "D": b}
    # A unchanged, B changed, C's files are gone, D was never recorded (an older commit).
    assert changed(recorded, current) == ("B", "C")


def write_shard(
    layout: RunLayout, number: int, symbols: tuple[str, ...], events: pl.DataFrame
) -> str:
    path = layout.shard_path(layout.shard_dir(number % 2), number)
    write_shard_file(path, events, run_id=layout.run_id, symbols=symbols, config_hash="h")
    return path.name


def test_merge_takes_each_symbols_rows_from_its_latest_commit(tmp_path: Path) -> None:
    from detector.pipeline import detect_bars

    from builders import loose_config

    cfg = loose_config()
    first = detect_bars("AAA", busy_days(3), cfg).events
    again = detect_bars("AAA", busy_days(4), cfg).events  # recomputed on one more day
    other = detect_bars("BBB", busy_days(2), cfg).events.with_columns(symbol=pl.lit("BBB"))
    assert first.height and again.height > first.height and other.height
    layout = RunLayout(tmp_path, "events_intraday_20261203")
    shards = {
        write_shard(layout, 1, ("AAA", "BBB"), pl.concat([first, other])): ("AAA", "BBB"),
        write_shard(layout, 2, ("CCC",), first.clear()): ("CCC",),
        write_shard(layout, 3, ("AAA",), again): ("AAA",),
    }
    one, two, three = shards
    order = {one: 1, two: 2, three: 3}
    assert latest_owners(shards, order) == {"AAA": three, "BBB": one, "CCC": two}
    merged = merge_shards(layout, shards)
    final = pl.read_parquet(layout.final)
    assert merged.events == final.height == again.height + other.height
    assert final.equals(pl.concat([again, other]).sort(EVENT_KEY))
