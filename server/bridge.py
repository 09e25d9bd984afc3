"""The only crossing from other threads onto the IOLoop.

Callbacks queued from actor or writer threads are run on the loop in order,
with one `IOLoop.add_callback` per batch rather than one per call.
"""

import logging
import threading

log = logging.getLogger(__name__)


class Bridge:
    def __init__(self, io_loop):
        self._loop = io_loop
        self._lock = threading.Lock()
        self._pending = []

    def call(self, fn, *args):
        """Run `fn(*args)` on the IOLoop soon. Safe from any thread."""
        with self._lock:
            self._pending.append((fn, args))
            if len(self._pending) > 1:
                return  # a drain is already scheduled
        self._loop.add_callback(self._drain)

    def _drain(self):
        with self._lock:
            pending, self._pending = self._pending, []
        for fn, args in pending:
            call_logged(fn, *args)


def call_logged(fn, *args):
    """`fn(*args)` on the loop; an exception is logged, not raised into the loop's turn."""
    try:
        fn(*args)
    except Exception:
        log.exception("callback on the IOLoop failed")
