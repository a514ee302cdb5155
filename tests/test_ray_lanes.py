"""The Ray driver's lane rules, with a fake clock: no Ray, no files."""

from __future__ import annotations

from detector.config import SupervisionConfig
from orchestrator.backends.policy import SupervisionPolicy
from orchestrator.backends.ray_lanes import Lane

SUP = SupervisionPolicy(
    SupervisionConfig(
        max_restarts=2,
        backoff_initial_seconds=1.0,
        backoff_max_seconds=3.0,
        stall_timeout_seconds=10.0,
    )
)


def lane(*symbols: str) -> Lane:
    return Lane(0, symbols, "2026-11-22T09:00:00")


def test_batches_skip_completed_quarantined_and_failed_here_symbols() -> None:
    ln = lane("A", "B", "C", "D", "E")
    assert ln.next_batch({"B"}, 2, now=0.0) == ("A", "C")
    assert ln.symbols_total == 4
    assert ln.total_batches(len(ln.todo({"B"})), 2) == 2
    ln.sent(1, ("A", "C"), token=None)
    ln.completed(detected=1, failures={"C"}, bars=100, events=7, stopped=False)
    assert (ln.symbols_done, ln.bars_done, ln.events, ln.state) == (2, 100, 7, "ready")
    # C failed by an error during this launch: the next launch retries it, not this one.
    assert ln.next_batch({"A", "B"}, 2, now=1.0) == ("D", "E")
    assert ln.total_batches(len(ln.todo({"A", "B"})), 2) == 2  # one sent, one to go
    ln.sent(2, ("D", "E"), token=None)
    ln.completed(detected=2, failures=(), bars=0, events=0, stopped=False)
    assert ln.next_batch({"A", "B", "D", "E"}, 2, now=2.0) == ()
    assert ln.finished and ln.state == "done"


def test_a_lane_with_nothing_to_do_is_done_at_once() -> None:
    ln = lane("A")
    assert ln.next_batch({"A"}, 10, now=0.0) == ()
    assert ln.state == "done"


def test_lost_tasks_back_off_doubling_capped_then_the_lane_is_given_up() -> None:
    ln = lane("A", "B")
    ln.sent(1, ("A", "B"), token=None)
    assert ln.lost(10.0, SUP) == 1.0
    assert ln.next_batch(set(), 2, now=10.5) == ()  # still waiting
    assert ln.state == "waiting"
    assert ln.next_batch(set(), 2, now=11.0) == ("A", "B")
    ln.sent(2, ("A", "B"), token=None)
    assert ln.lost(12.0, SUP) == 2.0
    ln.sent(3, ("A", "B"), token=None)
    assert ln.lost(15.0, SUP) is None  # a third loss > max_restarts (2)
    assert ln.state == "given_up" and ln.finished


def test_progress_resets_the_backoff_but_not_the_loss_count() -> None:
    sup = SupervisionPolicy(
        SupervisionConfig(max_restarts=5, backoff_initial_seconds=1.0, backoff_max_seconds=60.0)
    )
    ln = lane("A", "B", "C")
    ln.sent(1, ("A",), token=None)
    assert ln.lost(0.0, sup) == 1.0
    ln.sent(2, ("A",), token=None)
    assert ln.lost(1.0, sup) == 2.0
    ln.sent(3, ("A",), token=None)
    ln.completed(detected=1, failures=(), bars=1, events=0, stopped=False)
    ln.sent(4, ("B",), token=None)
    assert ln.lost(4.0, sup) == 1.0
    assert ln.losses == 3


def test_a_task_is_stalled_only_after_its_heartbeat_moved_then_stopped() -> None:
    ln = lane("A")
    ln.sent(1, ("A",), token=("old",))
    ln.seen(("old",), 100.0)
    assert not ln.stalled(100.0, SUP)  # queued for a CPU: never started, not stalled
    ln.seen(("new",), 101.0)
    assert not ln.stalled(110.0, SUP)
    ln.seen(("new",), 111.0)
    assert ln.stalled(111.0, SUP)


def test_a_stopped_batch_stops_the_lane() -> None:
    ln = lane("A", "B")
    ln.sent(1, ("A", "B"), token=None)
    ln.completed(detected=1, failures=(), bars=5, events=1, stopped=True)
    assert ln.state == "stopped" and ln.finished
