"""The live dashboard: reads snapshots, keeps the throughput window, lets rich draw.

All the logic of what is shown lives in :mod:`orchestrator.observe.dashboard_view`;
this module only glues files, clocks, keys and the terminal together:

- :class:`LiveView` re-reads the run's files and redraws, when asked;
- :class:`KeyReader` reads single keys (``q``) from a terminal on stdin;
- :func:`watch` is the ``dashboard`` command's loop;
- :class:`InlineDashboard` is the launcher's monitor on a terminal; ``q`` closes
  the view and the run goes on with progress lines.

The view never writes, locks or signals anything of the run.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live

from orchestrator.observe.dashboard_view import Frame, render_dashboard
from orchestrator.observe.monitors import Monitor
from orchestrator.observe.throughput import ThroughputWindow, eta_s
from orchestrator.run.layout import RunLayout
from orchestrator.run.snapshot import RunSnapshot, read_snapshot

QUIT_KEYS = frozenset("qQ")
# A heartbeat is rewritten per symbol, which takes well under a second: one this old
# is worth a look even before the supervisor's stall timeout.
STALE_AFTER_S = 30.0


@dataclass(frozen=True)
class ViewOptions:
    stall_after_s: float
    max_attempts: int | None = None  # None: the run's (its spec)
    footer: str = ""

    @property
    def stale_after_s(self) -> float:
        return min(STALE_AFTER_S, self.stall_after_s)


class LiveView:
    def __init__(
        self,
        layout: RunLayout,
        console: Console,
        options: ViewOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.layout = layout
        self.options = options
        self.clock = clock
        self.wallclock = wallclock
        self.window = ThroughputWindow()
        # We decide when to redraw (no refresh thread); rich re-measures the terminal
        # on each redraw, so a resize shows at the next one. Prints and log records
        # during the view go above it instead of through it.
        self.live = Live(console=console, auto_refresh=False, redirect_stdout=True)
        self.started = False

    def start(self) -> None:
        self.live.start()
        self.started = True

    def refresh(self, footer: str | None = None) -> RunSnapshot:
        """Re-read the run's files and redraw; ``footer`` replaces the options' one."""
        opts = self.options
        snapshot = read_snapshot(self.layout, now=self.wallclock(), max_attempts=opts.max_attempts)
        self.window.observe(snapshot, self.clock())
        rates = self.window.rates(snapshot)
        frame = Frame(
            snapshot=snapshot,
            rates=rates,
            eta_s=eta_s(snapshot, rates),
            stall_after_s=opts.stall_after_s,
            stale_after_s=opts.stale_after_s,
            footer=opts.footer if footer is None else footer,
        )
        self.live.update(render_dashboard(frame), refresh=True)
        return snapshot

    def stop(self) -> None:
        """Leave the last frame on the screen and give the terminal back."""
        if self.started:
            self.live.stop()
            self.started = False


class KeyReader:
    """Single key presses from a terminal, without echo or Enter (cbreak mode).

    Ctrl-C still raises SIGINT. Without a terminal on the stream, or while our
    process group is not the terminal's foreground group (started with ``&``, or
    sent to the background with Ctrl-Z and ``bg``), no key ever comes and
    :meth:`read` just waits: changing or reading the terminal from the background
    would stop the process with SIGTTOU/SIGTTIN. The settings are restored on exit.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        try:
            if self.stream.isatty() and in_foreground(self.stream):
                fd = self.stream.fileno()
                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
                self._fd = fd
        except (OSError, ValueError, termios.error):
            self._fd = None  # no usable terminal: no keys
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            # If the terminal went away there is nothing left to restore. If we were
            # sent to the background meanwhile, restore anyway: with SIGTTOU ignored
            # the change is allowed instead of stopping the process.
            with contextlib.suppress(termios.error, OSError), _ttou_ignored():
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None

    def read(self, timeout: float) -> str:
        """Keys pressed within ``timeout`` seconds ("" if none)."""
        if self._fd is None or not in_foreground(self.stream):
            if timeout > 0:
                time.sleep(timeout)
            return ""
        try:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
            data = os.read(self._fd, 64) if ready else b""
        except OSError:  # the terminal was closed under us: stop reading it
            self._fd = None
            return ""
        return data.decode("utf-8", errors="replace")


def in_foreground(stream: TextIO) -> bool:
    """Whether our process group is the foreground group of ``stream``'s terminal.

    A terminal that is not our controlling terminal has no job control over us
    (tcgetpgrp fails with ENOTTY): using it never stops us, so it counts as ours.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # closed, or not a file at all
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True


@contextlib.contextmanager
def _ttou_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)


def wants_quit(keys: str) -> bool:
    return any(key in QUIT_KEYS for key in keys)


def watch(view: LiveView, keys: KeyReader, refresh_s: float) -> None:
    """Redraw every ``refresh_s`` seconds until ``q`` or Ctrl-C; the run is not touched."""
    with keys:
        view.start()
        try:
            while True:
                view.refresh()
                if wants_quit(keys.read(refresh_s)):
                    return
        except KeyboardInterrupt:
            return
        finally:
            view.stop()


class InlineDashboard:
    """The launcher's live view on a terminal; ``q`` swaps it for progress lines."""

    def __init__(
        self,
        view: LiveView,
        keys: KeyReader,
        *,
        refresh_s: float,
        fallback: Monitor,
        echo: Callable[[str], None],
    ) -> None:
        self.view = view
        self.keys = keys
        self.refresh_s = refresh_s
        self.fallback = fallback
        self.echo = echo
        self._next: float | None = None
        self._closed_by_user = False

    def tick(self, now: float) -> None:
        if self._closed_by_user:
            self.fallback.tick(now)
            return
        if self._next is None:  # first pass: after the plan was confirmed
            self.keys.__enter__()
            self.view.start()
            self._next = now
        if wants_quit(self.keys.read(0.0)):
            self._end()
            self._closed_by_user = True
            self.echo(
                "Dashboard closed; the run goes on. Progress lines follow; "
                "`intraday-events dashboard` shows the view again."
            )
            self.fallback.tick(now)
            return
        if now >= self._next:
            self.view.refresh()
            self._next = now + self.refresh_s

    def close(self) -> None:
        """One last frame (the run's final state), then give the terminal back."""
        if self._closed_by_user or self._next is None:
            self.fallback.close()
            return
        try:
            self.view.refresh(footer="supervision over; the summary follows")
        finally:
            self._end()

    def _end(self) -> None:
        try:
            self.view.stop()
        finally:
            self.keys.__exit__(None, None, None)
