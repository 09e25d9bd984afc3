"""The launch budget: at most `limit` block actor threads alive engine-wide.

A launch that finds no free slot waits in line (first come, first served,
across every run); a block thread hands its slot to the next in line as it
ends, starting that block from its own thread. Nothing waits on anything:
a launch either starts now or is queued. A queued launch whose run has
ended (its cancel event set) is dropped when its turn comes.
"""

import collections
import logging
import threading

log = logging.getLogger(__name__)


class LaunchBudget:
    def __init__(self, limit):
        self.limit = limit
        self._lock = threading.Lock()
        self._live = 0
        self._waiting = collections.deque()

    @property
    def live(self) -> int:
        """Slots held now."""
        return self._live

    @property
    def queued(self) -> int:
        """Launches waiting for a slot."""
        return len(self._waiting)

    def launch(self, start):
        """Call `start()` now if a slot is free, else when one frees up.

        `start()` starts one thread that calls `release()` as it ends, and
        returns True; it returns False when it started nothing.
        """
        with self._lock:
            if self._live >= self.limit:
                self._waiting.append(start)
                return
            self._live += 1
        if not _call(start):
            self.release()

    def release(self):
        """A slot's thread is ending: pass the slot on, or free it."""
        while True:
            with self._lock:
                if not self._waiting:
                    self._live -= 1
                    return
                start = self._waiting.popleft()
            if _call(start):
                return


def _call(start):
    try:
        return start() is not False
    except Exception:
        log.exception("could not start a block")
        return False
