"""The dashboard without a terminal: snapshots rendered to text, the throughput window,
the snapshot fields it needs read from files, keys read from a pseudo-terminal."""

from __future__ import annotations

import io
import json
import os
import re
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.observe.dashboard_live import InlineDashboard, KeyReader, LiveView, ViewOptions
from orchestrator.observe.dashboard_view import Frame, render_dashboard, worker_status
from orchestrator.observe.throughput import Rates, ThroughputWindow, eta_s
from orchestrator.run.checkpoint import Checkpoint, FailedSymbol, to_json
from orchestrator.run.heartbeat import BatchLogEntry, parse_batch_log_line
from orchestrator.run.layout import RunLayout
from orchestrator.run.pidfile import record_for, write_pid_file
from orchestrator.run.plan import make_plan, write_plan
from orchestrator.run.snapshot import RunSnapshot, WorkerSnapshot, read_snapshot

RUN = "events_intraday_20261121"
NOW = datetime(2026, 11, 21, 10, 0, 0)
UNIVERSE = tuple(f"S{i:02d}" for i in range(10))


def worker(worker_id: int, **changes: object) -> WorkerSnapshot:
    base = WorkerSnapshot(
        worker_id=worker_id,
        pid=4000 + worker_id,
        alive=True,
        status="running",
        current_symbol=f"S0{worker_id}",
        symbols_done=2,
        symbols_total=5,
        bars_done=200_000,
        events=1_234,
        rss_gb=0.21,
        heartbeat_age_s=0.4,
        bars_per_s=500_000.0,
        symbols_per_s=5.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def snapshot(**changes: object) -> RunSnapshot:
    base = RunSnapshot(
        run_id=RUN,
        taken_at=NOW,
        state="running",
        config_hash="abc123def456",
        universe=UNIVERSE,
        completed=UNIVERSE[:4],
        remaining=UNIVERSE[4:],
        failed={},
        quarantined=(),
        events_so_far=5_678,
        shards=2,
        remaining_bars=12_000_000,
        bars_total=20_000_000,
        bars_done=8_000_000,
        orchestrator_pid=3999,
        orchestrator_alive=True,
        elapsed_s=83.0,
        workers=(worker(0), worker(1)),
        recent_shards=(
            BatchLogEntry("2026-11-21 09:59:50", 1, 2, 2_000, f"{RUN}_shard0001.parquet", 0.2),
            BatchLogEntry("2026-11-21 09:59:58", 1, 2, 3_678, f"{RUN}_shard0002.parquet", 0.21),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


RECENT = Rates(bars_per_s=1_200_000.0, symbols_per_min=45.0, recent=True)


def frame(s: RunSnapshot, rates: Rates = RECENT, **changes: object) -> Frame:
    base = Frame(
        snapshot=s,
        rates=rates,
        eta_s=eta_s(s, rates),
        stall_after_s=300.0,
        stale_after_s=30.0,
        footer="q quits",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def screen(f: Frame, width: int = 120, color: bool = False) -> str:
    console = Console(
        width=width,
        file=io.StringIO(),
        record=True,
        force_terminal=color,
        color_system="standard" if color else None,
    )
    console.print(render_dashboard(f))
    return console.export_text(styles=color)


def row(text: str, name: str) -> str:
    """The screen line of worker ``name`` (``w0``)."""
    found = [line for line in text.splitlines() if re.match(rf"\s*{name}\s", line)]
    assert len(found) == 1, text
    return found[0]


# -- rendering ---------------------------------------------------------------------------
def test_running_run_shows_progress_rates_eta_and_every_worker() -> None:
    text = screen(frame(snapshot()))

    assert RUN in text
    assert "state running" in text
    assert "config abc123def456" in text
    assert "elapsed 0:01:23" in text
    assert "40.0% of bars" in text  # 8 of 20 M bars, not 4 of 10 symbols' share
    assert "4/10 symbols" in text
    assert "events 5,678" in text
    assert "rate 1.20 M bars/s" in text
    assert "45.0 symbols/min (recent)" in text
    assert "ETA 0:00:10" in text  # 12 M bars at 1.2 M bars/s
    assert "launcher pid 3999 (alive)" in text
    for k in (0, 1):
        line = row(text, f"w{k}")
        assert str(4000 + k) in line and "running" in line and f"S0{k}" in line
        assert "2/5" in line and "1,234" in line and "0.21" in line and "0.4s" in line
    # newest committed shard first, named without the run id
    assert text.index("shard0002") < text.index("shard0001")
    assert "09:59:58" in text and "3,678" in text
    assert "q quits" in text


def test_one_worker_stalled_is_flagged_and_its_age_highlighted() -> None:
    stalled = worker(1, heartbeat_age_s=412.0)
    f = frame(snapshot(workers=(worker(0), stalled)))

    text = screen(f)
    assert "stalled" in row(text, "w1")
    assert "412.0s" in row(text, "w1")
    assert "running" in row(text, "w0")
    coloured = screen(f, color=True)
    assert re.search(r"\x1b\[1;31m *412\.0s", coloured)  # bold red beyond the stall timeout


def test_old_but_not_stalled_heartbeat_is_highlighted_only() -> None:
    f = frame(snapshot(workers=(worker(0, heartbeat_age_s=45.0),)))

    assert "running" in row(screen(f), "w0")
    assert re.search(r"\x1b\[1;33m *45\.0s", screen(f, color=True))  # bold yellow


def test_dead_worker_shows_dead() -> None:
    dead = worker(0, status="dead", alive=False, heartbeat_age_s=12.0)
    text = screen(frame(snapshot(workers=(dead, worker(1)))))

    assert "dead" in row(text, "w0")
    assert "running" in row(text, "w1")


def test_finished_run_shows_completed_full_bar_and_done_workers() -> None:
    done = [
        worker(k, status="completed", current_symbol=None, symbols_done=5, heartbeat_age_s=90.0)
        for k in (0, 1)
    ]
    s = snapshot(
        state="completed",
        completed=UNIVERSE,
        remaining=(),
        remaining_bars=0,
        bars_done=20_000_000,
        orchestrator_alive=False,
        workers=tuple(done),
        final=Path("/x/final.parquet"),
    )
    text = screen(frame(s, Rates(None, None, recent=False)))

    assert "state completed" in text
    assert "100.0% of bars" in text and "10/10 symbols" in text
    assert "completed" in row(text, "w0") and "completed" in row(text, "w1")
    assert "5/5" in row(text, "w0")
    assert "launcher pid 3999 (gone)" in text


def test_empty_run_renders_with_unknowns() -> None:
    s = RunSnapshot(run_id=RUN, taken_at=NOW, state="not started")
    text = screen(frame(s, Rates(None, None, recent=False)))

    assert "state not started" in text
    assert "?%" in text and "?/? symbols" in text
    assert "config unknown" in text
    assert "no worker has reported yet" in text
    assert "ETA -" in text


def test_failed_and_quarantined_symbols_are_listed_with_reasons() -> None:
    failed = {
        "S08": FailedSymbol("ValueError: close is text", 3, "2026-11-21T09:58:00"),
        "S09": FailedSymbol("worker pid 77 died: SIGKILL(-9)", 1, "2026-11-21T09:59:00"),
    }
    s = snapshot(failed=failed, quarantined=("S08",), max_attempts=3)
    text = screen(frame(s))

    s08 = next(line for line in text.splitlines() if line.startswith("S08"))
    assert "3/3" in s08 and "quarantined" in s08 and "close is text" in s08
    s09 = next(line for line in text.splitlines() if line.startswith("S09"))
    assert "1/3" in s09 and "retried on resume" in s09 and "SIGKILL(-9)" in s09
    assert "(1 quarantined, 1 failed)" in text


@pytest.mark.parametrize("width", [50, 80, 200])
def test_any_terminal_width_renders_within_it(width: int) -> None:
    text = screen(frame(snapshot()), width=width)

    assert all(len(line) <= width for line in text.splitlines())
    assert "w0" in text and "w1" in text


def test_worker_status_mapping() -> None:
    assert worker_status(worker(0, status="completed"), 300) == "completed"  # as status says
    assert worker_status(worker(0, status="committing", heartbeat_age_s=301.0), 300) == "stalled"
    assert worker_status(worker(0, status="committing"), 300) == "committing"
    # a dead process is dead, however old its heartbeat
    assert (
        worker_status(worker(0, status="dead", alive=False, heartbeat_age_s=999.0), 300) == "dead"
    )
    assert worker_status(worker(0, status="failed", heartbeat_age_s=999.0), 300) == "failed"
    assert worker_status(worker(0, status="weird"), 300) == "unknown"


# -- throughput ----------------------------------------------------------------------------
def test_first_observation_is_a_baseline_and_averages_stand_in() -> None:
    window = ThroughputWindow(window_s=60)
    s = snapshot()
    window.observe(s, now=100.0)

    rates = window.rates(s)
    assert not rates.recent
    assert rates.bars_per_s == pytest.approx(1_000_000.0)  # 2 x 500 k: the process averages
    assert rates.symbols_per_min == pytest.approx(600.0)


def test_recent_rate_counts_growth_and_survives_a_restart() -> None:
    window = ThroughputWindow(window_s=60)
    window.observe(snapshot(workers=(worker(0, bars_done=100, symbols_done=1),)), now=0.0)
    window.observe(snapshot(workers=(worker(0, bars_done=400, symbols_done=3),)), now=10.0)
    # worker 0 restarted under a new pid: its count starts again from zero
    restarted = worker(0, pid=5000, bars_done=200, symbols_done=1)
    s = snapshot(workers=(restarted,))
    window.observe(s, now=20.0)

    rates = window.rates(s)
    assert rates.recent
    assert rates.bars_per_s == pytest.approx((300 + 200) / 20)
    assert rates.symbols_per_min == pytest.approx(60 * 3 / 20)


def test_window_forgets_old_samples() -> None:
    window = ThroughputWindow(window_s=30)
    for t in range(0, 101, 10):
        bars = 1_000 * t if t <= 50 else 50_000  # busy for 50 s, then idle
        window.observe(snapshot(workers=(worker(0, bars_done=bars),)), now=float(t))

    assert window.rates(snapshot()).bars_per_s == pytest.approx(0.0)


def test_symbols_completing_without_bars_counted_never_show_a_rate_of_zero() -> None:
    window = ThroughputWindow(window_s=60)
    window.observe(snapshot(workers=(worker(0, bars_done=500, symbols_done=1),)), now=0.0)
    # Two more symbols done, but the bar count has not moved (it lags, or they had none).
    s = snapshot(workers=(worker(0, bars_done=500, symbols_done=3),))
    window.observe(s, now=10.0)
    rates = window.rates(s)
    assert not rates.recent and rates.bars_per_s == pytest.approx(500_000.0)  # the average


def test_a_finished_run_shows_its_average_rate() -> None:
    done = snapshot(
        state="completed",
        completed=UNIVERSE,
        remaining=(),
        bars_done=20_000_000,
        elapsed_s=100.0,
        workers=(worker(0, status="completed", alive=False),),
    )
    rates = ThroughputWindow(window_s=60).rates(done)
    assert rates.bars_per_s == pytest.approx(200_000.0) and not rates.recent
    assert rates.symbols_per_min == pytest.approx(6.0)


def test_eta_needs_a_rate_and_remaining_bars() -> None:
    assert eta_s(snapshot(remaining_bars=600), Rates(60.0, 1.0, True)) == pytest.approx(10.0)
    assert eta_s(snapshot(remaining_bars=600), Rates(0.0, 0.0, True)) is None
    assert eta_s(snapshot(remaining_bars=None), RECENT) is None


# -- fields read from files ------------------------------------------------------------------
def test_batch_log_lines_parse_or_are_ignored() -> None:
    good = f"2026-11-21 09:59:58\t3\t50\t12345\t{RUN}_shard0007.parquet\t0.25\n"
    assert parse_batch_log_line(good) == BatchLogEntry(
        "2026-11-21 09:59:58", 3, 50, 12_345, f"{RUN}_shard0007.parquet", 0.25
    )
    assert parse_batch_log_line(good.replace("0.25", "None")).mem_gb is None  # type: ignore[union-attr]
    assert parse_batch_log_line(good[:30]) is None  # half-written
    assert parse_batch_log_line("garbage\tline") is None
    assert parse_batch_log_line(good.replace("12345", "many")) is None


def _write_run(layout: RunLayout, *, completed: tuple[str, ...]) -> None:
    bars = {s: 1_000 * (i + 1) for i, s in enumerate(UNIVERSE)}  # S00 1000 .. S09 10000
    plan = make_plan(
        run_id=RUN,
        universe=frozenset(UNIVERSE),
        completed=frozenset(UNIVERSE[:2]),
        quarantined=frozenset(),
        bars={s: n for s, n in bars.items() if s not in UNIVERSE[:2]},
        workers=2,
    )
    write_plan(layout.plan, plan, created_at="2026-11-21T09:58:00", batch_size=2)
    cp = Checkpoint(run_id=RUN, completed=frozenset(completed), universe=frozenset(UNIVERSE))
    layout.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    layout.checkpoint.write_text(to_json(cp))


def test_snapshot_weights_progress_by_bars_and_times_the_run(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    # S00 and S01 were done before the launch; the launch has done S09 (the largest).
    _write_run(layout, completed=("S00", "S01", "S09"))

    s = read_snapshot(layout, now=NOW)

    planned = sum(1_000 * (i + 1) for i in range(2, 10))  # 52,000 bars
    average = planned / 8
    assert s.bars_total == planned + round(2 * average)
    assert s.bars_done == s.bars_total - (planned - 10_000)
    assert s.bars_pct == pytest.approx(100 * s.bars_done / s.bars_total)
    assert s.launched_at == datetime(2026, 11, 21, 9, 58)
    assert s.state == "stopped"  # nobody alive, work left
    assert s.elapsed_s is None  # no activity recorded after the launch


def test_recent_shards_come_from_this_runs_lines_of_the_batch_logs(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    layout.logs_dir.mkdir(parents=True)
    other = "events_intraday_20261120"
    lines = [
        f"2026-11-20 23:59:0{i}\t{i}\t2\t10\t{RUN}_shard000{i}.parquet\t0.2" for i in range(1, 4)
    ]
    (layout.logs_dir / "batches_20261120.log").write_text("\n".join(lines) + "\n")
    today = [
        f"2026-11-21 00:00:01\t1\t2\t10\t{other}_shard0001.parquet\t0.2",
        *(
            f"2026-11-21 00:00:0{i}\t{i}\t2\t10\t{RUN}_shard000{i}.parquet\t0.2"
            for i in range(4, 9)
        ),
        "2026-11-21 00:00:09\t9\t2",  # being written
    ]
    (layout.logs_dir / "batches_20261121.log").write_text("\n".join(today))

    shards = read_snapshot(layout, now=NOW).recent_shards

    assert [e.shard_file for e in shards] == [f"{RUN}_shard000{i}.parquet" for i in range(4, 9)]


def test_corrupt_heartbeat_plan_and_log_render_as_unknown(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    _write_run(layout, completed=("S00",))
    layout.heartbeats_dir.mkdir(parents=True)
    layout.worker_heartbeat(0).write_text('{"run_id": "' + RUN + '", "status": "runn')
    layout.worker_heartbeat(1).write_bytes(b"\xff\xfe\x00garbage")
    layout.plan.write_text("{not json")
    layout.logs_dir.mkdir(parents=True)
    (layout.logs_dir / "batches_20261121.log").write_bytes(b"\xff\t\x00\n" * 10)

    s = read_snapshot(layout, now=NOW)
    text = screen(frame(s, Rates(None, None, recent=False)))

    assert "unknown" in row(text, "w0") and "unknown" in row(text, "w1")
    assert "1/10 symbols" in text
    assert "of symbols" in text  # without a plan the bar falls back to the symbol count


def test_foreign_version_heartbeat_is_unknown(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    layout.heartbeats_dir.mkdir(parents=True)
    layout.worker_heartbeat(0).write_text(json.dumps({"run_id": RUN, "version": 99, "beat": []}))

    text = screen(frame(read_snapshot(layout, now=NOW), Rates(None, None, recent=False)))

    assert "unknown" in row(text, "w0")


# -- keys and the inline view ------------------------------------------------------------------
@contextmanager
def pseudo_terminal() -> Iterator[tuple[int, io.TextIOWrapper]]:
    master, slave = os.openpty()
    stream = os.fdopen(slave, "r")
    try:
        yield master, stream
    finally:
        stream.close()
        os.close(master)


def test_key_reader_reads_single_keys_and_restores_the_terminal() -> None:
    with pseudo_terminal() as (master, stream):
        before = termios.tcgetattr(stream.fileno())
        assert before[3] & termios.ICANON

        with KeyReader(stream) as keys:
            assert not termios.tcgetattr(stream.fileno())[3] & termios.ICANON
            assert keys.read(0.0) == ""
            os.write(master, b"q")  # no Enter needed
            assert keys.read(2.0) == "q"

        assert termios.tcgetattr(stream.fileno()) == before


def test_key_reader_without_a_terminal_waits_and_reads_nothing() -> None:
    with KeyReader(io.StringIO()) as keys:
        assert keys.read(0.01) == ""


class CountingMonitor:
    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.closed = False

    def tick(self, now: float) -> None:
        self.ticks.append(now)

    def close(self) -> None:
        self.closed = True


def test_q_closes_the_inline_view_and_progress_lines_take_over(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    _write_run(layout, completed=("S00",))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    view = LiveView(layout, console, ViewOptions(stall_after_s=300), wallclock=lambda: NOW)
    fallback = CountingMonitor()
    said: list[str] = []
    with pseudo_terminal() as (master, stream):
        inline = InlineDashboard(
            view, KeyReader(stream), refresh_s=1.0, fallback=fallback, echo=said.append
        )
        inline.tick(0.0)
        inline.tick(0.5)
        assert RUN in out.getvalue() and view.started
        assert not termios.tcgetattr(stream.fileno())[3] & termios.ICANON

        os.write(master, b"q")
        inline.tick(1.0)
        inline.tick(2.0)
        inline.close()

        assert not view.started
        assert termios.tcgetattr(stream.fileno())[3] & termios.ICANON  # terminal restored
    assert said and "the run goes on" in said[0]
    assert fallback.ticks == [1.0, 2.0]
    assert fallback.closed


def test_inline_view_draws_a_last_frame_when_supervision_ends(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    _write_run(layout, completed=UNIVERSE)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    view = LiveView(layout, console, ViewOptions(stall_after_s=300), wallclock=lambda: NOW)
    inline = InlineDashboard(
        view, KeyReader(io.StringIO()), refresh_s=60.0, fallback=CountingMonitor(), echo=print
    )
    inline.tick(0.0)
    inline.close()

    assert "100.0% of bars" in out.getvalue()
    assert "supervision over" in out.getvalue()
    assert not view.started


def test_all_done_with_the_launcher_alive_reads_as_merging(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, RUN)
    _write_run(layout, completed=UNIVERSE)
    # This test process stands in for the launcher: a live process matching its PID file.
    write_pid_file(
        layout.orchestrator_pid_file, record_for(os.getpid(), run_id=RUN, role="orchestrator")
    )

    s = read_snapshot(layout, now=NOW)

    assert s.state == "merging"
    assert "state merging" in screen(frame(s, Rates(None, None, recent=False)))
    layout.orchestrator_pid_file.unlink()
    assert read_snapshot(layout, now=NOW).state == "stopped"  # done, final file not written
