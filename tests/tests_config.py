"""Small AppConfig builders for worker tests."""

from __future__ import annotations

from detector.config import AppConfig, DetectorConfig

from builders import with_overrides


def app_with(**global_filters: float) -> AppConfig:
    detector: DetectorConfig = with_overrides(
        DetectorConfig(), **{f"global_filters.{k}": v for k, v in global_filters.items()}
    )
    return AppConfig(detector=detector)
