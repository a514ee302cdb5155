"""Is a pid still the process that wrote a file? (pids are reused.)"""

from __future__ import annotations

import psutil


def existed_at(pid: int, moment: float, *, slack: float) -> bool:
    """Whether ``pid`` is a live process that already existed at ``moment`` (epoch seconds).

    That is what makes it plausibly the writer of something dated ``moment``: a
    process started later only reused the pid. ``slack`` absorbs the coarse clocks
    of file times and of the kernel's start times. An exited process its parent has
    not reaped yet (a zombie) is not live.
    """
    if pid <= 0:  # psutil knows pid 0 (the kernel): never a writer of ours
        return False
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return process.create_time() <= moment + slack
    except psutil.Error:
        return False
