"""``intraday-events bench``: the measuring half. The processes it starts are
:mod:`tools.bench.processes`; the arithmetic and the report are :mod:`tools.bench.report`
(which also lists the ``--json`` keys) and :mod:`tools.bench.text`.

One run generates (or reuses, under ``--keep``) demo bars in both layouts, and one demo
symbol of ``long_days`` days, and measures:

1. per symbol, in this process: reading the columns the detector needs (``bar_files``
   then ``pl.scan_parquet(files).select(REQUIRED_COLUMNS).collect()``, exactly what
   :func:`detector.bars.read_bar_files` does before normalising types) against
   :func:`detector.pipeline.detect_symbol` on the same files; one warm-up pass, then
   ``repeat`` passes, each pass's seconds summed over the symbols (and per symbol the
   best and the median);
2. ``launch --workers N`` for N in 1, 2, ``workers_max`` on the daily layout, each over
   all the symbols and over the first half of them (two sizes, so that the report can
   split each wall time into fixed seconds and seconds per symbol); real processes,
   ``repeat`` runs of each, with the RSS of the launcher and its workers;
3. a fresh interpreter calling ``detect_symbol`` in a bare loop, over the same two sizes,
   ``repeat`` times;
4. one ``detect`` worker on the ``long_days`` symbol, ``repeat`` times: its peak RSS;
5. the machine.

Every process measurement is kept, repeat by repeat (:class:`TryRuns`: the i-th run of
each), so that the report derives its figures once per repeat and shows their spread.
:mod:`tools.bench.bars_run` runs step 1 alone on the user's bars.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
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
from detector.pipeline import detect_symbol
from orchestrator.backends.processes import available_cpus
from tools.bench.processes import (
    BareRun,
    LaunchRun,
    WorkerRun,
    run_bare_loop,
    run_detect_worker,
    run_launch,
    write_symbols_file,
)
from tools.demo.data import DemoDataSpec, demo_symbols, generate_demo_bars
from tools.demo.generated import ForeignFilesError, mark, reusable

MARKER = ".intraday-events-bench.json"
Layout = Literal["daily", "symbol"]
LAYOUTS: tuple[Layout, ...] = ("daily", "symbol")
LONG_DIR = "long"  # under the bars directory: the long symbol, with its own marker

Note = Callable[[str], None]


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
    long_days: int = 750

    def __post_init__(self) -> None:
        if self.symbols < 2:
            raise ValueError("symbols must be >= 2: launches run over all and over half of them")
        if self.days < 1 or self.repeat < 1 or self.long_days < 1 or self.workers_max < 2:
            raise ValueError("days, repeat and long_days must be >= 1 and workers_max >= 2")

    @property
    def worker_counts(self) -> tuple[int, ...]:
        return tuple(sorted({1, 2, self.workers_max}))

    @property
    def half_symbols(self) -> int:
        """The smaller of the two sizes: the first half of the symbols."""
        return self.symbols // 2


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
    """Seconds summed over the symbols: per symbol the best / the median of the passes;
    and each pass's seconds summed over the symbols, in order (its spread)."""

    layout: str
    files: int
    read_s: float
    detect_s: float
    read_median_s: float
    detect_median_s: float
    read_passes: tuple[float, ...] = ()
    detect_passes: tuple[float, ...] = ()


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
class TryRuns:
    """The processes of one repeat: the i-th run of each measurement."""

    launches: tuple[LaunchRun, ...]  # over all the symbols, one per worker count
    half_launches: tuple[LaunchRun, ...]  # over the first half, the same worker counts
    bare: BareRun
    half_bare: BareRun
    long_detect: WorkerRun


@dataclass(frozen=True)
class BenchResult:
    spec: BenchSpec
    data: BenchData
    layouts: tuple[LayoutTiming, ...]
    tries: tuple[TryRuns, ...]  # one per repeat
    long_data: BenchData  # one symbol of spec.long_days days, daily layout
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


def ensure_long_bars(directory: Path, spec: BenchSpec, note: Note) -> BenchData:
    """One symbol of ``spec.long_days`` days, daily layout, in ``directory/long``.

    A marker of its own, so that another ``--days`` or ``--symbols`` keeps it and another
    ``--long-days`` keeps the other bars.
    """
    long_dir = directory / LONG_DIR
    wanted = {"symbols": 1, "days": spec.long_days, "seed": spec.seed}
    symbols = tuple(demo_symbols(1))
    started = time.perf_counter()
    if reusable(long_dir, MARKER, wanted, [long_dir / "daily"], ForeignBenchDirError):
        bars = count_bars(symbols[0], long_dir / "daily")
        note(f"reusing the {spec.long_days}-day symbol in {long_dir}")
        return BenchData(long_dir, symbols, bars, False, time.perf_counter() - started)
    note(f"generating 1 symbol x {spec.long_days} days, daily layout")
    data = DemoDataSpec(long_dir / "daily", 1, spec.long_days, seed=spec.seed, layout="daily")
    bars = generate_demo_bars(data).bars
    mark(long_dir, MARKER, wanted)
    return BenchData(long_dir, symbols, bars, True, time.perf_counter() - started)


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
        read_passes=tuple(sum(v[i] for v in reads.values()) for i in range(repeat)),
        detect_passes=tuple(sum(v[i] for v in detects.values()) for i in range(repeat)),
    )


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
        layouts = _time_layouts(data, config, spec.repeat, note)
        tries = [scratch / f"try{i}" for i in range(spec.repeat)]  # a fresh root each
        launches, half_launches = _time_launches(spec, data, scratch, tries, config_path, note)
        bares = _time_bare_loops(data, spec.half_symbols, len(tries), config_path, note)
        long_data = ensure_long_bars(directory, spec, note)
        note(
            f"one detect worker on {spec.long_days} days of {long_data.symbols[0]}, "
            f"{spec.repeat} time{'s' if spec.repeat > 1 else ''}"
        )
        long_detects = [
            run_detect_worker(
                long_data.root("daily"), long_data.symbols[0], t / "long_root", config_path,
                "bench_long",
            )
            for t in tries
        ]  # fmt: skip
    runs = zip(launches, half_launches, bares, long_detects, strict=True)
    return BenchResult(
        spec=spec,
        data=data,
        layouts=tuple(layouts),
        tries=tuple(TryRuns(w, h, b, hb, d) for w, h, (b, hb), d in runs),
        long_data=long_data,
        machine=machine(load),
        wall_s=time.perf_counter() - started,
    )


def _time_layouts(
    data: BenchData, config: AppConfig, repeat: int, note: Note
) -> list[LayoutTiming]:
    """Step 1: reading and ``detect_symbol`` in this process, per layout."""
    layouts = []
    for layout in LAYOUTS:
        note(f"timing read and detect_symbol, {layout} layout ({repeat} passes)")
        layouts.append(time_layout(layout, data.root(layout), data.symbols, config, repeat))
    return layouts


def _time_launches(
    spec: BenchSpec,
    data: BenchData,
    scratch: Path,
    tries: list[Path],
    config_path: Path | None,
    note: Note,
) -> tuple[list[tuple[LaunchRun, ...]], list[tuple[LaunchRun, ...]]]:
    """Step 2: per try, its launch of each worker count over all the symbols and over the
    first half; one run of each size in each of ``tries`` (created here, one fresh root
    each)."""
    daily = data.root("daily")
    n, half = len(data.symbols), spec.half_symbols
    every = write_symbols_file(scratch / f"symbols_{n}.txt", data.symbols)
    first = write_symbols_file(scratch / f"symbols_{half}.txt", data.symbols[:half])
    for t in tries:
        t.mkdir()
    by_workers = []
    for workers in spec.worker_counts:
        # The two sizes one after the other, `repeat` times: a slope is a difference of
        # two wall times, taken per pair of runs, and its spread shows the noise.
        note(f"launch --workers {workers}, {n} symbols then {half}, {spec.repeat} times")
        by_workers.append(
            [
                (run_launch(workers, daily, every, n, t, config_path),
                 run_launch(workers, daily, first, half, t, config_path))
                for t in tries
            ]
        )  # fmt: skip
    launches = [tuple(runs[i][0] for runs in by_workers) for i in range(len(tries))]
    half_launches = [tuple(runs[i][1] for runs in by_workers) for i in range(len(tries))]
    return launches, half_launches


def _time_bare_loops(
    data: BenchData, half: int, runs: int, config_path: Path | None, note: Note
) -> list[tuple[BareRun, BareRun]]:
    """Step 3: ``runs`` bare loops over all the symbols and over the first half, the two
    sizes one after the other (as the launches)."""
    daily = data.root("daily")
    note(f"bare detect_symbol loop in a fresh process, {len(data.symbols)} symbols then {half}")
    return [
        (run_bare_loop(daily, data.symbols, config_path),
         run_bare_loop(daily, data.symbols[:half], config_path))
        for _ in range(runs)
    ]  # fmt: skip
