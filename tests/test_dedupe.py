"""``dedupe``: which row each key group keeps, the report and stats, and the command line."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import tools.dedupe.core as dedupe_module
import tools.dedupe.partitions as dedupe_partitions
from detector.errors import ExitCode
from detector.schema import EVENT_KEY, EVENT_SCHEMA
from tools.cli import cli
from tools.dedupe.core import (
    DedupeConfig,
    DedupeInputError,
    DedupeReport,
    GroupCount,
    MissingKeyColumnError,
    OutputIsInputError,
    default_output,
    plan_dedupe,
    run_dedupe,
    stats_path,
)
from tools.dedupe.partitions import NULL_LABEL, Layout, ParquetAppender, Partition, plan_partitions

T0 = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def event(symbol: str = "AAA", minute: int = 0, **values: Any) -> dict[str, Any]:
    """One event row in the output schema; ``values`` override the defaults."""
    ts = T0 + timedelta(minutes=minute)
    row: dict[str, Any] = {
        "symbol": symbol, "event_type": "volume_spike", "timestamp": ts, "timestamp_et": ts,
        "date": ts.date(), "direction": "up", "session": "RTH", "spike_x": 7.0, "open": 1.0,
        "high": 1.2, "low": 0.9, "close": 1.1, "volume": 20_000, "dollar_volume": 22_000.0,
        "score": 1.0, "event_bias": "bullish", "close_vs_open": "green", "tier": 1,
    }  # fmt: skip
    row.update(values)
    return row


def write_events(
    path: Path, rows: list[dict[str, Any]], *, score_type: pl.DataType | None = None, **kw: Any
) -> Path:
    schema = {**EVENT_SCHEMA, "score": score_type or pl.Float64()}
    pl.DataFrame(rows, schema=schema, orient="row").write_parquet(path, **kw)
    return path


def dedupe(tmp_path: Path, rows: list[dict[str, Any]], **kw: Any) -> tuple[pl.DataFrame, Any]:
    """Write ``rows``, deduplicate them with the default key, return (output, report)."""
    source = write_events(tmp_path / "events.parquet", rows, **kw)
    report = run_dedupe(DedupeConfig(input=source, output=default_output(source)))
    return pl.read_parquet(report.output), report


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["dedupe", *args])


def listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


# -- which row is kept ------------------------------------------------------------------
def test_groups_of_1_2_and_12_copies_keep_the_highest_score_numerically(tmp_path: Path) -> None:
    twelve_scores = [2.0, 9.5, 10.0, 1.5, 3.0, 9.99, 0.5, 2.5, 7.0, 8.0, 6.0, 4.0]
    rows = [
        event("ONE", 0, score=3.0),
        event("TWO", 0, score=2.0, spike_x=1.0),
        event("TWO", 0, score=10.0, spike_x=2.0),
        *(event("TWELVE", 5, score=s, spike_x=float(i)) for i, s in enumerate(twelve_scores)),
    ]
    out, report = dedupe(tmp_path, rows)
    kept = {r["symbol"]: (r["score"], r["spike_x"]) for r in out.iter_rows(named=True)}
    assert kept == {"ONE": (3.0, 7.0), "TWO": (10.0, 2.0), "TWELVE": (10.0, 2.0)}
    assert (report.rows_in, report.rows_out) == (15, 3)
    assert (report.duplicate_groups, report.duplicate_rows) == (2, 12)
    assert report.rows_out == report.rows_in - report.duplicate_rows


def test_string_scores_are_compared_as_numbers_not_text(tmp_path: Path) -> None:
    # As text, "9.5" > "2" > "10"; the legacy script kept "9.5" (or "2" for ranks).
    rows = [event(score=s, spike_x=float(i)) for i, s in enumerate(["2", "10", "9.5", " 11 "])]
    rows += [event("BBB", score=s, spike_x=float(i)) for i, s in enumerate(["2", "10", "9.5"])]
    out, report = dedupe(tmp_path, rows, score_type=pl.String())
    assert out["score"].to_list() == [" 11 ", "10"]
    assert out.schema["score"] == pl.String  # the input schema is kept
    assert any("cast to Float64" in note for note in report.notes)


def test_ties_keep_the_row_with_fewest_nulls_then_the_first(tmp_path: Path) -> None:
    rows = [
        event("AAA", score=5.0, spike_x=None, session=None),  # two nulls
        event("AAA", score=5.0, spike_x=None, volume=1),  # one null: kept
        event("AAA", score=5.0, session=None, volume=2),  # one null, later
        event("BBB", score=5.0, volume=1),  # first of identical rows: kept
        event("BBB", score=5.0, volume=2),
        event("BBB", score=4.0, volume=3),
    ]
    out, _ = dedupe(tmp_path, rows)
    assert out.select("symbol", "volume").rows() == [("AAA", 1), ("BBB", 1)]


@pytest.mark.parametrize(
    ("score_type", "scores"),
    [(pl.Float64(), [None, None, None]), (pl.Float64(), [float("nan"), None, float("nan")]),
     (pl.String(), ["n/a", None, ""])],
)  # fmt: skip
def test_a_group_whose_scores_are_all_null_keeps_exactly_one_row(
    tmp_path: Path, score_type: pl.DataType, scores: list[Any]
) -> None:
    rows = [event("NUL", volume=i, score=s) for i, s in enumerate(scores)]
    rows += [event("NUL", 1, score=None, volume=7)]  # a group of one, null score too
    out, report = dedupe(tmp_path, rows, score_type=score_type)
    # Row 0 has no more null cells than the others (NaN and "n/a" are not null) and is first.
    assert out.select("symbol", "volume").rows() == [("NUL", 0), ("NUL", 7)]
    assert (report.rows_out, report.duplicate_rows) == (2, 2)
    if score_type == pl.String:
        assert "2 'score' values are not numbers and rank as null" in report.notes


def test_nan_and_null_rank_below_any_number(tmp_path: Path) -> None:
    rows = [event(score=float("nan"), volume=0), event(score=None, volume=1)]
    rows += [event(score=-3.0, volume=2)]
    out, _ = dedupe(tmp_path, rows)
    assert out["volume"].to_list() == [2]


def test_custom_key(tmp_path: Path) -> None:
    rows = [
        event("AAA", 0, direction="up", score=1.0),
        event("AAA", 0, direction="down", score=2.0),
        event("AAA", 1, direction="up", score=3.0),
        event("BBB", 0, direction="up", score=1.0),
    ]
    source = write_events(tmp_path / "events.parquet", rows)
    cfg = DedupeConfig(input=source, output=tmp_path / "out.parquet", key=("symbol",))
    report = run_dedupe(cfg)
    out = pl.read_parquet(cfg.output)
    assert out.select("symbol", "score").rows() == [("AAA", 3.0), ("BBB", 1.0)]
    assert report.key == ("symbol",)
    by_cli = invoke("--input", str(source), "--output", str(tmp_path / "cli.parquet"),
                    "--key", "symbol, direction")  # fmt: skip
    assert by_cli.exit_code == 0, by_cli.output
    assert pl.read_parquet(tmp_path / "cli.parquet").height == 3
    stats = json.loads(stats_path(tmp_path / "cli.parquet").read_text())
    assert stats["key"] == ["symbol", "direction"]


# -- the output file --------------------------------------------------------------------
def reference(frame: pl.DataFrame) -> pl.DataFrame:
    """Plain-Python dedup: the rule written out, one group at a time."""
    best: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for index, row in enumerate(frame.iter_rows(named=True)):
        score = None if row["score"] != row["score"] else row["score"]  # NaN ranks as null
        nulls = sum(v is None for v in row.values())
        # Higher score first, null last; then fewer nulls; then earlier.
        rank = (score is None, -(score or 0.0), nulls, index)
        key = tuple(row[k] for k in EVENT_KEY)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, index)
    keep = sorted(index for _, index in best.values())
    return frame[keep].sort(["symbol", "timestamp"], maintain_order=True)


def test_many_row_groups_match_the_reference_and_keep_the_schema(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(3000):
        score = rng.choice([None, *[float(x) for x in range(12)]])
        spike = None if rng.random() < 0.2 else float(i)
        rows.append(event(rng.choice(["AAA", "BBB", "CCC", "DDD"]), rng.randrange(60),
                          direction=rng.choice(["up", "down"]), score=score, spike_x=spike,
                          event_type=rng.choice(["flush", "vwap_break"]), volume=i))  # fmt: skip
    source = write_events(tmp_path / "events.parquet", rows, row_group_size=100)
    assert pq.ParquetFile(source).num_row_groups == 30
    report = run_dedupe(DedupeConfig(input=source, output=tmp_path / "out.parquet"))
    out = pl.read_parquet(report.output)
    expected = reference(pl.read_parquet(source))
    assert out.schema == pl.read_parquet(source).schema  # same columns, order and types
    assert out.equals(expected)
    assert report.rows_out == out.height == report.rows_in - report.duplicate_rows
    assert out.select(EVENT_KEY).is_unique().all()
    metadata = pq.ParquetFile(report.output).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.parquet", "out.parquet", "out.parquet.stats.json"
    ]  # fmt: skip  # no temporary file is left behind


def test_the_queries_are_lazy_and_run_in_the_streaming_engine(tmp_path: Path) -> None:
    rows = [event(minute=i % 7, score=float(i)) for i in range(50)]
    source = write_events(tmp_path / "events.parquet", rows, row_group_size=10)
    plan = plan_dedupe(source, EVENT_KEY)
    # The whole file, and one partition of it (a range filter on the scan).
    partition = plan_partitions(plan.scan, "symbol", 10).partitions[0]
    queries = []
    for rows in (plan.scan, plan.rows(partition)):
        groups = plan.groups(rows)
        assert isinstance(groups, pl.LazyFrame)
        kept_rows = groups.collect(engine="streaming").select(plan.row_column)
        queries += [groups, plan.kept(kept_rows, rows)]
    for query in queries:
        try:
            graph = query.show_graph(engine="streaming", raw_output=True, show=False)
        except Exception as exc:  # the graph's format is polars' own business
            pytest.skip(f"no streaming plan graph from this polars: {exc}")
        # Nodes the streaming engine cannot run are drawn with this fill colour.
        fallbacks = [line for line in str(graph).splitlines() if 'fillcolor="0.0 0.3 1.0"' in line]
        assert not fallbacks, fallbacks


def test_empty_input_gives_an_empty_output(tmp_path: Path) -> None:
    out, report = dedupe(tmp_path, [])
    assert out.height == 0 and out.schema == pl.Schema(EVENT_SCHEMA)
    assert (report.rows_in, report.duplicate_pct, report.by_event_type) == (0, 0.0, {})


# -- partitions: bounded memory -----------------------------------------------------------
def many_symbols(n: int = 2000, *, seed: int = 11, null_symbols: bool = False) -> pl.DataFrame:
    """40 symbols (and null), ~32 keys each, so most keys repeat; volume numbers the rows."""
    rng = random.Random(seed)
    symbols: list[str | None] = [f"S{i:02d}" for i in range(40)] + [None] * null_symbols
    scores = [None, float("nan"), *(float(s) for s in range(4))]
    rows = [
        event(rng.choice(symbols), rng.randrange(8), direction=rng.choice(["up", "down"]),
              event_type=rng.choice(["flush", "vwap_break"]), score=rng.choice(scores),
              spike_x=None if rng.random() < 0.3 else 1.0, volume=i)
        for i in range(n)
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")


def write_layout(path: Path, frame: pl.DataFrame, layout: str) -> Path:
    """``clustered``: sorted by symbol like final files; ``scattered``: random order."""
    if layout == "clustered":
        frame = frame.sort("symbol", "timestamp", maintain_order=True)
    else:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=5)
    frame.write_parquet(path, row_group_size=100)
    return path


@pytest.fixture
def spills(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records each spill (the files it wrote); small batches so groups straddle them."""
    monkeypatch.setattr(dedupe_partitions, "SPILL_BATCH_ROWS", 97)
    calls: list[list[str]] = []

    def spill(scan: pl.LazyFrame, layout: Layout, directory: Path) -> list[Partition]:
        partitions = dedupe_partitions.spill(scan, layout, directory)
        calls.append(sorted(p.name for p in directory.iterdir()))
        return partitions

    monkeypatch.setattr(dedupe_module, "spill", spill)
    return calls


def run(source: Path, output: Path, **kw: Any) -> tuple[pl.DataFrame, DedupeReport]:
    report = run_dedupe(DedupeConfig(input=source, output=output, **kw))
    return pl.read_parquet(output), report


def same_report(a: DedupeReport, b: DedupeReport) -> bool:
    return dataclasses.replace(a, output=b.output, created_at=b.created_at) == b


@pytest.mark.parametrize("layout", ["clustered", "scattered"])
@pytest.mark.parametrize(("rows_per_partition", "partitions"), [(7, 40), (130, 15)])
def test_many_partitions_give_the_output_and_report_of_one(
    tmp_path: Path, spills: list[list[str]], layout: str, rows_per_partition: int, partitions: int
) -> None:
    frame = many_symbols()
    source = write_layout(tmp_path / "events.parquet", frame, layout)
    assert pq.ParquetFile(source).num_row_groups == 20
    one, one_report = run(
        source, tmp_path / "one.parquet", rows_per_partition=10**9, top_symbols=99
    )
    assert spills == []  # a single partition is never spilled
    many, many_report = run(
        source, tmp_path / "many.parquet", rows_per_partition=rows_per_partition, top_symbols=99
    )
    assert many.equals(one) and many.equals(reference(pl.read_parquet(source)))
    assert same_report(many_report, one_report)
    assert many_report.rows_in == 2000 and len(many_report.top_symbols) == 40
    plan = plan_dedupe(source, EVENT_KEY)
    # 7: one symbol (~50 rows) each; 130: two or three symbols each.
    assert len(plan_partitions(plan.scan, "symbol", rows_per_partition).partitions) == partitions
    # Clustered files are read through range filters; scattered ones spilled once.
    assert [len(files) for files in spills] == ([] if layout == "clustered" else [partitions])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.parquet", "many.parquet", "many.parquet.stats.json",
        "one.parquet", "one.parquet.stats.json",
    ]  # fmt: skip  # no temporary file or spilled partition is left


@pytest.mark.parametrize("layout", ["clustered", "scattered"])
def test_ties_keep_the_first_row_of_the_whole_file_across_partitions_and_batches(
    tmp_path: Path, spills: list[list[str]], layout: str
) -> None:
    # The first copy of each group has the same score and nulls as the later one and
    # must win, though they are in different row groups (and spill batches); equal
    # (symbol, timestamp) rows of different groups stay in file order.
    def first_and_copy(symbol: str, volume: int) -> list[dict[str, Any]]:
        return [event(symbol, 0, event_type=t, volume=volume) for t in ("b", "a")]

    if layout == "clustered":  # sorted by symbol, not by time: copies 100 rows apart
        rows = [row for i in range(3) for row in (
            *first_and_copy(f"T{i}", 1), *(event(f"T{i}", m, volume=-1) for m in range(1, 101)),
            *first_and_copy(f"T{i}", 2))]  # fmt: skip
    else:  # copies 500 rows of other symbols apart
        filler = [event(f"F{i % 30:02d}", i, volume=-1) for i in range(500)]
        rows = [row for i in range(3) for row in first_and_copy(f"T{i}", 1)]
        rows += [*filler, *(row for i in range(3) for row in first_and_copy(f"T{i}", 2)), *filler]
    source = write_events(tmp_path / "events.parquet", rows, row_group_size=50)
    scattered = plan_partitions(plan_dedupe(source, EVENT_KEY).scan, "symbol", 7).scattered
    assert scattered == (layout == "scattered")
    out, _ = run(source, tmp_path / "out.parquet", rows_per_partition=7)
    tied = out.filter(pl.col("volume") > 0)
    assert tied.select("symbol", "event_type", "volume").rows() == [
        (f"T{i}", t, 1) for i in range(3) for t in ("b", "a")
    ]
    assert len(spills) == (layout == "scattered")


@pytest.mark.parametrize("layout", ["clustered", "scattered"])
def test_null_symbols_are_deduplicated_counted_and_sorted_first(
    tmp_path: Path, spills: list[list[str]], layout: str
) -> None:
    frame = many_symbols(null_symbols=True)
    source = write_layout(tmp_path / "events.parquet", frame, layout)
    layout_ = plan_partitions(plan_dedupe(source, EVENT_KEY).scan, "symbol", 7)
    nulls = frame.filter(pl.col("symbol").is_null())
    assert layout_.partitions[0].label == "symbol null"
    assert layout_.partitions[0].rows == nulls.height > 0
    many, report = run(source, tmp_path / "many.parquet", rows_per_partition=7, top_symbols=99)
    one, one_report = run(
        source, tmp_path / "one.parquet", rows_per_partition=10**9, top_symbols=99
    )
    assert many.equals(one) and many.equals(reference(pl.read_parquet(source)))
    assert same_report(report, one_report)
    kept_nulls = many.filter(pl.col("symbol").is_null()).height
    assert many["symbol"][:kept_nulls].is_null().all()  # null first, as sort() puts it
    assert kept_nulls == nulls.unique(EVENT_KEY).height
    assert dict(report.top_symbols)[NULL_LABEL] == GroupCount(
        nulls.height, nulls.height - kept_nulls
    )
    assert report.rows_in == frame.height


def test_plan_partitions_cuts_contiguous_sorted_ranges() -> None:
    values = ["C", "A", "C", "A", "C", "A", "C", "C", None, "E", "B", "D", "D", None]
    scan = pl.LazyFrame({"symbol": values}, schema={"symbol": pl.String})
    layout = plan_partitions(scan, "symbol", 4)
    # Offsets in sort order: A 0, B 3, C 4, D 9, E 11 -> windows of 4: [A B] [C] [D E].
    assert [(p.label, p.rows) for p in layout.partitions] == [
        ("symbol null", 2), ("symbol 'A'..'B'", 4), ("symbol 'C'..'C'", 5), ("symbol 'D'..'E'", 3)
    ]  # fmt: skip
    for p in layout.partitions:
        assert p.predicate is not None
        assert scan.filter(p.predicate).collect().height == p.rows
    assert dict(layout.ranges.rows()) == {None: 0, "A": 1, "B": 1, "C": 2, "D": 3, "E": 3}
    assert layout.runs == 5 and layout.scattered  # C | A C | A C | A C C None E | B D D None
    assert not plan_partitions(scan.sort("symbol"), "symbol", 4).scattered
    assert [p.label for p in plan_partitions(scan, None, 4).partitions] == ["all rows"]
    assert plan_partitions(scan.clear(), "symbol", 4).partitions == []
    with pytest.raises(ValueError, match="at least 1"):
        plan_partitions(scan, "symbol", 0)


def test_a_key_without_symbol_is_one_partition_with_a_note(tmp_path: Path) -> None:
    source = write_layout(tmp_path / "events.parquet", many_symbols(300), "scattered")
    key = ("timestamp", "event_type", "direction")
    out, report = run(source, tmp_path / "out.parquet", key=key, rows_per_partition=7)
    assert out.height == pl.read_parquet(source).unique(key).height == report.rows_out
    assert any("not split into partitions" in note for note in report.notes)


def fail_on_call(number: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its ``number``th call raises ENOSPC."""
    calls = itertools.count(1)

    def failing(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == number:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    return failing


@pytest.mark.parametrize(
    ("layout", "target", "call"),
    [("clustered", "ParquetAppender.write", 2), ("scattered", "ParquetAppender.write", 2),
     ("scattered", "ParquetWriter.write_table", 3)],  # the last one fails while spilling
)  # fmt: skip
def test_a_failed_write_replaces_nothing_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spills: list[list[str]],
    layout: str, target: str, call: int,
) -> None:  # fmt: skip
    source = write_layout(tmp_path / "events.parquet", many_symbols(), layout)
    old = tmp_path / "out.parquet"
    old.write_bytes(b"previous output")
    owner, name = target.split(".")
    cls = {"ParquetAppender": ParquetAppender, "ParquetWriter": pq.ParquetWriter}[owner]
    real = getattr(cls, name)
    monkeypatch.setattr(cls, name, fail_on_call(call, real))
    with pytest.raises(OSError, match="No space left"):  # one line and exit 5 at the CLI
        run_dedupe(DedupeConfig(input=source, output=old, rows_per_partition=7))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "out.parquet"]
    assert old.read_bytes() == b"previous output"
    # Failing after the spill, the spilled partitions existed and were removed too.
    assert len(spills) == (layout == "scattered" and owner == "ParquetAppender")
    monkeypatch.setattr(cls, name, fail_on_call(call, real))
    result = invoke("--input", str(source), "--output", str(old), "--partition-rows", "7")
    assert result.exit_code == ExitCode.ENVIRONMENT, result.output
    assert "No space left on device (ENOSPC); free space" in result.output


def test_a_partition_that_changed_is_a_data_error_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_layout(tmp_path / "events.parquet", many_symbols(), "scattered")

    def miscounted(*args: Any) -> Layout:
        layout = plan_partitions(*args)
        first = dataclasses.replace(layout.partitions[0], rows=layout.partitions[0].rows + 1)
        return dataclasses.replace(layout, partitions=[first, *layout.partitions[1:]])

    monkeypatch.setattr(dedupe_module, "plan_partitions", miscounted)
    with pytest.raises(DedupeInputError, match="was the file changed"):
        run_dedupe(
            DedupeConfig(input=source, output=tmp_path / "out.parquet", rows_per_partition=7)
        )
    assert [p.name for p in tmp_path.iterdir()] == ["events.parquet"]


def test_dry_run_of_a_scattered_file_in_partitions_writes_nothing(
    tmp_path: Path, spills: list[list[str]]
) -> None:
    source = write_layout(tmp_path / "events.parquet", many_symbols(), "scattered")
    before = listing(tmp_path)
    cfg = DedupeConfig(input=source, output=tmp_path / "out.parquet", rows_per_partition=7)
    dry = run_dedupe(dataclasses.replace(cfg, dry_run=True))
    assert listing(tmp_path) == before and spills == []
    real = run_dedupe(cfg)
    assert same_report(dataclasses.replace(dry, dry_run=False), real)


def test_partition_rows_option(tmp_path: Path) -> None:
    source = write_layout(tmp_path / "events.parquet", many_symbols(500), "clustered")
    default = invoke("--input", str(source), "--output", str(tmp_path / "default.parquet"))
    assert default.exit_code == 0, default.output
    small = invoke("--input", str(source), "--output", str(tmp_path / "small.parquet"),
                   "--partition-rows", "3")  # fmt: skip
    assert small.exit_code == 0, small.output
    assert pl.read_parquet(tmp_path / "small.parquet").equals(
        pl.read_parquet(tmp_path / "default.parquet")
    )
    assert invoke("--input", str(source), "--partition-rows", "0").exit_code == 2


# -- stats ------------------------------------------------------------------------------
def test_stats_json(tmp_path: Path) -> None:
    rows = [event("AAA", score=1.0), event("AAA", score=2.0), event("AAA", score=3.0)]
    rows += [event("BBB", event_type="flush", score=1.0), event("BBB", event_type="flush")]
    rows += [event("CCC", event_type="flush")]
    source = write_events(tmp_path / "in.parquet", rows)
    result = invoke("--input", str(source))
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "in.dedup.parquet.stats.json").read_text())
    created = stats.pop("created_at")
    assert datetime.fromisoformat(created).tzinfo is not None
    assert stats == {
        "input": str(source.resolve()),
        "output": str((tmp_path / "in.dedup.parquet").resolve()),
        "key": list(EVENT_KEY),
        "rows_in": 6,
        "rows_out": 3,
        "duplicate_groups": 2,
        "duplicate_rows": 3,
        "duplicate_pct": 50.0,
        "by_event_type": {
            "flush": {"rows": 3, "duplicate_rows": 1},
            "volume_spike": {"rows": 3, "duplicate_rows": 2},
        },
        "top_symbols": [
            {"symbol": "AAA", "rows": 3, "duplicate_rows": 2},
            {"symbol": "BBB", "rows": 2, "duplicate_rows": 1},
        ],
        "notes": [],
    }
    assert "duplicate rows" in result.output and "top symbols" in result.output


# -- command line -----------------------------------------------------------------------
def test_dry_run_writes_nothing_at_all(tmp_path: Path) -> None:
    source = write_events(tmp_path / "events.parquet", [event(score=1.0), event(score=2.0)])
    before = listing(tmp_path)
    result = invoke("--input", str(source), "--dry-run")
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == before
    assert "dry run: nothing written" in result.output
    assert "50.00" in result.output  # 1 duplicate row of 2
    elsewhere = tmp_path / "new_dir" / "out.parquet"
    assert invoke("--input", str(source), "--output", str(elsewhere), "--dry-run").exit_code == 0
    assert listing(tmp_path) == before  # not even the output's directory


def test_missing_key_column_is_a_data_error_naming_the_column(tmp_path: Path) -> None:
    source = write_events(tmp_path / "events.parquet", [event()])
    before = listing(tmp_path)
    result = invoke("--input", str(source), "--key", "symbol,timestmp")
    assert result.exit_code == ExitCode.DATA == 3
    assert "'timestmp'" in result.output and "timestamp" in result.output
    assert listing(tmp_path) == before
    with pytest.raises(MissingKeyColumnError) as err:
        plan_dedupe(source, ("symbol", "nope"))
    assert err.value.missing == ["nope"]


def test_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    source = write_events(tmp_path / "events.parquet", [event(), event()])
    before = listing(tmp_path)
    result = invoke("--input", str(source), "--output", str(tmp_path / "." / "events.parquet"))
    assert result.exit_code == ExitCode.USAGE == 2
    assert "refusing to overwrite the input" in result.output
    assert listing(tmp_path) == before
    with pytest.raises(OutputIsInputError):
        run_dedupe(DedupeConfig(input=source, output=source, dry_run=True))


@pytest.mark.parametrize("key", ["", "symbol,,timestamp", "symbol,symbol"])
def test_malformed_key_option_is_a_usage_error(tmp_path: Path, key: str) -> None:
    source = write_events(tmp_path / "events.parquet", [event()])
    assert invoke("--input", str(source), "--key", key).exit_code == 2


def test_unreadable_input_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet\n")
    result = invoke("--input", str(bad))
    assert result.exit_code == ExitCode.DATA
    assert "bad.parquet" in result.output
    assert invoke("--input", str(tmp_path / "absent.parquet")).exit_code == 2


def test_python_m_tools_dedupe_writes_the_default_output(tmp_path: Path) -> None:
    rows = [event("BBB", 1, score="2"), event("AAA", 0, score="10"), event("BBB", 1, score="10")]
    source = write_events(tmp_path / "events.parquet", rows, score_type=pl.String())
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "tools", "dedupe", "--input", str(source)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = pl.read_parquet(tmp_path / "events.dedup.parquet")
    assert out.select("symbol", "score").rows() == [("AAA", "10"), ("BBB", "10")]
    assert "compared as numbers" in done.stdout
    stats = json.loads((tmp_path / "events.dedup.parquet.stats.json").read_text())
    assert (stats["rows_in"], stats["rows_out"], stats["duplicate_rows"]) == (3, 2, 1)
    missing = subprocess.run(
        [sys.executable, "-m", "tools", "dedupe", "--input", str(source), "--key", "nope"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == ExitCode.DATA
    assert "no column 'nope'" in missing.stderr
