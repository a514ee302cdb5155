"""Shard files: one batch's events plus, in the Parquet footer, what the batch covers.

The footer's key-value metadata records the run id and every symbol the shard
covers, including symbols with zero events, so the checkpoint can always be
rebuilt from committed shards alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from detector.io_errors import writing
from detector.schema import empty_events

META_RUN_ID = b"intraday_events.run_id"
META_SYMBOLS = b"intraday_events.symbols"
META_CONFIG_HASH = b"intraday_events.config_hash"


@dataclass(frozen=True)
class ShardInfo:
    run_id: str
    symbols: tuple[str, ...]
    config_hash: str | None


class ShardMetadataError(ValueError):
    """The file is not a shard of ours (no or bad metadata)."""


def write_shard_file(
    path: Path, events: pl.DataFrame, *, run_id: str, symbols: tuple[str, ...], config_hash: str
) -> None:
    """Write ``events`` with shard metadata to ``path`` (a temporary name), fsynced."""
    table = (events if events.width else empty_events()).to_arrow()
    metadata = dict(table.schema.metadata or {})
    metadata[META_RUN_ID] = run_id.encode()
    metadata[META_SYMBOLS] = json.dumps(sorted(symbols)).encode()
    metadata[META_CONFIG_HASH] = config_hash.encode()
    table = table.replace_schema_metadata(metadata)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())


def read_shard_info(path: Path) -> ShardInfo:
    """Read only the footer. Raises :class:`ShardMetadataError` if it is not our shard."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
        run_id = metadata[META_RUN_ID].decode()
        symbols = tuple(json.loads(metadata[META_SYMBOLS]))
    except (KeyError, ValueError, OSError) as exc:
        raise ShardMetadataError(f"{path}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own types for a truncated file
        raise ShardMetadataError(f"{path}: {exc}") from exc
    config_hash = metadata.get(META_CONFIG_HASH)
    return ShardInfo(run_id, symbols, config_hash.decode() if config_hash else None)
