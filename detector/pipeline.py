"""From one symbol's bars to its events: the public entry points of the detector."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from detector.bars import load_symbol_bars
from detector.candidates import candidates
from detector.cleaning import CleaningStats, clean_bars, normalize_types
from detector.config import AppConfig, DetectorConfig
from detector.config_load import minutes_of
from detector.expr_cache import per_config
from detector.features import symbol_features
from detector.input_fingerprint import InputFingerprint
from detector.schema import EVENT_KEY, EVENT_SCHEMA, derived_columns, empty_events
from detector.symbols import validate_symbol
from detector.thinning import score_expr, thin


@dataclass(frozen=True)
class DetectionResult:
    symbol: str
    events: pl.DataFrame
    stats: CleaningStats
    bars: int  # clean bars the detectors saw
    inputs: InputFingerprint | None = None  # the bar files read (None: bars given in memory)


def _split(config: AppConfig | DetectorConfig | None) -> tuple[DetectorConfig, str]:
    if config is None:
        config = AppConfig()
    if isinstance(config, AppConfig):
        return config.detector, config.bars.naive_timezone
    return config, "UTC"


def _day_window(cfg: DetectorConfig) -> tuple[int, int]:
    sb = cfg.session_bounds
    return minutes_of(sb.premarket[0]), minutes_of(sb.afterhours[1])


def events_from_clean_bars(
    symbol: str, bars: pl.DataFrame, cfg: DetectorConfig, *, raw: bool = False
) -> pl.DataFrame:
    """Events (or, with ``raw``, candidates before thinning) from clean bars.

    ``bars`` is the output of :func:`detector.cleaning.clean_bars`.
    """
    if bars.is_empty():
        return empty_events()
    found = candidates(symbol_features(bars, cfg), cfg)
    score = per_config(cfg, "score", lambda: score_expr(cfg))
    found = found.with_columns(score=score).filter(pl.col("score").is_finite())
    if not raw:
        found = thin(found, cfg)
    return found.select(_output(symbol)).sort(EVENT_KEY)


def _output(symbol: str) -> list[pl.Expr]:
    """The output columns (EVENTS.md §6) from a candidate row."""
    derived = {"symbol": pl.lit(symbol), "timestamp_et": pl.col("ts_et"), **derived_columns()}
    return [
        derived.get(name, pl.col(name)).cast(dtype).alias(name)
        for name, dtype in EVENT_SCHEMA.items()
    ]


def detect_bars(
    symbol: str,
    frame: pl.DataFrame,
    config: AppConfig | DetectorConfig | None = None,
    *,
    raw: bool = False,
) -> DetectionResult:
    """Clean raw bars held in memory and detect: the pure core of :func:`detect_symbol`."""
    cfg, naive_tz = _split(config)
    start, end = _day_window(cfg)
    canonical = normalize_types(frame, naive_tz)
    bars, stats = clean_bars(canonical, day_start_minute=start, day_end_minute=end)
    events = events_from_clean_bars(symbol, bars, cfg, raw=raw)
    return DetectionResult(symbol, events, stats, bars.height)


def detect_symbol_result(
    symbol: str,
    bars_root: Path | str,
    config: AppConfig | DetectorConfig | None = None,
    *,
    raw: bool = False,
    skip_unreadable: bool = False,
) -> DetectionResult:
    """Read one symbol's bar files once and detect, keeping the cleaning statistics.

    An unreadable bar file raises :class:`detector.errors.UnreadableBarFileError`;
    with ``skip_unreadable`` it is skipped and listed in ``stats.files_skipped``.
    """
    validate_symbol(symbol)
    cfg, naive_tz = _split(config)
    start, end = _day_window(cfg)
    loaded = load_symbol_bars(
        symbol,
        Path(bars_root),
        naive_timezone=naive_tz,
        day_start_minute=start,
        day_end_minute=end,
        skip_unreadable=skip_unreadable,
    )
    events = events_from_clean_bars(symbol, loaded.bars, cfg, raw=raw)
    return DetectionResult(symbol, events, loaded.stats, loaded.bars.height, loaded.inputs)


def detect_symbol(
    symbol: str,
    bars_root: Path | str,
    config: AppConfig | DetectorConfig | None = None,
    *,
    raw: bool = False,
) -> pl.DataFrame:
    """Events of one symbol (EVENTS.md §6 schema), or raw candidates with ``raw=True``."""
    return detect_symbol_result(symbol, bars_root, config, raw=raw).events
