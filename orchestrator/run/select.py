"""Which run a ``detect`` continues or starts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from detector.errors import ExitCode, IntradayEventsError
from orchestrator.run.checkpoint import CheckpointFormatError, from_json
from orchestrator.run.layout import RunLayout, is_valid_run_id, new_run_id


class InvalidRunIdError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"invalid run id {run_id!r} (letters, digits, . _ -; at most 100)")


class UnknownRunError(IntradayEventsError):
    """A command that reads or stops a run was given a run id with nothing on disk."""

    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str, root: Path) -> None:
        self.run_id = run_id
        self.root = root
        super().__init__(
            f"no run {run_id} under {root} (no checkpoint, shard, final file or launch "
            f"files of it); check --run-id and --root"
        )


def existing_run(root: Path, run_id: str) -> RunLayout:
    """The layout of ``run_id``, which must be a valid id with files under ``root``."""
    if not is_valid_run_id(run_id):
        raise InvalidRunIdError(run_id)
    layout = RunLayout(root, run_id)
    if not layout.exists():
        raise UnknownRunError(run_id, root)
    return layout


def is_unfinished(root: Path, run_id: str) -> bool:
    """Whether a run without ``--run-id`` may continue ``run_id``.

    A run of the old scripts (its checkpoint has no ``format_version``) never is:
    its events live in old shards our merge does not read, so continuing it would
    write a final file without them. Bring it in with ``seed-checkpoint`` instead.
    """
    layout = RunLayout(root, run_id)
    try:
        text = layout.checkpoint.read_text(encoding="utf-8")
        cp = from_json(text, run_id)
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError, CheckpointFormatError):
        return True  # a damaged run is unfinished: resuming it rebuilds its checkpoint
    if _is_legacy(text):
        return False
    return bool(cp.universe - cp.completed) or not layout.final.exists()


def _is_legacy(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "format_version" not in data


def resolve_run_id(root: Path, run_id: str | None, *, resume: bool, now: datetime) -> str:
    """The explicit ``run_id``; else with ``resume`` the newest unfinished run under
    ``root``; else a new run named after today. A run keeps its name across midnight."""
    if run_id is not None:
        if not is_valid_run_id(run_id):
            raise InvalidRunIdError(run_id)
        return run_id
    if resume:
        for candidate in reversed(RunLayout.run_ids(root)):
            if is_unfinished(root, candidate):
                return candidate
    return new_run_id(now)
