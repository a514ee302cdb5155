"""Crash safety of ``intraday-events detect`` with real processes and real SIGKILLs.

Every test runs the command line in child processes of the test, kills them with
SIGKILL (through the test-only ``INTRADAY_EVENTS_CRASH_AT`` crash points, at random
moments, or not at all while two of them race), resumes the run, and checks that
the final file equals, row for row, the result of an uninterrupted run on the same
bars in another workspace: no event lost, none duplicated, every symbol in exactly
one committed shard, no temporary shard left behind.

Each child runs under a time limit, and a fixture fails any test that leaves a
process it started running.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.schema import EVENT_KEY
from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.layout import RunLayout, shard_number
from orchestrator.run.shards import read_shard_info
from tools.demo.data import DemoDataSpec, generate_demo_bars

RUN_ID = "r1"
KEY = list(EVENT_KEY)
TIMEOUT_S = 60.0  # one child process; a whole run of the small data takes about 1-2 s
RESUME_ATTEMPTS = 3
KILL_CYCLES = 5
CRASH_POINTS = ("during_detection", "after_temp_shard", "after_rename", "during_checkpoint_write")
CRASH_BATCH = 2  # batch size of the crash-point tests
RESUME_BATCH = 3  # and of their resumes
# Runs the command line in the test's interpreter. With a gate file, the child imports
# everything first and waits for the gate, so that two children start detecting together.
_MAIN = "from tools.cli import main; main()"
_GATED_MAIN = (
    "import os, time\n"
    "from tools.cli import main\n"
    "gate = os.environ['INTRADAY_EVENTS_TEST_GATE']\n"
    "open(f'{gate}.ready.{os.getpid()}', 'w').close()\n"
    "deadline = time.monotonic() + 30\n"
    "while not os.path.exists(gate) and time.monotonic() < deadline:\n"
    "    time.sleep(0.005)\n"
    "main()\n"
)


# -- processes ----------------------------------------------------------------------
# Every test fails if a process it started outlives it (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_stray_processes")


def _env(crash: str | None = None, gate: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, "INTRADAY_EVENTS_ROOT")}
    env["COLUMNS"] = "200"  # keeps the console log on few lines
    if crash is not None:
        env[CRASH_ENV] = crash
    if gate is not None:
        env["INTRADAY_EVENTS_TEST_GATE"] = str(gate)
    return env


def _detect_argv(
    root: Path,
    bars: Path,
    symbols: Sequence[str],
    *,
    batch_size: int,
    extra: Sequence[str] = (),
    gated: bool = False,
) -> list[str]:
    return [
        sys.executable,
        "-c",
        _GATED_MAIN if gated else _MAIN,
        "--root",
        str(root),
        "detect",
        "--bars",
        str(bars),
        "--symbols",
        " ".join(symbols),
        "--run-id",
        RUN_ID,
        "--batch-size",
        str(batch_size),
        "--resume",
        *extra,
    ]


def run_detect(
    root: Path,
    bars: Path,
    symbols: Sequence[str],
    *,
    batch_size: int,
    crash: str | None = None,
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """One ``detect`` process to its end (killed and reported if it outlives TIMEOUT_S)."""
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        _detect_argv(root, bars, symbols, batch_size=batch_size, extra=extra),
        cwd=root,
        env=_env(crash),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def run_together(
    argvs: Sequence[Sequence[str]], *, cwd: Path, gate: Path, start_at_second: bool = False
) -> list[tuple[int, str]]:
    """Run gated commands so that they start detecting at the same moment.

    Each child imports everything, reports ready and waits for ``gate``; the gate opens
    once all are ready (with ``start_at_second``, just after a wall-clock second begins).
    Returns each child's exit status and output.
    """
    children: list[subprocess.Popen[bytes]] = []
    try:
        for argv in argvs:
            children.append(
                subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=_env(gate=gate),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        while len(list(gate.parent.glob(f"{gate.name}.ready.*"))) < len(children):
            failed = [c.returncode for c in children if c.poll() is not None]
            assert not failed, f"a gated child exited before the gate opened: {failed}"
            assert time.monotonic() < deadline, "gated children never became ready"
            time.sleep(0.01)
        if start_at_second:
            time.sleep((1.05 - time.time() % 1.0) % 1.0)
        gate.touch()
        outputs = [c.communicate(timeout=TIMEOUT_S)[0] for c in children]
        return [
            (c.returncode, out.decode(errors="replace"))
            for c, out in zip(children, outputs, strict=True)
        ]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=TIMEOUT_S)


def resume_to_completion(
    root: Path, bars: Path, symbols: Sequence[str], *, batch_size: int
) -> list[int]:
    """``detect --resume`` (no crash point) until it exits 0; the exit statuses seen."""
    codes: list[int] = []
    outputs: list[str] = []
    for _ in range(RESUME_ATTEMPTS):
        done = run_detect(root, bars, symbols, batch_size=batch_size)
        codes.append(done.returncode)
        if done.returncode == 0:
            return codes
        outputs.append(done.stdout + done.stderr)
    pytest.fail(f"resume never exited 0: exit statuses {codes}\n" + "\n---\n".join(outputs))


def _died_by_sigkill(done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"expected death by SIGKILL (-9), got exit status {done.returncode}\n"
        f"{done.stdout}\n{done.stderr}"
    )


# -- data and the reference run ---------------------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars") / "raw" / "market_data" / "bars" / "1m"
    generate_demo_bars(DemoDataSpec(out=out, symbols=9, days=4, seed=1))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> tuple[str, ...]:
    return tuple(pl.read_parquet(bars / "symbols.parquet")["symbol"].to_list())


@dataclass(frozen=True)
class ReferenceRun:
    events: pl.DataFrame  # its final file, sorted by the event key
    seconds: float  # wall time of the whole process


@pytest.fixture(scope="module")
def reference_run(
    tmp_path_factory: pytest.TempPathFactory, bars: Path, symbols: tuple[str, ...]
) -> ReferenceRun:
    """An uninterrupted run on the same bars, in its own workspace."""
    root = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    done = run_detect(root, bars, symbols, batch_size=1)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    final = pl.read_parquet(RunLayout(root, RUN_ID).final)
    assert final.height > 0
    assert not final.select(KEY).is_duplicated().any()
    assert set(final["symbol"].unique()) == set(symbols)  # every symbol has events
    return ReferenceRun(final.sort(KEY), seconds)


@pytest.fixture(scope="module")
def reference(reference_run: ReferenceRun) -> pl.DataFrame:
    return reference_run.events


# -- what every finished run must satisfy --------------------------------------------------
def checkpoint_json(root: Path) -> dict[str, Any]:
    return json.loads(RunLayout(root, RUN_ID).checkpoint.read_text(encoding="utf-8"))


def committed_shard_files(root: Path) -> list[Path]:
    """Every committed shard file of the run, in any shard directory (duplicates kept)."""
    layout = RunLayout(root, RUN_ID)
    return [
        path
        for directory in layout.shard_dirs()
        for path in sorted(directory.glob(f"{RUN_ID}_shard*.parquet"))
        if shard_number(path, RUN_ID) is not None
    ]


def temp_shards(root: Path) -> list[Path]:
    shards_root = RunLayout(root, RUN_ID).shards_root
    return sorted(shards_root.rglob(".*.tmp")) if shards_root.is_dir() else []


def assert_run_matches_reference(
    root: Path, symbols: Sequence[str], reference: pl.DataFrame
) -> None:
    layout = RunLayout(root, RUN_ID)
    final = pl.read_parquet(layout.final)

    duplicated = final.filter(final.select(KEY).is_duplicated())
    assert duplicated.is_empty(), f"duplicate event keys in the final file:\n{duplicated}"
    ordered = final.sort(KEY)
    if not ordered.equals(reference):
        missing = reference.join(ordered, on=KEY, how="anti")
        extra = ordered.join(reference, on=KEY, how="anti")
        pytest.fail(
            f"final file differs from the uninterrupted run: {ordered.height} rows vs "
            f"{reference.height}; missing keys:\n{missing.select(KEY)}\n"
            f"extra keys:\n{extra.select(KEY)}\nschema {ordered.schema} vs {reference.schema}"
        )

    cp = checkpoint_json(root)
    assert cp["completed_symbols"] == sorted(symbols)
    assert cp["total_completed"] == len(symbols)

    assert temp_shards(root) == [], "temporary shards left behind"

    files = committed_shard_files(root)
    numbers = [shard_number(path, RUN_ID) for path in files]
    assert len(numbers) == len(set(numbers)), f"shard numbers reused: {sorted(map(str, files))}"
    assert set(cp["shards"]) == {path.name for path in files}
    assert cp["shard_counter"] >= max(n for n in numbers if n is not None)

    covered: dict[str, list[str]] = {}
    for path in files:
        info = read_shard_info(path)
        assert info.run_id == RUN_ID
        for symbol in info.symbols:
            covered.setdefault(symbol, []).append(path.name)
    twice = {s: names for s, names in covered.items() if len(names) > 1}
    assert not twice, f"symbols committed in more than one shard: {twice}"
    assert sorted(covered) == sorted(symbols)


# -- 1. each crash point, first and second time it is reached -------------------------------
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_then_resume_equals_uninterrupted_run(
    tmp_path: Path,
    bars: Path,
    symbols: tuple[str, ...],
    reference: pl.DataFrame,
    point: str,
    n: int,
) -> None:
    root = tmp_path / "ws"
    crashed = run_detect(root, bars, symbols, batch_size=CRASH_BATCH, crash=f"{point}:{n}")
    assert crashed.returncode == -signal.SIGKILL, _died_by_sigkill(crashed)

    # The process died where the crash point says, leaving the state that point implies.
    layout = RunLayout(root, RUN_ID)
    assert not layout.final.exists()
    on_disk = len(committed_shard_files(root))
    listed = len(checkpoint_json(root)["shards"]) if layout.checkpoint.exists() else None
    if point == "during_detection":
        assert (on_disk, listed, len(temp_shards(root))) == ((n - 1) // CRASH_BATCH, 0, 0)
    elif point == "after_temp_shard":
        assert (on_disk, listed, len(temp_shards(root))) == (n - 1, n - 1, 1)
    elif point == "after_rename":
        assert (on_disk, listed, len(temp_shards(root))) == (n, n - 1, 0)
    else:  # during_checkpoint_write: the 1st write opens the run, the next ones commit
        expected_listed = None if n == 1 else n - 2
        assert (on_disk, listed, len(temp_shards(root))) == (n - 1, expected_listed, 0)

    # A committed shard is final: the resume (in batches of another size) neither redoes
    # its symbols nor replaces the file, even when the checkpoint did not list it yet.
    committed = {
        path: (path.stat().st_ino, read_shard_info(path).symbols)
        for path in committed_shard_files(root)
    }
    resume_to_completion(root, bars, symbols, batch_size=RESUME_BATCH)
    assert_run_matches_reference(root, symbols, reference)
    after = {
        path: (path.stat().st_ino, read_shard_info(path).symbols)
        for path in committed_shard_files(root)
    }
    assert {p: after.get(p) for p in committed} == committed, "a committed shard was replaced"


def test_crash_during_checkpoint_write_leaves_no_checkpoint_temp_after_resume(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...]
) -> None:
    # A checkpoint write killed before its rename leaves '.<checkpoint>.<pid>.tmp';
    # the next start removes it (one would otherwise pile up per crash).
    root = tmp_path / "ws"
    part = symbols[:2]
    crashed = run_detect(root, bars, part, batch_size=1, crash="during_checkpoint_write:2")
    assert crashed.returncode == -signal.SIGKILL, _died_by_sigkill(crashed)
    checkpoints_dir = RunLayout(root, RUN_ID).checkpoints_dir
    assert len(list(checkpoints_dir.glob(".*.tmp"))) == 1  # what the crash left
    resume_to_completion(root, bars, part, batch_size=1)
    assert checkpoint_json(root)["completed_symbols"] == sorted(part)
    assert sorted(p.name for p in checkpoints_dir.glob(".*.tmp")) == []


# -- 2. SIGKILL at random moments ----------------------------------------------------------
@pytest.mark.parametrize("seed", [7, 2026])
def test_random_sigkills_then_resume_equals_uninterrupted_run(
    tmp_path: Path,
    bars: Path,
    symbols: tuple[str, ...],
    reference_run: ReferenceRun,
    seed: int,
) -> None:
    rng = random.Random(seed)
    root = tmp_path / "ws"
    root.mkdir()
    argv = _detect_argv(root, bars, symbols, batch_size=1)
    # Kill moments span start-up, detection, commits and the merge, on this machine's
    # clock: a fraction of an uninterrupted run (a fixed range would miss on fast hosts).
    span = reference_run.seconds
    killed = 0
    history: list[tuple[float, int | None, int]] = []  # (delay, exit status, shards on disk)
    for _ in range(KILL_CYCLES):
        delay = rng.uniform(0.1, 0.85) * span
        child = subprocess.Popen(
            argv, cwd=root, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            try:
                _, err = child.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                _, err = child.communicate(timeout=TIMEOUT_S)
                killed += child.returncode == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=TIMEOUT_S)
        history.append((round(delay, 2), child.returncode, len(committed_shard_files(root))))
        # Killed, or finished on its own before the delay ran out; nothing else.
        assert child.returncode in (0, -signal.SIGKILL), (history, err.decode(errors="replace"))
    assert killed >= 1, f"no SIGKILL landed while detect ran (run takes {span:.2f}s): {history}"

    resume_to_completion(root, bars, symbols, batch_size=1)
    assert_run_matches_reference(root, symbols, reference_run.events)


# -- 3. two processes racing on overlapping symbols of one run ---------------------------------
@pytest.mark.parametrize("order", ["forward", "reversed", "overlap_first"])
def test_concurrent_overlapping_workers_commit_each_symbol_once(
    tmp_path: Path,
    bars: Path,
    symbols: tuple[str, ...],
    reference: pl.DataFrame,
    order: str,
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    first = list(symbols[0:6])
    second = list(symbols[3:9])
    if order == "reversed":  # the two meet head-on in the overlap
        second.reverse()
    elif order == "overlap_first":  # both start on the same symbols, in lockstep
        first = first[3:] + first[:3]
    argvs = [
        _detect_argv(root, bars, part, batch_size=1, extra=["--no-merge"], gated=True)
        for part in (first, second)
    ]
    outputs = run_together(argvs, cwd=root, gate=tmp_path / "go")
    for returncode, output in outputs:
        assert returncode == 0, output
    assert not RunLayout(root, RUN_ID).final.exists()  # --no-merge

    # Before the merge: the overlap was committed once, whoever got there first.
    covered = [s for path in committed_shard_files(root) for s in read_shard_info(path).symbols]
    assert sorted(covered) == sorted(symbols)

    resume_to_completion(root, bars, symbols, batch_size=1)
    assert_run_matches_reference(root, symbols, reference)


def test_concurrent_lone_workers_log_to_separate_files(
    tmp_path: Path, bars: Path, symbols: tuple[str, ...]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    argvs = [
        _detect_argv(root, bars, [symbol], batch_size=1, extra=["--no-merge"], gated=True)
        for symbol in symbols[:2]
    ]
    outputs = run_together(argvs, cwd=root, gate=tmp_path / "go", start_at_second=True)
    for returncode, output in outputs:
        assert returncode == 0, output
    logs = sorted((root / "logs" / "detect_events").glob("detect_events_intraday_*.log"))
    pids_per_log = [
        set(re.findall(r" \[(\d+)\] ", path.read_text(encoding="utf-8"))) for path in logs
    ]
    assert len(logs) == 2, f"{[p.name for p in logs]} hold lines of pids {pids_per_log}"
