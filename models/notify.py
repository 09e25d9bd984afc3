"""PostgreSQL notifications that a run's events committed, for streams in other processes.

A write that stores a run's events also sends `NOTIFY actorflow_events,
'<execution_id>'`; PostgreSQL delivers it when (and only if) the transaction
commits. A `Listener` holds its own connection on its own thread, LISTENs,
and hands each execution id to a callback. On SQLite there is nothing to
listen to: `supported()` is False and streams poll.
"""

import logging
import os
import select
import threading

import peewee

from .base import database

log = logging.getLogger(__name__)

CHANNEL = "actorflow_events"
RETRY_FIRST = 0.5   # seconds before a lost listening connection is opened again
RETRY_MAX = 10.0    # ... doubling up to this
IDLE_CHECK = 30.0   # seconds without a notification before the connection is tried with a query


def supported() -> bool:
    """True when the open database can notify (PostgreSQL)."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def runs_changed(execution_ids):
    """In a write: tell listening processes that these runs have new events (or ended).

    Sent on commit, once per run per transaction. Nothing on SQLite.
    """
    if execution_ids and supported():
        cursor = database.cursor()
        for execution_id in execution_ids:
            cursor.execute(f"SELECT pg_notify('{CHANNEL}', {database.param})", (execution_id,))


class Listener:
    """LISTEN on its own connection and thread; `on_notify(execution_id)` from that thread.

    `on_notify(None)` means "anything may have changed": the connection was
    (re)opened, and notifications sent while it was down are lost.
    `listening` says whether notifications arrive now.
    """

    def __init__(self, db, on_notify):
        self._db = db
        self._on_notify = on_notify
        self._stop_r, self._stop_w = os.pipe()  # wakes the thread's select at stop
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="actorflow-listener", daemon=True)
        self.listening = False

    def start(self):
        self._thread.start()

    def stop(self, timeout=5.0):
        self._stopping = True
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():  # else it may still select on them (stuck connecting)
            for fd in (self._stop_r, self._stop_w):
                os.close(fd)

    def _connect(self):
        import psycopg2
        conn = psycopg2.connect(dbname=self._db.database, **self._db.connect_params)
        conn.autocommit = True
        conn.cursor().execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self):
        delay = RETRY_FIRST
        while not self._stopping:
            conn = None
            try:
                conn = self._connect()
                self.listening = True
                delay = RETRY_FIRST
                self._on_notify(None)
                self._listen(conn)
            except Exception as exc:
                if not self._stopping:
                    log.warning("listening for run events failed (%s); streams poll until it is back, "
                                "trying again in %gs", exc, delay)
            finally:
                self.listening = False
                if conn is not None:
                    conn.close()
            if not self._stopping:
                select.select([self._stop_r], [], [], delay)
                delay = min(delay * 2, RETRY_MAX)

    def _listen(self, conn):
        while not self._stopping:
            ready, _, _ = select.select([conn, self._stop_r], [], [], IDLE_CHECK)
            if self._stop_r in ready:
                return
            if not ready:  # quiet for long: make sure the server is still there
                conn.cursor().execute("SELECT 1")
            conn.poll()
            while conn.notifies:
                self._on_notify(conn.notifies.pop(0).payload)
