"""Recent throughput of a run, from successive snapshots: pure, with an injected clock.

A worker's heartbeat counts what its *process* did since it started, so the
counts drop to zero when the supervisor restarts a worker. The window therefore
adds up per-process increments: the growth of a pid's counts between two
observations, and the whole count of a pid first seen after the first
observation (it started in between). The rate is the growth of that running
total over the last ``window_s`` seconds, so a dashboard shows what the run does
now, not an average since its start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from orchestrator.run.snapshot import RunSnapshot

DEFAULT_WINDOW_S = 60.0
# Below this span the window says nothing yet and the per-process averages stand in.
MIN_SPAN_S = 2.0


@dataclass(frozen=True)
class Rates:
    bars_per_s: float | None
    symbols_per_min: float | None
    recent: bool  # True: over the recent window; False: averages since each process started


@dataclass(frozen=True)
class _Sample:
    at: float
    bars: int
    symbols: int


class ThroughputWindow:
    def __init__(self, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[_Sample] = deque()
        self._last: dict[int, tuple[int, int]] = {}  # pid -> (bars_done, symbols_done)
        self._bars = 0
        self._symbols = 0

    def observe(self, snapshot: RunSnapshot, now: float) -> None:
        """Add what the workers did since the previous observation; ``now`` is monotonic."""
        first = not self._samples
        seen: dict[int, tuple[int, int]] = {}
        for w in snapshot.workers:
            if w.pid is None or w.bars_done is None or w.symbols_done is None:
                continue
            seen[w.pid] = (w.bars_done, w.symbols_done)
            previous = self._last.get(w.pid)
            if previous is None:
                if first:
                    continue  # done before we looked: not part of the recent rate
                previous = (0, 0)
            self._bars += max(0, w.bars_done - previous[0])
            self._symbols += max(0, w.symbols_done - previous[1])
        # Keep pids no longer shown: a worker whose heartbeat was unreadable for one
        # pass must not count its whole history again when it reappears.
        self._last.update(seen)
        self._samples.append(_Sample(now, self._bars, self._symbols))
        while len(self._samples) > 2 and now - self._samples[1].at >= self.window_s:
            self._samples.popleft()

    def rates(self, snapshot: RunSnapshot) -> Rates:
        """Recent rates once the window spans enough time, else the snapshot's averages."""
        if len(self._samples) >= 2:
            oldest, newest = self._samples[0], self._samples[-1]
            span = newest.at - oldest.at
            # Symbols completing while no bar is counted (counts that lag, symbols
            # without bars) say nothing of the speed: never a rate of 0 then.
            moving = newest.bars > oldest.bars or newest.symbols == oldest.symbols
            if span >= MIN_SPAN_S and moving:
                return Rates(
                    bars_per_s=(newest.bars - oldest.bars) / span,
                    symbols_per_min=60.0 * (newest.symbols - oldest.symbols) / span,
                    recent=True,
                )
        live = [w for w in snapshot.workers if w.live]
        if not live:
            return _run_average(snapshot)
        return Rates(
            bars_per_s=sum(w.bars_per_s or 0.0 for w in live),
            symbols_per_min=60.0 * sum(w.symbols_per_s or 0.0 for w in live),
            recent=False,
        )


def _run_average(snapshot: RunSnapshot) -> Rates:
    """A finished (or stopped) run's average rate: its bars over its elapsed time."""
    elapsed, bars = snapshot.elapsed_s, snapshot.bars_done
    if not elapsed or not bars or snapshot.state != "completed":
        return Rates(None, None, recent=False)
    done = len(snapshot.completed or ())
    return Rates(bars / elapsed, 60.0 * done / elapsed, recent=False)


def eta_s(snapshot: RunSnapshot, rates: Rates) -> float | None:
    """Remaining bars over the current rate; None while either is unknown or zero."""
    if snapshot.remaining_bars is None or not rates.bars_per_s:
        return None
    return snapshot.remaining_bars / rates.bars_per_s
