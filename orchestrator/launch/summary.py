"""The text a launch prints when it ends."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.launch.outcome import LaunchOutcome
from orchestrator.run.merge import MergeResult

_SHOWN = 20  # symbols listed by name


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _listed(title: str, reasons: dict[str, str]) -> list[str]:
    if not reasons:
        return []
    return [f"{title} ({len(reasons)}):", *(f"  {s}: {why}" for s, why in reasons.items())]


def format_merged(merged: MergeResult) -> list[str]:
    """Where the final file is and what it holds."""
    return [
        f"events: {merged.events:,} in {merged.path}",
        f"  by type: {_counts(merged.by_type)}",
        f"  by direction: {_counts(merged.by_direction)}",
        f"  by session: {_counts(merged.by_session)}",
    ]


def format_inputs(
    no_bars: tuple[str, ...], skipped_files: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """Symbols without bar files and unreadable files left out: never silent."""
    lines = []
    if no_bars:
        shown = " ".join(no_bars[:_SHOWN]) + (" ..." if len(no_bars) > _SHOWN else "")
        lines.append(
            f"no bar files, recorded as no_bars (not completed, no events) ({len(no_bars)}): "
            f"{shown}"
        )
    if skipped_files:
        files = sum(len(f) for f in skipped_files.values())
        lines.append(
            f"completed without unreadable bar files (--skip-unreadable): {_n(files, 'file')} "
            f"of {_n(len(skipped_files), 'symbol')}:"
        )
        for symbol, paths in list(skipped_files.items())[:_SHOWN]:
            lines.append(f"  {symbol}: {', '.join(paths)}")
        if len(skipped_files) > _SHOWN:
            lines.append(
                f"  ... and {len(skipped_files) - _SHOWN} more symbols (see status --json)"
            )
    return lines


SUSPECTS_SHOWN = 10


def format_suspects(suspects: Mapping[str, str], run_id: str) -> list[str]:
    """Completed symbols whose volume peaks are off the auctions as read (a few shown)."""
    if not suspects:
        return []
    shown = list(suspects.items())[:SUSPECTS_SHOWN]
    more = len(suspects) - len(shown)
    where = f"suspect_timezone in logs/checkpoints/{run_id}_completed.json"
    return [
        f"suspect time zone ({len(suspects)}): volume peaks on the 09:30/16:00 auctions only "
        f"once shifted; events written; check intraday_events.bars.naive_timezone",
        *(f"  {s}: {note}" for s, note in shown),
        *([f"  ... and {more} more ({where})"] if more else []),
    ]


def format_summary(outcome: LaunchOutcome) -> str:
    run = outcome.run_id
    rate = outcome.completed_now / outcome.wall_s if outcome.wall_s > 0 else 0.0
    bars_rate = outcome.bars_now / outcome.wall_s / 1e6 if outcome.wall_s > 0 else 0.0
    lines = []
    if outcome.merged is not None:
        lines += [f"DETECTION COMPLETE run={run}", *format_merged(outcome.merged)]
    elif outcome.stopped:
        lines.append(f"Run {run} stopped ({outcome.stopped}); nothing is lost.")
    else:
        lines.append(f"Run {run} is not finished.")
    lines.append(
        f"symbols: {outcome.completed:,} of {outcome.plan.total:,} completed "
        f"({outcome.completed_now:,} by this launch), {len(outcome.failed)} failed, "
        f"{len(outcome.quarantined)} quarantined"
        + (f", {len(outcome.no_bars)} without bar files" if outcome.no_bars else "")
        + (f", {len(outcome.unfinished)} not done" if outcome.unfinished else "")
    )
    lines.append(
        f"wall time {outcome.wall_s:.1f} s: {rate:.2f} symbols/s, {bars_rate:.2f} M bars/s"
    )
    lines += _listed("failed, retried by the next launch", outcome.failed)
    lines += _listed("quarantined, skipped from now on", outcome.quarantined)
    lines += format_inputs(outcome.no_bars, outcome.skipped_files)
    lines += format_suspects(outcome.suspect_timezone, run)
    if outcome.given_up:
        workers = ", ".join(str(k) for k in outcome.given_up)
        lines.append(f"workers given up after too many restarts: {workers}")
        for k, last in sorted(outcome.worker_errors.items()):
            lines.append(f"  worker {k} last exit: {last}")
    if outcome.environment_error:
        lines.append(f"stopped, a write was refused: {outcome.environment_error}")
    if outcome.unfinished or outcome.failed or outcome.stopped or outcome.environment_error:
        lines.append(f"Continue with: intraday-events launch --run-id {run}")
    if outcome.quarantined:
        lines.append(
            f"Retry the quarantined symbols once fixed: "
            f"intraday-events launch --run-id {run} --retry-quarantined"
        )
    return "\n".join(lines)
