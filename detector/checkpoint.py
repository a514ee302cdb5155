"""The run checkpoint: what is committed, what failed, and the shard counter.

The checkpoint is a cache of the truth held by committed shards (each records in
its Parquet metadata the symbols it covers), so it can always be rebuilt from
them. This module is pure: JSON in and out, and functions from one checkpoint
to the next. Reading and writing files under the lock is ``detector.commit``.

The JSON keeps the legacy fields (``run_id``, ``completed_symbols``,
``total_completed``, ``last_updated``) so old monitoring still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

FORMAT_VERSION = 2


@dataclass(frozen=True)
class FailedSymbol:
    error: str
    attempts: int
    last_failed_at: str


@dataclass(frozen=True)
class Checkpoint:
    run_id: str
    completed: frozenset[str] = frozenset()
    shards: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # file name -> symbols
    failed: Mapping[str, FailedSymbol] = field(default_factory=dict)
    shard_counter: int = 0
    config_hash: str | None = None
    universe: frozenset[str] = frozenset()
    created_at: str | None = None
    last_updated: str | None = None
    config_overrides: tuple[Mapping[str, str], ...] = ()  # --force-config records
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as they are

    def quarantined(self, max_attempts: int) -> frozenset[str]:
        return frozenset(
            s
            for s, f in self.failed.items()
            if f.attempts >= max_attempts and s not in self.completed
        )


def _stamp(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


def to_json(cp: Checkpoint) -> str:
    data: dict[str, Any] = dict(cp.extra)
    data.update(
        {
            "run_id": cp.run_id,
            "completed_symbols": sorted(cp.completed),
            "total_completed": len(cp.completed),
            "last_updated": cp.last_updated,
            "format_version": FORMAT_VERSION,
            "created_at": cp.created_at,
            "config_hash": cp.config_hash,
            "config_overrides": [dict(o) for o in cp.config_overrides],
            "shard_counter": cp.shard_counter,
            "universe": sorted(cp.universe),
            "shards": {name: list(symbols) for name, symbols in sorted(cp.shards.items())},
            "failed": {
                s: {"error": f.error, "attempts": f.attempts, "last_failed_at": f.last_failed_at}
                for s, f in sorted(cp.failed.items())
            },
        }
    )
    return json.dumps(data, indent=1) + "\n"


class CheckpointFormatError(ValueError):
    """The checkpoint file is not a checkpoint (garbage, truncated, wrong shape)."""


_KNOWN = {
    "run_id",
    "completed_symbols",
    "total_completed",
    "last_updated",
    "format_version",
    "created_at",
    "config_hash",
    "config_overrides",
    "shard_counter",
    "universe",
    "shards",
    "failed",
}


def from_json(text: str, run_id: str) -> Checkpoint:
    """Parse our format or the legacy one (``completed_symbols`` and a few fields)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("completed_symbols", []), list):
            raise CheckpointFormatError("not a checkpoint object")
        failed = {
            str(s): FailedSymbol(str(f["error"]), int(f["attempts"]), str(f["last_failed_at"]))
            for s, f in (data.get("failed") or {}).items()
        }
        return Checkpoint(
            run_id=str(data.get("run_id") or run_id),
            completed=frozenset(str(s) for s in data.get("completed_symbols") or []),
            shards={str(k): tuple(v) for k, v in (data.get("shards") or {}).items()},
            failed=failed,
            shard_counter=int(data.get("shard_counter") or 0),
            config_hash=data.get("config_hash"),
            universe=frozenset(data.get("universe") or []),
            created_at=data.get("created_at"),
            last_updated=data.get("last_updated"),
            config_overrides=tuple(data.get("config_overrides") or ()),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )
    except CheckpointFormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointFormatError(str(exc)) from exc


def with_commit(
    cp: Checkpoint,
    *,
    shard_name: str,
    shard_number: int,
    symbols: Iterable[str],
    failures: Mapping[str, str],
    now: datetime,
) -> Checkpoint:
    """The checkpoint after committing one shard: a union, never a replacement."""
    covered = tuple(sorted(symbols))
    failed = dict(cp.failed)
    for symbol in covered:
        failed.pop(symbol, None)
    failed.update(record_failures(cp, failures, now))
    return replace(
        cp,
        completed=cp.completed | frozenset(covered),
        shards={**cp.shards, shard_name: covered},
        failed=failed,
        shard_counter=max(cp.shard_counter, shard_number),
        last_updated=_stamp(now),
    )


def record_failures(
    cp: Checkpoint, failures: Mapping[str, str], now: datetime
) -> dict[str, FailedSymbol]:
    out: dict[str, FailedSymbol] = {}
    for symbol, error in failures.items():
        if symbol in cp.completed:
            continue
        previous = cp.failed.get(symbol)
        attempts = (previous.attempts if previous else 0) + 1
        out[symbol] = FailedSymbol(error, attempts, _stamp(now))
    return out


def with_failures(cp: Checkpoint, failures: Mapping[str, str], now: datetime) -> Checkpoint:
    if not failures:
        return cp
    return replace(
        cp, failed={**cp.failed, **record_failures(cp, failures, now)}, last_updated=_stamp(now)
    )


def reconciled(
    cp: Checkpoint, committed: Mapping[int, tuple[str, tuple[str, ...]]], now: datetime
) -> tuple[Checkpoint, list[str]]:
    """Add committed shards the checkpoint is missing; raise the counter past them.

    ``committed`` maps shard number -> (file name, symbols covered). Returns the
    new checkpoint and the names of the shards that were added.
    """
    added = [name for _, (name, _) in sorted(committed.items()) if name not in cp.shards]
    if not added and cp.shard_counter >= max(committed, default=0):
        return cp, []
    shards = dict(cp.shards)
    completed = set(cp.completed)
    for name, symbols in committed.values():
        shards[name] = symbols
        completed.update(symbols)
    failed = {s: f for s, f in cp.failed.items() if s not in completed}
    new = replace(
        cp,
        shards=shards,
        completed=frozenset(completed),
        failed=failed,
        shard_counter=max(cp.shard_counter, max(committed, default=0)),
        last_updated=_stamp(now),
    )
    return new, added
