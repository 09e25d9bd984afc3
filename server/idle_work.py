"""Work the IOLoop takes up once nothing more urgent is ready: starting runs already answered.

A streamed or webhook run is answered first (its first event, its 202), and
only then does its first turn start its blocks, on the loop. Taken as soon as
each answer had gone out, those turns competed with every request still
waiting for its answer: in a burst of 5,000 streamed runs with http blocks,
the blocks' requests were being made while most runs were not yet started.

Here such work waits until the loop is idle: nothing else ready to run, the
loop's last look at its sockets included. Then it runs for at most SLICE
seconds before the loop looks at its sockets again. So that a loop that
is never idle still does it, a job that has waited MAX_WAIT seconds runs at
the next turn of the loop whatever else is ready, one job per turn.

"Ready" is asyncio's queue of callbacks due on this turn of the loop (the
event loop's `_ready`, there since asyncio began). On a loop without it,
every job runs at the next turn, as if the loop were always idle.
"""

import collections
import time

from .bridge import call_logged

SLICE = 0.002       # seconds of queued work per idle turn of the loop
MAX_WAIT = 1.0      # a job that has waited this long runs even while the loop is busy


class IdleWork:
    """A FIFO of callables run on the loop when it is otherwise idle. Loop thread only."""

    def __init__(self, loop, clock=time.monotonic, max_wait=MAX_WAIT, slice_=SLICE):
        self._loop = loop                       # an asyncio event loop
        self._ready = getattr(loop, "_ready", None)
        self._clock = clock
        self.max_wait = max_wait
        self.slice = slice_
        self._waiting = collections.deque()     # (queued at, fn)
        self._scheduled = False

    def __len__(self):
        return len(self._waiting)

    def add(self, fn):
        """Run `fn()` on this loop once nothing more urgent is ready (or it has waited max_wait)."""
        self._waiting.append((self._clock(), fn))
        self._schedule()

    def _schedule(self):
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self):
        self._scheduled = False
        waiting = self._waiting
        # Queued by call_soon, this runs in a later turn than the one that queued it, after
        # that turn's look at the sockets: what the look found is in the ready queue already.
        if self._busy():
            if waiting and self._clock() - waiting[0][0] >= self.max_wait:
                call_logged(waiting.popleft()[1])
        else:
            end = self._clock() + self.slice
            while waiting:
                call_logged(waiting.popleft()[1])
                if self._busy() or self._clock() >= end:
                    break
        if waiting:
            self._schedule()

    def _busy(self):
        return bool(self._ready)
