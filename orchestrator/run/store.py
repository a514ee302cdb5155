"""The commit protocol: the only code that changes a run's checkpoint or shards.

A symbol is completed if and only if a committed shard covers it. A batch is
committed by renaming its fsynced temporary shard into place under the run's
kernel lock, after dropping symbols another process committed meanwhile, with a
shard number from a counter that never goes back; the checkpoint is then
rewritten atomically as a union. A crash at any point leaves either an
uncommitted temporary file (removed at the next start) or a committed shard the
checkpoint may not list yet (added by :meth:`RunStore.reconcile`; reading, writing
and reconciling the checkpoint file are :mod:`orchestrator.run.reconcile`).

:meth:`RunStore.seed` is the one way symbols become completed without a shard of
the run (``seed-checkpoint``); see :mod:`orchestrator.run.checkpoint` for what that means
when the checkpoint file is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from filelock import FileLock

from detector.errors import ExitCode, IntradayEventsError
from detector.input_fingerprint import InputFingerprint
from orchestrator.run import checkpoint as ck
from orchestrator.run.atomic_io import fsync_dir
from orchestrator.run.errors import (
    ENVIRONMENT_ERRNOS,
    ConfigMismatchError,
    RunExistsError,
    ShardWriteError,
)
from orchestrator.run.faults import crash_point
from orchestrator.run.layout import RunLayout
from orchestrator.run.reconcile import (
    committed_on_disk,
    load_reconciled,
    read_checkpoint,
    remove_stale_temps,
    write_checkpoint,
)
from orchestrator.run.shards import ShardMetadataError, read_shard_info, write_shard_file

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CommitResult:
    shard: Path | None  # None when every symbol had been committed by someone else
    committed: tuple[str, ...]
    already_committed: tuple[str, ...]
    events: int


@dataclass(frozen=True)
class BatchRecords:
    """What a batch records besides its events and failures (:mod:`orchestrator.run.checkpoint`)."""

    no_bars: tuple[str, ...] = ()  # symbols found without bar files (--allow-missing)
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per symbol
    inputs: Mapping[str, InputFingerprint] = field(default_factory=dict)  # per symbol
    suspects: Mapping[str, str] = field(default_factory=dict)  # suspect time zone, per symbol
    seconds: Mapping[str, float] = field(default_factory=dict)  # detection time, per symbol
    config: Mapping[str, Any] | None = None  # the full effective configuration


@dataclass(frozen=True)
class SeedResult:
    newly_completed: tuple[str, ...]  # completed by this seeding, marked or imported
    imported: tuple[str, ...]  # symbols the imported shard covers (zero-event ones too)
    shard: Path | None  # the imported shard; None when nothing was imported
    events: int  # rows of the imported shard
    checkpoint: ck.Checkpoint  # the run's checkpoint afterwards


class ImportConfigMismatchError(IntradayEventsError):
    """Imported events were detected with another config than the run's."""

    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str, recorded: str, imported: str, source: str) -> None:
        self.run_id = run_id
        self.recorded = recorded
        self.imported = imported
        self.source = source
        super().__init__(
            f"run {run_id} has detector config {recorded}, the events of {source} were "
            f"detected with {imported}: importing would mix events of two configs; seed "
            f"without --import-events, or into a new run"
        )


def supersedes(cp: ck.Checkpoint, symbol: str, inputs: InputFingerprint | None) -> bool:
    """Whether committing ``symbol``, computed from ``inputs``, adds to the run.

    Yes when no commit covers it yet. A committed symbol is committed again only when
    it was recomputed from bars that changed since (``launch --redo-changed``): its
    latest commit recorded other inputs. So two processes that detected it from the
    same bars commit it once, and the final file keeps the latest commit's rows.
    """
    if symbol not in cp.completed:
        return True
    before = cp.inputs.get(symbol)
    return inputs is not None and before is not None and inputs.digest != before.digest


class RunStore:
    """Reads and changes one run's state under its lock."""

    def __init__(self, layout: RunLayout, *, clock: Clock = datetime.now) -> None:
        self.layout = layout
        self.clock = clock
        layout.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        # filelock's kernel lock: released by the OS when the holder dies, so no lock
        # file ever has to be deleted by hand.
        self._lock = FileLock(layout.lock)

    # -- reading ---------------------------------------------------------------
    def read(self) -> ck.Checkpoint | None:
        """The checkpoint as on disk (None when absent). Raises CheckpointFormatError."""
        return read_checkpoint(self.layout)

    def current(self, *, remove_temps: bool = True) -> ck.Checkpoint | None:
        """The checkpoint as on disk, or, when it is unreadable, rebuilt from the shards
        under the lock (what a supervisor reads on every pass). ``remove_temps`` false
        keeps temporary shards whose writer is elsewhere (a Ray driver's tasks)."""
        try:
            return self.read()
        except ck.CheckpointFormatError:
            return self.reconcile(remove_temps=remove_temps)

    def committed_on_disk(
        self, known: Mapping[str, tuple[str, ...]] | None = None
    ) -> dict[int, tuple[str, tuple[str, ...]]]:
        """Committed shards with their symbols, from their footers or ``known``
        (:func:`orchestrator.run.reconcile.committed_on_disk`)."""
        return committed_on_disk(self.layout, known)

    # -- under the lock ----------------------------------------------------------
    def _load_reconciled(self) -> ck.Checkpoint | None:
        """Checkpoint plus committed shards it misses. Call with the lock held."""
        return load_reconciled(self.layout, self.clock)

    def _write(self, cp: ck.Checkpoint) -> None:
        write_checkpoint(self.layout, cp)

    def reconcile(self, *, remove_temps: bool = True) -> ck.Checkpoint | None:
        """The checkpoint with every committed shard in it (rewritten if it missed some).

        ``remove_temps=False`` leaves temporary shards alone: a Ray driver's tasks
        name theirs after the driver, so to the driver they always look abandoned.
        """
        with self._lock:
            if remove_temps:
                self._remove_stale_temp_shards()
            return self._load_reconciled()

    def open_run(
        self,
        *,
        config_hash: str,
        symbols: Iterable[str],
        resume: bool,
        force_config: bool,
    ) -> ck.Checkpoint:
        """Reconcile, check the run's identity and config, and add ``symbols`` to it."""
        now = self.clock()
        with self._lock:
            self._remove_stale_temp_shards()
            cp = self._load_reconciled()
            if cp is None:
                cp = ck.Checkpoint(
                    run_id=self.layout.run_id,
                    config_hash=config_hash,
                    created_at=now.isoformat(timespec="seconds"),
                )
            elif not resume and (cp.completed or cp.shards):
                raise RunExistsError(self.layout.run_id, len(cp.completed))
            if cp.config_hash is None:
                cp = replace(cp, config_hash=config_hash)
            elif cp.config_hash != config_hash:
                if not force_config:
                    raise ConfigMismatchError(self.layout.run_id, cp.config_hash, config_hash)
                record = {
                    "at": now.isoformat(timespec="seconds"),
                    "from": cp.config_hash,
                    "to": config_hash,
                }
                log.warning("--force-config: run continues with config %s", config_hash)
                cp = replace(
                    cp, config_hash=config_hash, config_overrides=(*cp.config_overrides, record)
                )
            cp = replace(
                cp,
                universe=cp.universe | frozenset(symbols),
                last_updated=now.isoformat("T", "seconds"),
            )
            self._write(cp)
            return cp

    def retry_quarantined(self, max_attempts: int) -> tuple[ck.Checkpoint, tuple[str, ...]]:
        """Give the run's quarantined symbols another round of attempts (recorded)."""
        with self._lock:
            cp = self._load_reconciled() or ck.Checkpoint(run_id=self.layout.run_id)
            updated, symbols = ck.with_quarantine_retry(cp, max_attempts, self.clock())
            if symbols:
                self._write(updated)
            return updated, symbols

    def record_failures(self, failures: Mapping[str, str]) -> ck.Checkpoint:
        """Count one failed attempt for each symbol (e.g. its worker died while on it)."""
        with self._lock:
            cp = self._load_reconciled() or ck.Checkpoint(run_id=self.layout.run_id)
            updated = ck.with_failures(cp, failures, self.clock())
            if updated is not cp:
                self._write(updated)
            return updated

    def record_no_bars(self, missing: Iterable[str], found: Iterable[str]) -> ck.Checkpoint:
        """Record ``missing`` as ``no_bars`` (no bar file, run with --allow-missing) and
        clear ``found`` (files appeared since) from it."""
        with self._lock:
            cp = self._load_reconciled() or ck.Checkpoint(run_id=self.layout.run_id)
            updated = ck.with_no_bars(cp, missing, found, self.clock())
            if updated is not cp:
                self._write(updated)
            return updated

    def commit_batch(
        self,
        *,
        shard_dir: Path,
        worker_id: int | None,
        events: pl.DataFrame,
        symbols: tuple[str, ...],
        failures: Mapping[str, str],
        config_hash: str,
        outcomes: BatchRecords | None = None,
    ) -> CommitResult:
        """Write ``events`` (the rows of ``symbols``) as this process's temporary shard,
        then commit it with :meth:`commit_written`; for tests and one-off tools (a
        worker's batches are written by :func:`orchestrator.worker.batch.detect_batch`)."""
        temp = self.layout.temp_shard(shard_dir, worker_id, os.getpid(), os.urandom(4).hex())
        records = outcomes or BatchRecords()
        if symbols:
            write_temp_shard(temp, events, self.layout.run_id, symbols, config_hash, records)
        return self.commit_written(
            temp if symbols else None,
            shard_dir=shard_dir,
            symbols=symbols,
            failures=failures,
            config_hash=config_hash,
            outcomes=records,
        )

    def commit_written(
        self,
        temp: Path | None,
        *,
        shard_dir: Path,
        symbols: tuple[str, ...],
        failures: Mapping[str, str],
        config_hash: str,
        outcomes: BatchRecords | None = None,
    ) -> CommitResult:
        """Commit one batch, whose temporary shard ``temp`` was written by
        :func:`orchestrator.worker.batch.detect_batch`: in this process (a worker), or
        in a Ray task, where the one process that commits a run's batches holds its lock,
        wherever they were detected. ``symbols`` were detected (``temp`` holds their rows,
        zero-event symbols included; None when there are none); ``failures`` failed.
        ``temp`` must be a shard of this run covering exactly ``symbols``; it is
        consumed (published or removed) either way.
        """
        try:
            if symbols:
                if temp is None:
                    raise ShardWriteError("(none)", f"no shard for {len(symbols)} symbols")
                try:
                    info = read_shard_info(temp)
                except ShardMetadataError as exc:
                    raise ShardWriteError(str(temp), f"not a readable shard: {exc}") from exc
                if info.run_id != self.layout.run_id or set(info.symbols) != set(symbols):
                    raise ShardWriteError(str(temp), "its footer does not match the batch")
            records = outcomes or BatchRecords()
            return self._publish(temp, shard_dir, symbols, failures, config_hash, records)
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def _publish(
        self,
        temp: Path | None,
        shard_dir: Path,
        symbols: tuple[str, ...],
        failures: Mapping[str, str],
        config_hash: str,
        records: BatchRecords,
    ) -> CommitResult:
        """Under the lock: drop symbols committed meanwhile, name the shard, record it."""
        with self._lock:
            cp = self._load_reconciled() or ck.Checkpoint(run_id=self.layout.run_id)
            fresh = tuple(s for s in symbols if supersedes(cp, s, records.inputs.get(s)))
            already = tuple(s for s in symbols if s not in fresh)
            events: pl.DataFrame | None = None  # the rows of ``temp``, when read
            if already and fresh:
                # Another process committed some of these: commit only the rest.
                assert temp is not None
                events = pl.read_parquet(temp).filter(pl.col("symbol").is_in(fresh))
                self._write_temp(temp, events, fresh, config_hash, records)
            now = self.clock()
            if not fresh:
                self._write(ck.with_outcomes(cp, failures, records.no_bars, now))
                return CommitResult(None, (), already, 0)
            assert temp is not None
            height = events.height if events is not None else pq.read_metadata(temp).num_rows
            number = self._next_shard_number(cp)
            shard = self.layout.shard_path(shard_dir, number)
            publish_no_clobber(temp, shard)
            fsync_dir(shard_dir)
            crash_point("after_rename")
            self._write(
                ck.with_commit(
                    cp,
                    shard_name=shard.name,
                    shard_number=number,
                    symbols=fresh,
                    failures=failures,
                    now=now,
                    no_bars=records.no_bars,
                    skipped_files=records.skipped_files,
                    inputs=records.inputs,
                    suspects=records.suspects,
                )
            )
            return CommitResult(shard, fresh, already, height)

    def _next_shard_number(self, cp: ck.Checkpoint) -> int:
        """Past the checkpoint's counter and past every file named like a shard of
        the run, ours or not: an old script's ``{run_id}_shard0001.parquet`` in a
        continued run must never be replaced (LEGACY.md item 5)."""
        on_disk = self.layout.committed_shards()
        return max(cp.shard_counter, max(on_disk, default=0)) + 1

    def seed(
        self,
        *,
        source: str,
        symbols: Iterable[str],
        events: pl.DataFrame | None = None,
        event_symbols: Iterable[str] | None = None,
        config_hash: str | None = None,
    ) -> SeedResult:
        """Mark ``symbols`` completed because run ``source`` completed them; a union.

        Without ``events`` nothing but the checkpoint changes: the symbols join
        ``completed`` and ``seeded`` (no shard of this run covers them, so their events
        stay in ``source``; a checkpoint rebuilt from shards cannot know them). With
        ``events`` (every row of ``event_symbols``, default ``symbols``, unique keys,
        detected with ``config_hash``) those of ``event_symbols`` that no shard of this
        run covers yet, including ones only marked by an earlier seeding, are first
        committed as one shard, zero-event symbols in its metadata, as a worker commits
        a batch, so the final merge holds their rows once. All of it happens under the
        run lock, after a reconcile, so a concurrent worker either committed a symbol
        first (it is not imported) or finds it completed (it drops it).
        """
        wanted = frozenset(symbols)
        covers = wanted if event_symbols is None else frozenset(event_symbols)
        now = self.clock()
        shard_dir = self.layout.shard_dir(None)
        temp = self.layout.temp_shard(shard_dir, None, os.getpid(), os.urandom(4).hex())
        try:
            with self._lock:
                self._remove_stale_temp_shards()
                start = self._load_reconciled() or ck.Checkpoint(
                    run_id=self.layout.run_id, created_at=now.isoformat(timespec="seconds")
                )
                cp = start
                shard: Path | None = None
                imported: tuple[str, ...] = ()
                rows = 0
                if events is not None:
                    imported = tuple(sorted(covers - ck.shard_covered(cp)))
                if imported:
                    assert events is not None
                    cp, shard, rows = self._import_events(
                        cp, temp, shard_dir, events, imported,
                        config_hash=config_hash, source=source, now=now,
                    )  # fmt: skip
                cp, _ = ck.with_seeded(cp, wanted | covers, source=source, now=now)
                if shard is not None:
                    cp = replace(cp, seeded_at=cp.last_updated)  # an import is a seeding too
                if cp is not start:
                    self._write(cp)
                return SeedResult(
                    newly_completed=tuple(sorted(cp.completed - start.completed)),
                    imported=imported,
                    shard=shard,
                    events=rows,
                    checkpoint=cp,
                )
        finally:
            temp.unlink(missing_ok=True)

    def _import_events(
        self,
        cp: ck.Checkpoint,
        temp: Path,
        shard_dir: Path,
        events: pl.DataFrame,
        imported: tuple[str, ...],
        *,
        config_hash: str | None,
        source: str,
        now: datetime,
    ) -> tuple[ck.Checkpoint, Path, int]:
        """Commit the rows of ``imported`` (lock held) as one shard, written to ``temp``:
        the checkpoint with the commit, the shard and its number of rows."""
        if config_hash is None:
            raise ValueError("importing events needs their config hash")
        if cp.config_hash is not None and cp.config_hash != config_hash:
            raise ImportConfigMismatchError(self.layout.run_id, cp.config_hash, config_hash, source)
        part = events.filter(pl.col("symbol").is_in(list(imported)))
        # Written with the lock held (unlike commit_batch): which symbols to import is
        # only known under it, and seeding is a rare, one-off step.
        self._write_temp(temp, part, imported, config_hash)
        number = self._next_shard_number(cp)
        shard = self.layout.shard_path(shard_dir, number)
        publish_no_clobber(temp, shard)
        fsync_dir(shard_dir)
        cp = ck.with_commit(
            cp, shard_name=shard.name, shard_number=number, symbols=imported, failures={}, now=now
        )
        if cp.config_hash is None:
            cp = replace(cp, config_hash=config_hash)
        return cp, shard, part.height

    # -- helpers -------------------------------------------------------------------
    def _write_temp(
        self,
        temp: Path,
        events: pl.DataFrame,
        symbols: tuple[str, ...],
        config_hash: str,
        records: BatchRecords | None = None,
    ) -> None:
        write_temp_shard(temp, events, self.layout.run_id, symbols, config_hash, records)

    def _remove_stale_temp_shards(self) -> None:
        """Remove temporary shards and checkpoints whose writer is gone (lock held)."""
        remove_stale_temps(self.layout)


def write_temp_shard(
    temp: Path,
    events: pl.DataFrame,
    run_id: str,
    symbols: tuple[str, ...],
    config_hash: str,
    records: BatchRecords | None = None,
) -> None:
    """Write a batch's temporary shard (``events``, the rows of ``symbols``), fsynced.

    A failed write leaves no file; a write the system refuses is an ``OSError``
    naming ``temp`` (one line at the CLI, exit 5), any other a :class:`ShardWriteError`.
    """
    records = records or BatchRecords()
    try:
        write_shard_file(
            temp, events, run_id=run_id, symbols=symbols,
            config_hash=config_hash, skipped_files=records.skipped_files,
            inputs=records.inputs, seconds=records.seconds, config=records.config,
        )  # fmt: skip
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in ENVIRONMENT_ERRNOS:  # one line at the CLI, exit 5
            raise OSError(exc.errno, exc.strerror, exc.filename or str(temp)) from exc
        raise ShardWriteError(str(temp), exc.strerror or str(exc)) from exc


class ShardExistsError(IntradayEventsError):
    """A file already has the name a new shard was to get: it is never replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"refusing to replace {path}, which appeared while committing")


def publish_no_clobber(temp: Path, final: Path) -> None:
    """Give ``temp`` the name ``final`` unless something already has it.

    A hard link fails if the name exists (a rename would silently replace it);
    where links are not supported, fall back to a checked rename under the lock.
    """
    try:
        os.link(temp, final)
    except FileExistsError:
        raise ShardExistsError(final) from None
    except OSError:
        if final.exists():
            raise ShardExistsError(final) from None
        os.replace(temp, final)
        return
    temp.unlink()
