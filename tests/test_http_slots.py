"""HttpSlots on a real HTTP loop: a freed slot goes to one waiter that may take it, and none is lost."""

import asyncio
import concurrent.futures
import threading
import time

import pytest

from actors.http_loop import HttpLoop
from actors.http_slots import HttpSlots
from tests.helpers import wait_until


class Phase:
    waiting = None


@pytest.fixture(scope="module")
def loop():
    return HttpLoop()


class Request:
    """A task on the loop that holds a slot of `run` until released."""

    def __init__(self, loop, slots, run):
        self.loop = loop
        self.run = run
        self.phase = Phase()
        self.holding = threading.Event()
        self.error = None
        self._release = None
        self._released = False
        self.future = loop.submit(self._go(slots))

    async def _go(self, slots):
        self._release = asyncio.Event()
        if self._released:
            self._release.set()
        try:
            async with slots.hold("ws", self.run, self.phase):
                self.holding.set()
                await self._release.wait()
        except BaseException as exc:  # noqa: B902  (the test looks at it)
            self.error = exc

    def release(self):
        def go():
            self._released = True
            if self._release is not None:
                self._release.set()
        self.loop.loop.call_soon_threadsafe(go)

    def cancel(self):
        self.future.cancel()        # cancels the task, as a block's cancel or deadline does

    def join(self):
        try:
            self.future.result(10)
        except concurrent.futures.CancelledError:
            pass


def waiting(slots):
    space = slots._spaces.get("ws")
    return 0 if space is None else len(space.waiting)


def test_a_freed_slot_goes_to_a_waiter_whose_run_has_room(loop):
    slots = HttpSlots(per_workspace=2, per_run=1)
    a, b = Request(loop, slots, "A"), Request(loop, slots, "B")
    assert wait_until(lambda: a.holding.is_set() and b.holding.is_set())
    a2 = Request(loop, slots, "A")        # waits: its run holds its one slot, the workspace both
    assert wait_until(lambda: waiting(slots) == 1)
    c = Request(loop, slots, "C")         # waits for the workspace
    assert wait_until(lambda: waiting(slots) == 2)
    b.release()                 # one workspace slot: A is still at its cap, so C takes it
    assert c.holding.wait(10)
    assert not a2.holding.is_set() and waiting(slots) == 1
    a.release()                 # now A has room
    assert a2.holding.wait(10)
    c.release()
    a2.release()
    for request in (a, b, a2, c):
        request.join()
        assert request.error is None


@pytest.mark.parametrize("released", [2, 5])
def test_slots_freed_back_to_back_each_start_a_waiter(loop, released):
    slots = HttpSlots(per_workspace=5, per_run=0)
    holders = [Request(loop, slots, f"h{i}") for i in range(5)]
    assert wait_until(lambda: all(h.holding.is_set() for h in holders))
    waiters = [Request(loop, slots, f"w{i}") for i in range(8)]
    assert wait_until(lambda: waiting(slots) == 8)
    for holder in holders[:released]:
        holder.release()            # no pause between: each must wake a different waiter
    assert wait_until(lambda: sum(w.holding.is_set() for w in waiters) == released)
    time.sleep(0.05)
    assert sum(w.holding.is_set() for w in waiters) == released and waiting(slots) == 8 - released
    for request in holders + waiters:
        request.release()
    for request in holders + waiters:
        request.join()
        assert request.error is None
    assert slots._spaces == {}      # every request let go of the workspace's entry


def test_a_cancelled_waiter_leaves_at_once_and_the_next_slot_skips_it(loop):
    slots = HttpSlots(per_workspace=1, per_run=0)
    holder = Request(loop, slots, "h")
    assert holder.holding.wait(10)
    first, second = Request(loop, slots, "x"), Request(loop, slots, "y")
    assert wait_until(lambda: waiting(slots) == 2)
    assert first.phase.waiting == "all 1 of this workspace's connections are in use"
    first.cancel()
    assert wait_until(lambda: isinstance(first.error, asyncio.CancelledError))
    assert waiting(slots) == 1
    holder.release()
    assert second.holding.wait(10)
    second.release()
    for request in (holder, second):
        request.join()
        assert request.error is None
    assert not first.holding.is_set()
