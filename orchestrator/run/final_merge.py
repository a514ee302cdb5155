"""Writing a run's final file: the launcher's last step, and the operator's ``merge``.

Both go through :func:`merge_final`, so the file an operator rebuilds is the file
the launcher wrote: the committed shards the checkpoint lists (after reconciling
it with the shards on disk), sorted by the event key, checked for duplicate keys,
written atomically. A complete run also gets the legacy "completed" heartbeat
that old monitoring waits for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from detector.config import AppConfig
from detector.errors import ExitCode, IntradayEventsError
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.errors import RunBusyError
from orchestrator.run.files import run_plan
from orchestrator.run.heartbeat import write_run_completed
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import MergeResult, merge_shards
from orchestrator.run.pidfile import PidFileError, read_pid_file
from orchestrator.run.provenance import Provenance
from orchestrator.run.spec import max_attempts_of
from orchestrator.run.store import RunStore


class NothingToMergeError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} has no checkpoint and no committed shard to merge")


class IncompleteRunError(IntradayEventsError):
    exit_code = ExitCode.FAILURE

    def __init__(self, run_id: str, left: int, quarantined: int) -> None:
        self.run_id = run_id
        self.left = left
        self.quarantined = quarantined
        held_back = f" and {quarantined} quarantined" if quarantined else ""
        # A plain launch skips quarantined symbols: they need --retry-quarantined.
        retry = " --retry-quarantined" if quarantined else ""
        super().__init__(
            f"run {run_id} has {left} symbols not completed{held_back}; finish it with "
            f"`intraday-events launch --run-id {run_id}{retry}`, or pass --partial to merge "
            f"the committed symbols anyway"
        )


@dataclass(frozen=True)
class MergeReport:
    merged: MergeResult
    completed: int
    universe: int
    left: tuple[str, ...]  # neither completed nor quarantined nor without bars
    quarantined: tuple[str, ...]
    no_bars: tuple[str, ...] = ()  # no bar file (--allow-missing): settled, no events

    @property
    def complete(self) -> bool:
        return not self.left and not self.quarantined


def merge_final(
    layout: RunLayout, cp: Checkpoint, *, complete: bool, provenance: Provenance | None = None
) -> MergeResult:
    """Merge the checkpoint's shards into the final file; mark the legacy heartbeat if complete."""
    merged = merge_shards(layout, cp.shards, provenance)
    if complete:
        write_run_completed(
            layout.run_heartbeat,
            run_id=layout.run_id,
            total_events=merged.events,
            total_symbols=len(cp.completed),
            completed_at=datetime.now().isoformat(timespec="seconds"),
        )
    return merged


def live_launcher_pid(layout: RunLayout) -> int | None:
    try:
        return read_pid_file(layout.orchestrator_pid_file).pid
    except PidFileError:
        return None


def merge_run(
    layout: RunLayout, *, max_attempts: int | None, partial: bool, app: AppConfig | None = None
) -> MergeReport:
    """Rebuild the final file of a run that no launcher is running (the ``merge`` command)."""
    layout.launch_dir.mkdir(parents=True, exist_ok=True)
    # Holding the launcher's lock keeps a launch from starting (and merging) meanwhile.
    lock = FileLock(layout.launch_lock, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunBusyError(layout.run_id, live_launcher_pid(layout)) from None
    try:
        cp = RunStore(layout).reconcile()
        if cp is None:
            raise NothingToMergeError(layout.run_id)
        max_attempts = max_attempts_of(layout.spec, max_attempts)
        quarantined = cp.quarantined(max_attempts)
        left = cp.remaining(max_attempts)
        if (left or quarantined) and not partial:
            raise IncompleteRunError(layout.run_id, len(left), len(quarantined))
        plan = run_plan(layout)
        bars_root = Path(plan.bars_root) if plan is not None and plan.bars_root else None
        provenance = Provenance.of_run(app or AppConfig(), cp, bars_root=bars_root)
        merged = merge_final(layout, cp, complete=not left, provenance=provenance)
        return MergeReport(
            merged=merged,
            completed=len(cp.completed),
            universe=len(cp.universe | cp.completed),
            left=tuple(sorted(left)),
            quarantined=tuple(sorted(quarantined)),
            no_bars=tuple(sorted(cp.no_bars)),
        )
    finally:
        lock.release()
