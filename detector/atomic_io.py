"""Atomic Parquet writes: a reader never sees a half-written file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import polars as pl


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write zstd Parquet to ``path`` via a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        frame.write_parquet(tmp, compression="zstd")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(
    path: Path,
    text: str,
    *,
    durable: bool = True,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` with ``text``: temp file, flush, fsync, rename, fsync directory.

    A crash at any point leaves either the old file or the new one, never a mix.
    ``durable=False`` skips the fsyncs (still atomic to readers): for files such as
    heartbeats that are rewritten every second and worthless after a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
