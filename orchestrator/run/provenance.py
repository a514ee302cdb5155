"""What produced a run's final file, written into the file itself (Parquet key-value
metadata), so that a file found on its own still says where it came from.

Keys (all under ``intraday_events.``): ``run_id``, ``config_hash``, ``config`` (the full
effective configuration, JSON), ``package_version``, ``created_at`` (UTC, with its
zone), ``inputs`` (a summary of what the run read, JSON). The file also declares its
sort order (Parquet ``sorting_columns``: the event key).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from detector.config import AppConfig
from orchestrator.run.checkpoint import Checkpoint

PREFIX = "intraday_events."
PACKAGE = "intraday-events"


def package_version() -> str:
    try:
        return importlib_metadata.version(PACKAGE)
    except importlib_metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def effective_config(app: AppConfig) -> dict[str, Any]:
    """Every setting of ``app`` (defaults included), as plain JSON types."""
    data = dataclasses.asdict(app)
    data.pop("source", None)  # where it was read from is not a setting
    return data


@dataclass(frozen=True)
class Provenance:
    run_id: str
    config_hash: str | None
    config: Mapping[str, Any]
    package_version: str
    created_at: str  # UTC ISO-8601 with its offset
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of_run(cls, app: AppConfig, cp: Checkpoint, *, bars_root: Path | None = None) -> Provenance:
        """The provenance of a run's final file, from its config and checkpoint."""
        prints = cp.inputs.values()
        inputs: dict[str, Any] = {
            "bars_root": None if bars_root is None else str(bars_root),
            "symbols": len(cp.universe),
            "completed": len(cp.completed),
            "no_bars": len(cp.no_bars),
            "files_skipped": sum(len(f) for f in cp.skipped_files.values()),
            "suspect_timezone": len(cp.suspect_timezone),
            "bar_files": sum(p.files for p in prints),
            "bar_bytes": sum(p.bytes for p in prints),
            "newest_bar_file": max((p.to_json()["newest"] for p in prints), default=None),
        }
        return cls(
            run_id=cp.run_id,
            config_hash=cp.config_hash,
            config=effective_config(app),
            package_version=package_version(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            inputs=inputs,
        )

    def metadata(self) -> dict[bytes, bytes]:
        values = {
            "run_id": self.run_id,
            "config_hash": self.config_hash or "",
            "config": json.dumps(self.config, sort_keys=True, default=str),
            "package_version": self.package_version,
            "created_at": self.created_at,
            "inputs": json.dumps(self.inputs, sort_keys=True, default=str),
        }
        return {f"{PREFIX}{k}".encode(): v.encode() for k, v in values.items()}


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance keys of a Parquet file (JSON values decoded); empty when it has none."""
    raw = pq.read_metadata(path).metadata or {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode()
        if not name.startswith(PREFIX):
            continue
        text = value.decode()
        short = name.removeprefix(PREFIX)
        out[short] = json.loads(text) if short in ("config", "inputs") else text
    return out
