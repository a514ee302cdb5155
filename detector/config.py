"""The configuration model: frozen dataclasses whose defaults are the documented defaults.

Key names and defaults follow the users' ``processing.intraday_events`` section
(see docs/configuration.md). Keys that the legacy file carries but the detector
does not use are kept as fields so that a legacy file loads unchanged; each such
field says "accepted, not used" next to it. Loading and validation live in
``detector.config_load``; this module only describes the shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

Direction = Literal["both", "up", "down"]


def _positive(**extra: Any) -> dict[str, Any]:
    return {"min": 0, "exclusive_min": True, **extra}


def _non_negative(**extra: Any) -> dict[str, Any]:
    return {"min": 0, **extra}


UNUSED = {"unused": True}  # accepted for legacy files, no effect on events, not hashed


def _unused(default: Any) -> Any:
    return field(default=default, metadata=UNUSED)


@dataclass(frozen=True)
class SessionBounds:
    """ET clock bounds, ``[start, end)`` each; they must be contiguous and ordered.

    ``auction_minutes``: bars starting at these ET clock times carry the opening and
    closing crosses (EVENTS.md §1): they never fire and stay out of the volume
    baselines. Empty turns the rule off.
    """

    premarket: tuple[str, str] = ("04:00", "09:30")
    rth: tuple[str, str] = ("09:30", "16:00")
    afterhours: tuple[str, str] = ("16:00", "20:00")
    auction_minutes: tuple[str, ...] = ("09:30", "16:00")


@dataclass(frozen=True)
class GlobalFilters:
    min_price: float = field(default=1.0, metadata=_non_negative())
    max_price: float = field(default=500.0, metadata=_positive())
    min_dollar_volume_day: float = field(default=500_000.0, metadata=_non_negative())
    market_hours_only: bool = False
    exclude_premarket: bool = False
    exclude_afterhours: bool = False
    # Need reference data (float, short interest) the detector does not have:
    # accepted, not used; a notice is logged once per run.
    bearish_filters: dict[str, Any] = field(default_factory=dict, metadata=UNUSED)
    bullish_filters: dict[str, Any] = field(default_factory=dict, metadata=UNUSED)
    # Keys such as min_float or short_interest_* land here (see config_load).
    reference_data: dict[str, Any] = field(default_factory=dict, metadata=UNUSED)


@dataclass(frozen=True)
class SpikeThresholds:
    min_spike: float = field(default=6.0, metadata=_non_negative())
    min_absolute_volume: float = field(default=10_000.0, metadata=_non_negative())
    min_dollar_volume: float = field(default=50_000.0, metadata=_non_negative())


@dataclass(frozen=True)
class BearishConfirmation:
    """Accepted, not used (EVENTS.md defines volume_spike without it)."""

    min_consecutive_red_bars: int = _unused(2)
    min_drop_from_high_pct: float = _unused(2.0)


@dataclass(frozen=True)
class VolumeSpike:
    enable: bool = True
    direction: Direction = "both"
    rolling_window_minutes: int = field(default=20, metadata={"min": 1})
    rolling_method: Literal["median", "mean"] = "median"
    min_range_1m_pct: float = field(default=1.5, metadata=_non_negative())
    cooldown_minutes: float | None = field(default=5.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=10, metadata={"min": 1})
    rth: SpikeThresholds = field(default_factory=SpikeThresholds)
    pm_ah: SpikeThresholds = field(
        default_factory=lambda: SpikeThresholds(
            min_spike=8.0, min_absolute_volume=15_000.0, min_dollar_volume=75_000.0
        )
    )
    bearish_confirmation: BearishConfirmation = field(
        default_factory=BearishConfirmation, metadata=UNUSED
    )


@dataclass(frozen=True)
class VwapBullish:
    min_distance_pct: float = field(default=0.6, metadata=_non_negative())
    min_volume_confirm: float = field(default=2.0, metadata=_non_negative())
    min_consecutive_bars: int = _unused(2)  # accepted, not used


@dataclass(frozen=True)
class VwapBearish:
    min_distance_pct: float = field(default=0.8, metadata=_non_negative())
    min_volume_confirm: float = field(default=2.5, metadata=_non_negative())
    min_consecutive_bars: int = _unused(3)  # accepted, not used
    require_failed_reclaim: bool = _unused(True)  # accepted, not used
    failed_reclaim_window: int = _unused(10)  # accepted, not used


@dataclass(frozen=True)
class VwapBreak:
    enable: bool = True
    direction: Direction = "both"
    vwap_reference: Literal["RTH"] = "RTH"
    cooldown_minutes: float | None = field(default=10.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=None, metadata={"min": 1})
    bullish: VwapBullish = field(default_factory=VwapBullish)
    bearish: VwapBearish = field(default_factory=VwapBearish)


@dataclass(frozen=True)
class MomentumBullish:
    min_change_pct: float = field(default=3.0, metadata=_non_negative())
    require_breakout: bool = True  # close > prior_high_20


@dataclass(frozen=True)
class MomentumBearish:
    min_change_pct: float = field(default=3.5, metadata=_non_negative())
    require_breakdown: bool = True  # close < prior_low_20
    min_acceleration: float = _unused(1.2)  # accepted, not used


@dataclass(frozen=True)
class PriceMomentum:
    enable: bool = True
    direction: Direction = "both"
    window_minutes: int = field(default=5, metadata={"min": 1})
    min_volume_multiplier: float = field(default=1.8, metadata=_non_negative())
    cooldown_minutes: float | None = field(default=15.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=None, metadata={"min": 1})
    bullish: MomentumBullish = field(default_factory=MomentumBullish)
    bearish: MomentumBearish = field(default_factory=MomentumBearish)


@dataclass(frozen=True)
class ConsolidationBreak:
    enable: bool = True
    direction: Direction = "both"
    consolidation_window_minutes: int = field(default=30, metadata={"min": 1})
    max_range_atr_multiple: float = field(default=0.5, metadata=_non_negative())
    min_breakout_pct: float = field(default=1.0, metadata=_non_negative())
    min_volume_spike: float = field(default=2.0, metadata=_non_negative())
    # atr14_pct (the quiet-base test) is null until this many prior trading days exist.
    min_atr_days: int = field(default=14, metadata={"min": 1})
    cooldown_minutes: float | None = field(default=20.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=None, metadata={"min": 1})


@dataclass(frozen=True)
class OpeningRangeBreak:
    enable: bool = True
    direction: Direction = "both"
    or_duration_minutes: int = field(default=15, metadata={"min": 1})
    min_breakout_pct: float = field(default=0.5, metadata=_non_negative())
    min_volume_confirm: float = field(default=1.8, metadata=_non_negative())
    cooldown_minutes: float | None = field(default=30.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=None, metadata={"min": 1})
    # A break is a crossing; at most this many per direction and day (null: no cap).
    max_breaks_per_day: int | None = field(default=1, metadata={"min": 1})
    apply_only_in_session: Literal["RTH"] = "RTH"


@dataclass(frozen=True)
class TapeSpeed:
    """Needs trades data; only ``enable: false`` is accepted."""

    enable: bool = False
    min_transactions_per_minute: float = _unused(50.0)
    min_spike: float = _unused(3.0)
    cooldown_minutes: float | None = _unused(5.0)


@dataclass(frozen=True)
class FlushDetection:
    enable: bool = True
    min_drop_pct: float = field(default=8.0, metadata=_non_negative())
    window_minutes: int = _unused(15)  # accepted, not used (the drop is from the running day high)
    min_volume_spike: float = field(default=4.0, metadata=_non_negative())
    min_consecutive_red_bars: int = field(default=3, metadata={"min": 1})
    require_wick_recovery: bool = False  # only false is supported
    volume_acceleration: bool = _unused(True)  # accepted, not used
    cooldown_minutes: float | None = field(default=20.0, metadata=_non_negative())
    max_events_per_symbol_day: int | None = field(default=None, metadata={"min": 1})


@dataclass(frozen=True)
class ScoreWeights:
    volume_spike_magnitude: float = 0.3
    price_change_magnitude: float = 0.25
    volume_confirm: float = 0.2
    consecutive_bars: float = _unused(0.15)  # accepted, not used
    distance_from_vwap: float = _unused(0.1)  # accepted, not used


@dataclass(frozen=True)
class Deduplication:
    enable: bool = True
    window_minutes: float = field(default=10.0, metadata=_non_negative())
    mode: Literal["score_based"] = "score_based"
    keep_both_if_score_diff_pct: float = _unused(10.0)  # accepted, not used
    score_weights: ScoreWeights = field(default_factory=ScoreWeights)


@dataclass(frozen=True)
class DetectorConfig:
    """``processing.intraday_events``: everything that changes which events come out."""

    # The users' section-level switch: only true is accepted (config_load refuses
    # false with one line: this section is the whole job of this tool).
    enable: bool = _unused(True)
    min_bars_per_day: int = field(default=30, metadata={"min": 1})
    session_bounds: SessionBounds = field(default_factory=SessionBounds)
    global_filters: GlobalFilters = field(default_factory=GlobalFilters)
    volume_spike: VolumeSpike = field(default_factory=VolumeSpike)
    vwap_break: VwapBreak = field(default_factory=VwapBreak)
    price_momentum: PriceMomentum = field(default_factory=PriceMomentum)
    consolidation_break: ConsolidationBreak = field(default_factory=ConsolidationBreak)
    opening_range_break: OpeningRangeBreak = field(default_factory=OpeningRangeBreak)
    tape_speed: TapeSpeed = field(default_factory=TapeSpeed)
    flush_detection: FlushDetection = field(default_factory=FlushDetection)
    deduplication: Deduplication = field(default_factory=Deduplication)
    # Output format options of the legacy file; accepted, not used (output is
    # always zstd Parquet).
    output: dict[str, Any] = field(default_factory=dict, metadata=UNUSED)
    # Settings of a later stage of the users' pipeline (trades and quotes downloaded
    # around each event), kept in the same section of their file; accepted, not used.
    event_tape_window_before_minutes: float | None = field(
        default=None, metadata={**UNUSED, **_non_negative()}
    )
    event_tape_window_after_minutes: float | None = field(
        default=None, metadata={**UNUSED, **_non_negative()}
    )
    dynamic_extension: dict[str, Any] = field(default_factory=dict, metadata=UNUSED)


LATER_STAGE_KEYS = (
    "event_tape_window_before_minutes",
    "event_tape_window_after_minutes",
    "dynamic_extension",
)


@dataclass(frozen=True)
class BarsConfig:
    """``intraday_events.bars``: where bars live and how to read naive timestamps."""

    root: str = "raw/market_data/bars/1m"
    naive_timezone: str = "UTC"


@dataclass(frozen=True)
class SupervisionConfig:
    """``intraday_events.supervision``: how ``launch`` looks after its worker processes.

    None of it changes events, so none of it is part of the config hash.
    """

    max_restarts: int = field(default=5, metadata=_non_negative())  # per worker and launch
    backoff_initial_seconds: float = field(default=1.0, metadata=_positive())
    backoff_max_seconds: float = field(default=60.0, metadata=_positive())
    stall_timeout_seconds: float = field(default=300.0, metadata=_positive())
    stop_grace_seconds: float = field(default=10.0, metadata=_positive())
    poll_interval_seconds: float = field(default=0.1, metadata=_positive())
    progress_interval_seconds: float = field(default=5.0, metadata=_positive())


@dataclass(frozen=True)
class AppConfig:
    bars: BarsConfig = field(default_factory=BarsConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    source: str | None = field(default=None, compare=False)  # file it was read from


def effective_settings(obj: Any) -> dict[str, Any]:
    """The fields of a config dataclass that change events, recursively (no UNUSED ones)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.metadata.get("unused"):
            continue
        value = getattr(obj, f.name)
        out[f.name] = effective_settings(value) if is_dataclass(value) else value
    return out


def config_hash(config: AppConfig) -> str:
    """A short, stable hash of everything that changes the detector's output."""
    payload = {
        "detector": effective_settings(config.detector),
        "naive_timezone": config.bars.naive_timezone,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def later_stage_settings(config: DetectorConfig) -> list[str]:
    """Keys of a later stage of the users' pipeline that the file sets (not used here)."""
    return [name for name in LATER_STAGE_KEYS if getattr(config, name) not in (None, {})]


def config_notices(config: DetectorConfig) -> list[str]:
    """One line per kind of setting the file holds that the detector does not use."""
    notices = []
    ignored = ignored_settings(config)
    if ignored:
        notices.append(f"ignoring filters that need reference data: {', '.join(ignored)}")
    later = later_stage_settings(config)
    if later:
        notices.append(f"not used (settings of a later stage of the pipeline): {', '.join(later)}")
    return notices


def ignored_settings(config: DetectorConfig) -> list[str]:
    """Filters the user set that need reference data the detector does not have."""
    gf = config.global_filters
    names = [*gf.reference_data]
    names += [f"bearish_filters.{k}" for k in gf.bearish_filters]
    names += [f"bullish_filters.{k}" for k in gf.bullish_filters]
    return [f"global_filters.{name}" for name in names]
