"""Is a pid still the process that wrote a file? The one rule (pids are reused).

A pid names a process only together with when it started: a live process (an
exited, unreaped zombie is not live) with that pid is the one meant when its start
time is the recorded one (PID files record it exactly), or, where only the moment
of a write is known (heartbeats, temporary shards), when it had started by then. A
process started later merely reused the pid.
"""

from __future__ import annotations

import psutil

# psutil reports create times with the kernel's clock-tick resolution; the same process
# read twice gives the same float, a reused pid a later one.
CREATE_TIME_TOLERANCE_S = 0.05


def live_process(
    pid: int,
    *,
    created: float | None = None,
    started_by: float | None = None,
    slack: float = CREATE_TIME_TOLERANCE_S,
) -> psutil.Process | None:
    """The live process ``pid``, if it is the one meant, else None.

    ``created``: its recorded create time (epoch seconds), matched within ``slack``.
    ``started_by``: the moment of something it wrote; it must have existed then
    (``slack`` absorbs the coarse clocks of file times). Neither: any live process.
    """
    if pid <= 0:  # psutil knows pid 0 (the kernel): never a writer of ours
        return None
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            started = process.create_time()
    except psutil.Error:
        return None
    if created is not None and abs(started - created) > slack:
        return None
    if started_by is not None and started > started_by + slack:
        return None
    return process


def existed_at(pid: int, moment: float, *, slack: float) -> bool:
    """Whether ``pid`` is a live process that already existed at ``moment``: plausibly
    the writer of something dated ``moment``."""
    return live_process(pid, started_by=moment, slack=slack) is not None


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited, unreaped zombie is not)."""
    return live_process(pid) is not None
