"""The store at the engine's edge: the one writer, and a few reader threads.

Handlers never query on the IOLoop thread: `await store.read(fn, *args)`
runs `fn` (a plain function in `models/` that returns plain data) on one of
the readers. Each reader thread keeps its own connection (peewee connections
are per thread and never cross); it closes it when the pool stops.
"""

import asyncio
import concurrent.futures
import queue
import threading

_STOP = object()


class Readers:
    """`size` threads that run read functions and hand back their results as futures."""

    def __init__(self, database, size=4):
        if size < 1:
            raise ValueError("a reader pool needs at least one thread")
        self._db = database
        self._queue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"actorflow-reader-{i}", daemon=True)
                         for i in range(size)]

    def start(self):
        for thread in self._threads:
            thread.start()

    def stop(self, timeout=5.0):
        """Let queued reads finish, then end the threads (each closes its own connection)."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def submit(self, fn, *args) -> concurrent.futures.Future:
        """Queue `fn(*args)`; a concurrent future of its result, from any thread."""
        future = concurrent.futures.Future()
        self._queue.put((future, fn, args))
        return future

    def _run(self):
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    return
                future, fn, args = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the awaiting handler, which maps it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
        finally:
            self._db.close()


class Store:
    """Both sides: `read` on the reader pool, writes through `writer` (models.writer.Writer)."""

    def __init__(self, writer, readers):
        self.writer = writer
        self.readers = readers

    def read(self, fn, *args):
        """Awaitable result of `fn(*args)` run on a reader thread. Call on the loop."""
        return asyncio.wrap_future(self.readers.submit(fn, *args))
