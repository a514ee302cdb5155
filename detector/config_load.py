"""Load and validate configuration from our YAML or from a user's legacy ``config.yaml``.

Both have the detector section at ``processing.intraday_events``; ours adds
``intraday_events.bars`` and ``intraday_events.supervision``. Every other
top-level section of a legacy file is ignored, except one that looks like ours
(``intraday-events``, a top-level ``bars``): that is an error with a "did you
mean". Inside the sections we use, an unknown key or a bad value raises
:class:`ConfigError` naming the key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from detector.config import (
    AppConfig,
    BarsConfig,
    DetectorConfig,
    GlobalFilters,
    SupervisionConfig,
)
from detector.errors import ConfigError

DETECTOR_SECTION = ("processing", "intraday_events")
OWN_SECTION = "intraday_events"

# Global-filter keys that need reference data (float, short interest): accepted and
# ignored. Matched by name so every variant of the users' files loads.
_REFERENCE_KEY = re.compile(r"(float|short|borrow|days_to_cover|market_cap)", re.IGNORECASE)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def load_config(path: Path | None) -> AppConfig:
    """Read ``path`` (or return built-in defaults when ``path`` is None)."""
    if path is None:
        return AppConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", f"not valid YAML: {exc}".replace("\n", " "), str(path)) from exc
    try:
        return config_from_document(document)
    except ConfigError as exc:
        raise ConfigError(exc.key_path, exc.problem, str(path)) from None


def config_from_document(document: Any) -> AppConfig:
    """Build an :class:`AppConfig` from a parsed YAML document."""
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ConfigError("<top>", "the file must hold a mapping")
    _reject_near_misses(document)
    processing = document.get("processing")
    detector_data: Any = {}
    if processing is not None:
        if not isinstance(processing, Mapping):
            raise ConfigError("processing", "must be a mapping")
        detector_data = processing.get("intraday_events") or {}
    own = document.get(OWN_SECTION) or {}
    if not isinstance(own, Mapping):
        raise ConfigError(OWN_SECTION, "must be a mapping")
    _reject_unknown(own, {"bars", "supervision"}, OWN_SECTION)
    bars = _build(BarsConfig, own.get("bars") or {}, f"{OWN_SECTION}.bars")
    supervision = _build(
        SupervisionConfig, own.get("supervision") or {}, f"{OWN_SECTION}.supervision"
    )
    detector = _build(DetectorConfig, detector_data, ".".join(DETECTOR_SECTION))
    _check_bars(bars)
    _check_supervision(supervision)
    _check_detector(detector)
    return AppConfig(bars=bars, supervision=supervision, detector=detector)


def _squashed(key: str) -> str:
    return re.sub(r"[\s_-]", "", key).lower()


def _reject_near_misses(document: Mapping[str, Any]) -> None:
    """A top-level section that looks like ours but is not read is an error, not ignored.

    Every other top-level section of a user's file (``polygon``, ``paths``, ...)
    stays allowed: only a misspelt ``intraday_events`` or one of its subsections
    written at the top level is refused.
    """
    for key in document:
        if not isinstance(key, str) or key == OWN_SECTION:
            continue
        squashed = _squashed(key)
        if squashed in ("intradayevents", "intradayevent") or difflib.get_close_matches(
            key, [OWN_SECTION], n=1, cutoff=0.85
        ):
            raise ConfigError(key, f"not a section that is read; did you mean {OWN_SECTION}?")
        if squashed in _OWN_SUBSECTIONS:
            sub = _OWN_SUBSECTIONS[squashed]
            raise ConfigError(
                key,
                f"a top-level section is not read; did you mean {OWN_SECTION}.{sub} "
                f"(indented under {OWN_SECTION}:)?",
            )


_OWN_SUBSECTIONS = {"bars": "bars", "supervision": "supervision"}


def _reject_unknown(data: Mapping[str, Any], known: set[str], path: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}.{key}", "unknown key")


def _build(cls: type, data: Any, path: str) -> Any:
    """Recursively build dataclass ``cls`` from ``data``, validating every value."""
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    for key, raw in data.items():
        key_path = f"{path}.{key}"
        if not isinstance(key, str):
            raise ConfigError(key_path, "keys must be strings")
        if key not in fields or key == "reference_data":
            if cls is GlobalFilters and _REFERENCE_KEY.search(key):
                reference[key] = raw
                continue
            raise ConfigError(key_path, "unknown key")
        f = fields[key]
        values[key] = _convert(hints[key], raw, key_path, f.metadata)
    if reference:
        values["reference_data"] = reference
    return cls(**values)


def _convert(tp: Any, raw: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, raw if raw is not None else {}, path)
    if origin in (types.UnionType, typing.Union):
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, raw, path, meta)
    if origin is Literal:
        if raw not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(path, f"must be one of {choices}, got {raw!r}")
        return raw
    if origin is tuple:
        if args == (str, Ellipsis):
            return _time_list(raw, path)
        return _session_pair(raw, path)
    if origin is dict or tp is dict:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"must be a mapping, got {type(raw).__name__}")
        return dict(raw)
    if tp is bool:
        if not isinstance(raw, bool):
            raise ConfigError(path, f"must be true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer():
                raw = int(raw)
            else:
                raise ConfigError(path, f"must be an integer, got {raw!r}")
        _check_bounds(raw, path, meta)
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(path, f"must be a number, got {raw!r}")
        value = float(raw)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(path, f"must be a finite number, got {raw!r}")
        _check_bounds(value, path, meta)
        return value
    if tp is str:
        if not isinstance(raw, str) or not raw:
            raise ConfigError(path, f"must be a non-empty string, got {raw!r}")
        return raw
    raise ConfigError(path, f"unsupported type {tp!r}")  # pragma: no cover - model bug


def _check_bounds(value: float, path: str, meta: Mapping[str, Any]) -> None:
    if "min" not in meta:
        return
    low = meta["min"]
    if meta.get("exclusive_min") and value <= low:
        raise ConfigError(path, f"must be greater than {low}, got {value!r}")
    if value < low:
        raise ConfigError(path, f"must be at least {low}, got {value!r}")


def _session_pair(raw: Any, path: str) -> tuple[str, str]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ConfigError(path, f'must be a pair of times like ["09:30", "16:00"], got {raw!r}')
    return (_hhmm(raw[0], f"{path}[0]"), _hhmm(raw[1], f"{path}[1]"))


def _time_list(raw: Any, path: str) -> tuple[str, ...]:
    """A list of "HH:MM" times, sorted (their order means nothing, so it never changes the
    config hash). An empty value is an error, not "off": ``[]`` says that plainly."""
    if not isinstance(raw, list | tuple):
        raise ConfigError(
            path, f'must be a list of times like ["09:30", "16:00"] ([] for none), got {raw!r}'
        )
    times = [_hhmm(item, f"{path}[{i}]") for i, item in enumerate(raw)]
    if len(set(times)) != len(times):
        raise ConfigError(path, f"lists a time twice: {times!r}")
    return tuple(sorted(times))


def _hhmm(raw: Any, path: str) -> str:
    # YAML 1.1 reads an unquoted 09:30 as the base-60 integer 570: take it back.
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 24 * 60:
        raw = f"{raw // 60:02d}:{raw % 60:02d}"
    if not isinstance(raw, str) or not _HHMM.match(raw):
        raise ConfigError(path, f'must be a time "HH:MM", got {raw!r}')
    return raw


def minutes_of(hhmm: str) -> int:
    """Minutes after midnight of an "HH:MM" string."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _check_bars(bars: BarsConfig) -> None:
    try:
        ZoneInfo(bars.naive_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{OWN_SECTION}.bars.naive_timezone", f"unknown time zone {bars.naive_timezone!r}"
        ) from None


def _check_supervision(sup: SupervisionConfig) -> None:
    if sup.backoff_max_seconds < sup.backoff_initial_seconds:
        raise ConfigError(
            f"{OWN_SECTION}.supervision.backoff_max_seconds",
            f"must be at least backoff_initial_seconds ({sup.backoff_initial_seconds})",
        )


def _check_detector(det: DetectorConfig) -> None:
    base = ".".join(DETECTOR_SECTION)
    if not det.enable:
        raise ConfigError(
            f"{base}.enable",
            "false: the detector section is disabled, so there is nothing to run; "
            "set it to true (or remove it) to detect intraday events",
        )
    sb = det.session_bounds
    pm, rth, ah = (
        tuple(minutes_of(t) for t in pair) for pair in (sb.premarket, sb.rth, sb.afterhours)
    )
    if not (pm[0] < pm[1] == rth[0] < rth[1] == ah[0] < ah[1]):
        raise ConfigError(
            f"{base}.session_bounds",
            "sessions must be ordered and contiguous: premarket end == rth start, "
            "rth end == afterhours start, each start before its end",
        )
    outside = [t for t in sb.auction_minutes if not pm[0] <= minutes_of(t) < ah[1]]
    if outside:
        raise ConfigError(
            f"{base}.session_bounds.auction_minutes",
            f"{outside[0]} is outside the day [{sb.premarket[0]}, {sb.afterhours[1]}): "
            "no bar there is ever read",
        )
    gf = det.global_filters
    if gf.min_price > gf.max_price:
        raise ConfigError(f"{base}.global_filters.min_price", "must not exceed max_price")
    if det.tape_speed.enable:
        raise ConfigError(
            f"{base}.tape_speed.enable",
            "tape_speed needs trades data, which 1-minute bars do not carry; set enable: false",
        )
    if det.flush_detection.require_wick_recovery:
        raise ConfigError(
            f"{base}.flush_detection.require_wick_recovery", "only false is supported"
        )
    orb_end = rth[0] + det.opening_range_break.or_duration_minutes
    if orb_end >= rth[1]:
        raise ConfigError(
            f"{base}.opening_range_break.or_duration_minutes",
            "the opening range must end before the regular session closes",
        )
