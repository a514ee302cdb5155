"""Asking a worker to stop between two symbols: by SIGTERM, Ctrl-C or its parent's death.

The worker checks :attr:`StopRequest.reason` before each symbol; when it is set, it
commits the symbols it has already detected in the batch and exits with
:attr:`StopRequest.exit_code`. A second Ctrl-C interrupts at once (the commit
protocol makes that safe too); SIGKILL needs no cooperation at all.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from detector.errors import ExitCode

_EXIT_CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.exit_code: ExitCode = ExitCode.OK
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, exit_code: ExitCode) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
                self.exit_code = exit_code

    # -- sources ---------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a stop; a second SIGINT raises KeyboardInterrupt."""

        def handle(signum: int, _frame: FrameType | None) -> None:
            sig = signal.Signals(signum)
            if self.requested and sig is signal.SIGINT:
                raise KeyboardInterrupt
            self.request(f"{sig.name} received", _EXIT_CODES[sig])
            if sig is signal.SIGTERM:
                # One SIGTERM is enough. Ignoring repeats also keeps one that lands while
                # the interpreter shuts down (which restores default handlers) from
                # turning a clean exit 143 into death by signal.
                signal.signal(signal.SIGTERM, signal.SIG_IGN)

        for sig in _EXIT_CODES:
            signal.signal(sig, handle)

    def watch_parent(self, parent_pid: int, interval: float = 0.2) -> threading.Thread:
        """Request a stop as soon as ``parent_pid`` is no longer this process's parent.

        When the parent dies the kernel re-parents us, so ``getppid`` changes; this
        needs no pid lookup that a reused pid could fool.
        """

        def watch() -> None:
            stop = threading.Event()
            while not stop.wait(interval):
                if os.getppid() != parent_pid:
                    self.request(f"parent process {parent_pid} is gone", ExitCode.TERMINATED)
                    return

        thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
        thread.start()
        return thread
