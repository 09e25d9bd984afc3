"""The timer thread, with an injected clock: no test here waits for real time to pass."""

import threading

from actors.timers import Timers
from tests.helpers import FakeClock


def test_a_due_call_runs_and_a_cancelled_one_does_not():
    clock = FakeClock()
    timers = Timers(clock=clock)
    fired = threading.Event()
    skipped = []
    timers.call_later(1.0, fired.set)
    timers.call_later(1.0, skipped.append, 1).cancel()
    clock.now = 2.0
    timers.call_later(0, lambda: None)  # wakes the thread to look at the clock again
    assert fired.wait(10)
    timers.stop()
    assert skipped == []


def test_cancelled_deadlines_release_what_they_hold():
    clock = FakeClock()
    timers = Timers(clock=clock)
    held = [timers.call_later(300, list, [i]) for i in range(1000)]
    for timer in held:
        timer.cancel()
    # Their references are dropped at once, and the heap is compacted in bulk.
    assert all(t.fn is None and t.args is None for t in held)
    assert timers.pending() < 100
    timers.stop()
