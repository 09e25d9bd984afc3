"""The reader pool: results and errors come back to the loop; each thread has its own connection."""

import threading

import peewee
import pytest

from models.errors import WorkflowNotFound
from models.store import Readers, Store
from server.settings import SettingsError, load


@pytest.fixture
def database(tmp_path):
    db = peewee.SqliteDatabase(str(tmp_path / "r.db"))
    db.execute_sql("CREATE TABLE t (v INTEGER)")
    db.execute_sql("INSERT INTO t VALUES (1), (2)")
    db.close()
    return db


@pytest.mark.gen_test
async def test_reads_run_off_the_loop_on_their_own_connections(database):
    readers = Readers(database, size=3)
    readers.start()
    store = Store(writer=None, readers=readers)
    seen = []
    barrier = threading.Barrier(3, timeout=10)

    def read():
        barrier.wait()  # three reads at once: one on each thread
        seen.append((threading.get_ident(), id(database.connection())))
        return database.execute_sql("SELECT sum(v) FROM t").fetchone()[0]

    loop_thread = threading.get_ident()
    results = [store.read(read) for _ in range(3)]
    assert [await r for r in results] == [3, 3, 3]
    threads, connections = zip(*seen)
    assert len(set(threads)) == 3 and loop_thread not in threads
    assert len(set(connections)) == 3
    readers.stop()
    assert not any(t.is_alive() for t in readers._threads)


@pytest.mark.gen_test
async def test_a_read_that_raises_raises_in_the_awaiting_handler(database):
    readers = Readers(database, size=1)
    readers.start()

    def missing():
        raise WorkflowNotFound()

    with pytest.raises(WorkflowNotFound):
        await Store(None, readers).read(missing)
    assert await Store(None, readers).read(lambda a, b: a + b, 2, 3) == 5  # the thread lives on
    readers.stop()


def test_db_readers_setting_must_be_at_least_one():
    assert load(environ={}).db_readers == 4
    assert load(environ={"ACTORFLOW_DB_READERS": "2"}).db_readers == 2
    with pytest.raises(SettingsError):
        load(environ={"ACTORFLOW_DB_READERS": "0"})
    with pytest.raises(ValueError):
        Readers(None, size=0)
