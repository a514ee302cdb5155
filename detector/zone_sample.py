"""The time-zone check before a run: a few symbols' bars, a bounded number of days each.

``launch`` and ``detect`` call :func:`check_bars_zone` before any worker starts. It
reads up to :data:`SAMPLE_SYMBOLS` symbols spread over the sorted list and up to
:data:`SAMPLE_DAYS` day files of each (evenly spaced over its history, so that both
daylight-saving periods show up; a per-symbol file is read whole), through the same
reader as detection (:func:`detector.bars.read_bar_files`), and pools their volume
profiles into one verdict (:mod:`detector.zone_check`). Symbols without files or
with unusable ones are left out here: detection reports them as it always does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from detector.bars import bar_files, read_bar_files
from detector.errors import BarsError, TimezoneMismatchError
from detector.et_clock import with_et_clock
from detector.zone_check import ZoneVerdict, auction_profile, fitting_zone, zone_verdict

log = logging.getLogger(__name__)

SAMPLE_SYMBOLS = 5
SAMPLE_DAYS = 20
# Day files are read in runs of consecutive ones: the users' files are UTC dates, so a
# New York day (its evening in winter) spans two of them, and a lone file is part of one.
SAMPLE_RUN = 5


@dataclass(frozen=True)
class ZoneSample:
    """What the sample read and the pooled verdict."""

    symbols: tuple[str, ...]  # the symbols whose bars were read
    naive: bool  # some sampled file has naive timestamps
    verdict: ZoneVerdict


def sample_symbols(symbols: list[str] | tuple[str, ...], count: int = SAMPLE_SYMBOLS) -> list[str]:
    """Up to ``count`` symbols spread evenly over the sorted list (first and last included)."""
    ordered = sorted(set(symbols))
    if len(ordered) <= count:
        return ordered
    step = (len(ordered) - 1) / (count - 1)
    return [ordered[round(i * step)] for i in range(count)]


def sample_files(files: list[Path], days: int = SAMPLE_DAYS) -> list[Path]:
    """Up to ``days`` daily files in runs of :data:`SAMPLE_RUN` consecutive ones spread
    evenly over the history; a per-symbol file (one file of every day) is read only when
    the symbol has no daily files."""
    daily = [f for f in files if f.name.startswith("date=")]
    if not daily:
        return files[:1]
    if len(daily) <= days:
        return daily
    runs = max(days // SAMPLE_RUN, 1)
    length = days // runs
    step = (len(daily) - length) / max(runs - 1, 1)
    starts = [round(i * step) for i in range(runs)]
    return [daily[start + j] for start in starts for j in range(length)]


def read_zone_sample(
    bars_root: Path, symbols: list[str] | tuple[str, ...], naive_timezone: str
) -> ZoneSample:
    """Read the sample and pool its verdict (never raises for a symbol's files)."""
    profiles: list[pl.DataFrame] = []
    read: list[str] = []
    naive = False
    for symbol in sample_symbols(symbols):
        files = sample_files(bar_files(symbol, bars_root))
        if not files:
            continue
        try:
            frame, _ = read_bar_files(files, naive_timezone)
        except BarsError as exc:
            log.debug("time-zone sample: %s left out: %s", symbol, exc)
            continue
        frame = frame.drop_nulls(["timestamp", "volume"])
        if frame.is_empty():
            continue
        naive = naive or _has_naive_timestamps(files)
        profiles.append(auction_profile(with_et_clock(frame.select("timestamp", "volume"))))
        read.append(symbol)
    return ZoneSample(tuple(read), naive, zone_verdict(profiles) if profiles else ZoneVerdict())


def check_bars_zone(
    bars_root: Path, symbols: list[str] | tuple[str, ...], naive_timezone: str
) -> ZoneSample:
    """Raise :class:`TimezoneMismatchError` when the sample contradicts the configured
    reading; too little data (:data:`detector.zone_check.MIN_DAYS`) never does."""
    sample = read_zone_sample(bars_root, symbols, naive_timezone)
    verdict = sample.verdict
    log.info(
        "time-zone check of %d symbols (%s) read as %s: %s (%s)",
        len(sample.symbols), " ".join(sample.symbols), naive_timezone,
        "fits" if verdict.fits else "contradicts", verdict.describe(),
    )  # fmt: skip
    if verdict.fits:
        return sample
    raise TimezoneMismatchError(
        naive=sample.naive,
        naive_timezone=naive_timezone,
        distance=verdict.offsets_text(),
        details=verdict.note(),
        sampled=len(sample.symbols),
        fitting_zone=fitting_zone(naive_timezone if sample.naive else "UTC", verdict),
    )


def _has_naive_timestamps(files: list[Path]) -> bool:
    for path in files:
        try:
            field = pq.read_schema(path).field("timestamp")
        except (OSError, KeyError, pa.ArrowException):
            continue
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            return True
    return False
