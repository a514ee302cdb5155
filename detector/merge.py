"""Merging a run's committed shards into its final file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from detector.atomic_io import write_parquet_atomic
from detector.errors import IntradayEventsError
from detector.run_layout import RunLayout
from detector.schema import EVENT_KEY, EVENT_SCHEMA, empty_events


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


def merge_shards(layout: RunLayout, shard_names: list[str]) -> MergeResult:
    """Merge the named committed shards of the run into ``layout.final``, atomically.

    Rows are sorted by the event key, which must be unique.
    """
    paths = {p.name: p for p in layout.committed_shards().values()}
    missing = [name for name in shard_names if name not in paths]
    if missing:
        raise IntradayEventsError(f"committed shards listed but not on disk: {missing[:5]}")
    files = [paths[name] for name in sorted(shard_names)]
    frames = [pl.read_parquet(f).select(list(EVENT_SCHEMA)) for f in files]
    events = pl.concat(frames) if frames else empty_events()
    events = events.sort(EVENT_KEY)
    duplicates = events.height - events.select(EVENT_KEY).n_unique() if events.height else 0
    if duplicates:
        raise DuplicateKeysError(layout.final, duplicates)
    write_parquet_atomic(events, layout.final)

    def counts(column: str) -> dict[str, int]:
        return dict(events.group_by(column).len().sort(column).iter_rows())

    return MergeResult(
        layout.final,
        len(files),
        events.height,
        counts("event_type"),
        counts("direction"),
        counts("session"),
    )
