"""Shard files: one batch's events plus, in the Parquet footer, what the batch covers.

The footer's key-value metadata records the run id and every symbol the shard
covers, including symbols with zero events, so the checkpoint can always be
rebuilt from committed shards alone; and, when there are any, the unreadable bar
files each symbol was detected without (``--skip-unreadable``), so that record
survives a rebuild too; and what each symbol's events were computed from (its
input fingerprint), so that bars changed since can be found and recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from detector.input_fingerprint import InputFingerprint
from detector.schema import EVENT_KEY, empty_events
from orchestrator.run.io_errors import writing
from orchestrator.run.provenance import package_version

META_RUN_ID = b"intraday_events.run_id"
META_SYMBOLS = b"intraday_events.symbols"
META_CONFIG_HASH = b"intraday_events.config_hash"
META_SKIPPED = b"intraday_events.skipped_files"  # only when some file was skipped
META_INPUTS = b"intraday_events.inputs"  # symbol -> input fingerprint
META_SECONDS = b"intraday_events.seconds"  # symbol -> seconds its detection took
META_CONFIG = b"intraday_events.config"  # the full effective configuration (JSON)
META_VERSION = b"intraday_events.package_version"
META_CREATED = b"intraday_events.created_at"  # UTC, with its zone


@dataclass(frozen=True)
class ShardInfo:
    run_id: str
    symbols: tuple[str, ...]
    config_hash: str | None
    skipped_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    inputs: Mapping[str, InputFingerprint] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)


class ShardMetadataError(ValueError):
    """The file is not a shard of ours (no or bad metadata)."""


def write_shard_file(
    path: Path,
    events: pl.DataFrame,
    *,
    run_id: str,
    symbols: tuple[str, ...],
    config_hash: str,
    skipped_files: Mapping[str, tuple[str, ...]] | None = None,
    inputs: Mapping[str, InputFingerprint] | None = None,
    seconds: Mapping[str, float] | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write ``events`` with shard metadata to ``path`` (a temporary name), fsynced.

    ``skipped_files`` (symbol -> unreadable files left out), ``inputs`` (symbol -> input
    fingerprint) and ``seconds`` (symbol -> detection time) are kept for ``symbols``
    only; ``config`` is the full effective configuration. The package version and the
    time of writing are always recorded, and the rows are sorted by the event key, which
    the footer declares (``sorting_columns``).
    """
    frame = events if events.width else empty_events()
    table = frame.sort(EVENT_KEY).to_arrow() if frame.height else frame.to_arrow()
    metadata = dict(table.schema.metadata or {})
    metadata[META_RUN_ID] = run_id.encode()
    metadata[META_SYMBOLS] = json.dumps(sorted(symbols)).encode()
    metadata[META_CONFIG_HASH] = config_hash.encode()
    skipped = {s: list(f) for s, f in sorted((skipped_files or {}).items()) if s in symbols and f}
    if skipped:
        metadata[META_SKIPPED] = json.dumps(skipped).encode()
    prints = {s: f.to_json() for s, f in sorted((inputs or {}).items()) if s in symbols}
    if prints:
        metadata[META_INPUTS] = json.dumps(prints).encode()
    took = {s: round(t, 4) for s, t in sorted((seconds or {}).items()) if s in symbols}
    if took:
        metadata[META_SECONDS] = json.dumps(took).encode()
    if config is not None:
        metadata[META_CONFIG] = json.dumps(config, sort_keys=True, default=str).encode()
    metadata[META_VERSION] = package_version().encode()
    metadata[META_CREATED] = datetime.now(UTC).isoformat(timespec="seconds").encode()
    table = table.replace_schema_metadata(metadata)
    order = pq.SortingColumn.from_ordering(table.schema, [(c, "ascending") for c in EVENT_KEY])
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd", sorting_columns=order)
            handle.flush()
            os.fsync(handle.fileno())


def read_shard_info(path: Path) -> ShardInfo:
    """Read only the footer. Raises :class:`ShardMetadataError` if it is not our shard."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
        run_id = metadata[META_RUN_ID].decode()
        symbols = tuple(json.loads(metadata[META_SYMBOLS]))
        skipped = json.loads(metadata.get(META_SKIPPED, b"{}"))
        skipped_files = {str(s): tuple(str(f) for f in files) for s, files in skipped.items()}
        prints = json.loads(metadata.get(META_INPUTS, b"{}"))
        inputs = {str(s): InputFingerprint.from_json(f) for s, f in prints.items()}
        took = json.loads(metadata.get(META_SECONDS, b"{}"))
        seconds = {str(s): float(t) for s, t in took.items()}
    except (KeyError, ValueError, OSError) as exc:
        raise ShardMetadataError(f"{path}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own types for a truncated file
        raise ShardMetadataError(f"{path}: {exc}") from exc
    config_hash = metadata.get(META_CONFIG_HASH)
    return ShardInfo(
        run_id,
        symbols,
        config_hash.decode() if config_hash else None,
        skipped_files,
        inputs,
        seconds,
    )
