"""The writer on a plain SQLite file: batches commit before anyone is told, a failing job fails alone."""

import sqlite3
import threading

import peewee
import pytest

from models.errors import StorageUnavailable
from models.writer import Writer, refusal
from tests.processes import wait_until


@pytest.fixture
def writer(tmp_path):
    path = str(tmp_path / "w.db")
    db = peewee.SqliteDatabase(path)
    db.execute_sql("CREATE TABLE t (v INTEGER UNIQUE)")
    db.close()
    writer = Writer(db, bridge=None)
    writer.path = path
    writer.db = db
    writer.start()
    yield writer
    writer.stop()


def stored(path):
    """What another connection sees: only what has committed."""
    with sqlite3.connect(path) as other:
        return sorted(v for (v,) in other.execute("SELECT v FROM t"))


def test_jobs_are_committed_before_done_and_a_failing_job_fails_alone(writer):
    seen, finished = {}, threading.Event()
    insert = lambda v: writer.db.execute_sql("INSERT INTO t VALUES (?)", (v,))  # noqa: E731

    def done(name):
        def report(result, error):
            seen[name] = (stored(writer.path), error)
            if len(seen) == 3:
                finished.set()
        return report

    writer.submit(insert, (1,), done("first"))
    writer.submit(insert, (1,), done("duplicate"))
    writer.submit(insert, (2,), done("second"))
    assert finished.wait(30)
    assert seen["first"][0] == [1, 2] and seen["first"][1] is None   # told after the commit
    assert isinstance(seen["duplicate"][1], peewee.IntegrityError)
    assert seen["second"][1] is None and stored(writer.path) == [1, 2]


def test_a_job_failing_in_a_batch_fails_alone_and_the_others_land_once(writer):
    # A gate holds the writer, so the next jobs are taken as one batch.
    gate, held = threading.Event(), threading.Event()
    writer.submit(lambda: (held.set(), gate.wait(30)))
    assert held.wait(30)
    insert = lambda *vs: [writer.db.execute_sql("INSERT INTO t VALUES (?)", (v,)) for v in vs]  # noqa: E731
    results, finished = {}, threading.Event()

    def done(name):
        def report(result, error):
            results[name] = error
            if len(results) == 4:
                finished.set()
        return report

    writer.submit(insert, (1,), done("first"))
    writer.submit(insert, (3, 1), done("half then duplicate"))  # its 3 must not stay
    writer.submit(insert, (2,), done("second"))
    writer.submit(lambda: 1 / 0, (), done("bug"))
    gate.set()
    assert finished.wait(30)
    assert results["first"] is None and results["second"] is None
    assert isinstance(results["half then duplicate"], peewee.IntegrityError)
    assert isinstance(results["bug"], ZeroDivisionError)
    assert stored(writer.path) == [1, 2]  # each once: the failed pass was undone


def test_a_refused_must_land_job_is_tried_again_until_it_lands(writer):
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise peewee.OperationalError("database is locked")
        writer.db.execute_sql("INSERT INTO t VALUES (7)")

    writer.submit_until_stored(flaky)
    assert wait_until(lambda: stored(writer.path) == [7], 30)
    assert len(tries) == 3


def test_stop_finishes_what_is_queued(writer):
    for v in range(50):
        writer.submit(lambda v=v: writer.db.execute_sql("INSERT INTO t VALUES (?)", (v,)))
    writer.stop()
    assert stored(writer.path) == list(range(50))


def test_refusals_are_told_apart_from_bugs():
    assert isinstance(refusal(peewee.OperationalError("disk I/O error")), StorageUnavailable)
    assert isinstance(refusal(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogate")), StorageUnavailable)
    assert refusal(KeyError("a bug")) is None
