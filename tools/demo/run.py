"""The one-command demo: a workspace of generated bars, ready for a launch.

The demo keeps everything under one directory laid out like a users' root
(``raw/``, ``logs/``, ``processed/``). Its bars are generated once and reused;
a marker file records what was generated, so asking for another size replaces
the demo's bars, and bars the demo did not write are never touched. Every demo
launch is a new run, so running the demo again shows the whole job again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from detector.config import BarsConfig
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars
from tools.demo.generated import ForeignFilesError, mark, reusable

DEFAULT_DIR = Path("intraday-events-demo")
MARKER = ".intraday-events-demo.json"


class ForeignBarsError(ForeignFilesError):
    def __init__(self, bars_root: Path) -> None:
        super().__init__(
            bars_root,
            f"{bars_root} holds bars the demo did not generate; give the demo another --dir",
        )


@dataclass(frozen=True)
class DemoSpec:
    directory: Path
    workers: int = 2
    symbols: int = 40
    days: int = 60
    seed: int = 0

    @property
    def bars_root(self) -> Path:
        return self.directory / BarsConfig().root

    @property
    def batch_size(self) -> int:
        # Several shards per worker, so the view shows commits as they happen.
        return max(1, min(50, self.symbols // (self.workers * 4)))

    def new_run_id(self, now: datetime) -> str:
        """A run id no earlier demo in the workspace used (two demos may share a second)."""
        base = f"events_intraday_demo_{now:%Y%m%d_%H%M%S}"
        run_id, n = base, 1
        while RunLayout(self.directory, run_id).launch_dir.exists():
            n += 1
            run_id = f"{base}_{n}"
        return run_id


@dataclass(frozen=True)
class DemoBars:
    bars_root: Path
    generated: bool  # False: reused from an earlier demo of the same size
    symbols: int
    bars: int | None  # None when reused (not counted again)
    seconds: float


def ensure_demo_bars(spec: DemoSpec) -> DemoBars:
    """The demo's bars: reused when an earlier demo made the same, else (re)generated."""
    root = spec.bars_root
    wanted = {"symbols": spec.symbols, "days": spec.days, "seed": spec.seed}
    started = time.perf_counter()
    if reusable(root, MARKER, wanted, [root], ForeignBarsError):
        return DemoBars(root, False, spec.symbols, None, time.perf_counter() - started)
    data = DemoDataSpec(out=root, symbols=spec.symbols, days=spec.days, seed=spec.seed)
    summary = generate_demo_bars(data)
    mark(root, MARKER, wanted)
    return DemoBars(root, True, len(summary.symbols), summary.bars, time.perf_counter() - started)


def describe_outputs(directory: Path, run_id: str) -> list[str]:
    """Where the run's files are, and what to try next."""
    d = directory
    return [
        f"Demo workspace {d}:",
        f"  final events     {d / 'processed' / 'events' / f'{run_id}.parquet'}",
        f"  committed shards {d / 'processed' / 'events' / 'shards'}/worker_K/",
        f"  checkpoint       {d / 'logs' / 'checkpoints' / f'{run_id}_completed.json'}",
        f"  heartbeats       {d / 'logs' / 'heartbeats'}/",
        f"  logs             {d / 'logs' / 'detect_events'}/ (main, heartbeat and batch logs)",
        f"  launch files     {d / 'logs' / 'launch' / run_id}/ (plan, worker lists, consoles)",
        f"  report           {d / 'logs' / 'launch' / run_id / 'report.html'} (open in a browser)",
        "Try next:",
        f"  intraday-events --root {d} status --run-id {run_id}",
        f"  intraday-events --root {d} dashboard --run-id {run_id}",
        f"  intraday-events --root {d} show --top 3 --run-id {run_id}",
        f"  intraday-events --root {d} dedupe --input "
        f"{d / 'processed' / 'events' / f'{run_id}.parquet'} --dry-run",
    ]


def spec_summary(spec: DemoSpec, bars: DemoBars) -> str:
    what = f"{bars.symbols} symbols x {spec.days} days"
    if bars.generated:
        return f"Generated demo bars ({what}, {bars.bars:,} bars) in {bars.seconds:.1f} s"
    return f"Reusing demo bars ({what}) in {bars.bars_root}"
