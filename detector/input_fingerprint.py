"""What a symbol's events were computed from: a fingerprint of its bar files.

A commit records, per symbol, the number of bar files, their total size, the newest
modification time and a digest of every file's name, size and modification time,
taken (from ``stat`` alone, nothing is read) just before the files were read. When
the same listing gives another digest later, the symbol's bars changed since its
events were committed: a day was added or rewritten, a file removed. ``launch
--redo-changed`` recomputes exactly those symbols.

Copying the bar files without keeping their times (``cp`` without ``-p``) counts as
a change of every file; ``cp -p`` and ``rsync -a`` keep them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class InputFingerprint:
    files: int
    bytes: int
    newest_mtime_ns: int
    digest: str  # of (name, size, mtime_ns) per file, in the order read

    def to_json(self) -> dict[str, Any]:
        newest = datetime.fromtimestamp(self.newest_mtime_ns / 1e9, tz=UTC)
        return {
            "files": self.files,
            "bytes": self.bytes,
            "newest": newest.isoformat(timespec="seconds"),
            "newest_ns": self.newest_mtime_ns,
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputFingerprint:
        return cls(
            files=int(data["files"]),
            bytes=int(data["bytes"]),
            newest_mtime_ns=int(data["newest_ns"]),
            digest=str(data["digest"]),
        )


def fingerprint(files: Sequence[Path]) -> InputFingerprint:
    """The fingerprint of ``files`` (a symbol's bar files, as the reader lists them).

    A file that vanished since it was listed counts with size -1 (reading it will fail
    and say so).
    """
    digest = hashlib.sha256()
    total = newest = 0
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            size, mtime = -1, 0
        else:
            size, mtime = st.st_size, st.st_mtime_ns
            total += size
            newest = max(newest, mtime)
        digest.update(f"{path.name}\0{size}\0{mtime}\n".encode())
    return InputFingerprint(len(files), total, newest, digest.hexdigest()[:16])


def changed(
    recorded: Mapping[str, InputFingerprint], current: Mapping[str, InputFingerprint | None]
) -> tuple[str, ...]:
    """The symbols whose ``current`` fingerprint differs from the ``recorded`` one (a
    symbol whose files are all gone, ``None``, changed too); symbols without a record
    (committed before fingerprints were kept) are never reported."""
    out = []
    for symbol, before in recorded.items():
        if symbol not in current:
            continue
        now = current[symbol]
        if now is None or now.digest != before.digest:
            out.append(symbol)
    return tuple(sorted(out))


def to_redo(
    recorded: Mapping[str, InputFingerprint], current: Mapping[str, InputFingerprint | None]
) -> frozenset[str]:
    """The changed symbols that can be recomputed: those that still have bar files.

    Once a symbol's new commit records ``current``'s fingerprint it is no longer one of
    them, so a run that is killed while recomputing picks up where it was.
    """
    return frozenset(s for s in changed(recorded, current) if current[s] is not None)
