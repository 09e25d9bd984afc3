"""Flag: a one-way `threading.Event` for objects made by the thousand and seldom waited on.

A `threading.Event` is a Condition, a lock and a deque of waiters (1.2 KB);
every run in flight held five of them (its coordinator's and its block's
`actor_stopped`, the block's cancel flag, its two threads' `_started`)
though almost nothing ever waits on one. A Flag is a bool; the Event behind `wait` is made on the first wait.
Set once, never cleared: what pykka's `actor_stopped` and a cancel need.
"""

import threading

_making = threading.Lock()


class Flag:
    __slots__ = ("_flag", "_event")

    def __init__(self):
        self._flag = False
        self._event = None   # made by the first wait

    def is_set(self):
        return self._flag

    def set(self):
        # Flag first, then look for a waiter: `wait` makes its event first, then
        # looks at the flag, so one of the two always sees the other.
        self._flag = True
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout=None):
        """Block until set or `timeout` seconds pass; True if set."""
        if self._flag:
            return True
        event = self._event
        if event is None:
            with _making:
                if self._event is None:
                    self._event = threading.Event()
                event = self._event
        if self._flag:
            return True
        return event.wait(timeout)

    def _at_fork_reinit(self):
        # What threading calls in a forked child on a Thread's `_started`: a
        # waiter's Event may hold a lock taken by a thread that is gone there.
        self._event = None
