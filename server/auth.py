"""A short-lived cache of key -> workspace, so each request does not hit the database."""

import hashlib
import time


class AuthCache:
    def __init__(self, ttl=2.0, clock=time.monotonic, max_entries=10000):
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._entries = {}

    def get(self, key, lookup):
        """The workspace for `key` (None if unknown), via `lookup(key)` at most every ttl."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        now = self._clock()
        hit = self._entries.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        workspace = lookup(key)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[digest] = (workspace, now + self._ttl)
        return workspace
