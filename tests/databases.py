"""Which database the tests run on: a SQLite file, or a fresh PostgreSQL database per use.

Set ACTORFLOW_TEST_DATABASE_URL=postgresql://user@host:port/postgres (a server
we may CREATE DATABASE on) to run the suite against PostgreSQL; unset, every
test gets its own SQLite file.
"""

import os
import uuid

import pytest

SERVER = os.environ.get("ACTORFLOW_TEST_DATABASE_URL", "")
ON_POSTGRES = SERVER.startswith(("postgres://", "postgresql://"))

# For tests that are about SQLite itself (its file, its locks, its backup API).
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="about SQLite itself; not run on PostgreSQL")

_created = []


def database_url(tmp_path, name="af.db"):
    """A fresh, empty database: `sqlite:///<tmp_path>/<name>`, or a new PostgreSQL database."""
    if not ON_POSTGRES:
        return f"sqlite:///{tmp_path / name}"
    import psycopg2
    db = "t_" + uuid.uuid4().hex[:16]
    admin = psycopg2.connect(SERVER)
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {db}")
    finally:
        admin.close()
    _created.append(db)
    return SERVER.rsplit("/", 1)[0] + "/" + db


def drop_created(since=0):
    """Drop the databases made since `_created` had `since` entries (after each test, and at the end)."""
    if len(_created) <= since:
        return
    import psycopg2
    admin = psycopg2.connect(SERVER)
    admin.autocommit = True
    try:
        while len(_created) > since:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {_created.pop()} WITH (FORCE)")
    finally:
        admin.close()


def created():
    """How many databases exist now (see drop_created)."""
    return len(_created)


def query(url, sql, args=()):
    """Rows of one statement (committed) on the database at `url` (SQLite or PostgreSQL), `?` for parameters."""
    from playhouse.db_url import connect
    if url.startswith("sqlite:///"):
        import peewee
        db = peewee.SqliteDatabase(url[len("sqlite:///"):], timeout=30)
    else:
        db = connect(url)
        sql = sql.replace("?", "%s")
    try:
        cursor = db.execute_sql(sql, args)
        return cursor.fetchall() if cursor.description else []
    finally:
        db.close()
