"""``logs/launch/{run_id}/summary.json``: the end of a launch, for scripts and reports.

The same facts as the printed summary, as data: counts of symbols, events by type,
direction and session, events per symbol, failures with their reasons, timings
(UTC, with the zone), and the provenance of the final file. ``schema_version`` says
which shape this is; a reader refuses a version it does not know.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import MergeResult, shard_commits
from orchestrator.run.provenance import Provenance
from orchestrator.run.shards import ShardMetadataError, read_shard_info

SCHEMA_VERSION = 1


def summary_document(
    *,
    run_id: str,
    cp: Checkpoint,
    started_at: datetime,
    finished_at: datetime,
    exit_code: int,
    merged: MergeResult | None,
    provenance: Provenance | None,
    completed_now: int,
    stopped: str | None,
    max_attempts: int,
    seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The summary of a launch that ended at ``finished_at``; ``merged`` is the final file
    this launch wrote (its counts, from the merge: the file is not read again)."""
    quarantined = cp.quarantined(max_attempts)
    wall = (finished_at - started_at).total_seconds()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": _utc(started_at),
        "finished_at": _utc(finished_at),
        "wall_s": round(wall, 3),
        "exit_code": exit_code,
        "stopped": stopped,
        "final": None if merged is None else str(merged.path),
        "symbols": _symbol_counts(cp, quarantined, completed_now),
        "symbols_per_s": round(completed_now / wall, 3) if wall > 0 else None,
        "events": _event_counts(merged, seconds),
        "failures": _failures(cp, quarantined),
        "no_bars": sorted(cp.no_bars),
        "skipped_files": {s: list(f) for s, f in sorted(cp.skipped_files.items())},
        "suspect_timezone": dict(sorted(cp.suspect_timezone.items())),
        "provenance": _provenance(provenance),
    }


def _symbol_counts(
    cp: Checkpoint, quarantined: frozenset[str], completed_now: int
) -> dict[str, int]:
    """Each symbol of the universe counted once by its state; a failure that later
    completed is not a failure."""
    return {
        "universe": len(cp.universe),
        "completed": len(cp.completed & cp.universe),
        "completed_by_this_launch": completed_now,
        "quarantined": len(quarantined),
        "failed": len(set(cp.failed) - cp.completed - quarantined),
        "no_bars": len(cp.no_bars),
        "suspect_timezone": len(cp.suspect_timezone),
    }


def _event_counts(merged: MergeResult | None, seconds: dict[str, float] | None) -> dict[str, Any]:
    """The final file's counts (a null total when this launch wrote none) and the
    detection seconds per symbol."""
    events: dict[str, Any] = {"total": None}
    if merged is not None:
        events = {
            "total": merged.events,
            "by_type": merged.by_type,
            "by_direction": merged.by_direction,
            "by_session": merged.by_session,
            "by_symbol": merged.by_symbol,
        }
    events["seconds_by_symbol"] = dict(sorted((seconds or {}).items()))
    return events


def _failures(cp: Checkpoint, quarantined: frozenset[str]) -> dict[str, dict[str, Any]]:
    """The symbols failed and not completed since, by symbol."""
    return {
        s: {
            "error": f.error,
            "attempts": f.attempts,
            "quarantined": s in quarantined,
            "last_failed_at": f.last_failed_at,
        }
        for s, f in sorted(cp.failed.items())
        if s not in cp.completed
    }


def _provenance(provenance: Provenance | None) -> dict[str, Any] | None:
    if provenance is None:
        return None
    return {
        "config_hash": provenance.config_hash,
        "package_version": provenance.package_version,
        "created_at": provenance.created_at,
        "inputs": dict(provenance.inputs),
        "config": dict(provenance.config),
    }


def symbol_seconds(layout: RunLayout, cp: Checkpoint) -> dict[str, float]:
    """How long each symbol's latest detection took, from its shard's footer (shards
    written before the time was recorded have none)."""
    out: dict[str, float] = {}
    for commit in shard_commits(layout, cp.shards, strict=False):
        if not commit.latest:
            continue
        try:
            took = read_shard_info(commit.path).seconds
        except ShardMetadataError:
            continue
        out.update({s: t for s, t in took.items() if s in commit.latest})
    return out


def write_summary_json(path: Path, document: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(document, indent=1, default=str) + "\n")


def _utc(moment: datetime) -> str:
    """A naive ``moment`` is this machine's local time."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")
