"""Writes refused by the system, reported against the file they were for.

An ``OSError`` raised while writing through a handle has no file name, polars
reports one as a ``ComputeError`` ending in ``(os error N)``, and a temporary
file's name means nothing to an operator: :func:`writing` re-raises each of them
as an ``OSError`` naming the file being written, which the CLI turns into one line
(:func:`orchestrator.run.errors.environment_error`). It is also where tests inject such
failures (:func:`orchestrator.run.faults.write_fault`), at the real write call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from orchestrator.run.faults import write_fault

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextmanager
def writing(path: Path, *, inject: bool = True) -> Iterator[None]:
    """Run a write of ``path``; an ``OSError`` inside names ``path``.

    ``inject=False``: a later step of a write already counted by the fault hook.
    """
    try:
        if inject:
            write_fault(path)
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
    except pl.exceptions.ComputeError as exc:
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        number = int(match[1])
        raise OSError(number, os.strerror(number), str(path)) from exc
