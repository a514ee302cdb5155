"""The run checkpoint: what is committed, what failed, and the shard counter.

A symbol is normally covered by one shard. ``launch --redo-changed`` commits a
symbol whose bars changed again, in a new shard: the later commit supersedes the
earlier one (the final file takes each symbol's rows from its latest commit), and
``inputs`` records what the latest commit was computed from.

The checkpoint is a cache of the truth held by committed shards (each records in
its Parquet metadata the symbols it covers), so it can always be rebuilt from
them. This module is pure: JSON in and out, and functions from one checkpoint
to the next. Reading and writing files under the lock is ``orchestrator.run.store``.

The JSON keeps the legacy fields (``run_id``, ``completed_symbols``,
``total_completed``, ``last_updated``; ``seeded_from`` and ``seeded_at`` once the
run was seeded) so old monitoring still works.

Two records settle a symbol without completing it, both written only when not
empty (so older checkpoints read as before, and older code keeps them as unknown
keys): ``no_bars`` lists symbols that had no bar file when a run with
``--allow-missing`` came to them (never completed, never in a shard; a later
launch detects them once their files appear), and ``skipped_files`` lists, per
completed symbol, the unreadable bar files a run with ``--skip-unreadable`` left
out of it.

Seeded symbols are the one exception to "completed iff a shard covers it":
``seed-checkpoint`` may mark symbols completed from another run without bringing
their events, so no shard of this run covers them. They are listed in ``seeded``
(symbol -> source run) and stay completed through every reconcile and commit,
but only the checkpoint file holds them: when it is lost or corrupt, the rebuild
from shards cannot know them and they count as not done again (seeding again,
which is idempotent, restores them; seeding with ``--import-events`` gives them a
shard and so survives a rebuild).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from detector.input_fingerprint import InputFingerprint, to_redo

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
    # Completed by seed-checkpoint without a shard of this run: symbol -> source run.
    seeded: Mapping[str, str] = field(default_factory=dict)
    seeded_from: tuple[str, ...] = ()  # every source run seeded from, first seeding first
    seeded_at: str | None = None  # the latest seeding that changed something
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as they are
    # No bar file when detected with --allow-missing: not completed, not in any shard.
    no_bars: frozenset[str] = frozenset()
    # Completed with --skip-unreadable: symbol -> the unreadable files left out.
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What each symbol's latest commit was computed from (absent for older commits).
    inputs: Mapping[str, InputFingerprint] = field(default_factory=dict)
    # Completed symbols whose volume peaks sit off the auctions as read (a wrong time
    # zone?): symbol -> the shifts that fit (detector.zone_check). Their events are kept.
    suspect_timezone: Mapping[str, str] = field(default_factory=dict)
    # launch --retry-quarantined: {"at", "max_attempts", "symbols": {symbol: failure}}
    # per retry, the failures it cleared kept here (absent from older checkpoints).
    quarantine_retries: tuple[Mapping[str, Any], ...] = ()

    def quarantined(self, max_attempts: int) -> frozenset[str]:
        return frozenset(
            s
            for s, f in self.failed.items()
            if f.attempts >= max_attempts and s not in self.completed
        )

    def finished(self, max_attempts: int) -> frozenset[str]:
        """Completed or quarantined: detected, or given up. Unlike :meth:`settled`, a
        symbol recorded without bars is not finished: its files may be back, so the
        input checks before a run look for them again."""
        return self.completed | self.quarantined(max_attempts)

    def settled(
        self, max_attempts: int, redo: Mapping[str, InputFingerprint] | None = None
    ) -> frozenset[str]:
        """Symbols nothing more is done for: completed, quarantined, or without bars.

        ``redo`` (``--redo-changed``) maps completed symbols whose bars changed to the
        fingerprint they have now: each is not settled until a commit records it.
        """
        settled = self.finished(max_attempts) | self.no_bars
        return settled - to_redo(self.inputs, redo) if redo else settled

    def remaining(self, max_attempts: int) -> frozenset[str]:
        """Symbols of the universe still to detect (what a run waits for to merge)."""
        return self.universe - self.settled(max_attempts)

    def remaining_of(
        self,
        symbols: Iterable[str],
        max_attempts: int,
        redo: Mapping[str, InputFingerprint] | None = None,
    ) -> tuple[str, ...]:
        """Those of ``symbols`` still to detect, in their order: the one rule of what is
        left to do, for a worker's list, a Ray lane or a launch's plan."""
        settled = self.settled(max_attempts, redo)
        return tuple(s for s in symbols if s not in settled)


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
    if cp.quarantine_retries:  # only once used, so that other checkpoints read as before
        data["quarantine_retries"] = [dict(r) for r in cp.quarantine_retries]
    if cp.seeded_from or cp.seeded:
        # Only for seeded runs, so that every other checkpoint reads as before. The old
        # tool wrote one source as a string: kept as it is until another source joins.
        legacy = data.get("seeded_from")
        if not (isinstance(legacy, str) and cp.seeded_from == (legacy,)):
            data["seeded_from"] = list(cp.seeded_from)
        data["seeded_at"] = cp.seeded_at
        data["seeded"] = dict(sorted(cp.seeded.items()))
    if cp.no_bars:
        data["no_bars"] = sorted(cp.no_bars)
    if cp.skipped_files:
        data["skipped_files"] = {s: list(f) for s, f in sorted(cp.skipped_files.items())}
    if cp.inputs:
        data["inputs"] = {s: f.to_json() for s, f in sorted(cp.inputs.items())}
    if cp.suspect_timezone:  # only when some symbol is suspect: others read as before
        data["suspect_timezone"] = dict(sorted(cp.suspect_timezone.items()))
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
    "seeded",
    "seeded_from",
    "seeded_at",
    "no_bars",
    "skipped_files",
    "inputs",
    "suspect_timezone",
    "quarantine_retries",
}


def _seeded_from(value: Any) -> tuple[str, ...]:
    """A list of runs (ours), or one run id as a string (a legacy seeded checkpoint)."""
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(dict.fromkeys(str(v) for v in value))


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
            seeded={str(k): str(v) for k, v in (data.get("seeded") or {}).items()},
            seeded_from=_seeded_from(data.get("seeded_from")),
            seeded_at=data.get("seeded_at"),
            no_bars=frozenset(str(s) for s in data.get("no_bars") or []),
            skipped_files={
                str(s): tuple(str(f) for f in files)
                for s, files in (data.get("skipped_files") or {}).items()
            },
            inputs={
                str(s): InputFingerprint.from_json(f) for s, f in (data.get("inputs") or {}).items()
            },
            suspect_timezone={
                str(k): str(v) for k, v in (data.get("suspect_timezone") or {}).items()
            },
            quarantine_retries=tuple(dict(r) for r in data.get("quarantine_retries") or ()),
            extra={
                k: v
                for k, v in data.items()
                if k not in _KNOWN or (k == "seeded_from" and isinstance(v, str))
            },
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
    no_bars: Iterable[str] = (),
    skipped_files: Mapping[str, tuple[str, ...]] | None = None,
    inputs: Mapping[str, InputFingerprint] | None = None,
    suspects: Mapping[str, str] | None = None,
) -> Checkpoint:
    """The checkpoint after committing one shard: a union, never a replacement.

    ``no_bars`` are symbols of the batch found without bar files (not covered);
    ``skipped_files`` the unreadable files each covered symbol was detected without;
    ``inputs`` what each was computed from. For a symbol committed again (recomputed
    from changed bars) both replace the earlier commit's records. ``suspects``
    (symbol -> note) of the covered symbols join ``suspect_timezone``.
    """
    covered = tuple(sorted(symbols))
    failed = dict(cp.failed)
    for symbol in covered:
        failed.pop(symbol, None)
    completed = cp.completed | frozenset(covered)
    skipped = {s: tuple(f) for s, f in (skipped_files or {}).items() if s in covered and f}
    prints = {s: f for s, f in (inputs or {}).items() if s in covered}
    base = replace(
        cp,
        completed=completed,
        shards={**cp.shards, shard_name: covered},
        seeded=_without(cp.seeded, covered),
        failed=failed,
        no_bars=cp.no_bars - completed,
        skipped_files={
            **{s: f for s, f in cp.skipped_files.items() if s not in covered},
            **skipped,
        },
        inputs={**{s: f for s, f in cp.inputs.items() if s not in covered}, **prints},
        shard_counter=max(cp.shard_counter, shard_number),
        last_updated=_stamp(now),
        suspect_timezone={
            **{s: note for s, note in cp.suspect_timezone.items() if s not in covered},
            **{s: note for s, note in (suspects or {}).items() if s in covered},
        },
    )
    return with_outcomes(base, failures, no_bars, now)


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
    """One more failed attempt per symbol; a failed symbol is no longer ``no_bars``."""
    if not failures:
        return cp
    return replace(
        cp,
        failed={**cp.failed, **record_failures(cp, failures, now)},
        no_bars=cp.no_bars - frozenset(failures),
        last_updated=_stamp(now),
    )


def with_outcomes(
    cp: Checkpoint, failures: Mapping[str, str], no_bars: Iterable[str], now: datetime
) -> Checkpoint:
    """Failed attempts, then symbols found without bar files, of one batch."""
    return with_no_bars(with_failures(cp, failures, now), no_bars, (), now)


def with_no_bars(
    cp: Checkpoint, missing: Iterable[str], found: Iterable[str], now: datetime
) -> Checkpoint:
    """``missing`` have no bar file (recorded ``no_bars``, their failed attempts dropped);
    ``found`` have files again (no longer ``no_bars``). ``cp`` itself when nothing changes."""
    absent = frozenset(missing) - cp.completed
    no_bars = (cp.no_bars - frozenset(found)) | absent
    if no_bars == cp.no_bars and not absent & set(cp.failed):
        return cp
    return replace(
        cp,
        no_bars=no_bars,
        failed={s: f for s, f in cp.failed.items() if s not in absent},
        last_updated=_stamp(now),
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
    # Completed stays a union: seeded symbols (no shard here) are kept, and those a
    # shard now covers are no longer "seeded only".
    covered = {s for _, symbols in committed.values() for s in symbols}
    new = replace(
        cp,
        shards=shards,
        completed=frozenset(completed),
        no_bars=cp.no_bars - completed,
        seeded=_without(cp.seeded, covered),
        failed=failed,
        shard_counter=max(cp.shard_counter, max(committed, default=0)),
        last_updated=_stamp(now),
    )
    return new, added


def with_seeded(
    cp: Checkpoint, symbols: Iterable[str], *, source: str, now: datetime
) -> tuple[Checkpoint, frozenset[str]]:
    """Mark ``symbols`` completed because run ``source`` completed them: a union.

    Symbols already completed keep their record (a shard, or an earlier seeding);
    only the others are added, to ``completed`` and to ``seeded``. Their failed
    attempts are dropped, as a commit drops them. ``source`` joins ``seeded_from``.
    Returns the new checkpoint and the newly marked symbols; the checkpoint is
    ``cp`` itself when nothing changes, so seeding again is a no-op.
    """
    new = frozenset(symbols) - cp.completed
    if not new and source in cp.seeded_from:
        return cp, new
    stamp = _stamp(now)
    return (
        replace(
            cp,
            completed=cp.completed | new,
            no_bars=cp.no_bars - new,
            seeded={**cp.seeded, **dict.fromkeys(sorted(new), source)},
            failed={s: f for s, f in cp.failed.items() if s not in new},
            seeded_from=cp.seeded_from if source in cp.seeded_from else (*cp.seeded_from, source),
            seeded_at=stamp,
            last_updated=stamp,
        ),
        new,
    )


def with_quarantine_retry(
    cp: Checkpoint, max_attempts: int, now: datetime
) -> tuple[Checkpoint, tuple[str, ...]]:
    """Give every quarantined symbol a new round of ``max_attempts`` attempts.

    Their failures leave ``failed`` (so they are planned again) and are kept in a
    ``quarantine_retries`` record. Returns ``cp`` itself when none is quarantined.
    """
    symbols = tuple(sorted(cp.quarantined(max_attempts)))
    if not symbols:
        return cp, ()
    cleared = {
        s: {
            "error": cp.failed[s].error,
            "attempts": cp.failed[s].attempts,
            "last_failed_at": cp.failed[s].last_failed_at,
        }
        for s in symbols
    }
    record = {"at": _stamp(now), "max_attempts": max_attempts, "symbols": cleared}
    return (
        replace(
            cp,
            failed={s: f for s, f in cp.failed.items() if s not in cleared},
            quarantine_retries=(*cp.quarantine_retries, record),
            last_updated=_stamp(now),
        ),
        symbols,
    )


def shard_covered(cp: Checkpoint) -> frozenset[str]:
    """Symbols some committed shard of the run covers (their events are in the run)."""
    return frozenset(s for symbols in cp.shards.values() for s in symbols)


def _without(seeded: Mapping[str, str], covered: Iterable[str]) -> dict[str, str]:
    drop = set(covered)
    return {s: source for s, source in seeded.items() if s not in drop}
