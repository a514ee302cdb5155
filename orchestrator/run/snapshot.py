"""A frozen, read-only snapshot of a run, built from the run's files alone.

``status`` prints it, the launcher prints its one-line progress, and a live
dashboard can redraw it: all of them call :func:`read_snapshot` and render the
result with pure functions (:mod:`orchestrator.observe.status`).

Reading never writes, creates or locks anything (no :class:`RunStore`, whose
constructor creates the checkpoints directory), and never raises because of a
file: a missing, half-written, corrupt or foreign file turns the fields it would
have given into None or ``"unknown"``. Workers write their files while we read,
so any of them may be caught in any state.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from detector.bars import input_changes
from detector.errors import ExitCode, IntradayEventsError
from orchestrator.run.checkpoint import Checkpoint, CheckpointFormatError, FailedSymbol, from_json
from orchestrator.run.console import PROCESS_START, read_last_error
from orchestrator.run.files import (
    count_events,
    heartbeat_ids,
    is_file,
    mtime,
    read_pid_files,
    recent_shards,
    run_plan,
)
from orchestrator.run.heartbeat import BatchLogEntry, parse_heartbeat
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import superseded_rows
from orchestrator.run.plan import Plan
from orchestrator.run.process_identity import existed_at
from orchestrator.run.spec import DEFAULTS, max_attempts_of

RunState = Literal["running", "merging", "completed", "stopped", "not started", "unknown"]
# Heartbeat statuses of a process that is still working on its list.
ACTIVE = frozenset({"starting", "running", "committing"})
# A heartbeat's started_at has one-second resolution and is taken after the process
# started; a process created later than this after it is another one reusing the pid.
_PID_REUSE_SLACK_S = 2.0


class NoRunsError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(f"no run under {root} (no logs/checkpoints/*_completed.json)")


@dataclass(frozen=True)
class WorkerSnapshot:
    worker_id: int
    pid: int | None
    alive: bool | None  # None: no pid known
    # starting/running/committing/completed/failed/stopped as the heartbeat says;
    # "dead" when it says still working but its process is gone; "unknown" when unreadable.
    status: str
    current_symbol: str | None = None
    last_symbol: str | None = None
    symbols_done: int | None = None
    symbols_total: int | None = None
    bars_done: int | None = None
    events: int | None = None
    rss_gb: float | None = None
    heartbeat_age_s: float | None = None
    bars_per_s: float | None = None  # of this process, since it started
    symbols_per_s: float | None = None  # likewise
    started_at: str | None = None
    updated_at: str | None = None
    last_error: str | None = None  # a dead worker's last error line (its console log)

    @property
    def live(self) -> bool:
        """Working now; a Ray task on another machine (alive unknown) by its status."""
        return self.alive is not False and self.status in ACTIVE


@dataclass(frozen=True)
class RunSnapshot:
    run_id: str
    taken_at: datetime
    state: RunState
    problem: str | None = None  # why some fields are unknown
    config_hash: str | None = None
    # Symbol sets are None when the checkpoint cannot be read. ``failed`` holds every
    # symbol with failed attempts not yet completed, quarantined ones included;
    # ``remaining`` is what is left to do: universe - completed - quarantined.
    universe: tuple[str, ...] | None = None
    completed: tuple[str, ...] | None = None
    remaining: tuple[str, ...] | None = None
    failed: Mapping[str, FailedSymbol] | None = None
    quarantined: tuple[str, ...] | None = None
    # No bar file (--allow-missing): settled, not completed; and per completed symbol
    # the unreadable files --skip-unreadable left out. None when the checkpoint is unread.
    no_bars: tuple[str, ...] | None = None
    skipped_files: Mapping[str, tuple[str, ...]] | None = None
    max_attempts: int = DEFAULTS.max_attempts
    events_so_far: int | None = None  # rows of committed shards, from their footers
    shards: int = 0
    unreadable_shards: tuple[str, ...] = ()
    remaining_bars: int | None = None  # from plan.json; None without a plan
    rate_bars_per_s: float | None = None  # live workers together; None when none is live
    eta_s: float | None = None
    final: Path | None = None
    orchestrator_pid: int | None = None
    orchestrator_alive: bool = False
    workers: tuple[WorkerSnapshot, ...] = field(default_factory=tuple)
    # Bar-weighted progress of the run (see _bar_progress); None without a plan.
    bars_total: int | None = None
    bars_done: int | None = None
    launched_at: datetime | None = None  # the latest launch (plan.json), else first worker start
    elapsed_s: float | None = None  # since launched_at: until now, or the last activity
    recent_shards: tuple[BatchLogEntry, ...] = ()  # newest last
    # Completed symbols whose bars changed since their commit; None when not looked at
    # (it takes a stat of every bar file: ``status`` looks, the dashboard does not).
    changed_inputs: tuple[str, ...] | None = None
    # Completed symbols whose volume peaks are off the auctions as read: symbol -> shifts.
    suspect_timezone: Mapping[str, str] = field(default_factory=dict)

    @property
    def progress_pct(self) -> float | None:
        if self.universe is None or self.completed is None or not self.universe:
            return None
        return 100.0 * len(self.completed) / len(self.universe)

    @property
    def bars_pct(self) -> float | None:
        """Progress weighted by bars; the symbol count's share when bars are unknown."""
        if self.bars_total is None or self.bars_done is None or self.bars_total <= 0:
            return self.progress_pct
        return 100.0 * self.bars_done / self.bars_total


def newest_run_id(root: Path) -> str:
    """The run under ``root`` whose checkpoint changed last; NoRunsError when none."""
    try:
        runs = RunLayout.run_ids(root)
    except OSError:  # a checkpoint removed between listing and stat
        runs = []
    if not runs:
        raise NoRunsError(root)
    return runs[-1]


def read_snapshot(
    layout: RunLayout,
    *,
    now: datetime,
    max_attempts: int | None = None,
    stall_after_s: float | None = None,
) -> RunSnapshot:
    """Everything the run's files say at ``now``; never writes and never raises for a file.

    With ``stall_after_s`` (the supervision's stall timeout), a working worker whose
    heartbeat is older is ``stalled``: ``status`` and the dashboard say the same words.
    ``max_attempts`` None: the run's own (its spec).
    """
    orchestrator_pid, orchestrator_alive, worker_pids = read_pid_files(layout)
    workers = tuple(
        _stalled(
            _with_last_error(layout, _worker(layout, k, worker_pids.get(k), now)), stall_after_s
        )
        for k in sorted(set(heartbeat_ids(layout)) | set(worker_pids))
    )
    events, shards, unreadable = count_events(layout)
    final = layout.final if is_file(layout.final) else None
    live = [w for w in workers if w.live]
    rate = sum(w.bars_per_s or 0.0 for w in live) if live else None
    base = RunSnapshot(
        run_id=layout.run_id,
        taken_at=now,
        state="unknown",
        max_attempts=max_attempts_of(layout.spec, max_attempts),
        events_so_far=events,
        shards=shards,
        unreadable_shards=unreadable,
        rate_bars_per_s=rate,
        final=final,
        orchestrator_pid=orchestrator_pid,
        orchestrator_alive=orchestrator_alive,
        workers=workers,
        recent_shards=recent_shards(layout),
    )
    running = orchestrator_alive or bool(live)
    plan = run_plan(layout)
    base = _with_times(base, plan, now, running=running)
    try:
        cp = from_json(layout.checkpoint.read_text(encoding="utf-8"), layout.run_id)
    except FileNotFoundError:
        if shards:
            problem = f"checkpoint missing but {shards} committed shards exist (resume rebuilds it)"
            return replace(base, state="running" if running else "unknown", problem=problem)
        return replace(base, state="running" if running else "not started")
    except (OSError, UnicodeDecodeError, RecursionError, CheckpointFormatError) as exc:
        problem = f"checkpoint unreadable ({exc}); resume rebuilds it from the shards"
        return replace(base, state="running" if running else "unknown", problem=problem)
    if _recommitted(cp):
        try:
            superseded = superseded_rows(layout, cp.shards)
        except Exception:  # a shard removed or unreadable meanwhile: counted as it is
            superseded = 0
        if base.events_so_far is not None:
            base = replace(base, events_so_far=base.events_so_far - superseded)
    return _with_checkpoint(base, plan, cp, running=running, merged=_merged_since(layout))


def _stalled(w: WorkerSnapshot, stall_after_s: float | None) -> WorkerSnapshot:
    if (
        stall_after_s is not None
        and w.status in ACTIVE
        and w.alive is not False
        and (w.heartbeat_age_s or 0.0) > stall_after_s
    ):
        return replace(w, status="stalled")
    return w


def _merged_since(layout: RunLayout) -> bool:
    """Whether the final file was written after the checkpoint's last change."""
    try:
        return layout.final.stat().st_mtime >= layout.checkpoint.stat().st_mtime
    except OSError:
        return False


def with_changed_inputs(
    snapshot: RunSnapshot, layout: RunLayout, bars_root: Path | None
) -> RunSnapshot:
    """``snapshot`` with the completed symbols whose bars changed since their commit,
    under ``bars_root``, or the folder the latest launch read (its plan says)."""
    if bars_root is None:
        plan = run_plan(layout)
        if plan is None or plan.bars_root is None:
            return snapshot  # not known where the bars are: not looked at
        bars_root = Path(plan.bars_root)
    try:
        cp = from_json(layout.checkpoint.read_text(encoding="utf-8"), layout.run_id)
    except (OSError, UnicodeDecodeError, RecursionError, CheckpointFormatError):
        return snapshot
    recorded = {s: f for s, f in cp.inputs.items() if s in cp.completed}
    return replace(snapshot, changed_inputs=input_changes(recorded, bars_root).changed)


def _recommitted(cp: Checkpoint) -> bool:
    """Whether some symbol has more than one commit (recomputed from changed bars)."""
    covered = [s for symbols in cp.shards.values() for s in symbols]
    return len(covered) != len(set(covered))


def _with_checkpoint(
    base: RunSnapshot, plan: Plan | None, cp: Checkpoint, *, running: bool, merged: bool = False
) -> RunSnapshot:
    planned = {s for a in plan.assignments for s in a} if plan is not None else set()
    failed = {s: f for s, f in cp.failed.items() if s not in cp.completed}
    # A legacy checkpoint has no universe: what it and the plan name is the best we know.
    # (from_json keeps universe items as they are: a foreign file may hold non-strings.)
    universe = {str(s) for s in cp.universe} | cp.completed | set(failed) | planned
    quarantined = cp.quarantined(base.max_attempts)
    remaining = universe - cp.settled(base.max_attempts)
    remaining_bars = bars_total = bars_done = None
    if plan is not None:
        remaining_bars = sum(n for s, n in plan.bars.items() if s in remaining)
        bars_total = _bar_total(plan)
        bars_done = bars_total - remaining_bars
    eta = None
    if remaining_bars is not None and base.rate_bars_per_s:
        eta = remaining_bars / base.rate_bars_per_s
    state: RunState
    if not remaining and merged and not any(w.live for w in base.workers):
        state = "completed"  # the final file is newer than the last commit
    elif running and not remaining and not any(w.live for w in base.workers):
        state = "merging"  # every symbol is done; the launcher writes the final file
    elif running:
        state = "running"
    elif not remaining and base.final is not None:
        state = "completed"
    else:
        state = "stopped"  # work remaining, or all done but the final file not merged yet
    return replace(
        base,
        state=state,
        config_hash=cp.config_hash,
        universe=tuple(sorted(universe)),
        completed=tuple(sorted(cp.completed)),
        remaining=tuple(sorted(remaining)),
        failed=dict(sorted(failed.items())),
        quarantined=tuple(sorted(quarantined)),
        no_bars=tuple(sorted(cp.no_bars)),
        skipped_files=dict(sorted(cp.skipped_files.items())),
        suspect_timezone=dict(sorted(cp.suspect_timezone.items())),
        remaining_bars=remaining_bars,
        bars_total=bars_total,
        bars_done=bars_done,
        eta_s=eta,
    )


def _bar_total(plan: Plan) -> int:
    """Bars of the whole run as far as the latest plan knows them.

    The plan counted the bars of the symbols it handed out only; each symbol
    completed before that launch counts as one of average size.
    """
    planned = sum(plan.bars.values())
    average = planned / len(plan.bars) if plan.bars else 0.0
    return planned + round(plan.completed * average)


def _with_times(
    base: RunSnapshot, plan: Plan | None, now: datetime, *, running: bool
) -> RunSnapshot:
    starts = [_parse_stamp(w.started_at) for w in base.workers]
    ends = [_parse_stamp(w.updated_at) for w in base.workers]
    launched = _parse_stamp(plan.created_at) if plan is not None else None
    if launched is None:
        launched = min((t for t in starts if t is not None), default=None)
    if launched is None:
        return base
    if running:
        end: datetime | None = now
    else:
        if base.final is not None:
            ends.append(mtime(base.final))
        end = max((t for t in ends if t is not None), default=None)
    elapsed = None if end is None else max(0.0, (end - launched).total_seconds())
    return replace(base, launched_at=launched, elapsed_s=elapsed)


def _parse_stamp(text: str | None) -> datetime | None:
    """A naive local-time stamp; None for a missing, malformed or zone-aware one."""
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is None else None


def _worker(
    layout: RunLayout, worker_id: int, recorded: tuple[int, bool] | None, now: datetime
) -> WorkerSnapshot:
    path = layout.worker_heartbeat(worker_id)
    age: float | None
    try:
        age = max(0.0, now.timestamp() - path.stat().st_mtime)
        text: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        age, text = None, None
    except (OSError, UnicodeDecodeError):
        age, text = None, ""
    beat = parse_heartbeat(text, layout.run_id) if text is not None else None
    pid_file_pid, pid_file_alive = recorded if recorded is not None else (None, False)
    if beat is None:
        if text is not None:  # a heartbeat file exists but says nothing usable
            known = None if recorded is None else pid_file_alive
            return WorkerSnapshot(worker_id, pid_file_pid, known, "unknown", heartbeat_age_s=age)
        # Spawned and recorded, no heartbeat yet (or never will: the PID file is stale).
        status = "starting" if pid_file_alive else "dead"
        return WorkerSnapshot(worker_id, pid_file_pid, pid_file_alive, status)
    if pid_file_alive and pid_file_pid != beat.pid:
        # A restarted worker that has not written its first heartbeat: the file still
        # describes the previous process, whose counts are no longer this one's.
        return WorkerSnapshot(worker_id, pid_file_pid, True, "starting", heartbeat_age_s=age)
    alive: bool | None = None  # a Ray task on another machine: its pid is not ours to check
    if beat.host in (None, socket.gethostname()):
        alive = _heartbeat_pid_alive(beat.pid, beat.started)
    return WorkerSnapshot(
        worker_id=worker_id,
        pid=beat.pid,
        alive=alive,
        status="dead" if beat.status in ACTIVE and alive is False else beat.status,
        current_symbol=beat.current_symbol,
        last_symbol=beat.last_symbol,
        symbols_done=beat.symbols_done,
        symbols_total=beat.symbols_total,
        bars_done=beat.bars_done,
        events=beat.events,
        rss_gb=beat.rss_gb,
        heartbeat_age_s=age,
        bars_per_s=beat.bars_done / beat.elapsed_s if beat.elapsed_s > 0 else None,
        symbols_per_s=beat.symbols_done / beat.elapsed_s if beat.elapsed_s > 0 else None,
        started_at=beat.started_at,
        updated_at=beat.updated_at,
    )


def _with_last_error(layout: RunLayout, w: WorkerSnapshot) -> WorkerSnapshot:
    """A dead worker gets the last error line its last process printed, if any."""
    if w.status != "dead":
        return w
    error = read_last_error(layout.worker_console_log(w.worker_id), after=PROCESS_START)
    return replace(w, last_error=error) if error else w


def _heartbeat_pid_alive(pid: int, started: datetime) -> bool:
    """Whether ``pid`` still is the process that wrote a heartbeat started at ``started``."""
    try:
        moment = started.timestamp()
    except (ValueError, OverflowError, OSError):  # a far-off date in a foreign file
        return False
    return existed_at(pid, moment, slack=_PID_REUSE_SLACK_S)
