"""Errors of the run on disk: opening, resuming, locking it, and writes the system refused.

They derive from :class:`detector.errors.IntradayEventsError`, so the CLI turns each
into one line and its exit status like every other error of the project.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from detector.errors import ExitCode, IntradayEventsError


class RunExistsError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str, completed: int) -> None:
        self.run_id = run_id
        self.completed = completed
        super().__init__(
            f"run {run_id} already has {completed} completed symbols; "
            f"continue it with --resume, or start another with a new --run-id"
        )


class ConfigMismatchError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, run_id: str, recorded: str, current: str) -> None:
        self.run_id = run_id
        self.recorded = recorded
        self.current = current
        super().__init__(
            f"run {run_id} was started with detector config {recorded}, the current one is "
            f"{current}: resuming would mix events of two configs; use the original config, "
            f"a new --run-id, or --force-config to override (recorded in the checkpoint)"
        )


class NoRunToResumeError(IntradayEventsError):
    exit_code = ExitCode.USAGE


class ShardWriteError(IntradayEventsError):
    """A shard could not be written (disk full, permissions): nothing of the batch is marked."""

    exit_code = ExitCode.FAILURE

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write shard {path}: {reason}")


class RunBusyError(IntradayEventsError):
    """The run already has a live orchestrator."""

    exit_code = ExitCode.BUSY

    def __init__(self, run_id: str, pid: int | None) -> None:
        self.run_id = run_id
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(
            f"run {run_id} is already being launched by {who}; watch it with "
            f"`intraday-events status --run-id {run_id}`, or stop it with "
            f"`intraday-events restart --run-id {run_id}`"
        )


# errno -> (name, what the operator does about it), for writes the system refused.
ENVIRONMENT_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("ENOSPC", "free space"),
    errno.EDQUOT: ("EDQUOT", "free space or raise the disk quota"),
    errno.EFBIG: ("EFBIG", "raise the file size limit (ulimit -f)"),
    errno.EROFS: ("EROFS", "mount it read-write"),
    errno.EACCES: ("EACCES", "make it writable by this user"),
    errno.EPERM: ("EPERM", "make it writable by this user"),
}


class EnvironmentWriteError(IntradayEventsError):
    """The system refused a write: read-only, full disk, quota, file size limit.

    Nothing committed is lost by it: a shard becomes committed only by its rename,
    after a complete write, and the checkpoint is replaced whole or not at all.
    """

    exit_code = ExitCode.ENVIRONMENT

    def __init__(self, path: str, errno_: int, strerror: str, then: str) -> None:
        self.path = path
        self.errno = errno_
        self.strerror = strerror
        self.then = then
        name, remedy = ENVIRONMENT_ERRNOS[errno_]
        super().__init__(
            f"cannot write {path}: {strerror} ({name}); {remedy}, then {then}; "
            "nothing committed was lost"
        )


def environment_error(
    exc: BaseException, *, root: Path | None, then: str
) -> EnvironmentWriteError | None:
    """``exc`` as one line when it is an environment refusal of a write, else None.

    The path is shown relative to ``root`` when it lies under it.
    """
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    shown = str(exc.filename) if exc.filename is not None else "a file"
    if root is not None and exc.filename is not None:
        with contextlib.suppress(ValueError):
            shown = str(Path(str(exc.filename)).resolve().relative_to(root.resolve()))
    return EnvironmentWriteError(shown, exc.errno, exc.strerror or os.strerror(exc.errno), then)
