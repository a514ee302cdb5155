"""``intraday-events bench``: the measurements that start real processes.

- :func:`run_launch`: ``launch --workers N`` over a symbols file, on a fresh root,
  ``--yes --no-dashboard``; wall time from start to exit; meanwhile the RSS high-water
  mark (``VmHWM``, else RSS) of the launcher and its ``detect`` workers, polled every
  0.1 s.
- :func:`run_bare_loop`: a fresh interpreter calling ``detect_symbol`` in a bare loop;
  wall time from start to exit and its own high-water mark (``VmHWM``).
- :func:`run_detect_worker`: one ``detect`` worker as ``launch`` starts them, on a fresh
  root; wall time and its peak RSS, read exactly at exit (``wait4``) by a small
  interpreter that starts it.

Why not ``ru_maxrss`` of a child of this process: on Linux a process's ``ru_maxrss``
starts at the RSS of the process that started it (``exec`` keeps the high-water mark of
the memory it replaces), so a child of the bench, which has read every symbol's bars in
step 1, would report the bench's own RSS. ``VmHWM`` belongs to the process's memory
since its ``exec``; a child of a small interpreter inherits only that interpreter's few
MB.

Every child gets this checkout on ``PYTHONPATH``, so the bench measures the code it
ships with, installed or not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from detector.errors import ExitCode, IntradayEventsError

POLL_S = 0.1
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class BenchError(IntradayEventsError):
    exit_code = ExitCode.FAILURE


@dataclass(frozen=True)
class LaunchRun:
    workers: int
    symbols: int
    wall_s: float
    peak_worker_rss: int | None  # bytes, the largest of the workers
    launcher_rss: int | None  # bytes


@dataclass(frozen=True)
class BareRun:
    symbols: int
    wall_s: float  # from start to exit, interpreter start included
    import_s: float  # inside the process: imports and config
    loop_s: float  # inside the process: the detect_symbol loop
    peak_rss: int  # bytes: its VmHWM (ru_maxrss where there is no /proc)
    events: int


@dataclass(frozen=True)
class WorkerRun:
    wall_s: float  # from start to exit, interpreter start included
    peak_rss: int  # bytes: the kernel's high-water mark (VmHWM), read at exit


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    joined = str(PROJECT_ROOT) + (os.pathsep + path if path else "")
    return {**os.environ, "PYTHONPATH": joined}


def _cli(root: Path, config_path: Path | None) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)  # a fresh root: the CLI refuses a missing one
    argv = [sys.executable, "-m", "tools", "--root", str(root)]
    if config_path is not None:
        argv += ["--config", str(config_path.resolve())]
    return argv


def _maxrss_bytes(maxrss: int) -> int:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return maxrss if sys.platform == "darwin" else maxrss * 1024


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


def write_symbols_file(path: Path, symbols: Sequence[str]) -> Path:
    """A ``--from-file`` list, one symbol per line."""
    path.write_text("".join(f"{s}\n" for s in symbols), encoding="utf-8")
    return path


def run_launch(
    workers: int,
    bars_root: Path,
    symbols_file: Path,
    symbols: int,
    scratch: Path,
    config_path: Path | None,
) -> LaunchRun:
    """``launch --workers N --from-file F`` (``symbols`` in F) on a fresh root, timed."""
    name = f"launch_{workers}w_{symbols}s"
    root, console = scratch / name, scratch / f"{name}.txt"
    argv = [
        *_cli(root, config_path), "launch", "--bars", str(bars_root),
        "--from-file", str(symbols_file), "--workers", str(workers),
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
    return LaunchRun(workers, symbols, wall, max(peaks.values(), default=0) or None, launcher)


_BARE_LOOP = """\
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from detector.config_load import load_config
from detector.pipeline import detect_symbol
config = load_config(Path(sys.argv[2]) if sys.argv[2] else None)
imported = time.perf_counter()
events = sum(detect_symbol(s, sys.argv[1], config).height for s in sys.argv[3:])
loop_s = time.perf_counter() - imported
try:
    with open("/proc/self/status") as status:
        hwm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
except (OSError, StopIteration, ValueError):
    hwm = None  # no /proc: ru_maxrss, which may count the parent's RSS (Linux only)
print(json.dumps({
    "import_s": imported - started,
    "loop_s": loop_s,
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "hwm": hwm,
    "events": events,
}))
"""

# Starts argv[3:] with its output in argv[2], waits for it with wait4 and writes its
# wall time, ru_maxrss and exit code to argv[1]: its ru_maxrss then counts this small
# interpreter's RSS at the start, not the bench's.
_WAIT4 = """\
import json, os, subprocess, sys, time
with open(sys.argv[2], "wb") as out:
    started = time.perf_counter()
    child = subprocess.Popen(
        sys.argv[3:], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
child.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as result:
    json.dump({"wall_s": wall, "maxrss": usage.ru_maxrss, "code": child.returncode}, result)
"""


def run_bare_loop(bars_root: Path, symbols: Sequence[str], config_path: Path | None) -> BareRun:
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
    peak = out["hwm"] if out["hwm"] is not None else _maxrss_bytes(out["maxrss"])
    return BareRun(len(symbols), wall, out["import_s"], out["loop_s"], peak, out["events"])


def run_measured(argv: Sequence[str], console: Path) -> WorkerRun:
    """Run ``argv`` (its output in ``console``) from a small interpreter that reaps it with
    ``wait4``: its wall time from start to exit and its peak RSS, read exactly at exit.
    Raises :class:`BenchError` when it fails."""
    result = console.with_suffix(".wait4.json")
    wrapper = subprocess.Popen(
        [sys.executable, "-c", _WAIT4, str(result), str(console), *argv],
        stdin=subprocess.DEVNULL, env=_env(), start_new_session=True,
    )  # fmt: skip
    try:
        code = wrapper.wait()
    except BaseException:
        os.killpg(wrapper.pid, signal.SIGKILL)  # its own session: the wrapper and the child
        wrapper.wait()
        raise
    if code != 0:
        raise BenchError(f"the wait4 wrapper exited {code}")
    out = json.loads(result.read_text(encoding="utf-8"))
    if out["code"] != 0:
        raise BenchError(f"exited {out['code']}:\n{_tail(console)}")
    return WorkerRun(out["wall_s"], _maxrss_bytes(out["maxrss"]))


def run_detect_worker(
    bars_root: Path, symbol: str, root: Path, config_path: Path | None, run_id: str
) -> WorkerRun:
    """One ``detect`` worker on ``symbol``, with the options ``launch`` gives its workers.

    Its peak RSS comes from ``wait4`` (:func:`run_measured`): the kernel's high-water mark
    of the process, read at its exit, so no peak falls between two polls.
    """
    argv = [
        *_cli(root, config_path), "detect", "--bars", str(bars_root), "--symbols", symbol,
        "--run-id", run_id, "--batch-size", "50", "--no-merge",
    ]  # fmt: skip
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        return run_measured(argv, root.parent / f"{root.name}.txt")
    except BenchError as exc:
        raise BenchError(f"detect on {symbol}: {exc}") from exc
