"""The launch budget: at most `limit` block actor threads alive engine-wide.

A launch that finds no free slot waits in line; a block thread hands its
slot to the next in line as it ends, starting that block from its own thread.
Nothing waits on anything: a launch either starts now or is queued. A queued
launch whose run has ended (its cancel event set) is dropped when its turn
comes.

Slots are shared between workspaces (CONTRACT §11, fair sharing): one
workspace holds at most `limit - limit // 4` of them, so another's blocks
find a free slot at once however many the first has waiting; and a freed
slot goes to the waiting workspace that holds the fewest (first come, first
served within a workspace).
"""

import collections
import logging
import threading

log = logging.getLogger(__name__)


class LaunchBudget:
    def __init__(self, limit):
        self.limit = limit
        self.per_workspace = max(1, limit - limit // 4)
        self._lock = threading.Lock()
        self._live = 0
        self._held = collections.Counter()        # workspace -> slots it holds
        self._waiting = {}                        # workspace -> deque of starts, in arrival order

    @property
    def live(self) -> int:
        """Slots held now."""
        return self._live

    @property
    def queued(self) -> int:
        """Launches waiting for a slot."""
        return sum(len(line) for line in self._waiting.values())

    def launch(self, start, workspace=None):
        """Call `start()` now if a slot is free for `workspace`, else when one frees up.

        `start()` starts one thread that calls `release(workspace)` as it
        ends, and returns True; it returns False when it started nothing.
        """
        with self._lock:
            if self._live >= self.limit or self._held[workspace] >= self.per_workspace:
                self._waiting.setdefault(workspace, collections.deque()).append(start)
                return
            self._take(workspace)
        if not _call(start):
            self.release(workspace)

    def release(self, workspace=None):
        """A slot's thread is ending: pass the slot on, or free it."""
        while True:
            with self._lock:
                self._give_back(workspace)
                workspace = self._next()
                if workspace is None:
                    return
                line = self._waiting[workspace]
                start = line.popleft()
                if not line:
                    del self._waiting[workspace]
                self._take(workspace)
            if _call(start):
                return

    def _take(self, workspace):
        self._live += 1
        self._held[workspace] += 1

    def _give_back(self, workspace):
        self._live -= 1
        self._held[workspace] -= 1
        if not self._held[workspace]:
            del self._held[workspace]

    def _next(self):
        """The waiting workspace a free slot goes to: the one holding fewest, under its share."""
        if self._live >= self.limit:
            return None
        waiting = [w for w in self._waiting if self._held[w] < self.per_workspace]
        return min(waiting, key=lambda w: self._held[w], default=None)


def _call(start):
    try:
        return start() is not False
    except Exception:
        log.exception("could not start a block")
        return False
