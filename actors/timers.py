"""One thread that calls functions at given times: run deadlines and heartbeats.

A block's own timeout is not kept here: the block's thread waits with its
deadline (BlockContext.remaining) and its cancel event.
"""

import heapq
import itertools
import logging
import threading
import time

log = logging.getLogger(__name__)


class Timer:
    """A pending call. Cancelling drops the call's references at once, so a
    finished run is not kept alive by its deadline until that deadline passes."""

    __slots__ = ("fn", "args", "_owner")

    def __init__(self, fn, args, owner):
        self.fn, self.args, self._owner = fn, args, owner

    @property
    def cancelled(self):
        return self.fn is None

    def cancel(self):
        if self.fn is not None:
            self.fn = self.args = None
            self._owner._cancelled_one()


class Timers:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._heap = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._cancelled = 0  # cancelled entries still in the heap
        self._thread = threading.Thread(target=self._run, name="actorflow-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay, fn, *args) -> Timer:
        """Call `fn(*args)` on the timer thread after `delay` seconds. Keep fn short."""
        timer = Timer(fn, args, self)
        entry = (self._clock() + delay, next(self._counter), timer)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                # Only a new earliest deadline changes the thread's wait; waking it
                # for every run's (later) deadline cost a thread switch per run.
                self._cond.notify()
        return timer

    def pending(self) -> int:
        """Entries in the heap, cancelled ones not yet dropped included."""
        with self._cond:
            return len(self._heap)

    def _cancelled_one(self):
        # Most deadlines are cancelled long before they fire: drop them in bulk
        # once they are half the heap, so the heap stays as small as what is live.
        with self._cond:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join()

    def _run(self):
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        wait = self._heap[0][0] - self._clock()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, _, timer = heapq.heappop(self._heap)
                fn, args = timer.fn, timer.args
                if fn is None:
                    self._cancelled = max(0, self._cancelled - 1)
                timer.fn = timer.args = None  # fired: a later cancel() is a no-op
            if fn is not None:
                try:
                    fn(*args)
                except Exception:
                    log.exception("timer callback failed")


_shared = None
_shared_lock = threading.Lock()


def shared_timers():
    """One Timers for the engine's small waits: HTTP deadlines, a waiting block's backoff (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Timers()
        return _shared
