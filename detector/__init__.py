"""Pure computation: one symbol's 1-minute bars in, intraday events out."""

from __future__ import annotations

from detector.config import AppConfig, DetectorConfig, config_hash
from detector.config_load import load_config
from detector.pipeline import DetectionResult, detect_bars, detect_symbol, detect_symbol_result
from detector.schema import EVENT_KEY, EVENT_SCHEMA

__all__ = [
    "EVENT_KEY",
    "EVENT_SCHEMA",
    "AppConfig",
    "DetectionResult",
    "DetectorConfig",
    "config_hash",
    "detect_bars",
    "detect_symbol",
    "detect_symbol_result",
    "load_config",
]
