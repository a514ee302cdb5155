"""Starting worker processes and stopping process trees.

Each worker runs in its own session, hence its own process group whose id is its
pid: signalling the group reaches the worker and anything it started, and a
Ctrl-C in the operator's terminal reaches only the orchestrator, which then stops
the workers in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from orchestrator.backends.supervisor import describe_exit
from orchestrator.run.io_errors import writing
from orchestrator.run.process_identity import is_running


def spawn(
    argv: Sequence[str], *, console_log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, its output appended to ``console_log``."""
    with writing(console_log):
        console_log.parent.mkdir(parents=True, exist_ok=True)
        out = open(console_log, "ab")  # noqa: SIM115 (closed below, once the child has it)
    with out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )


THREADS_VARIABLE = "POLARS_MAX_THREADS"


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity, capped by a container's CPU quota (what
    polars sizes its own pool by), else the machine's count."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cpus, quota)) if quota is not None else cpus


def cgroup_cpu_quota(cgroup_root: Path) -> int | None:
    """CPUs a cgroup quota allows (rounded up), from cgroup v2 ``cpu.max`` or v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; None when there is no quota."""
    try:
        parts = (cgroup_root / "cpu.max").read_text().split()
    except OSError:
        parts = []
    if len(parts) == 2:
        quota, period = parts
    else:
        v1 = cgroup_root / "cpu"
        try:
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        allowed, per = int(quota), int(period)
    except ValueError:
        return None  # "max": no quota
    if allowed <= 0 or per <= 0:
        return None
    return -(-allowed // per)


def worker_environment(inherited: Mapping[str, str], workers: int, cpus: int) -> dict[str, str]:
    """The environment of one of ``workers`` workers sharing ``cpus`` CPUs.

    Each worker's polars pool gets its share of the CPUs (at least one thread), as
    joblib and loky limit the threads of their workers: by default every process would
    start one thread per CPU, N x CPUs threads in all. On two cores the difference is
    within the noise (two bare loops, 20 x 750 days, alternating: 3.1-4.0 s with one
    thread each, 3.2-3.7 s with two); it is meant for many workers on many cores. A
    thread count the operator set in the environment is kept.
    """
    env = dict(inherited)
    env.setdefault(THREADS_VARIABLE, str(max(1, cpus // max(1, workers))))
    return env


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False when it is gone.

    Only a group leader's group is signalled (a process not leading its group, such
    as an orchestrator started from a script, gets the signal alone), so that a pid
    never takes down a group that is not its own.
    """
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@dataclass(frozen=True)
class StopResult:
    pid: int
    how: str  # "exit 143", "SIGKILL after the grace", "already gone" ...


def stop_tree(process: psutil.Process, *, grace: float, group: bool = True) -> StopResult:
    """Stop ``process`` and its descendants: SIGTERM, then SIGKILL after ``grace``.

    The process (its group, when it leads one) is asked first and given ``grace`` to
    stop its own children in order; descendants still alive after that are asked
    in turn, then killed. Descendants are collected before any signal, so children
    re-parented after their parent's death are still found. With ``group=False``
    the process group is never signalled: a launcher started from a shell shares
    its group with whatever the shell put there (``| tee``, say).
    """
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return StopResult(process.pid, "already gone")
    if group:
        signal_group(process.pid, signal.SIGTERM)
    else:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs([process], timeout=grace)
    rest = [p for p in family[1:] if is_running(p.pid)]
    for member in rest:
        with contextlib.suppress(psutil.Error):
            member.terminate()
    _, alive_rest = psutil.wait_procs(rest, timeout=grace)
    alive += alive_rest
    if alive:
        if group:
            signal_group(process.pid, signal.SIGKILL)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(alive, timeout=grace)
    returncode = getattr(process, "returncode", None)
    if alive:
        how = "SIGKILL after the grace"
    elif returncode is not None:
        how = describe_exit(returncode)
    else:
        how = "exited after SIGTERM"
    return StopResult(process.pid, how)


PR_SET_THP_DISABLE = 41  # linux/prctl.h


def no_huge_pages() -> bool:
    """Turn transparent huge pages off for this process and the ones it starts.

    Where the kernel backs every large allocation with 2 MB pages
    (``/sys/kernel/mm/transparent_hugepage/enabled`` = ``always``), a worker's peak
    RSS on a 750-day symbol measured 295 MB instead of 250 (and up to 455 on another
    machine) for the same work: half-used huge pages count whole. The flag is
    inherited by children and kept across exec, so the launcher's workers get it too.
    False where there is no such call (not Linux); nothing else changes then.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
