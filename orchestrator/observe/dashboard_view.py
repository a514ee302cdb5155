"""The dashboard's screen: a pure function from a run snapshot to a rich renderable.

Nothing here reads a file, a clock or a process: :func:`render_dashboard` takes a
:class:`Frame` (the snapshot, the rates measured over the recent window and the
thresholds) and returns what to draw. The live loop
(:mod:`orchestrator.observe.dashboard_live`) only reads snapshots and hands frames to
rich; tests render frames to text.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.observe.status import format_count, format_duration, format_rate
from orchestrator.observe.throughput import Rates
from orchestrator.run.snapshot import ACTIVE, RunSnapshot, WorkerSnapshot

UNKNOWN = "unknown"
_NONE = "-"
_MAX_FAILED_ROWS = 8

# What each worker status looks like; "stalled" is derived from the heartbeat age.
STATUS_STYLES = {
    "starting": "cyan",
    "running": "green",
    "committing": "bright_cyan",
    "stalled": "bold yellow",
    "dead": "bold red",
    "completed": "blue",
    "failed": "red",
    "stopped": "magenta",
    UNKNOWN: "dim",
}
STATE_STYLES = {
    "running": "bold green",
    "merging": "bold cyan",
    "completed": "bold blue",
    "stopped": "bold magenta",
    "not started": "dim",
    UNKNOWN: "dim",
}


@dataclass(frozen=True)
class Frame:
    snapshot: RunSnapshot
    rates: Rates
    eta_s: float | None
    stall_after_s: float  # a working heartbeat older than this: the worker is stalled
    stale_after_s: float  # older than this: its age is highlighted
    footer: str = ""


def worker_status(w: WorkerSnapshot, stall_after_s: float) -> str:
    """running / committing / stalled / dead / completed / ...: the words of ``status``."""
    if w.status in ACTIVE and w.alive is not False and (w.heartbeat_age_s or 0.0) > stall_after_s:
        return "stalled"
    return w.status if w.status in STATUS_STYLES else UNKNOWN


def render_dashboard(frame: Frame) -> RenderableType:
    parts: list[RenderableType] = [_overview(frame), _workers(frame)]
    shards = _recent_shards(frame.snapshot)
    if shards is not None:
        parts.append(shards)
    failures = _failures(frame.snapshot)
    if failures is not None:
        parts.append(failures)
    if frame.footer:
        parts.append(Text(frame.footer, style="dim"))
    return Group(*parts)


# -- overview -------------------------------------------------------------------------
def _overview(frame: Frame) -> Panel:
    s = frame.snapshot
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    state = Text(s.state, style=STATE_STYLES.get(s.state, "dim"))
    grid.add_row(
        Text.assemble("state ", state),
        f"config {s.config_hash or UNKNOWN}",
        f"elapsed {format_duration(s.elapsed_s)}",
    )
    orchestrator = _NONE
    if s.orchestrator_pid is not None:
        orchestrator = f"{s.orchestrator_pid} ({'alive' if s.orchestrator_alive else 'gone'})"
    grid.add_row(
        f"events {format_count(s.events_so_far)}",
        f"shards {s.shards}"
        + (f" ({len(s.unreadable_shards)} unreadable)" if s.unreadable_shards else ""),
        f"launcher pid {orchestrator}",
    )
    rates = frame.rates
    per_min = _NONE if rates.symbols_per_min is None else f"{rates.symbols_per_min:.1f}"
    window = "recent" if rates.recent else "average"
    grid.add_row(
        f"rate {format_rate(rates.bars_per_s)}",
        f"{per_min} symbols/min ({window})",
        f"ETA {format_duration(frame.eta_s)}",
    )
    rows: list[RenderableType] = [_progress(s), grid]
    if s.problem:
        rows.append(Text(f"problem: {s.problem}", style="yellow"))
    return Panel(Group(*rows), title=f"intraday-events · {s.run_id}", title_align="left")


def _progress(s: RunSnapshot) -> Table:
    pct = s.bars_pct
    row = Table.grid(padding=(0, 1), expand=True)
    row.add_column(ratio=1)
    row.add_column(no_wrap=True)
    bar = ProgressBar(total=100.0, completed=pct or 0.0, width=None)
    shown = f"{pct:5.1f}%" if pct is not None else "    ?%"
    weighted = "of bars" if s.bars_total else "of symbols"
    row.add_row(bar, f"{shown} {weighted}  {_symbols(s)}")
    return row


def _symbols(s: RunSnapshot) -> str:
    if s.completed is None or s.universe is None:
        return "?/? symbols"
    extra = []
    if s.quarantined:
        extra.append(f"{len(s.quarantined)} quarantined")
    retried = len([sym for sym in (s.failed or {}) if sym not in set(s.quarantined or ())])
    if retried:
        extra.append(f"{retried} failed")
    if s.no_bars:
        extra.append(f"{len(s.no_bars)} without bars")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{len(s.completed)}/{len(s.universe)} symbols{tail}"


# -- workers --------------------------------------------------------------------------
def _workers(frame: Frame) -> RenderableType:
    s = frame.snapshot
    if not s.workers:
        return Text("no worker has reported yet", style="dim")
    table = Table(title="workers", title_justify="left", expand=True, box=None, pad_edge=False)
    for name in ("worker", "pid", "status", "symbol", "on it", "done", "events", "RSS GB"):
        table.add_column(name, no_wrap=True)
    table.add_column("beat age", no_wrap=True, justify="right")
    for w in s.workers:
        status = worker_status(w, frame.stall_after_s)
        on_symbol = _NONE
        if w.current_symbol and w.heartbeat_age_s is not None:
            # The heartbeat is rewritten as a symbol starts: its age is the time on it.
            on_symbol = f"{w.heartbeat_age_s:.1f}s"
        table.add_row(
            f"w{w.worker_id}",
            _NONE if w.pid is None else str(w.pid),
            Text(status, style=STATUS_STYLES[status]),
            w.current_symbol or _NONE,
            on_symbol,
            f"{_n(w.symbols_done)}/{_n(w.symbols_total)}",
            format_count(w.events),
            _NONE if w.rss_gb is None else f"{w.rss_gb:.2f}",
            _age(w, frame),
        )
    errors = [
        Text(f"w{w.worker_id} last error: {w.last_error}", style="red", overflow="fold")
        for w in s.workers
        if w.last_error
    ]
    return Group(table, *errors) if errors else table


def _age(w: WorkerSnapshot, frame: Frame) -> Text:
    if w.heartbeat_age_s is None:
        return Text(_NONE)
    text = f"{w.heartbeat_age_s:.1f}s"
    if w.status not in ACTIVE or w.alive is False:  # None: a task on another machine
        return Text(text, style="dim")  # a finished worker's heartbeat ages harmlessly
    if w.heartbeat_age_s > frame.stall_after_s:
        return Text(text, style="bold red")
    if w.heartbeat_age_s > frame.stale_after_s:
        return Text(text, style="bold yellow")
    return Text(text)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


# -- shards and failures ----------------------------------------------------------------
def _recent_shards(s: RunSnapshot) -> Table | None:
    if not s.recent_shards:
        return None
    table = Table(title="last committed shards", title_justify="left", box=None, pad_edge=False)
    for name in ("time", "shard", "batch", "symbols", "events", "mem GB"):
        table.add_column(name, no_wrap=True)
    prefix = f"{s.run_id}_"
    for entry in reversed(s.recent_shards):  # newest first
        table.add_row(
            entry.timestamp.rpartition(" ")[2],  # the time of day; the date is the log's
            entry.shard_file.removeprefix(prefix).removesuffix(".parquet"),
            str(entry.batch_num),
            str(entry.symbols),
            f"{entry.events:,}",
            _NONE if entry.mem_gb is None else f"{entry.mem_gb:.2f}",
        )
    return table


def _failures(s: RunSnapshot) -> Table | None:
    if not s.failed:
        return None
    quarantined = set(s.quarantined or ())
    table = Table(title="failed symbols", title_justify="left", box=None, pad_edge=False)
    table.add_column("symbol", no_wrap=True)
    table.add_column("attempts", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("reason", overflow="fold")
    items = list(s.failed.items())
    for symbol, failure in items[:_MAX_FAILED_ROWS]:
        state = (
            Text("quarantined", style="bold red")
            if symbol in quarantined
            else Text("retried on resume", style="yellow")
        )
        table.add_row(symbol, f"{failure.attempts}/{s.max_attempts}", state, failure.error)
    if len(items) > _MAX_FAILED_ROWS:
        table.add_row(f"... {len(items) - _MAX_FAILED_ROWS} more", "", "", "see status --json")
    return table
