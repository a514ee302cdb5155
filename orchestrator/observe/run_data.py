"""What the run report shows, read from the run's files and aggregated before plotting.

Every figure gets a table of at most a few thousand rows whatever the run's size:
counts by day, minute, score bin, symbol; never one row per event. The events come
from the final file, or from the committed shards while there is none (a partial or
running run). Nothing here writes, creates or locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from detector.schema import empty_events
from orchestrator.run.heartbeat import parse_batch_log_line
from orchestrator.run.layout import RunLayout
from orchestrator.run.shards import ShardMetadataError, read_shard_info
from orchestrator.run.snapshot import RunSnapshot

SCORE_BINS = 40
TOP_SYMBOLS = 25
TOP_EVENTS = 10


@dataclass(frozen=True)
class RunEvents:
    """The aggregates of a run's events (all small polars frames)."""

    source: str  # "final file" or "N committed shards"
    total: int
    per_day: pl.DataFrame  # date, event_type, n
    per_minute: pl.DataFrame  # minute (ET minute of day), event_type, n
    score_hist: pl.DataFrame  # event_type, lo, hi, n
    per_symbol_day: pl.DataFrame  # events (per symbol-day), symbol_days
    top_symbols: pl.DataFrame  # symbol, event_type, n
    direction: pl.DataFrame  # event_type, direction, n
    session: pl.DataFrame  # event_type, session, n
    top_events: pl.DataFrame  # per type the TOP_EVENTS best by score


@dataclass(frozen=True)
class Timeline:
    """The run's own timeline from the shared batch and heartbeat logs."""

    commits: pl.DataFrame  # at, worker, symbols (cumulative per worker)
    memory: pl.DataFrame  # at, worker, rss_gb
    notes: tuple[str, ...] = field(default_factory=tuple)


def event_files(layout: RunLayout) -> tuple[list[Path], str]:
    """The final file, else the committed shards (a partial or running run)."""
    if layout.final.is_file():
        return [layout.final], "final file"
    try:
        shards = [p for _, p in sorted(layout.committed_shards().items())]
    except OSError:
        shards = []
    return shards, f"{len(shards)} committed shards (no final file yet)"


def load_events(layout: RunLayout) -> pl.DataFrame:
    """Every event of the run: the final file, else the committed shards."""
    files, _ = event_files(layout)
    if not files:
        return empty_events()
    return pl.scan_parquet(files).collect()


def read_events(layout: RunLayout) -> RunEvents:
    files, source = event_files(layout)
    columns = [
        "symbol",
        "event_type",
        "timestamp",
        "timestamp_et",
        "date",
        "direction",
        "session",
        "score",
        "close",
        "volume",
        "spike_x",
    ]
    frame = pl.scan_parquet(files) if files else empty_events().lazy()
    return aggregate(frame.select(columns), source)


def aggregate(events: pl.LazyFrame | pl.DataFrame, source: str) -> RunEvents:
    """Every figure's table from the events, as lazy queries run together: the events
    are scanned, never held whole (a whole-universe run's stay out of memory)."""
    lf = events.lazy()
    n = pl.len().alias("n")
    et = pl.col("timestamp_et")
    minute = (et.dt.hour().cast(pl.Int32) * 60 + et.dt.minute()).alias("minute")
    stats = lf.select(
        total=pl.len(),
        lo=pl.col("score").min(),
        hi=pl.col("score").quantile(0.995),
    ).collect()
    top = (
        lf.group_by("symbol")
        .agg(pl.len().alias("total"))
        .sort(["total", "symbol"], descending=[True, False])
        .head(TOP_SYMBOLS)
    )
    queries = {
        "per_day": lf.group_by("date", "event_type").agg(n).sort("date", "event_type"),
        "per_minute": lf.group_by(minute, "event_type").agg(n).sort("minute", "event_type"),
        "score_hist": _score_hist(lf, stats.item(0, "lo"), stats.item(0, "hi")),
        "per_symbol_day": lf.group_by("symbol", "date")
        .agg(pl.len().alias("events"))
        .group_by("events")
        .agg(pl.len().alias("symbol_days"))
        .sort("events"),
        "top_symbols": lf.join(top, on="symbol")
        .group_by("symbol", "event_type", "total")
        .agg(n)
        .sort(["total", "symbol", "event_type"], descending=[True, False, False])
        .drop("total"),
        "direction": lf.group_by("event_type", "direction").agg(n).sort("event_type", "direction"),
        "session": lf.group_by("event_type", "session").agg(n).sort("event_type", "session"),
        "top_events": lf.filter(
            pl.col("score").rank("ordinal", descending=True).over("event_type") <= TOP_EVENTS
        ).sort(["event_type", "score"], descending=[False, True]),
    }
    frames = dict(zip(queries, pl.collect_all(list(queries.values())), strict=True))
    return RunEvents(source=source, total=int(stats.item(0, "total")), **frames)


def _score_hist(lf: pl.LazyFrame, lo: float | None, hi: float | None) -> pl.LazyFrame:
    """Counts per type in SCORE_BINS equal bins from the lowest score to the 99.5th
    percentile (higher scores fall in the last bin)."""
    if lo is None:
        schema = {"event_type": pl.String, "lo": pl.Float64, "hi": pl.Float64, "n": pl.UInt32}
        return pl.LazyFrame(schema=schema)
    hi = lo if hi is None else hi
    width = (hi - lo) / SCORE_BINS or 1.0
    bin_no = ((pl.col("score") - lo) / width).floor().clip(0, SCORE_BINS - 1).cast(pl.Int32)
    return (
        lf.filter(pl.col("score").is_not_null())
        .group_by("event_type", bin_no.alias("bin"))
        .agg(pl.len().alias("n"))
        .with_columns(
            lo=lo + pl.col("bin").cast(pl.Float64) * width,
            hi=lo + (pl.col("bin") + 1).cast(pl.Float64) * width,
        )
        .sort("event_type", "bin")
        .select("event_type", "lo", "hi", "n")
    )


def read_timeline(layout: RunLayout, snapshot: RunSnapshot) -> Timeline:
    """Symbols committed per worker over time (batch log lines of this run's shards, the
    worker from the shard's folder) and worker memory over time (heartbeat log lines of
    the run's symbols since its launch, the worker from the shard that covers them)."""
    try:
        shards = layout.committed_shards()
    except OSError:
        shards = {}
    worker_of_shard, worker_of_symbol = _workers(shards.values())
    commit_frame = (
        pl.DataFrame(
            _commits(layout, worker_of_shard),
            schema={"at": pl.Datetime("us"), "worker": pl.Int64, "symbols": pl.Int64},
            orient="row",
        )
        .sort("at", maintain_order=True)  # stamps are whole seconds: keep log order
        .with_columns(pl.col("symbols").cum_sum().over("worker"))
    )
    memory_frame = pl.DataFrame(
        _memory(layout, snapshot, worker_of_symbol),
        schema={"at": pl.Datetime("us"), "worker": pl.Int64, "rss_gb": pl.Float64},
        orient="row",
    ).sort("at", maintain_order=True)
    notes = () if shards else ("no committed shard yet",)
    return Timeline(commit_frame, memory_frame, notes)


def _workers(shards: Iterable[Path]) -> tuple[dict[str, int], dict[str, int]]:
    """The worker of each shard (by file name) and of each symbol those shards hold (a
    shard whose footer cannot be read still has its worker, but names no symbol)."""
    worker_of_shard: dict[str, int] = {}
    worker_of_symbol: dict[str, int] = {}
    for path in shards:
        worker = _worker_of(path)
        worker_of_shard[path.name] = worker
        try:
            info = read_shard_info(path)
        except ShardMetadataError:
            continue
        for symbol in info.symbols:
            worker_of_symbol[symbol] = worker
    return worker_of_shard, worker_of_symbol


def _commits(layout: RunLayout, worker_of_shard: dict[str, int]) -> list[tuple[datetime, int, int]]:
    """(time, worker, symbols) of each batch log line of this run's shards, in log order."""
    commits: list[tuple[datetime, int, int]] = []
    for line in _lines(layout.batch_logs()):
        entry = parse_batch_log_line(line)
        if entry is None or entry.shard_file not in worker_of_shard:
            continue
        at = _stamp(entry.timestamp)
        if at is not None:
            commits.append((at, worker_of_shard[entry.shard_file], entry.symbols))
    return commits


def _memory(
    layout: RunLayout, snapshot: RunSnapshot, worker_of_symbol: dict[str, int]
) -> list[tuple[datetime, int, float]]:
    """(time, worker, RSS) of each heartbeat line of the run's symbols within the launch:
    from its start (to the second) to 2 s after its last elapsed time."""
    since = snapshot.launched_at
    until = (
        None
        if since is None or snapshot.elapsed_s is None
        else since + timedelta(seconds=snapshot.elapsed_s + 2)
    )
    memory: list[tuple[datetime, int, float]] = []
    for line in _lines(sorted(layout.logs_dir.glob("heartbeat_*.log"))):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 6 or fields[1] not in worker_of_symbol:
            continue
        at = _stamp(fields[0])
        try:
            rss = float(fields[5])
        except ValueError:
            continue
        if at is None or (until is not None and at > until):
            continue
        if since is None or at >= since.replace(microsecond=0):
            memory.append((at, worker_of_symbol[fields[1]], rss))
    return memory


def _worker_of(path: Path) -> int:
    """worker_K folder of a shard; -1 for the driver's shards (Ray) or an old layout."""
    name = path.parent.name
    if name.startswith("worker_") and name[len("worker_") :].isdigit():
        return int(name[len("worker_") :])
    return -1


def _lines(paths: list[Path]) -> list[str]:
    out: list[str] = []
    for path in paths:
        try:
            out += path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
    return out


def _stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
