"""A short-lived cache of key -> workspace, so each request does not hit the database."""

import hashlib
import time


class AuthCache:
    def __init__(self, ttl=2.0, clock=time.monotonic, max_entries=10000):
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._entries = {}

    def peek(self, key):
        """(True, workspace) when `key` was looked up within the ttl, else (False, None)."""
        hit = self._entries.get(_digest(key))
        if hit is not None and hit[1] > self._clock():
            return True, hit[0]
        return False, None

    def put(self, key, workspace):
        """Remember what a lookup of `key` found (None: no such key) for the ttl."""
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[_digest(key)] = (workspace, self._clock() + self._ttl)


def _digest(key):
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
