"""A run's checkpoint file against its committed shards, for :class:`RunStore`.

Reading and writing the checkpoint file, bringing it up to date with the committed
shards it misses (a crash between a shard's rename and the checkpoint's rewrite, or a
lost or corrupt checkpoint), and removing the temporary files of writers that are gone.
Everything that changes a file here is called by :mod:`orchestrator.run.store` with the
run's lock held; the commit protocol itself is there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from detector.input_fingerprint import InputFingerprint
from orchestrator.run import checkpoint as ck
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.faults import crash_point
from orchestrator.run.layout import RunLayout
from orchestrator.run.process_identity import existed_at
from orchestrator.run.shards import ShardMetadataError, read_shard_info

# The store's logger: these lines belong to the commit protocol, and the main log names
# the logger on each line, as it did when this code was part of the store.
log = logging.getLogger("orchestrator.run.store")


def read_checkpoint(layout: RunLayout) -> ck.Checkpoint | None:
    """The checkpoint as on disk (None when absent). Raises CheckpointFormatError."""
    try:
        text = layout.checkpoint.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return ck.from_json(text, layout.run_id)


def write_checkpoint(layout: RunLayout, cp: ck.Checkpoint) -> None:
    write_text_atomic(
        layout.checkpoint,
        ck.to_json(cp),
        before_replace=lambda: crash_point("during_checkpoint_write"),
    )


def committed_on_disk(
    layout: RunLayout, known: Mapping[str, tuple[str, ...]] | None = None
) -> dict[int, tuple[str, tuple[str, ...]]]:
    """Committed shards with their symbols, read from the shard footers.

    Shards named in ``known`` (name -> symbols, as the checkpoint lists them) are
    taken from it without reading their footers: every commit reconciles, and a
    long run has hundreds of shards.
    """
    found: dict[int, tuple[str, tuple[str, ...]]] = {}
    for number, path in layout.committed_shards().items():
        if known is not None and path.name in known:
            found[number] = (path.name, tuple(known[path.name]))
            continue
        try:
            info = read_shard_info(path)
        except ShardMetadataError as exc:
            log.warning("ignoring shard without valid metadata: %s", exc)
            continue
        if info.run_id == layout.run_id:
            found[number] = (path.name, info.symbols)
    return found


def load_reconciled(layout: RunLayout, clock: Callable[[], datetime]) -> ck.Checkpoint | None:
    """Checkpoint plus committed shards it misses, rewritten when it missed some or was
    corrupt; None for a run with neither. Call with the lock held."""
    try:
        current = read_checkpoint(layout)
    except ck.CheckpointFormatError as exc:
        log.error(
            "checkpoint %s is corrupt (%s): rebuilding it from committed shards",
            layout.checkpoint,
            exc,
        )
        current = None
        corrupt = True
    else:
        corrupt = False
    on_disk = committed_on_disk(layout, current.shards if current is not None else None)
    if current is None and not on_disk and not corrupt:
        return None
    if current is None:
        current = ck.Checkpoint(run_id=layout.run_id, config_hash=_shard_hash(layout))
    updated, added = ck.reconciled(current, on_disk, clock())
    if added:
        log.info("reconciled %d committed shards missing from the checkpoint", len(added))
        updated = _with_footer_records(layout, updated, added)
    if added or corrupt:
        write_checkpoint(layout, updated)
    return updated


def _with_footer_records(layout: RunLayout, cp: ck.Checkpoint, names: list[str]) -> ck.Checkpoint:
    """``cp`` with the skipped files and input fingerprints the footers of shards
    ``names`` (in commit order) record: a later commit's records replace earlier ones."""
    paths = {p.name: p for p in layout.committed_shards().values()}
    skipped: dict[str, tuple[str, ...]] = {}
    inputs: dict[str, InputFingerprint] = {}
    for name in names:
        try:
            info = read_shard_info(paths[name])
        except (KeyError, ShardMetadataError):
            continue
        for symbol in info.symbols:
            skipped.pop(symbol, None)
        skipped.update(info.skipped_files)
        inputs.update(info.inputs)
    if not skipped and not inputs:
        return cp
    return replace(
        cp,
        skipped_files={**cp.skipped_files, **skipped},
        inputs={**cp.inputs, **inputs},
    )


def _shard_hash(layout: RunLayout) -> str | None:
    """The config hash the first readable committed shard records, for a checkpoint
    rebuilt from the shards."""
    for path in layout.committed_shards().values():
        try:
            return read_shard_info(path).config_hash
        except ShardMetadataError:
            continue
    return None


def remove_stale_temps(layout: RunLayout) -> None:
    """Remove temporary shards and checkpoints whose writer is gone (lock held)."""
    for temp in layout.temp_shards():
        if not _writer_alive(temp, temp.name.split("_")[-2]):
            log.info("removing uncommitted temporary shard %s", temp)
            temp.unlink(missing_ok=True)
    for temp in layout.temp_checkpoints():
        if not _writer_alive(temp, temp.name.split(".")[-2]):
            log.info("removing checkpoint temp file of a killed writer %s", temp)
            temp.unlink(missing_ok=True)


def _writer_alive(temp: Path, pid_text: str) -> bool:
    """Whether the process that wrote ``temp`` (``pid_text`` from its name) still runs.

    A pid reused by a process started after the file was written does not count.
    """
    try:
        pid = int(pid_text)
        mtime = temp.stat().st_mtime
    except (ValueError, FileNotFoundError):
        return False
    return pid != os.getpid() and existed_at(pid, mtime, slack=1.0)
