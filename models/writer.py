"""The one writer: a thread that owns a connection and commits jobs in batches.

Every write (API changes, run rows, block logs, events) is a job. The thread
takes whatever is queued, runs it all in one transaction (each job in its own
savepoint, so one failing job does not undo the others), commits, and only
then reports each job's result. That gives "on disk before anyone is told",
one lock holder per process, and group commit under load.

When the store refuses a batch (locked by another process past the busy
timeout (PostgreSQL: lock_timeout), disk full, an I/O error), the batch is written again job by job, so
one oversized or unencodable job fails alone. A job queued with
`submit_until_stored` is tried again, backing off, until the store takes it:
that is how a run whose writes were refused still ends `failed` on disk.
"""

import logging
import queue
import threading
import time

import peewee

from .errors import StorageUnavailable

log = logging.getLogger(__name__)

_STOP = object()
RETRY_FIRST = 0.1    # seconds before a refused must-land job is tried again
RETRY_MAX = 1.0      # ... doubling up to this


def refusal(exc):
    """`exc` as a StorageUnavailable when it means the store refused the write, else None."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        return StorageUnavailable("storage unavailable: a value the store cannot encode "
                                  "(a lone UTF-16 surrogate)")
    if isinstance(exc, OverflowError):
        return StorageUnavailable(f"storage unavailable: a number the store cannot hold ({exc})")
    if isinstance(exc, (peewee.OperationalError, peewee.InternalError, peewee.DataError)):
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # not PostgreSQL's quoted SQL
        return StorageUnavailable(f"storage unavailable: {reason}")
    return None


def _first_cause(exc):
    """The error that broke the transaction, not the failed rollback that followed it.

    SQLite undoes the whole transaction itself on a full disk or an I/O
    error; the ROLLBACK that comes next then fails with "no transaction is
    active" and would hide the real reason.
    """
    while "no transaction is active" in str(exc) and exc.__context__ is not None:
        exc = exc.__context__
    return exc


def _store_wide(exc):
    """Errors that refuse every write alike (no point trying the rest of a batch)."""
    text = str(exc).lower()
    return isinstance(exc, peewee.OperationalError) and (
        "locked" in text or "busy" in text or "lock timeout" in text)  # SQLite; PostgreSQL


class Writer:
    def __init__(self, database, bridge, max_batch=512):
        self._db = database
        self._bridge = bridge
        self._max_batch = max_batch
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="actorflow-writer", daemon=True)
        self._later = []  # (due, delay, fn, args): refused must-land jobs; writer thread only
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

    def submit_until_stored(self, fn, args=(), delay=RETRY_FIRST):
        """Queue `fn(*args)`; while the store refuses it, try again (backing off) until it lands."""
        def done(_, error):
            if error is None:
                return
            if refusal(error) is None:
                log.error("write %s failed for good: %s", getattr(fn, "__name__", fn), error)
                return
            log.warning("store refused %s (%s); trying again in %gs",
                        getattr(fn, "__name__", fn), error, delay)
            self._later.append((time.monotonic() + delay, min(delay * 2, RETRY_MAX), fn, args))
        self._queue.put((fn, args, done))

    def call(self, fn, *args):
        """From the IOLoop: an awaitable resolved with `fn(*args)` once committed.

        When the store refuses the write, it raises StorageUnavailable.
        """
        import asyncio
        future = asyncio.get_running_loop().create_future()

        def done(result, error):
            if error is not None:
                error = refusal(error) or error
            self._bridge.call(_resolve, future, result, error)
        self.submit(fn, args, done)
        return future

    def pending(self) -> int:
        """Jobs queued and not yet taken (approximate, for metrics)."""
        return self._queue.qsize()

    def _run(self):
        self._db.connect(reuse_if_open=True)
        stopping = False
        # After the stop, go on while jobs are queued: a commit's callbacks may queue more
        # (a run's writes held back while its previous batch was committing).
        while not stopping or not self._queue.empty():
            try:
                batch = [self._queue.get(timeout=None if stopping else self._next_retry())]
            except queue.Empty:
                batch = []
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(job is _STOP for job in batch):
                stopping = True
                batch = [job for job in batch if job is not _STOP]
            batch = self._due(everything=stopping) + batch
            if not batch:
                continue
            started = time.perf_counter()
            self._commit(batch)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started)
        for _, _, fn, args in self._later:
            log.error("store still refuses %s at shutdown; the next start resolves its run",
                      getattr(fn, "__name__", fn))
        self._db.close()

    def _next_retry(self):
        if not self._later:
            return None
        return max(0.0, min(due for due, _, _, _ in self._later) - time.monotonic())

    def _due(self, everything=False):
        """Refused must-land jobs whose time has come, as jobs that reschedule themselves."""
        if not self._later:
            return []
        now = time.monotonic()
        due = [j for j in self._later if everything or j[0] <= now]
        self._later = [j for j in self._later if not (everything or j[0] <= now)]
        jobs = []
        for _, delay, fn, args in due:
            self.submit_until_stored(fn, args, delay)
            jobs.append(self._queue.get_nowait())  # just put: take it straight back into this batch
        return jobs

    def _commit(self, batch):
        if not any(fn is not None for fn, _, _ in batch):
            self._report(batch, [(None, None)] * len(batch))
            return
        try:
            results = self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1:
                results = [(None, exc)]
            else:
                log.warning("store refused a batch of %d writes (%s); writing them one by one",
                            len(batch), exc)
                self._one_by_one(batch, exc)
                return
        self._report(batch, results)

    def _transaction(self, batch):
        """Run `batch` in one transaction; a job's own error stays with that job.

        A store-level error (locked, full, I/O) may have undone the whole
        transaction, so it fails the batch rather than the job. Otherwise the
        jobs first run together with no savepoint: a job rarely fails on its
        own, and while a savepoint is open SQLite journals every page a write
        touches (a quarter of a run's write time). When one does fail, that
        transaction is rolled back and the batch runs again with a savepoint
        per job, so the failing job fails alone. A batch of one job needs no
        second pass: its own error undoes the transaction.
        """
        results = [(None, None)] * len(batch)
        jobs = [(i, fn, args) for i, (fn, args, _) in enumerate(batch) if fn is not None]
        try:
            try:
                with self._db.atomic():
                    for i, fn, args in jobs:
                        results[i] = (fn(*args), None)
                return results
            except (peewee.OperationalError, peewee.InternalError):
                raise
            except Exception as exc:  # a job's own failure; its transaction was rolled back
                if len(jobs) == 1:
                    results[jobs[0][0]] = (None, exc)
                    return results
            with self._db.atomic():
                # Savepoints by plain SQL: peewee's names each one with a fresh
                # uuid4 (a getrandom call) and goes through its query layer.
                _each_in_savepoint(self._db.cursor(), jobs, results)
        except Exception as exc:
            raise _first_cause(exc) from None
        return results

    def _one_by_one(self, batch, first_error):
        """Each job in its own transaction, reported at once, so later jobs see earlier outcomes."""
        refused = first_error if _store_wide(first_error) else None
        for job in batch:
            if refused is not None and job[0] is not None:
                self._report([job], [(None, refused)])
                continue
            try:
                results = self._transaction([job])
            except Exception as exc:
                results = [(None, exc)]
                if _store_wide(exc):
                    refused = exc  # every other job would wait out the busy timeout too
            self._report([job], results)

    def _report(self, batch, results):
        for (_, _, done), (result, error) in zip(batch, results):
            if done is not None:
                try:
                    done(result, error)
                except Exception:
                    log.exception("writer callback failed")


def _each_in_savepoint(cursor, jobs, results):
    """Run `jobs` each in a savepoint of its own, noting each result or own error in `results`."""
    for i, fn, args in jobs:
        cursor.execute("SAVEPOINT writer_job")
        try:
            results[i] = (fn(*args), None)
        except (peewee.OperationalError, peewee.InternalError):
            raise
        except Exception as exc:  # the job's own failure, reported to it
            cursor.execute("ROLLBACK TO SAVEPOINT writer_job")
            results[i] = (None, exc)
        cursor.execute("RELEASE SAVEPOINT writer_job")


def _resolve(future, result, error):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
