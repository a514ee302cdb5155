"""Which symbols of a run have no bar file, decided before any worker starts.

A symbol with no bar file is never completed. Before a run detects anything,
``launch`` and a lone ``detect`` look for each symbol still to do: symbols without
files make them refuse (:class:`MissingBarsError`, exit 3; typically ``--bars``
names a wrong folder), unless ``--allow-missing``, which records them as
``no_bars`` in the checkpoint. Symbols recorded so by an earlier launch stay
``no_bars`` without the flag (they are reported, not refused again) and leave it
as soon as their files appear. Pure: the callers list the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detector.errors import MissingBarsError


@dataclass(frozen=True)
class NoBarsUpdate:
    """How the run's ``no_bars`` record changes."""

    missing: tuple[str, ...]  # no bar file now: recorded as no_bars
    found: tuple[str, ...]  # recorded as no_bars before, with files now: to detect


def check_no_bars(
    candidates: Iterable[str],
    missing: Iterable[str],
    recorded: frozenset[str],
    *,
    bars_root: Path,
    allow_missing: bool,
) -> NoBarsUpdate:
    """``candidates`` are the symbols still to do (``recorded`` no_bars ones included),
    ``missing`` those of them without a bar file. Raises :class:`MissingBarsError` when
    some are missing that no earlier run recorded, unless ``allow_missing``."""
    todo = frozenset(candidates)
    absent = frozenset(missing) & todo
    new = tuple(sorted(absent - recorded))
    if new and not allow_missing:
        raise MissingBarsError(bars_root, new, len(todo - (recorded & absent)))
    found = tuple(sorted((recorded & todo) - absent))
    return NoBarsUpdate(missing=tuple(sorted(absent)), found=found)
