"""A run's status as text, as JSON and as one progress line: pure functions of a snapshot.

The snapshot is read by :func:`orchestrator.run.snapshot.read_snapshot` (re-exported
here, so that callers need one import); nothing here touches a file or a process.
Text is plain, without colour or cursor control, so it reads the same in a terminal
and in a log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.run.snapshot import (
    NoRunsError,
    RunSnapshot,
    WorkerSnapshot,
    newest_run_id,
    read_snapshot,
)

__all__ = [
    "NoRunsError",
    "RunSnapshot",
    "WorkerSnapshot",
    "newest_run_id",
    "progress_line",
    "read_snapshot",
    "render_text",
    "snapshot_to_json",
]

_UNKNOWN = "?"
_NONE = "-"
_MAX_LISTED = 20  # failed / quarantined symbols listed by name in the text


# -- small formatters ---------------------------------------------------------------
def format_count(n: int | None) -> str:
    return _UNKNOWN if n is None else f"{n:,}"


def format_rate(bars_per_s: float | None) -> str:
    if bars_per_s is None:
        return f"{_NONE} bars/s"
    if bars_per_s >= 1e6:
        return f"{bars_per_s / 1e6:.2f} M bars/s"
    if bars_per_s >= 1e3:
        return f"{bars_per_s / 1e3:.1f} k bars/s"
    return f"{bars_per_s:.0f} bars/s"


def format_bars(bars: int | None) -> str:
    return _UNKNOWN if bars is None else f"{bars / 1e6:.2f} M bars"


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``1 day, H:MM:SS`` beyond a day); ``-`` when unknown."""
    if seconds is None:
        return _NONE
    return str(timedelta(seconds=round(seconds)))


def _age(seconds: float | None) -> str:
    return _NONE if seconds is None else f"{seconds:.1f}s"


def _len(items: object) -> int | None:
    return None if items is None else len(items)  # type: ignore[arg-type]


def _symbols_progress(s: RunSnapshot, noun: str = "symbols") -> str:
    """``34/60 symbols (56.7%)``."""
    if s.completed is None or s.universe is None:
        return f"{_UNKNOWN}/{_UNKNOWN} {noun}"
    pct = s.progress_pct
    shown = f" ({pct:.1f}%)" if pct is not None else ""
    return f"{len(s.completed)}/{len(s.universe)} {noun}{shown}"


def _done_total(w: WorkerSnapshot) -> str:
    done = _UNKNOWN if w.symbols_done is None else str(w.symbols_done)
    total = _UNKNOWN if w.symbols_total is None else str(w.symbols_total)
    return f"{done}/{total}"


# -- one line -----------------------------------------------------------------------
def progress_line(s: RunSnapshot) -> str:
    """``progress 34/60 symbols (56.7%), 12,345 events, 1.20 M bars/s, ETA 0:00:08 | w0 ...``"""
    head = (
        f"progress {_symbols_progress(s)}, {format_count(s.events_so_far)} events, "
        f"{format_rate(s.rate_bars_per_s)}, ETA {format_duration(s.eta_s)}"
    )
    workers = [
        f"w{w.worker_id} {w.status} {w.current_symbol or _NONE} {_done_total(w)}" for w in s.workers
    ]
    return " | ".join([head, *workers])


# -- full text ----------------------------------------------------------------------
def render_text(s: RunSnapshot) -> str:
    lines = [
        f"run        {s.run_id}",
        f"config     {s.config_hash or _UNKNOWN}",
        f"state      {s.state}{_orchestrator(s)}",
    ]
    if s.problem:
        lines.append(f"problem    {s.problem}")
    lines.append(f"symbols    {_symbols_line(s)}")
    unreadable = f" ({len(s.unreadable_shards)} unreadable)" if s.unreadable_shards else ""
    lines.append(
        f"events     {format_count(s.events_so_far)} in {s.shards} committed "
        f"shard{'' if s.shards == 1 else 's'}{unreadable}"
    )
    lines.append(
        f"rate       {format_rate(s.rate_bars_per_s)}, {format_bars(s.remaining_bars)} "
        f"remaining, ETA {format_duration(s.eta_s)}"
    )
    lines.append(f"final      {s.final if s.final is not None else 'not written yet'}")
    lines.append(f"taken at   {s.taken_at.isoformat(timespec='seconds')}")
    if s.workers:
        lines.append("workers")
        lines.extend(_worker_table(s.workers))
        errors = [w for w in s.workers if w.last_error]
        lines.extend(f"  w{w.worker_id} last error: {w.last_error}" for w in errors)
    lines.extend(_failures(s))
    lines.extend(_inputs(s))
    lines.extend(_suspects(s))
    return "\n".join(lines)


def _orchestrator(s: RunSnapshot) -> str:
    if s.orchestrator_pid is None:
        return ""
    alive = "alive" if s.orchestrator_alive else "gone"
    return f" (orchestrator pid {s.orchestrator_pid} {alive})"


def _symbols_line(s: RunSnapshot) -> str:
    failed = s.failed
    retried = None
    if failed is not None and s.quarantined is not None:
        retried = len([sym for sym in failed if sym not in s.quarantined])
    return (
        f"{_symbols_progress(s, 'completed')}, {format_count(_len(s.remaining))} remaining, "
        f"{format_count(retried)} failed (retried on resume), "
        f"{format_count(_len(s.quarantined))} quarantined"
        + (f", {len(s.no_bars)} without bar files (no_bars)" if s.no_bars else "")
    )


_HEADER = (
    "worker", "pid", "alive", "status", "symbol", "done", "events", "rss GB", "beat age", "bars/s"
)  # fmt: skip


def _worker_table(workers: tuple[WorkerSnapshot, ...]) -> list[str]:
    rows = [_HEADER]
    for w in workers:
        alive = {True: "yes", False: "no", None: _UNKNOWN}[w.alive]
        rows.append(
            (
                f"w{w.worker_id}",
                _NONE if w.pid is None else str(w.pid),
                alive,
                w.status,
                w.current_symbol or _NONE,
                _done_total(w),
                format_count(w.events),
                _NONE if w.rss_gb is None else f"{w.rss_gb:.2f}",
                _age(w.heartbeat_age_s),
                format_rate(w.bars_per_s).removesuffix(" bars/s"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    return [
        "  " + "  ".join(c.ljust(width) for c, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _failures(s: RunSnapshot) -> list[str]:
    if not s.failed:
        return []
    quarantined = set(s.quarantined or ())
    lines = ["failed symbols"]
    for symbol, f in list(s.failed.items())[:_MAX_LISTED]:
        mark = " QUARANTINED" if symbol in quarantined else ""
        lines.append(f"  {symbol} attempts {f.attempts}/{s.max_attempts}{mark}: {f.error}")
    if len(s.failed) > _MAX_LISTED:
        lines.append(f"  ... and {len(s.failed) - _MAX_LISTED} more (see --json)")
    return lines


def _inputs(s: RunSnapshot) -> list[str]:
    """Symbols without bar files, and unreadable files left out of completed symbols."""
    lines = []
    if s.no_bars:
        shown = " ".join(s.no_bars[:_MAX_LISTED])
        more = (
            f" ... and {len(s.no_bars) - _MAX_LISTED} more" if len(s.no_bars) > _MAX_LISTED else ""
        )
        lines += ["no bar files (no_bars: not completed, no events)", f"  {shown}{more}"]
    if s.changed_inputs:
        shown = " ".join(s.changed_inputs[:_MAX_LISTED])
        left = len(s.changed_inputs) - _MAX_LISTED
        lines += [
            "bars changed since their commit (`launch --redo-changed` recomputes them)",
            f"  {shown}" + (f" ... and {left} more" if left > 0 else ""),
        ]
    if s.skipped_files:
        lines.append("unreadable bar files skipped (--skip-unreadable)")
        for symbol, files in list(s.skipped_files.items())[:_MAX_LISTED]:
            lines.append(f"  {symbol}: {', '.join(files)}")
        if len(s.skipped_files) > _MAX_LISTED:
            lines.append(f"  ... and {len(s.skipped_files) - _MAX_LISTED} more (see --json)")
    return lines


def _suspects(s: RunSnapshot) -> list[str]:
    if not s.suspect_timezone:
        return []
    lines = [
        f"suspect time zone ({len(s.suspect_timezone)}, events written; "
        "check intraday_events.bars.naive_timezone)"
    ]
    lines += [f"  {sym}: {note}" for sym, note in list(s.suspect_timezone.items())[:_MAX_LISTED]]
    if len(s.suspect_timezone) > _MAX_LISTED:
        lines.append(f"  ... and {len(s.suspect_timezone) - _MAX_LISTED} more (see --json)")
    return lines


# -- JSON ---------------------------------------------------------------------------
def snapshot_to_json(s: RunSnapshot) -> dict[str, Any]:
    """Plain JSON types only; counts beside the names so that scripts need not count."""
    return {
        "schema_version": STATUS_SCHEMA_VERSION,
        "run_id": s.run_id,
        "taken_at": aware(s.taken_at),
        "state": s.state,
        "problem": s.problem,
        "config_hash": s.config_hash,
        "counts": {
            "universe": _len(s.universe),
            "completed": _len(s.completed),
            "remaining": _len(s.remaining),
            "failed": _len(s.failed),
            "quarantined": _len(s.quarantined),
            "no_bars": _len(s.no_bars),
            "skipped_files": None
            if s.skipped_files is None
            else sum(len(f) for f in s.skipped_files.values()),
        },
        "progress_pct": s.progress_pct,
        "completed": _names(s.completed),
        "remaining": _names(s.remaining),
        "quarantined": _names(s.quarantined),
        "no_bars": _names(s.no_bars),
        "changed_inputs": _names(s.changed_inputs),
        "skipped_files": None
        if s.skipped_files is None
        else {sym: list(files) for sym, files in s.skipped_files.items()},
        "failed": None
        if s.failed is None
        else {
            sym: {
                "error": f.error,
                "attempts": f.attempts,
                "last_failed_at": aware(f.last_failed_at),
            }
            for sym, f in s.failed.items()
        },
        "max_attempts": s.max_attempts,
        "suspect_timezone": dict(s.suspect_timezone),
        "events_so_far": s.events_so_far,
        "shards": s.shards,
        "unreadable_shards": list(s.unreadable_shards),
        "remaining_bars": s.remaining_bars,
        "rate_bars_per_s": s.rate_bars_per_s,
        "eta_s": s.eta_s,
        "final": None if s.final is None else str(s.final),
        "orchestrator": {"pid": s.orchestrator_pid, "alive": s.orchestrator_alive},
        "workers": [_worker_json(w) for w in s.workers],
    }


def _names(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


# 2: schema_version itself, and every timestamp with its UTC offset (the run's files
# hold the local time of the machine that wrote them, without one).
STATUS_SCHEMA_VERSION = 2


def aware(moment: datetime | str | None) -> str | None:
    """``moment`` (a datetime, or ISO text; naive ones are this machine's local time) in
    UTC, with its zone: ``2026-12-03T16:05:00+00:00``. Text that is not a time: as it is."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            return moment
    else:
        parsed = moment
    return parsed.astimezone(UTC).isoformat(timespec="seconds")


def _worker_json(w: WorkerSnapshot) -> dict[str, Any]:
    return {
        "worker_id": w.worker_id,
        "pid": w.pid,
        "alive": w.alive,
        "status": w.status,
        "current_symbol": w.current_symbol,
        "last_symbol": w.last_symbol,
        "symbols_done": w.symbols_done,
        "symbols_total": w.symbols_total,
        "bars_done": w.bars_done,
        "events": w.events,
        "rss_gb": w.rss_gb,
        "heartbeat_age_s": w.heartbeat_age_s,
        "bars_per_s": w.bars_per_s,
        "started_at": aware(w.started_at),
        "updated_at": aware(w.updated_at),
        "last_error": w.last_error,
    }
