"""A short-lived cache of key -> workspace, so each request does not hit the database."""

import asyncio
import hashlib
import time


class AuthCache:
    def __init__(self, ttl=2.0, clock=time.monotonic, max_entries=10000):
        self.ttl = ttl  # the longest a revoked key keeps working on this process
        self._clock = clock
        self._max = max_entries
        self._entries = {}
        self._reading = {}  # digest -> the read under way for that key

    def peek(self, key):
        """(True, workspace) when `key` was looked up within the ttl, else (False, None)."""
        hit = self._entries.get(_digest(key))
        if hit is not None and hit[1] > self._clock():
            return True, hit[0]
        return False, None

    def _put(self, digest, workspace, since):
        # `since`: when the read began, so a key revoked while it was read is
        # refused within ttl of the read, not of its answer.
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[digest] = (workspace, since + self.ttl)

    async def read(self, key, read):
        """The workspace of `key` (None: no such key) by `read()`, an awaitable; remembered for the ttl.

        A request for a key already being read waits for that read rather
        than starting its own: a burst of requests just after the ttl ran out
        reads the key once, not once each. Loop thread only.
        """
        digest = _digest(key)
        pending = self._reading.get(digest)
        if pending is None:
            since = self._clock()
            pending = self._reading[digest] = asyncio.ensure_future(read())
            pending.add_done_callback(lambda done: self._read_done(digest, done, since))
        # Shielded: one waiter cancelled must not cancel the read the others wait for.
        return await asyncio.shield(pending)

    def _read_done(self, digest, done, since):
        del self._reading[digest]
        if not done.cancelled() and done.exception() is None:
            self._put(digest, done.result(), since)


def _digest(key):
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
