"""Configuration: defaults file == built-ins, legacy config loads, bad keys rejected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from detector.config import (
    AppConfig,
    DetectorConfig,
    SupervisionConfig,
    config_hash,
    config_notices,
    effective_settings,
)
from detector.config_load import config_from_document, load_config
from detector.errors import ConfigError, ExitCode
from tools.cli import cli
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]

LEGACY_CONFIG = """
data:
  raw_dir: raw/
  universe: {min_price: 0.5, exchanges: [NASDAQ, NYSE]}
processing:
  bars: {timeframe: 1m}
  intraday_events:
    session_bounds: {premarket: ["04:00","09:30"], rth: ["09:30","16:00"], afterhours: ["16:00","20:00"]}
    global_filters: {min_price: 1.0, max_price: 500.0, min_dollar_volume_day: 500000,
                     market_hours_only: false, exclude_premarket: false, exclude_afterhours: false,
                     min_float: 1000000, max_short_interest_pct: 40,
                     bearish_filters: {...}, bullish_filters: {min_gap_pct: 5}}
    volume_spike: {enable: true, direction: both, rolling_window_minutes: 20, rolling_method: median,
                   min_range_1m_pct: 1.5, cooldown_minutes: 5, max_events_per_symbol_day: 10,
                   rth: {min_spike: 6.0, min_absolute_volume: 10000, min_dollar_volume: 50000},
                   pm_ah: {min_spike: 8.0, min_absolute_volume: 15000, min_dollar_volume: 75000},
                   bearish_confirmation: {min_consecutive_red_bars: 2, min_drop_from_high_pct: 2.0}}
    vwap_break: {enable: true, direction: both, vwap_reference: RTH, cooldown_minutes: 10,
                 bullish: {min_distance_pct: 0.6, min_volume_confirm: 2.0, min_consecutive_bars: 2},
                 bearish: {min_distance_pct: 0.8, min_volume_confirm: 2.5, min_consecutive_bars: 3,
                           require_failed_reclaim: true, failed_reclaim_window: 10}}
    price_momentum: {enable: true, direction: both, window_minutes: 5, min_volume_multiplier: 1.8,
                     cooldown_minutes: 15, bullish: {min_change_pct: 3.0, require_breakout: true},
                     bearish: {min_change_pct: 3.5, require_breakdown: true, min_acceleration: 1.2}}
    consolidation_break: {enable: true, direction: both, consolidation_window_minutes: 30,
                          max_range_atr_multiple: 0.5, min_breakout_pct: 1.0, min_volume_spike: 2.0,
                          cooldown_minutes: 20}
    opening_range_break: {enable: true, direction: both, or_duration_minutes: 15, min_breakout_pct: 0.5,
                          min_volume_confirm: 1.8, cooldown_minutes: 30, apply_only_in_session: RTH}
    tape_speed: {enable: false, min_transactions_per_minute: 50, min_spike: 3.0, cooldown_minutes: 5}
    flush_detection: {enable: true, min_drop_pct: 8.0, window_minutes: 15, min_volume_spike: 4.0,
                      min_consecutive_red_bars: 3, require_wick_recovery: false,
                      volume_acceleration: true, cooldown_minutes: 20}
    deduplication: {enable: true, window_minutes: 10, mode: score_based, keep_both_if_score_diff_pct: 10,
                    score_weights: {volume_spike_magnitude: 0.3, price_change_magnitude: 0.25,
                                    volume_confirm: 0.2, consecutive_bars: 0.15, distance_from_vwap: 0.1}}
    output: {format: parquet, compression: zstd, partition_by: [date], dir: processed/events}
  features: {windows: [5, 15]}
reporting: {email: ops@example.com}
"""


def _doc(**section: object) -> dict[str, object]:
    return {"processing": {"intraday_events": section}}


def test_repo_defaults_file_equals_builtins() -> None:
    assert load_config(REPO / "config" / "config.yaml") == AppConfig()


def test_defaults_file_documents_every_key() -> None:
    """Every dataclass field appears in config/config.yaml (not only those that differ)."""
    document = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    section = document["processing"]["intraday_events"]

    def missing(cls: type, data: dict[str, object], path: str) -> list[str]:
        out = []
        for f in dataclasses.fields(cls):
            if f.name == "reference_data":
                continue
            if f.name not in data:
                out.append(f"{path}{f.name}")
            elif dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
                out += missing(f.type, data[f.name], f"{path}{f.name}.")  # type: ignore[arg-type]
        return out

    assert missing(DetectorConfig, section, "") == []
    assert set(document["intraday_events"]["bars"]) == {"root", "naive_timezone"}
    supervision = {f.name for f in dataclasses.fields(SupervisionConfig)}
    assert set(document["intraday_events"]["supervision"]) == supervision


def test_users_whole_legacy_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(LEGACY_CONFIG)
    config = load_config(path)
    det = config.detector
    # Same thresholds as the built-in defaults; legacy-only keys kept as data.
    assert det.volume_spike == DetectorConfig().volume_spike
    assert det.global_filters.reference_data == {"min_float": 1000000, "max_short_interest_pct": 40}
    assert det.global_filters.bullish_filters == {"min_gap_pct": 5}
    assert det.output["compression"] == "zstd"
    assert config_hash(config) == config_hash(AppConfig())


def test_builtin_defaults_without_file() -> None:
    assert load_config(None) == AppConfig()
    assert config_from_document(None) == AppConfig()


@pytest.mark.parametrize(
    ("document", "key_path", "fragment"),
    [
        (_doc(volume_spike={"min_spike": 3}), "processing.intraday_events.volume_spike.min_spike", "unknown key"),
        (_doc(bogus=1), "processing.intraday_events.bogus", "unknown key"),
        (_doc(volume_spike={"rth": {"min_spike": "high"}}), "processing.intraday_events.volume_spike.rth.min_spike", "number"),
        (_doc(volume_spike={"enable": "yes"}), "processing.intraday_events.volume_spike.enable", "true or false"),
        (_doc(volume_spike={"rolling_window_minutes": 0}), "processing.intraday_events.volume_spike.rolling_window_minutes", "at least 1"),
        (_doc(volume_spike={"rolling_method": "mode"}), "processing.intraday_events.volume_spike.rolling_method", "one of"),
        (_doc(vwap_break={"direction": "sideways"}), "processing.intraday_events.vwap_break.direction", "one of"),
        (_doc(global_filters={"max_price": -1}), "processing.intraday_events.global_filters.max_price", "greater than 0"),
        (_doc(global_filters={"min_price": 10, "max_price": 5}), "processing.intraday_events.global_filters.min_price", "max_price"),
        (_doc(tape_speed={"enable": True}), "processing.intraday_events.tape_speed.enable", "trades data"),
        (_doc(session_bounds={"rth": ["09:30", "25:00"]}), "processing.intraday_events.session_bounds.rth[1]", "HH:MM"),
        (_doc(session_bounds={"rth": ["09:45", "16:00"]}), "processing.intraday_events.session_bounds", "contiguous"),
        (_doc(opening_range_break={"or_duration_minutes": 400}), "processing.intraday_events.opening_range_break.or_duration_minutes", "before the regular session"),
        (_doc(volume_spike=[1, 2]), "processing.intraday_events.volume_spike", "mapping"),
        ({"intraday_events": {"bars": {"naive_timezone": "Mars/Olympus"}}}, "intraday_events.bars.naive_timezone", "time zone"),
        ({"intraday_events": {"bars": {"rooot": "x"}}}, "intraday_events.bars.rooot", "unknown key"),
        ({"intraday_events": {"workers": 3}}, "intraday_events.workers", "unknown key"),
        ({"intraday_events": {"supervision": {"max_restarts": -1}}}, "intraday_events.supervision.max_restarts", "at least 0"),
        ({"intraday_events": {"supervision": {"stall_timeout_seconds": 0}}}, "intraday_events.supervision.stall_timeout_seconds", "greater than 0"),
        ({"intraday_events": {"supervision": {"backoff_initial_seconds": 9, "backoff_max_seconds": 2}}}, "intraday_events.supervision.backoff_max_seconds", "backoff_initial_seconds"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key_path(
    document: dict[str, object], key_path: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_document(document)
    assert info.value.key_path == key_path
    assert fragment in info.value.problem
    assert info.value.exit_code == ExitCode.USAGE


def test_unquoted_times_read_as_base_60_integers_are_taken_back(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "processing:\n  intraday_events:\n    session_bounds:\n"
        "      premarket: [04:00, 09:30]\n      rth: [09:30, 16:00]\n      afterhours: [16:00, 20:00]\n"
    )
    assert load_config(path) == AppConfig()


def test_null_cooldown_and_integer_floats_accepted() -> None:
    cfg = config_from_document(_doc(vwap_break={"cooldown_minutes": None}, min_bars_per_day=10.0))
    assert cfg.detector.vwap_break.cooldown_minutes is None
    assert cfg.detector.min_bars_per_day == 10


def test_config_hash_is_stable_and_tracks_detector_changes() -> None:
    base = config_hash(AppConfig())
    assert base == config_hash(AppConfig()) and len(base) == 12
    changed = config_from_document(_doc(volume_spike={"rth": {"min_spike": 7.0}}))
    assert config_hash(changed) != base
    other_tz = config_from_document(
        {"intraday_events": {"bars": {"naive_timezone": "America/New_York"}}}
    )
    assert config_hash(other_tz) != base
    moved_bars = config_from_document({"intraday_events": {"bars": {"root": "elsewhere"}}})
    assert config_hash(moved_bars) == base  # where bars live does not change events


def test_cli_reports_bad_config_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("processing:\n  intraday_events:\n    volume_spike: {min_spkie: 3}\n")
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "--config", str(path), "detect-symbol", "AAA"]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "processing.intraday_events.volume_spike.min_spkie: unknown key" in lines[0]
    assert str(path) in lines[0]


def test_cli_rejects_unparseable_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("processing: [unclosed\n")
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "--config", str(path), "detect-symbol", "AAA"]
    )
    assert result.exit_code == 2
    assert "not valid YAML" in result.output


def test_root_config_yaml_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(
        "processing:\n  intraday_events:\n    nope: 1\n"
    )
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "detect-symbol", "AAA"])
    assert result.exit_code == 2
    assert "nope: unknown key" in result.output


def test_default_values_have_their_declared_types() -> None:
    """A float field defaulting to an int would hash differently from the same YAML value."""
    import typing

    def check(obj: object, path: str) -> list[str]:
        bad = []
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                bad += check(value, f"{path}{f.name}.")
            elif hints[f.name] is float and type(value) is not float:
                bad.append(f"{path}{f.name}")
        return bad

    assert check(AppConfig(), "") == []


# -- the users' real config.yaml ---------------------------------------------------------
# tests/fixtures/legacy_config.yaml is ../shared/data/legacy-config/config.yaml, byte for
# byte: the users' whole file as they have it (every section of their project).
USERS_CONFIG = Path(__file__).resolve().parent / "fixtures" / "legacy_config.yaml"
SHARED_USERS_CONFIG = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "legacy-config" / "config.yaml"
)


def _check_users_config(path: Path) -> None:
    config = load_config(path)
    det = config.detector
    # Its thresholds are the defaults: same effective settings, same hash.
    assert effective_settings(det) == effective_settings(DetectorConfig())
    assert config_hash(config) == config_hash(AppConfig())
    # The later stage's keys and the section-level switch are kept, not used.
    assert det.enable is True
    assert det.event_tape_window_before_minutes == 3.0
    assert det.event_tape_window_after_minutes == 7.0
    assert det.dynamic_extension["extend_to_after_minutes"] == 20
    assert config_notices(det)[-1] == (
        "not used (settings of a later stage of the pipeline): "
        "event_tape_window_before_minutes, event_tape_window_after_minutes, dynamic_extension"
    )


def test_users_real_config_loads_unchanged_with_the_defaults_hash() -> None:
    _check_users_config(USERS_CONFIG)


def test_users_real_config_in_shared_loads_and_equals_the_fixture() -> None:
    if not SHARED_USERS_CONFIG.is_file():
        pytest.skip(f"{SHARED_USERS_CONFIG} is absent (../shared exists only next to the repo)")
    _check_users_config(SHARED_USERS_CONFIG)
    assert SHARED_USERS_CONFIG.read_bytes() == USERS_CONFIG.read_bytes()


def test_later_stage_keys_do_not_change_the_hash_but_are_type_checked() -> None:
    cfg = config_from_document(
        _doc(event_tape_window_before_minutes=30, dynamic_extension={"enable": False})
    )
    assert config_hash(cfg) == config_hash(AppConfig())
    with pytest.raises(ConfigError) as info:
        config_from_document(_doc(event_tape_window_after_minutes="seven"))
    assert info.value.key_path == "processing.intraday_events.event_tape_window_after_minutes"


def test_disabled_detector_section_is_refused_in_one_line_with_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_document(_doc(enable=False))
    assert info.value.key_path == "processing.intraday_events.enable"
    assert "the detector section is disabled" in info.value.problem
    path = tmp_path / "config.yaml"
    path.write_text(
        USERS_CONFIG.read_text().replace("    enable: true\n", "    enable: false\n", 1)
    )
    result = CliRunner().invoke(
        cli, ["--root", str(tmp_path), "--config", str(path), "detect", "--symbols", "AAA"]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"Error: config in {path}: processing.intraday_events.enable: false: the detector "
        "section is disabled, so there is nothing to run; set it to true (or remove it) to "
        "detect intraday events"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # nothing started


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("intraday-events", "did you mean intraday_events?"),
        ("intraday_event", "did you mean intraday_events?"),
        ("intradayevents", "did you mean intraday_events?"),
        ("Intraday_Events", "did you mean intraday_events?"),
        ("intraday_evnets", "did you mean intraday_events?"),
        ("bars", "did you mean intraday_events.bars"),
        ("supervision", "did you mean intraday_events.supervision"),
    ],
)
def test_top_level_section_close_to_ours_is_an_error_with_a_hint(key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_document({key: {"bars": {"naive_timezone": "America/New_York"}}})
    assert info.value.key_path == key
    assert hint in info.value.problem
    assert info.value.exit_code == ExitCode.USAGE


def test_other_top_level_sections_of_the_users_file_stay_allowed() -> None:
    document = yaml.safe_load(USERS_CONFIG.read_text())
    assert {"polygon", "paths", "universe", "processing", "logging"} <= set(document)
    others = {key: value for key, value in document.items() if key != "processing"}
    assert config_from_document(others) == AppConfig()


def test_detect_symbol_lists_the_unused_keys_of_the_users_file(tmp_path: Path) -> None:
    generate_demo_bars(DemoDataSpec(out=tmp_path / "bars", symbols=1, days=2, seed=1))
    (symbol,) = [p.name.removeprefix("symbol=") for p in (tmp_path / "bars").glob("symbol=*")]
    result = CliRunner().invoke(
        cli,
        ["--root", str(tmp_path), "--config", str(USERS_CONFIG), "detect-symbol", symbol,
         "--bars", str(tmp_path / "bars")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "notice: not used (settings of a later stage of the pipeline): "
        "event_tape_window_before_minutes, event_tape_window_after_minutes, dynamic_extension"
    ) in result.output
