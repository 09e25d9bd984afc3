"""A short-lived cache of key -> workspace, so each request does not hit the database."""

import hashlib
import time


class AuthCache:
    def __init__(self, ttl=2.0, clock=time.monotonic, max_entries=10000):
        self.ttl = ttl  # the longest a revoked key keeps working on this process
        self._clock = clock
        self._max = max_entries
        self._entries = {}

    def peek(self, key):
        """(True, workspace) when `key` was looked up within the ttl, else (False, None)."""
        hit = self._entries.get(_digest(key))
        if hit is not None and hit[1] > self._clock():
            return True, hit[0]
        return False, None

    def now(self):
        return self._clock()

    def put(self, key, workspace, since=None):
        """Remember what a lookup of `key` found (None: no such key) for the ttl.

        `since`: when the lookup began (`now()` before it), so a key revoked
        while it was read is refused within ttl of the read, not of its answer.
        """
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[_digest(key)] = (workspace, (self._clock() if since is None else since) + self.ttl)


def _digest(key):
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
