"""HttpSlots on real threads: a freed slot goes to one waiter that may take it, and none is lost."""

import threading
import time

import pytest

from actors.context import BlockCancelled
from actors.http_slots import HttpSlots
from tests.helpers import wait_until


class Guard:
    """What HttpSlots asks of an http_client.Guard: fired, on_fire, raise_if_fired, ctx.cancelled."""

    def __init__(self):
        self.fired = None
        self.ctx = self
        self.cancelled = threading.Event()
        self._callbacks = []

    def on_fire(self, callback):
        self._callbacks.append(callback)

    def fire(self):
        self.fired = "cancelled"
        self.cancelled.set()
        for callback in self._callbacks:
            callback()

    def raise_if_fired(self, message):
        raise BlockCancelled("cancelled")


class Request:
    """A thread that holds a slot of `run` until released."""

    def __init__(self, slots, run):
        self.run = run
        self.guard = Guard()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._go, args=(slots,), daemon=True)
        self.thread.start()

    def _go(self, slots):
        try:
            with slots.hold("ws", self.run, self.guard, "late"):
                self.holding.set()
                self.release.wait(30)
        except BaseException as exc:  # noqa: B902  (the test looks at it)
            self.error = exc


def waiting(slots):
    space = slots._spaces.get("ws")
    return 0 if space is None else len(space.waiting)


def test_a_freed_slot_goes_to_a_waiter_whose_run_has_room():
    slots = HttpSlots(per_workspace=2, per_run=1)
    a, b = Request(slots, "A"), Request(slots, "B")
    assert wait_until(lambda: a.holding.is_set() and b.holding.is_set())
    a2 = Request(slots, "A")        # waits: its run holds its one slot, the workspace both
    assert wait_until(lambda: waiting(slots) == 1)
    c = Request(slots, "C")         # waits for the workspace
    assert wait_until(lambda: waiting(slots) == 2)
    b.release.set()                 # one workspace slot: A is still at its cap, so C takes it
    assert c.holding.wait(10)
    assert not a2.holding.is_set() and waiting(slots) == 1
    a.release.set()                 # now A has room
    assert a2.holding.wait(10)
    c.release.set()
    a2.release.set()
    for request in (a, b, a2, c):
        request.thread.join(10)
        assert request.error is None


@pytest.mark.parametrize("released", [2, 5])
def test_slots_freed_back_to_back_each_start_a_waiter(released):
    slots = HttpSlots(per_workspace=5, per_run=0)
    holders = [Request(slots, f"h{i}") for i in range(5)]
    assert wait_until(lambda: all(h.holding.is_set() for h in holders))
    waiters = [Request(slots, f"w{i}") for i in range(8)]
    assert wait_until(lambda: waiting(slots) == 8)
    for holder in holders[:released]:
        holder.release.set()        # no pause between: each must wake a different waiter
    assert wait_until(lambda: sum(w.holding.is_set() for w in waiters) == released)
    time.sleep(0.05)
    assert sum(w.holding.is_set() for w in waiters) == released and waiting(slots) == 8 - released
    for request in holders + waiters:
        request.release.set()
    for request in holders + waiters:
        request.thread.join(10)
        assert request.error is None
    assert slots._spaces == {}      # every request let go of the workspace's entry


def test_a_cancelled_waiter_leaves_at_once_and_the_next_slot_skips_it():
    slots = HttpSlots(per_workspace=1, per_run=0)
    holder = Request(slots, "h")
    assert holder.holding.wait(10)
    first, second = Request(slots, "x"), Request(slots, "y")
    assert wait_until(lambda: waiting(slots) == 2)
    first.guard.fire()
    first.thread.join(10)
    assert isinstance(first.error, BlockCancelled) and waiting(slots) == 1
    holder.release.set()
    assert second.holding.wait(10)
    second.release.set()
    for request in (holder, second):
        request.thread.join(10)
        assert request.error is None
    assert not first.holding.is_set()
