"""One thread that calls functions at given times (run and block deadlines, heartbeats)."""

import heapq
import itertools
import logging
import threading
import time

log = logging.getLogger(__name__)


class Timer:
    __slots__ = ("cancelled",)

    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class Timers:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._heap = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="actorflow-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay, fn, *args) -> Timer:
        """Call `fn(*args)` on the timer thread after `delay` seconds. Keep fn short."""
        timer = Timer()
        with self._cond:
            heapq.heappush(self._heap, (self._clock() + delay, next(self._counter), timer, fn, args))
            self._cond.notify()
        return timer

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
                _, _, timer, fn, args = heapq.heappop(self._heap)
            if not timer.cancelled:
                try:
                    fn(*args)
                except Exception:
                    log.exception("timer callback failed")
