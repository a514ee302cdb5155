"""Merging a run's committed shards into its final file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from detector.errors import IntradayEventsError
from detector.schema import EVENT_KEY, EVENT_SCHEMA, empty_events
from orchestrator.run.atomic_io import write_parquet_atomic
from orchestrator.run.layout import RunLayout
from orchestrator.run.provenance import Provenance


class DuplicateKeysError(IntradayEventsError):
    def __init__(self, path: Path, duplicates: int) -> None:
        self.path = path
        self.duplicates = duplicates
        super().__init__(f"{duplicates} duplicate event keys while merging into {path}")


@dataclass(frozen=True)
class MergeResult:
    path: Path
    shards: int
    events: int
    by_type: dict[str, int]
    by_direction: dict[str, int]
    by_session: dict[str, int]
    by_symbol: dict[str, int] = field(default_factory=dict)


def latest_owners(shards: Mapping[str, Sequence[str]], order: Mapping[str, int]) -> dict[str, str]:
    """Per symbol, the shard of its latest commit: the highest-numbered shard covering it.

    ``shards`` maps shard name -> symbols covered, ``order`` shard name -> its number.
    A symbol is covered by more than one shard only after ``launch --redo-changed``
    recomputed it from changed bars: the later commit supersedes the earlier one.
    """
    owners: dict[str, str] = {}
    for name in sorted(shards, key=lambda n: order[n]):
        for symbol in shards[name]:
            owners[symbol] = name
    return owners


@dataclass(frozen=True)
class ShardCommit:
    """A committed shard of the run and, of the symbols it covers, those it holds the
    latest commit of (all of them unless a later commit recomputed some)."""

    path: Path
    covered: tuple[str, ...]
    latest: tuple[str, ...]

    @property
    def superseded(self) -> tuple[str, ...]:
        return tuple(s for s in self.covered if s not in self.latest)


def shard_commits(
    layout: RunLayout, shards: Mapping[str, Sequence[str]], *, strict: bool = True
) -> list[ShardCommit]:
    """The named committed shards (name -> symbols covered, as the checkpoint lists them)
    in commit order, each with the symbols whose latest commit it is. A shard listed but
    not on disk is an error, or with ``strict`` false left out (a reader of a live run)."""
    on_disk = layout.committed_shards()
    paths = {p.name: p for p in on_disk.values()}
    missing = [name for name in shards if name not in paths]
    if missing and strict:
        raise IntradayEventsError(f"committed shards listed but not on disk: {missing[:5]}")
    order = {p.name: number for number, p in on_disk.items()}
    known = {name: tuple(symbols) for name, symbols in shards.items() if name in paths}
    owners = latest_owners(known, order)
    return [
        ShardCommit(paths[name], known[name], tuple(s for s in known[name] if owners[s] == name))
        for name in sorted(known, key=lambda n: order[n])
    ]


def superseded_rows(layout: RunLayout, shards: Mapping[str, Sequence[str]]) -> int:
    """Rows of committed shards that a later commit of their symbol replaced (0 unless a
    run recomputed symbols from changed bars): what a count of all shard rows overcounts."""
    total = 0
    for commit in shard_commits(layout, shards, strict=False):
        if commit.superseded:
            rows = pl.scan_parquet(commit.path).filter(pl.col("symbol").is_in(commit.superseded))
            total += rows.select(pl.len()).collect().item()
    return total


def latest_rows(layout: RunLayout, shards: Mapping[str, Sequence[str]]) -> pl.LazyFrame:
    """The events of the named committed shards, each symbol's from its latest commit only.

    A shard that lost none of its symbols to a later commit is read whole; one that
    lost some is read without their rows (only after a redo).
    """
    frames: list[pl.LazyFrame] = []
    for commit in shard_commits(layout, shards):
        if not commit.latest:
            continue
        frame = pl.scan_parquet(commit.path).select(list(EVENT_SCHEMA))
        if commit.superseded:
            frame = frame.filter(pl.col("symbol").is_in(commit.latest))
        frames.append(frame)
    return pl.concat(frames) if frames else empty_events().lazy()


def merge_shards(
    layout: RunLayout,
    shards: Mapping[str, Sequence[str]],
    provenance: Provenance | None = None,
) -> MergeResult:
    """Merge the committed shards (name -> symbols covered, as the checkpoint lists them)
    into ``layout.final``, atomically: each symbol's rows from its latest commit.

    Rows are sorted by the event key, which must be unique, and the file says so in its
    footer, with ``provenance`` (what produced it) when given.
    """
    events = latest_rows(layout, shards).collect()
    events = events.sort(EVENT_KEY)
    duplicates = events.height - events.select(EVENT_KEY).n_unique() if events.height else 0
    if duplicates:
        raise DuplicateKeysError(layout.final, duplicates)
    write_parquet_atomic(
        events,
        layout.final,
        metadata=provenance.metadata() if provenance is not None else None,
        sorted_by=EVENT_KEY,
    )

    def counts(column: str) -> dict[str, int]:
        return dict(events.group_by(column).len().sort(column).iter_rows())

    return MergeResult(
        layout.final,
        len(shards),
        events.height,
        counts("event_type"),
        counts("direction"),
        counts("session"),
        counts("symbol"),
    )
