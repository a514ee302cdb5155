"""The run's spec: its parameters, saved with the run and read by everyone after.

Written by the first ``launch`` (or lone ``detect``) of a run, next to its
checkpoint; a later launch keeps what it does not override and records what it
does. Launched workers start from it (``detect --spec FILE``) instead of a copied
list of flags; Ray tasks carry it; ``status``, ``dashboard``, ``merge`` and
``report`` read the run's ``max_attempts`` from it, so they count quarantine as the
run does without being told again.

The defaults of the run's parameters live here, in :data:`DEFAULTS`, and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from detector.bars import bars_layout
from detector.config import AppConfig
from detector.errors import ExitCode, IntradayEventsError
from orchestrator.run.atomic_io import write_text_atomic
from orchestrator.run.provenance import effective_config, package_version

log = logging.getLogger(__name__)

SPEC_VERSION = 1


@dataclass(frozen=True)
class RunDefaults:
    """Every default of a run's parameters: the CLI, the launcher and readers use these."""

    batch_size: int = 50
    max_attempts: int = 3
    workers: int = 4
    ray_task_retries: int = 3


DEFAULTS = RunDefaults()


@dataclass(frozen=True)
class InputPolicy:
    """What a run does with missing, unreadable or changed bars (``--allow-missing``,
    ``--skip-unreadable``, ``--redo-changed``); by default missing and unreadable bars
    are failures, never a completed symbol, and changed bars are only reported."""

    allow_missing: bool = False  # no bar file: record the symbol as no_bars
    skip_unreadable: bool = False  # an unreadable file: detect without it, list it
    redo_changed: bool = False  # completed, but its bars changed since: detect it again


class SpecFormatError(IntradayEventsError):
    exit_code = ExitCode.DATA

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"the run's spec {path} is unreadable: {problem}")


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    bars_root: Path  # absolute: the path every process (and node) sees
    bars_layout: str  # daily, symbol, both or none (detector.bars.bars_layout)
    config_hash: str  # of the detector config and the date range (events depend on both)
    config_path: Path | None  # the config file (None: the built-in defaults)
    batch_size: int = DEFAULTS.batch_size
    max_attempts: int = DEFAULTS.max_attempts
    start_date: date | None = None
    end_date: date | None = None
    inputs: InputPolicy = field(default_factory=InputPolicy)  # the latest launch's
    config: Mapping[str, Any] = field(default_factory=dict)  # full effective config
    package_version: str = ""
    created_at: str = ""  # ISO, the first launch's
    updated_at: str = ""  # ISO, the latest launch's

    def to_json(self) -> dict[str, Any]:
        return {
            "spec_version": SPEC_VERSION,
            "run_id": self.run_id,
            "bars_root": str(self.bars_root),
            "bars_layout": self.bars_layout,
            "batch_size": self.batch_size,
            "max_attempts": self.max_attempts,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "config_hash": self.config_hash,
            "config_path": str(self.config_path) if self.config_path else None,
            "inputs": {
                "allow_missing": self.inputs.allow_missing,
                "skip_unreadable": self.inputs.skip_unreadable,
                "redo_changed": self.inputs.redo_changed,
            },
            "package_version": self.package_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "config": dict(self.config),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        def day(key: str) -> date | None:
            value = data.get(key)
            return date.fromisoformat(value) if value else None

        config_path = data.get("config_path")
        return cls(
            run_id=str(data["run_id"]),
            bars_root=Path(data["bars_root"]),
            bars_layout=str(data.get("bars_layout", "")),
            config_hash=str(data["config_hash"]),
            config_path=Path(config_path) if config_path else None,
            batch_size=int(data.get("batch_size", DEFAULTS.batch_size)),
            max_attempts=int(data.get("max_attempts", DEFAULTS.max_attempts)),
            start_date=day("start_date"),
            end_date=day("end_date"),
            inputs=InputPolicy(**{k: bool(v) for k, v in (data.get("inputs") or {}).items()}),
            config=dict(data.get("config") or {}),
            package_version=str(data.get("package_version", "")),
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
        )

    def renewed(self, previous: RunSpec | None) -> RunSpec:
        """This launch's spec, keeping the first launch's creation time."""
        if previous is None or not previous.created_at:
            return self
        return replace(self, created_at=previous.created_at)


def spec_of_run(
    *,
    run_id: str,
    bars_root: Path,
    config_hash: str,
    config_path: Path | None,
    app: AppConfig,
    batch_size: int,
    max_attempts: int,
    start_date: date | None,
    end_date: date | None,
    inputs: InputPolicy,
    previous: RunSpec | None,
) -> RunSpec:
    """The spec of a run as this launch (or lone worker) runs it."""
    now = datetime.now().isoformat(timespec="seconds")
    return RunSpec(
        run_id=run_id,
        bars_root=bars_root.absolute(),  # not resolve(): a symlink may be the shared path
        bars_layout=bars_layout(bars_root),
        config_hash=config_hash,
        config_path=config_path.absolute() if config_path else None,
        batch_size=batch_size,
        max_attempts=max_attempts,
        start_date=start_date,
        end_date=end_date,
        inputs=inputs,
        config=effective_config(app),
        package_version=package_version(),
        created_at=now,
        updated_at=now,
    ).renewed(previous)


def previous_spec(path: Path) -> RunSpec | None:
    """The run's spec as an earlier launch left it; None when absent or unreadable
    (then it is written anew, and said so)."""
    try:
        return read_spec(path)
    except SpecFormatError as exc:
        log.warning("%s; it is written anew", exc)
        return None


def read_spec(path: Path) -> RunSpec | None:
    """The spec at ``path``; None when the run has none (a run older than specs)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpecFormatError(path, exc.strerror or str(exc)) from None
    try:
        return RunSpec.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecFormatError(path, f"{type(exc).__name__}: {exc}") from None


def write_spec(path: Path, spec: RunSpec) -> None:
    write_text_atomic(path, json.dumps(spec.to_json(), indent=2) + "\n")


def max_attempts_of(path: Path, given: int | None) -> int:
    """The run's ``max_attempts``: ``given`` when the user gave one, else the spec's,
    else the default (a run without a spec, or an unreadable spec)."""
    if given is not None:
        return given
    try:
        spec = read_spec(path)
    except SpecFormatError:
        spec = None
    return spec.max_attempts if spec is not None else DEFAULTS.max_attempts
