"""Throttling of failed webhook secrets, per webhook id, in one server process.

Only failures are counted. A call with the right secret is never looked up
here: it is judged on the workflow's arm state alone, so a flood of bad
guesses can never lock the real caller out of its window.
"""

import collections
import threading
import time
from typing import NamedTuple


class Verdict(NamedTuple):
    throttled: bool       # answer 429 instead of 401
    retry_after: float    # seconds until a failure of this key is no longer throttled
    first: bool           # this failure crossed the limit (worth one log line)


class FailureLimiter:
    """At most `limit` failures per key within `window` seconds; past that, throttled.

    A key's failures are a sliding window of timestamps (at most `limit` of
    them are kept). Failures past the limit are recorded too, so a caller who
    keeps guessing stays throttled until it pauses. A limit of 0 turns
    throttling off.
    """

    def __init__(self, limit, window=60.0, clock=time.monotonic, max_keys=10000):
        self.limit = max(0, int(limit))
        self.window = float(window)
        self._clock = clock
        self._max_keys = max_keys
        self._failures = {}      # key -> deque of clock times, oldest first
        self._throttled = set()  # keys whose last failure was throttled
        self._lock = threading.Lock()

    def fail(self, key) -> Verdict:
        """Record one failure for `key` and say whether it is throttled."""
        if self.limit <= 0:
            return Verdict(False, 0.0, False)
        now = self._clock()
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                if len(self._failures) >= self._max_keys:
                    self._prune(now)
                times = self._failures[key] = collections.deque(maxlen=self.limit)
            while times and times[0] <= now - self.window:
                times.popleft()
            over = len(times) >= self.limit
            times.append(now)
            if not over:
                self._throttled.discard(key)
                return Verdict(False, 0.0, False)
            first = key not in self._throttled
            self._throttled.add(key)
            return Verdict(True, max(1.0, times[0] + self.window - now), first)

    def _prune(self, now):
        stale = [k for k, times in self._failures.items()
                 if not times or times[-1] <= now - self.window]
        for key in stale:
            del self._failures[key]
            self._throttled.discard(key)
        if len(self._failures) >= self._max_keys:  # all busy: forget them, stay bounded
            self._failures.clear()
            self._throttled.clear()
