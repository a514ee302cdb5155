"""The text a launch prints when it ends."""

from __future__ import annotations

from detector.merge import MergeResult
from orchestrator.launch import LaunchOutcome


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
        + (f", {len(outcome.unfinished)} not done" if outcome.unfinished else "")
    )
    lines.append(
        f"wall time {outcome.wall_s:.1f} s: {rate:.2f} symbols/s, {bars_rate:.2f} M bars/s"
    )
    lines += _listed("failed, retried by the next launch", outcome.failed)
    lines += _listed("quarantined, skipped from now on", outcome.quarantined)
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
