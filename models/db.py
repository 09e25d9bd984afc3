"""Open the database named by a URL, and bring its schema up to date.

SQLite runs in WAL mode with a busy timeout, and every transaction begins
IMMEDIATE: a deferred transaction that reads then writes loses to "database is
locked" when two writers meet. PostgreSQL comes through the same URL setting.
"""

import os
import sqlite3
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

from .base import BaseModel, database, utcnow
from .execution import BlockLog, Execution, ExecutionEvent, ProcessRow
from .workflow import Block, Edge, GraphSnapshot, Workflow, store_snapshot
from .workspace import ApiKey, Workspace

SQLITE_PRAGMAS = (
    ("journal_mode", "wal"),
    # In WAL mode NORMAL survives a process crash or kill -9; only an OS crash
    # or power loss may drop the last commits.
    ("synchronous", "normal"),
    ("foreign_keys", 1),
)


class SchemaVersion(BaseModel):
    version = peewee.IntegerField()
    applied_at = peewee.DateTimeField(default=utcnow)


def _v1_tables():
    database.create_tables([Workspace, ApiKey, Workflow, Block, Edge,
                            Execution, BlockLog, ExecutionEvent, ProcessRow])


def _add_missing_columns(wanted):
    """Add the model fields in `wanted` [(model, names)] that the tables lack.

    _v1_tables builds today's models, so a fresh database has them already.
    """
    from playhouse.migrate import SchemaMigrator, migrate as apply
    migrator = SchemaMigrator.from_database(database.obj)
    steps = []
    for model, names in wanted:
        have = {c.name for c in database.get_columns(model._meta.table_name)}
        for name in names:
            if name not in have:
                steps.append(migrator.add_column(model._meta.table_name, name, model._meta.fields[name]))
    apply(*steps)


def _v2_durable_runs():
    """Graph snapshots per version, and what a resumed run needs on its rows."""
    database.create_tables([GraphSnapshot])
    _add_missing_columns([(Execution, ("graph_version", "timeout", "trigger_payload")),
                          (BlockLog, ("resumed",))])
    stored = {w for (w,) in GraphSnapshot.select(GraphSnapshot.workflow).tuples()}
    for wf_id, version in Workflow.select(Workflow.id, Workflow.version).where(Workflow.version > 0).tuples():
        if wf_id not in stored:
            store_snapshot(wf_id, version)


def _v3_schedules():
    from .schedule import ScheduleState
    database.create_tables([ScheduleState])


def _v4_parent_runs():
    """Sub-runs (workflow and map blocks) name the run, block and item that started them."""
    # add_column also makes the index of parent_execution_id.
    _add_missing_columns([(Execution, ("parent_execution_id", "parent_block_id", "parent_index"))])


def _v5_run_depth():
    """A run's depth (see actors.plan.DEPTH_HEADER), so a resumed run keeps it."""
    _add_missing_columns([(Execution, ("depth",))])


def _v6_run_indexes():
    """Fewer index writes per run: the indexes models.execution now names, in place of five."""
    # execution_workflow and execution_status become (workflow, status); execution_owner
    # becomes execution_running_owner; block_log_execution was a prefix of
    # (execution, block_id); execution_event_execution becomes (execution, seq).
    for name in ("execution_workflow", "execution_status", "execution_owner",
                 "block_log_execution", "execution_event_execution"):
        database.execute_sql(f'DROP INDEX IF EXISTS "{name}"')
    for model in (Execution, BlockLog, ExecutionEvent):
        model._schema.create_indexes(safe=True)


# Append new steps here; never edit one that has shipped.
MIGRATIONS = [_v1_tables, _v2_durable_runs, _v3_schedules, _v4_parent_runs,
              _v5_run_depth, _v6_run_indexes]


def open_database(url: str, busy_timeout: float = 10.0) -> peewee.Database:
    """Connect the shared proxy to `url` (sqlite:///rel/path, sqlite:////abs, postgresql://...).

    `busy_timeout`: how long (seconds) a write waits for another process's
    lock before the store refuses it (SQLite's busy timeout, PostgreSQL's
    lock_timeout: without it PostgreSQL waits for ever, and so would every
    write of this server behind it).
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        _bind_directly()
        path = url[len("sqlite:///"):]
        pragmas = SQLITE_PRAGMAS + (("busy_timeout", int(busy_timeout * 1000)),)
        db = peewee.SqliteDatabase(path, pragmas=pragmas, lock_type="IMMEDIATE",
                                   timeout=busy_timeout)
        if path and path != ":memory:":
            _private(path)
    else:
        # lock_timeout=0 would mean "no limit": a zero busy timeout is the shortest wait instead.
        db = connect(url, options=f"-c lock_timeout={max(1, int(busy_timeout * 1000))}")
    database.initialize(db)
    return db


def _bind_directly():
    """None and bool bound as sqlite3 binds them anyway (NULL; 1 or 0), without its adapter search.

    sqlite3 searches for an adapter for every parameter that is not exactly an
    int, float, str or bytearray, and a search that finds none raises and drops
    an AttributeError on the way: about 5,000 instructions for each NULL or
    boolean in a row, a tenth of the writer's work per run. With an adapter
    registered the search ends at its first lookup.
    """
    sqlite3.register_adapter(type(None), _null)
    sqlite3.register_adapter(bool, int)


def _null(_value):
    return None


def _private(path):
    """Make the database's folder (when we create it) and files readable by this user only.

    Code blocks run as other users; they must not read the database.
    SQLite gives the -wal and -shm files the database file's mode.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def migrate():
    """Apply the migrations this database has not seen, in one transaction each."""
    database.create_tables([SchemaVersion])
    for version, step in enumerate(MIGRATIONS, start=1):
        # Read inside the (IMMEDIATE) transaction: two processes may start together.
        with database.atomic():
            current = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar() or 0
            if version > current:
                step()
                SchemaVersion.create(version=version)


def backup(path: str) -> int:
    """Copy the open SQLite database to a new file at `path`, consistently, while others write.

    SQLite's online backup API copies a snapshot; writers are not blocked for
    long. Returns the number of pages copied.
    """
    import sqlite3
    if os.path.exists(path):
        raise FileExistsError(path)
    source = database.obj.connection()
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    target = sqlite3.connect(path)
    try:
        source.backup(target)
        pages = target.execute("PRAGMA page_count").fetchone()[0]
    finally:
        target.close()
    return pages
