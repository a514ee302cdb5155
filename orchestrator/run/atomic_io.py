"""Atomic Parquet writes: a reader never sees a half-written file."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from orchestrator.run.io_errors import writing


def write_parquet_atomic(
    frame: pl.DataFrame,
    path: Path,
    *,
    metadata: Mapping[bytes, bytes] | None = None,
    sorted_by: Sequence[str] = (),
) -> None:
    """Write zstd Parquet to ``path`` via a temporary file, fsync and rename.

    ``metadata``: key-value pairs for the file's footer; ``sorted_by``: the columns the
    rows are sorted by (ascending), declared in the footer (``sorting_columns``).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Encoded in memory (the compressed file is smaller than the frame), written
            # by Python: a refused write then says why (polars turns EFBIG at the
            # footer into "Invalid thrift: transport error").
            encoded = io.BytesIO()
            if metadata or sorted_by:
                table = frame.to_arrow()
                table = table.replace_schema_metadata(
                    {**(table.schema.metadata or {}), **(metadata or {})}
                )
                order = pq.SortingColumn.from_ordering(
                    table.schema, [(c, "ascending") for c in sorted_by]
                )
                pq.write_table(table, encoded, compression="zstd", sorting_columns=order or None)
            else:
                frame.write_parquet(encoded, compression="zstd")
            with open(tmp, "wb") as handle:
                handle.write(encoded.getbuffer())
                handle.flush()
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        with writing(path, inject=False):
            os.replace(tmp, path)
            if durable:
                fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
