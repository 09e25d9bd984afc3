"""Streams that follow runs of other processes from the database, and what wakes them.

On PostgreSQL a listener thread (models.notify) hears when a run's events
commit, in any process; for a run some stream here follows, it crosses to
the loop through the bridge and wakes those streams, which read at once.
They still read now and then without a wake-up (FALLBACK_POLL), in case a
notification was lost. On SQLite, or while the listener is down, they poll
every POLL seconds as before.
"""

from models import notify

POLL = 1.0            # seconds between reads without notifications
FALLBACK_POLL = 10.0  # ... with them: only in case one was lost


class Followers:
    """Loop-side registry of execution id -> wake callbacks. Register and wake on the loop only."""

    def __init__(self, database, bridge, poll=None):
        """`poll`: seconds between reads (ACTORFLOW_REATTACH_POLL); None: POLL or FALLBACK_POLL."""
        self._bridge = bridge
        self._poll = poll
        self._wakers = {}
        # Read by the listener's thread: replaced whole on the loop, never changed in place.
        self._followed = frozenset()
        self._listener = notify.Listener(database, self._heard) if notify.supported() else None

    def start(self):
        if self._listener is not None:
            self._listener.start()

    def stop(self):
        if self._listener is not None:
            self._listener.stop()

    def poll_interval(self) -> float:
        if self._poll is not None:
            return self._poll
        listening = self._listener is not None and self._listener.listening
        return FALLBACK_POLL if listening else POLL

    def add(self, execution_id, wake):
        self._wakers.setdefault(execution_id, set()).add(wake)
        self._followed = frozenset(self._wakers)

    def discard(self, execution_id, wake):
        wakers = self._wakers.get(execution_id)
        if wakers is None:
            return
        wakers.discard(wake)
        if not wakers:
            del self._wakers[execution_id]
            self._followed = frozenset(self._wakers)

    def _heard(self, execution_id):
        # On the listener's thread: cross to the loop only for runs followed here.
        if execution_id is None or execution_id in self._followed:
            self._bridge.call(self._wake, execution_id)

    def _wake(self, execution_id):
        if execution_id is None:
            wakers = [w for ws in self._wakers.values() for w in ws]
        else:
            wakers = list(self._wakers.get(execution_id, ()))
        for wake in wakers:
            wake()
