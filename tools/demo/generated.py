"""Generated data a tool keeps between runs, and never mistakes for someone else's.

A tool that generates files into a directory (the demo's bars, the benchmark's
bars) writes a marker file naming what it generated. The next run reuses the
files when the marker says the same, replaces them when it says otherwise, and
refuses a directory holding files without a marker: they are not the tool's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from detector.errors import ExitCode, IntradayEventsError


class ForeignFilesError(IntradayEventsError):
    """The directory holds files the tool did not generate: never touched."""

    exit_code = ExitCode.USAGE

    def __init__(self, directory: Path, message: str) -> None:
        self.directory = directory
        super().__init__(message)


def reusable(
    directory: Path,
    marker: str,
    wanted: Mapping[str, object],
    outputs: Sequence[Path],
    foreign: type[ForeignFilesError],
) -> bool:
    """True when ``directory``'s marker says ``wanted`` and every output exists.

    Otherwise the way is cleared for generating: outputs of an earlier run of the
    tool (its marker is there) are removed; a non-empty directory without a
    marker raises ``foreign(directory)``.
    """
    path = directory / marker
    if path.is_file():
        try:
            made = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            made = None
        if made == wanted and all(output.is_dir() for output in outputs):
            return True
        for output in outputs:  # the tool's own files, of another size
            shutil.rmtree(output, ignore_errors=True)
        path.unlink(missing_ok=True)
    elif directory.exists() and any(directory.iterdir()):
        raise foreign(directory)  # type: ignore[call-arg]
    return False


def mark(directory: Path, marker: str, wanted: Mapping[str, object]) -> None:
    """Record what was generated into ``directory`` (after generating it)."""
    (directory / marker).write_text(json.dumps(dict(wanted)) + "\n", encoding="utf-8")
