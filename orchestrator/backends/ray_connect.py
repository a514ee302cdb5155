"""Reaching Ray: importing it (or saying how to install it), connecting to a
cluster, and one line for whatever a lost task raised."""

from __future__ import annotations

import importlib
import logging
import os
import re
from types import ModuleType
from typing import Any

from detector.errors import ExitCode, IntradayEventsError

log = logging.getLogger("orchestrator.backends.ray_backend")  # the lines read as before

INSTALL_HINT = "pip install 'intraday-events[ray]'"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20  # tasks exchange paths and counts, not data


class RayUnavailableError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"--backend ray needs Ray, which cannot be imported ({detail}); "
            f"install it with: {INSTALL_HINT}"
        )


class RayConnectError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, address: str | None, detail: str) -> None:
        self.address = address
        self.detail = detail
        where = "the default Ray cluster" if address is None else f"Ray at {address!r}"
        super().__init__(f"cannot connect to {where}: {detail}")


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayUnavailableError` saying how to install it."""
    try:
        return importlib.import_module("ray")
    except Exception as exc:  # not installed, or installed but broken
        raise RayUnavailableError(_first_line(exc)) from None


def connect(ray: ModuleType, address: str | None, workers: int) -> None:
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address == "local":
        options |= {
            "num_cpus": max(workers, os.cpu_count() or 1),
            "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
            "include_dashboard": False,
        }
    try:
        ray.init(address=address, **options)
    except (ray.exceptions.RayError, ConnectionError, TimeoutError, ValueError, RuntimeError,
            OSError) as exc:  # fmt: skip
        raise RayConnectError(address, _first_line(exc)) from None
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < workers:
        log.warning(
            "the Ray cluster has %g CPUs for %d concurrent tasks (--workers): tasks wait "
            "for a free CPU", cpus, workers,
        )  # fmt: skip


def describe_loss(exc: BaseException) -> str:
    """One line for a lost task: the exception the task raised, else Ray's own."""
    cause = getattr(exc, "cause", None)  # RayTaskError: what the task itself raised
    if isinstance(cause, BaseException):
        exc = cause
    return f"{type(exc).__name__}: {_first_line(exc)}"[:300]


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s text, without terminal colour codes."""
    text = _ANSI.sub("", str(exc))
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
