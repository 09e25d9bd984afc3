"""The one writer: a thread that owns a connection and commits jobs in batches.

Every write (API changes, run rows, block logs, events) is a job. The thread
takes whatever is queued, runs it all in one transaction (each job in its own
savepoint, so one failing job does not undo the others), commits, and only
then reports each job's result. That gives "on disk before anyone is told",
one lock holder per process, and group commit under load.
"""

import logging
import queue
import threading
import time

log = logging.getLogger(__name__)

_STOP = object()


class Writer:
    def __init__(self, database, bridge, max_batch=512):
        self._db = database
        self._bridge = bridge
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="actorflow-writer", daemon=True)
        self.on_commit = None  # on_commit(seconds) after each batch (metrics), on this thread

    def start(self):
        self._thread.start()

    def stop(self):
        """Finish what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def submit(self, fn, args=(), done=None):
        """Queue `fn(*args)`; `done(result, error)` runs on this thread after commit."""
        self._queue.put((fn, args, done))

    def call(self, fn, *args):
        """From the IOLoop: an awaitable resolved with `fn(*args)` once committed."""
        import asyncio
        future = asyncio.get_running_loop().create_future()
        self.submit(fn, args, lambda result, error: self._bridge.call(_resolve, future, result, error))
        return future

    def pending(self) -> int:
        """Jobs queued and not yet taken (approximate, for metrics)."""
        return self._queue.qsize()

    def barrier(self, done):
        """`done()` runs once everything queued before it has committed."""
        self.submit(None, (), lambda result, error: done())

    def _run(self):
        self._db.connect(reuse_if_open=True)
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(job is _STOP for job in batch):
                stopping = True
                batch = [job for job in batch if job is not _STOP]
            started = time.perf_counter()
            self._commit(batch)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
        self._db.close()

    def _commit(self, batch):
        results = [(None, None)] * len(batch)
        if any(fn is not None for fn, _, _ in batch):
            try:
                with self._db.atomic():
                    for i, (fn, args, _) in enumerate(batch):
                        if fn is None:
                            continue
                        try:
                            with self._db.atomic():  # a savepoint per job
                                results[i] = (fn(*args), None)
                        except Exception as exc:  # the job's own failure, reported to it
                            results[i] = (None, exc)
            except Exception as exc:  # the commit itself failed: nobody's write landed
                log.exception("commit failed")
                results = [(None, exc)] * len(batch)
        for (_, _, done), (result, error) in zip(batch, results):
            if done is not None:
                try:
                    done(result, error)
                except Exception:
                    log.exception("writer callback failed")


def _resolve(future, result, error):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
