"""``logs/launch/{run_id}/report.html``: one self-contained page about a run.

Built from the run's files alone (snapshot, plan, checkpoint, batch and heartbeat
logs, the final file or the committed shards), so it can be rebuilt at any time,
also for a partial or running run, which the page says at the top.
"""

from __future__ import annotations

import html
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from detector.config import AppConfig, config_hash, effective_settings
from detector.errors import IntradayEventsError
from orchestrator.observe import report_figures as figs
from orchestrator.observe.event_figure import context_figure
from orchestrator.observe.event_view import EventContext, event_context
from orchestrator.observe.html_page import Raw, Section, figure_count, page, table, write_page
from orchestrator.observe.run_data import RunEvents, Timeline, read_events, read_timeline
from orchestrator.run.files import run_plan
from orchestrator.run.layout import RunLayout
from orchestrator.run.snapshot import RunSnapshot, read_snapshot

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class ReportResult:
    path: Path
    figures: int
    events: int
    bytes: int
    seconds: float
    partial: bool


def report_path(layout: RunLayout) -> Path:
    return layout.launch_dir / REPORT_NAME


def build_report(
    layout: RunLayout, app: AppConfig, *, out: Path | None = None, max_attempts: int | None = None
) -> ReportResult:
    """Read the run's files and write its report (atomically) to ``out`` or the default."""
    started = time.perf_counter()
    snapshot = read_snapshot(layout, now=datetime.now(), max_attempts=max_attempts)
    events = read_events(layout)
    best = best_events(events)
    # The contexts re-read and re-detect their symbols in polars, which releases the GIL:
    # computed side by side while this thread draws the other figures in Python (plotly),
    # they add about nothing to the report's time on two cores (the workers are done).
    with ThreadPoolExecutor(max_workers=max(1, min(len(best), os.cpu_count() or 1))) as pool:
        bars_root = _bars_root(layout, app)
        pending = [pool.submit(_context, row, bars_root, app) for row in best]
        timeline = read_timeline(layout, snapshot)
        # Complete: every symbol settled and the final file merged (the launcher writes
        # the report before it marks the run heartbeat completed, so it may say merging).
        partial = not (layout.final.is_file() and snapshot.remaining == ())
        if not partial and snapshot.state == "merging":
            snapshot = replace(snapshot, state="completed")
        sections = report_sections(snapshot, events, timeline, app)
        sections[-1:-1] = _best_in_context(best, [job.result() for job in pending])
    banner = (
        f"Partial report: the run is {snapshot.state}"
        + (
            ""
            if layout.final.is_file()
            else "; no final file yet, events from the committed shards"
        )
        + ". Rebuild it with `intraday-events report` later."
        if partial
        else None
    )
    text = page(f"Run {layout.run_id}", sections, banner=banner)
    path = out or report_path(layout)
    write_page(path, text)
    return ReportResult(
        path,
        figure_count(sections),
        events.total,
        len(text.encode()),
        time.perf_counter() - started,
        partial,
    )


def report_at_end(layout: RunLayout, app: AppConfig, *, max_attempts: int | None = None) -> str:
    """Write the report at the end of a run and say so in one line; a problem with it is
    that line, never an exception: the report is a view and the run's outcome stands."""
    try:
        result = build_report(layout, app, max_attempts=max_attempts)
    except Exception as exc:
        return (
            f"report not written ({type(exc).__name__}: {exc}); `intraday-events report` retries it"
        )
    return f"report {result.path} ({result.bytes / 1e6:.1f} MB, {result.seconds:.1f} s)"


def _bars_root(layout: RunLayout, app: AppConfig) -> Path:
    """The bars folder the run read (its plan says), else the configured one."""
    plan = run_plan(layout)
    if plan is not None and plan.bars_root:
        return Path(plan.bars_root)
    return layout.root / app.bars.root


def best_events(ev: RunEvents) -> list[dict[str, Any]]:
    """The best event of each type, by score: the ones drawn in context."""
    return list(
        ev.top_events.group_by("event_type", maintain_order=True).head(1).iter_rows(named=True)
    )


def _context(row: dict[str, Any], bars_root: Path, app: AppConfig) -> EventContext | str:
    """The event's context as `show` draws it, or why it cannot be drawn (HTML)."""
    try:
        return event_context(row["symbol"], row["timestamp_et"], bars_root, app, minutes=45)
    except (IntradayEventsError, OSError) as exc:
        return f"<p>Not drawn: {html.escape(str(exc))}</p>"


def _best_in_context(
    best: list[dict[str, Any]], contexts: list[EventContext | str]
) -> list[Section]:
    """One section per best event: its context drawn, or the line saying why not."""
    out = []
    for row, ctx in zip(best, contexts, strict=True):
        title = f"Best {row['event_type']} in context: {row['symbol']}"
        if isinstance(ctx, str):
            out.append(Section(title, ctx))
        else:
            out.append(Section(title, figure=context_figure(ctx)))
    return out


def report_sections(
    snap: RunSnapshot, ev: RunEvents, tl: Timeline, app: AppConfig
) -> list[Section]:
    return [
        Section("The run", _header(snap, ev, app)),
        Section("Events per trading day, by type", figure=figs.per_day(ev)),
        Section(
            "Events by minute of the New York session, by type",
            "<p>Rule artefacts (a spike at one clock minute) show here first.</p>",
            figs.per_minute(ev),
        ),
        Section("Score distribution by type", figure=figs.score_distribution(ev)),
        Section("Events per symbol-day", figure=figs.per_symbol_day(ev)),
        Section(f"Top {figs_top(ev)} symbols by events", figure=figs.top_symbols(ev)),
        Section("Direction by type", figure=figs.split(ev.direction, "direction")),
        Section("Session by type", figure=figs.split(ev.session, "session")),
        Section(
            "Symbols committed over time, per worker",
            _notes(tl, "from the batch log lines of this run's shards"),
            figs.commits(tl),
        ),
        Section(
            "Worker memory over time",
            _notes(tl, "from the heartbeat log lines of this run's symbols"),
            figs.memory(tl),
        ),
        Section("Top events by score, per type", _top_events(ev)),
        Section("Effective configuration", _settings(app)),
    ]


def figs_top(ev: RunEvents) -> int:
    return ev.top_symbols.get_column("symbol").n_unique()


def _notes(tl: Timeline, what: str) -> str:
    extra = "; ".join(tl.notes)
    return f"<p>{html.escape(what)}{'; ' + html.escape(extra) if extra else ''}.</p>"


def _count(values: object) -> str:
    return "unknown" if values is None else f"{len(values):,}"  # type: ignore[arg-type]


def _header(snap: RunSnapshot, ev: RunEvents, app: AppConfig) -> str:
    elapsed = snap.elapsed_s
    bars = snap.bars_total
    rate = (
        f"{bars / elapsed:,.0f} bars/s, {len(snap.completed or ()) / elapsed:,.2f} symbols/s"
        if bars and elapsed
        else "unknown"
    )
    failed = dict(snap.failed or {})
    quarantined = set(snap.quarantined or ())
    loaded_hash = config_hash(app)
    rows: list[tuple[str, object]] = [
        ("run id", snap.run_id),
        ("state", snap.state),
        ("launched", snap.launched_at.isoformat(sep=" ") if snap.launched_at else "unknown"),
        ("wall time", f"{elapsed:,.1f} s" if elapsed is not None else "unknown"),
        ("trading days with events", _days(ev)),
        ("symbols in the universe", _count(snap.universe)),
        ("completed", _count(snap.completed)),
        ("failed (not quarantined)", f"{len(set(failed) - quarantined):,}"),
        ("quarantined", _count(snap.quarantined)),
        ("no_bars (no bar file)", _count(snap.no_bars)),
        ("suspect_timezone", f"{len(snap.suspect_timezone):,}"),
        ("with skipped unreadable files", f"{len(snap.skipped_files or {}):,}"),
        ("bars (plan)", f"{bars:,}" if bars is not None else "unknown"),
        ("throughput", rate),
        ("workers", f"{len(snap.workers):,}"),
        ("events", f"{ev.total:,} ({ev.source})"),
        ("committed shards", f"{snap.shards:,}"),
        ("package version", _version()),
        ("config hash (checkpoint)", snap.config_hash or "unknown"),
        ("config hash (configuration below)", loaded_hash),
        ("final file", str(snap.final) if snap.final else "none yet"),
    ]
    out = [table(["", ""], rows)]
    if snap.config_hash and snap.config_hash != loaded_hash:
        out.append(
            '<p class="banner">The configuration below is the one this command loaded; '
            "its hash differs from the run's.</p>"
        )
    if failed:
        reasons = [
            (s, "quarantined" if s in quarantined else "failed", f.attempts, f.error)
            for s, f in sorted(failed.items())
        ][:200]
        out.append("<h3>Failed and quarantined symbols</h3>")
        out.append(table(["symbol", "state", "attempts", "last error"], reasons, left=4))
    if snap.suspect_timezone:
        rows2 = sorted(snap.suspect_timezone.items())[:200]
        out.append("<h3>Suspect time zone</h3>" + table(["symbol", "shifts"], rows2, left=2))
    return "\n".join(out)


def _settings(app: AppConfig) -> str:
    settings = {
        "detector": effective_settings(app.detector),
        "bars": effective_settings(app.bars),
        "supervision": effective_settings(app.supervision),
    }
    return f"<pre>{html.escape(json.dumps(settings, indent=2, default=str))}</pre>"


def _version() -> str:
    """The installed package's version (of the code writing this report)."""
    try:
        return metadata.version("intraday-events")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _days(ev: RunEvents) -> str:
    dates = ev.per_day.get_column("date").unique()
    if dates.len() == 0:
        return "none"
    first, last = cast(date, dates.min()), cast(date, dates.max())
    return f"{dates.len():,}, {first} to {last}"


def _top_events(ev: RunEvents) -> str:
    if ev.top_events.height == 0:
        return "<p>No events.</p>"
    rows = []
    for r in ev.top_events.iter_rows(named=True):
        stamp = r["timestamp_et"].strftime("%Y-%m-%d %H:%M")
        cmd = f"intraday-events show {r['symbol']} '{stamp}'"
        rows.append(
            (
                r["event_type"],
                r["symbol"],
                stamp,
                r["direction"],
                r["session"] or "",
                f"{r['score']:.3f}",
                f"{r['close']:.4g}",
                f"{r['volume']:,}",
                Raw(f"<code>{html.escape(cmd)}</code>"),
            )
        )
    header = [
        "type",
        "symbol",
        "time (ET)",
        "direction",
        "session",
        "score",
        "close",
        "volume",
        "in context",
    ]
    return "<p>Each row opens in context with the command in its last column.</p>" + table(
        header, rows, left=5
    )
