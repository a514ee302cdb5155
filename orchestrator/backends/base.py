"""The one interface between the launcher and where its workers run.

In the manner of huey's ``Environment``: the launcher owns the loop (stop
requests, monitor, the end of the launch) and hands the plan's assignments to a
:class:`BackendFactory` chosen by the CLI (local processes, or Ray tasks); the
:class:`Backend` it starts is driven one pass at a time with the launcher's
``now``, and every backend obeys the one
:class:`~orchestrator.backends.policy.SupervisionPolicy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from detector.config import AppConfig
from detector.input_fingerprint import InputFingerprint
from orchestrator.backends.supervisor import Notice
from orchestrator.run.layout import RunLayout
from orchestrator.run.spec import RunSpec
from orchestrator.run.store import RunStore
from orchestrator.worker.stopping import StopRequest


@dataclass(frozen=True)
class LaunchWork:
    """What a backend is given: the run, its spec, and the plan's assignments."""

    layout: RunLayout
    store: RunStore
    spec: RunSpec
    app: AppConfig
    assignments: tuple[tuple[str, ...], ...]  # worker k's symbols: remaining[k::N]
    # --redo-changed: completed symbols to detect again, with their bars' fingerprint now;
    # each is done once a commit records that fingerprint.
    redo: Mapping[str, InputFingerprint]
    stop: StopRequest
    handle_signals: bool  # the launcher's signal handlers are installed (re-install them)
    clock: Callable[[], float]  # monotonic seconds
    sleep: Callable[[float], None]


class Backend(Protocol):
    """A launch's workers, started; driven by the launcher until :attr:`finished`."""

    @property
    def finished(self) -> bool:
        """Every worker is done, given up or stopped."""
        ...

    @property
    def stopping(self) -> bool:
        """:meth:`stop_all` was called."""
        ...

    @property
    def environment_failure(self) -> tuple[int, str] | None:
        """(worker, its line) of the first worker the system refused a write (exit 5)."""
        ...

    def tick(self, now: float) -> list[Notice]:
        """One supervision pass: start, collect, watch; never blocks for long."""
        ...

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for something to happen (between passes)."""
        ...

    def stop_all(self, now: float, reason: str) -> list[Notice]:
        """Stop every worker: what they finished is committed, nothing is started again."""
        ...

    def given_up(self) -> Mapping[int, str]:
        """Workers given up in this launch, with their last exit or loss."""
        ...

    def close(self) -> None:
        """End the backend: no process or task of it outlives this call."""
        ...


class BackendFactory(Protocol):
    """A kind of backend, as chosen on the command line (``--backend``)."""

    def check_available(self) -> None:
        """Raise a one-line error now, before anything of the run is written."""
        ...

    def start(self, work: LaunchWork) -> Backend: ...
