"""``intraday-events bench``: the measuring half (the arithmetic and the report are
:mod:`tools.bench_report`, which also lists the ``--json`` keys).

One run generates (or reuses, under ``--keep``) demo bars in both layouts and measures:

1. per symbol, in this process: reading the columns the detector needs (``bar_files``
   then ``pl.scan_parquet(files).select(REQUIRED_COLUMNS).collect()``, exactly what
   :func:`detector.bars.read_bar_files` does before normalising types) against
   :func:`detector.pipeline.detect_symbol` on the same files; one warm-up pass, then
   ``repeat`` passes, per symbol the best and the median;
2. ``launch --workers N`` for N in 1, 2, ``workers_max`` on the daily layout: real
   processes, each on a fresh root, ``--yes --no-dashboard``, wall time from start to
   exit, one run each; meanwhile the RSS high-water mark (``VmHWM``, else RSS) of the
   launcher and its ``detect`` workers, polled every 0.1 s;
3. a fresh interpreter calling ``detect_symbol`` in a bare loop over the same symbols,
   wall time from start to exit and its own ``ru_maxrss``;
4. the machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import psutil
import pyarrow

from detector.bars import bar_files, count_bars
from detector.cleaning import REQUIRED_COLUMNS
from detector.config import AppConfig
from detector.errors import ExitCode, IntradayEventsError
from detector.pipeline import detect_symbol
from tools.demo_data import DemoDataSpec, demo_symbols, generate_demo_bars
from tools.generated import ForeignFilesError, mark, reusable

MARKER = ".intraday-events-bench.json"
Layout = Literal["daily", "symbol"]
LAYOUTS: tuple[Layout, ...] = ("daily", "symbol")
POLL_S = 0.1
PROJECT_ROOT = Path(__file__).resolve().parents[1]

Note = Callable[[str], None]


class BenchError(IntradayEventsError):
    exit_code = ExitCode.FAILURE


class ForeignBenchDirError(ForeignFilesError):
    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory, f"{directory} holds files the benchmark did not write; give another --keep"
        )


# -- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSpec:
    symbols: int = 20
    days: int = 250
    repeat: int = 3
    workers_max: int = 2
    seed: int = 0
    keep: Path | None = None

    def __post_init__(self) -> None:
        if self.symbols < 1 or self.days < 1 or self.repeat < 1 or self.workers_max < 2:
            raise ValueError("symbols, days and repeat must be >= 1 and workers_max >= 2")

    @property
    def worker_counts(self) -> tuple[int, ...]:
        return tuple(sorted({1, 2, self.workers_max}))


@dataclass(frozen=True)
class BenchData:
    directory: Path
    symbols: tuple[str, ...]
    bars: int
    generated: bool
    seconds: float

    def root(self, layout: str) -> Path:
        return self.directory / layout


@dataclass(frozen=True)
class LayoutTiming:
    """Seconds summed over the symbols: per symbol the best / the median of the passes."""

    layout: str
    files: int
    read_s: float
    detect_s: float
    read_median_s: float
    detect_median_s: float


@dataclass(frozen=True)
class LaunchRun:
    workers: int
    wall_s: float
    peak_worker_rss: int | None  # bytes, the largest of the workers
    launcher_rss: int | None  # bytes


@dataclass(frozen=True)
class BareRun:
    wall_s: float  # from start to exit, interpreter start included
    import_s: float  # inside the process: imports and config
    loop_s: float  # inside the process: the detect_symbol loop
    peak_rss: int  # bytes (ru_maxrss)
    events: int


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpus_available: int
    cpu_model: str | None
    memory_gb: float
    platform: str
    python: str
    polars: str
    pyarrow: str
    load_1m: float | None  # the 1-minute load average when the benchmark started


@dataclass(frozen=True)
class BenchResult:
    spec: BenchSpec
    data: BenchData
    layouts: tuple[LayoutTiming, ...]
    launches: tuple[LaunchRun, ...]
    bare: BareRun
    machine: Machine
    wall_s: float


# -- the bars ----------------------------------------------------------------------------
def ensure_bench_bars(directory: Path, spec: BenchSpec, note: Note) -> BenchData:
    """Both layouts under ``directory``: reused when its marker says the same size."""
    wanted = {"symbols": spec.symbols, "days": spec.days, "seed": spec.seed}
    symbols = tuple(demo_symbols(spec.symbols))
    started = time.perf_counter()
    outputs = [directory / layout for layout in LAYOUTS]
    if reusable(directory, MARKER, wanted, outputs, ForeignBenchDirError):
        bars = sum(count_bars(s, directory / "daily") for s in symbols)
        note(f"reusing the bars in {directory}")
        return BenchData(directory, symbols, bars, False, time.perf_counter() - started)
    bars = 0
    for layout in LAYOUTS:
        note(f"generating {spec.symbols} symbols x {spec.days} days, {layout} layout")
        out = directory / layout
        data = DemoDataSpec(out, spec.symbols, spec.days, seed=spec.seed, layout=layout)
        bars = generate_demo_bars(data).bars
    mark(directory, MARKER, wanted)
    return BenchData(directory, symbols, bars, True, time.perf_counter() - started)


# -- in-process timing -------------------------------------------------------------------
def read_needed_columns(symbol: str, bars_root: Path) -> pl.DataFrame:
    """What the detector reads, no more: its file listing and its one-pass column read."""
    return pl.scan_parquet(bar_files(symbol, bars_root)).select(REQUIRED_COLUMNS).collect()


def time_layout(
    layout: str, bars_root: Path, symbols: tuple[str, ...], config: AppConfig, repeat: int
) -> LayoutTiming:
    """Read and detect each symbol in turn: one warm-up pass, then ``repeat`` timed passes."""
    for symbol in symbols:
        read_needed_columns(symbol, bars_root)
        detect_symbol(symbol, bars_root, config)
    reads: dict[str, list[float]] = {s: [] for s in symbols}
    detects: dict[str, list[float]] = {s: [] for s in symbols}
    for _ in range(repeat):
        for symbol in symbols:
            t0 = time.perf_counter()
            read_needed_columns(symbol, bars_root)
            t1 = time.perf_counter()
            detect_symbol(symbol, bars_root, config)
            t2 = time.perf_counter()
            reads[symbol].append(t1 - t0)
            detects[symbol].append(t2 - t1)
    return LayoutTiming(
        layout=layout,
        files=sum(len(bar_files(s, bars_root)) for s in symbols),
        read_s=sum(min(v) for v in reads.values()),
        detect_s=sum(min(v) for v in detects.values()),
        read_median_s=sum(statistics.median(v) for v in reads.values()),
        detect_median_s=sum(statistics.median(v) for v in detects.values()),
    )


# -- processes ---------------------------------------------------------------------------
def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    joined = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    return {**os.environ, "PYTHONPATH": joined}


def _cli(root: Path, config_path: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "tools", "--root", str(root)]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    return argv


def peak_rss(process: psutil.Process) -> int | None:
    """The process's RSS high-water mark (``VmHWM``), else its current RSS; None if gone."""
    try:
        with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return None


def _watch_tree(process: psutil.Process, stop: threading.Event, peaks: dict[int, int]) -> None:
    """Until ``stop``: the high-water mark of ``process`` and its ``detect`` workers, by pid."""
    while not stop.is_set():
        try:
            tree = [process, *process.children(recursive=True)]
        except psutil.Error:
            tree = []
        for member in tree:
            try:
                if member is process or "detect" in member.cmdline():
                    peaks[member.pid] = max(peaks.get(member.pid, 0), peak_rss(member) or 0)
            except psutil.Error:
                continue
        stop.wait(POLL_S)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_launch(workers: int, bars_root: Path, scratch: Path, config_path: Path | None) -> LaunchRun:
    """``launch --workers N`` on a fresh root, timed from start to exit."""
    root = scratch / f"launch_{workers}w"
    console = scratch / f"launch_{workers}w.txt"
    argv = [
        *_cli(root, config_path), "launch", "--bars", str(bars_root),
        "--from-file", str(bars_root / "symbols.parquet"), "--workers", str(workers),
        "--yes", "--no-dashboard",
    ]  # fmt: skip
    with console.open("wb") as out:
        started = time.perf_counter()
        process = psutil.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env()
        )
        peaks: dict[int, int] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_tree, args=(process, stop, peaks), daemon=True)
        watcher.start()
        try:
            code = process.wait()
            wall = time.perf_counter() - started
        finally:
            stop.set()
            watcher.join()
    if code != 0:
        raise BenchError(f"launch --workers {workers} exited {code}:\n{_tail(console)}")
    launcher = peaks.pop(process.pid, 0) or None
    return LaunchRun(workers, wall, max(peaks.values(), default=0) or None, launcher)


_BARE_LOOP = """\
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from detector.config_load import load_config
from detector.pipeline import detect_symbol
config = load_config(Path(sys.argv[2]) if sys.argv[2] else None)
imported = time.perf_counter()
events = sum(detect_symbol(s, sys.argv[1], config).height for s in sys.argv[3:])
print(json.dumps({
    "import_s": imported - started,
    "loop_s": time.perf_counter() - imported,
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "events": events,
}))
"""


def run_bare_loop(bars_root: Path, symbols: tuple[str, ...], config_path: Path | None) -> BareRun:
    """``detect_symbol`` over ``symbols`` in a fresh interpreter, timed from start to exit."""
    config = str(config_path.resolve()) if config_path is not None else ""
    argv = [sys.executable, "-c", _BARE_LOOP, str(bars_root), config, *symbols]
    started = time.perf_counter()
    done = subprocess.run(
        argv, capture_output=True, text=True, env=_env(), stdin=subprocess.DEVNULL, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"the bare detect_symbol loop exited {done.returncode}:\n{done.stderr}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return BareRun(wall, out["import_s"], out["loop_s"], out["maxrss_kb"] * 1024, out["events"])


# -- the machine -------------------------------------------------------------------------
def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine(load_1m: float | None) -> Machine:
    return Machine(
        cpus=os.cpu_count() or 1,
        cpus_available=available_cpus(),
        cpu_model=cpu_model(),
        memory_gb=psutil.virtual_memory().total / 2**30,
        platform=platform.platform(),
        python=platform.python_version(),
        polars=pl.__version__,
        pyarrow=pyarrow.__version__,
        load_1m=load_1m,
    )


# -- the whole benchmark -----------------------------------------------------------------
def run_bench(
    spec: BenchSpec, config: AppConfig, config_path: Path | None, note: Note
) -> BenchResult:
    """Every measurement, in order; ``note`` tells what is being measured."""
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="intraday-events-bench-") as tmp:
        scratch = Path(tmp)
        directory = spec.keep.resolve() if spec.keep is not None else scratch / "bars"
        data = ensure_bench_bars(directory, spec, note)
        layouts = []
        for layout in LAYOUTS:
            note(f"timing read and detect_symbol, {layout} layout ({spec.repeat} passes)")
            layouts.append(
                time_layout(layout, data.root(layout), data.symbols, config, spec.repeat)
            )
        launches = []
        for workers in spec.worker_counts:
            note(f"launch --workers {workers}")
            launches.append(run_launch(workers, data.root("daily"), scratch, config_path))
        note("bare detect_symbol loop in a fresh process")
        bare = run_bare_loop(data.root("daily"), data.symbols, config_path)
    return BenchResult(
        spec,
        data,
        tuple(layouts),
        tuple(launches),
        bare,
        machine(load),
        time.perf_counter() - started,
    )
