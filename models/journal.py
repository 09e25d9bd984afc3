"""A run's writes, applied by the writer thread in the order the coordinator made them.

Ops are tuples: ("run", row), ("run_update", execution_id, fields),
("log", row), ("log_update", execution_id, block_id, fields), ("event", row),
and ("expect_workflow", workspace, workflow_id, version): the whole batch is
refused with StaleWorkflow unless that workflow is at that graph version.
This is the engine's hottest write path, so statements are built once per
shape and sent with `executemany`; values still go through each field's
`db_value`, so JSON and times are stored exactly as the models store them.
"""

import datetime

import peewee

from .base import database, storable_json
from .execution import BlockLog, Execution, ExecutionEvent
from .notify import runs_changed

# `database.obj` throughout: the proxy's database. Any other attribute read through
# the proxy (peewee's Proxy.__getattr__) first raises and drops an AttributeError.
_sql_cache = {}    # statements by shape and by the database's parameter style
_plans = {}        # per model and columns: [(name, type stored as is, db_value)]

# Fields whose db_value hands a value of this exact type back unchanged: skipped for those.
_AS_IS = {peewee.CharField: str, peewee.TextField: str, peewee.IntegerField: int,
          peewee.FloatField: float, peewee.BooleanField: bool, peewee.DateTimeField: datetime.datetime}


def _as_is(field):
    """The type `field.db_value` returns unchanged, or None. A foreign key is stored as its
    target's key (a str id here), through that field's db_value."""
    if type(field) is peewee.ForeignKeyField:
        return _as_is(field.rel_field)
    return _AS_IS.get(type(field))


class StaleWorkflow(Exception):
    """The workflow a run was planned from is no longer at that version (saved or deleted since)."""


def _quote(name):
    left, right = database.obj.quote  # e.g. '""' for SQLite and PostgreSQL, '``' for MySQL
    return f"{left}{name}{right}"


def _insert_sql(model, names):
    p = database.obj.param
    key = ("insert", model, names, p)
    sql = _sql_cache.get(key)
    if sql is None:
        cols = ", ".join(_quote(model._meta.fields[n].column_name) for n in names)
        sql = (f"INSERT INTO {_quote(model._meta.table_name)} ({cols}) "
               f"VALUES ({', '.join([p] * len(names))})")
        _sql_cache[key] = sql
    return sql


def _update_sql(model, names, where):
    p = database.obj.param
    key = ("update", model, names, where, p)
    sql = _sql_cache.get(key)
    if sql is None:
        sets = ", ".join(f"{_quote(model._meta.fields[n].column_name)} = {p}" for n in names)
        cond = " AND ".join(f"{_quote(model._meta.fields[n].column_name)} = {p}" for n in where)
        sql = f"UPDATE {_quote(model._meta.table_name)} SET {sets} WHERE {cond}"
        _sql_cache[key] = sql
    return sql


def _values(model, names, row):
    plan = _plans.get((model, names))
    if plan is None:
        fields = model._meta.fields
        plan = _plans[(model, names)] = [(n, _as_is(fields[n]), fields[n].db_value) for n in names]
    # None is stored as NULL by every field here; a str for a CharField needs no call either.
    return [v if v is None or type(v) is as_is else db_value(v)
            for n, as_is, db_value in plan for v in (row[n],)]


def insert_rows(model, rows):
    """Insert `rows` (mappings) with statements built once per set of columns: `executemany`."""
    _insert_all(database.obj.cursor(), model, rows)


def apply(ops):
    """Write `ops` (in one transaction, the writer's).

    A row inserted and then updated in the same batch (a quick block started
    and ended between two commits, a run that ran within one) is inserted
    once, with its final values. Inserts go table by table with one
    `executemany` each (runs, then logs, then events); updates of rows stored
    earlier keep their order. Nothing reads these tables inside the
    transaction, so only the final state matters.
    """
    runs, logs, events, updates, expected = [], [], [], [], []
    run_at, log_at = {}, {}  # key -> index in runs / logs, for rows inserted in this batch
    for op in ops:
        kind = op[0]
        if kind == "event":
            events.append(op[1])
        elif kind == "log":
            row = op[1]
            log_at[(row["execution"], row["block_id"])] = len(logs)
            logs.append(row)
        elif kind == "log_update":
            at = log_at.get((op[1], op[2]))
            if at is None:
                updates.append(op)
            else:
                logs[at] = {**logs[at], **op[3]}  # a copy: the caller's rows stay as they were
        elif kind == "run":
            run_at[op[1]["id"]] = len(runs)
            runs.append(op[1])
        elif kind == "run_update":
            at = run_at.get(op[1])
            if at is None:
                updates.append(op)
            else:
                runs[at] = {**runs[at], **op[2]}
        elif kind == "expect_workflow":
            expected.append(op)
        else:
            raise ValueError(f"unknown journal op {kind!r}")
    for _, workspace, workflow_id, version in expected:
        if workflow_version(workspace, workflow_id) != version:
            raise StaleWorkflow(workflow_id)
    cursor = database.obj.cursor()
    _insert_all(cursor, Execution, runs)
    _insert_all(cursor, BlockLog, logs)
    for op in updates:
        if op[0] == "run_update":
            names = tuple(op[2])
            cursor.execute(_update_sql(Execution, names, ("id",)),
                           _values(Execution, names, op[2]) + [op[1]])
        else:
            names = tuple(op[3])
            cursor.execute(_update_sql(BlockLog, names, ("execution", "block_id")),
                           _values(BlockLog, names, op[3]) + [op[1], op[2]])
    _insert_all(cursor, ExecutionEvent, events)
    runs_changed({row["execution"] for row in events})


def workflow_version(workspace, workflow_id):
    """The workflow's graph version, or None when the workspace has no such workflow.

    Raw SQL: this is on the execute hot path (a run's read, or its start's check).
    """
    db = database.obj
    sql = _sql_cache.get(("version", db.param))
    if sql is None:
        sql = _sql_cache[("version", db.param)] = (
            f"SELECT version FROM {_quote('workflow')} WHERE id = {db.param} AND workspace = {db.param}")
    row = db.execute_sql(sql, (workflow_id, workspace)).fetchone()
    return row[0] if row is not None else None


def _insert_all(cursor, model, rows):
    """One `executemany` per set of columns.

    Rows are made by one constructor per table, and a merged update only adds
    to a row's keys: rows as long as the first have its columns.
    """
    if not rows:
        return
    names = tuple(rows[0])
    if len(set(map(len, rows))) > 1:
        by_names = {}
        for row in rows:
            by_names.setdefault(tuple(row), []).append(row)
    else:
        by_names = {names: rows}
    for names, group in by_names.items():
        cursor.executemany(_insert_sql(model, names), [_values(model, names, row) for row in group])


def fail_run(execution_id, row, reason, seq, event_text, finished_at, duration_ms):
    """Writer job: end a run whose writes the store refused, as `failed` with `reason`.

    `row` is the run's first row when it never got stored: it is stored now
    (with its values made storable). Running block logs are cancelled, and the
    end event is stored after the run's last stored one (at `seq` or later),
    so a re-attached stream replays it and ends.
    """
    exists = Execution.select(Execution.id).where(Execution.id == execution_id).exists()
    if not exists:
        if row is None:
            return False
        row = dict(row, variables=storable_json(row.get("variables")),
                   trigger_payload=storable_json(row.get("trigger_payload")))
        Execution.insert(**row).execute()
    changed = (Execution.update(status="failed", error=reason, output=None, finished_at=finished_at,
                                duration_ms=duration_ms)
               .where((Execution.id == execution_id) & (Execution.status == "running")).execute())
    if not changed:
        return False  # it ended some other way meanwhile (e.g. marked by a restart)
    (BlockLog.update(status="cancelled", error=reason, finished_at=finished_at)
     .where((BlockLog.execution == execution_id) & (BlockLog.status == "running")).execute())
    last = (ExecutionEvent.select(peewee.fn.MAX(ExecutionEvent.seq))
            .where(ExecutionEvent.execution == execution_id).scalar()) or 0
    ExecutionEvent.insert(execution=execution_id, seq=max(seq, last + 1), data=event_text).execute()
    runs_changed([execution_id])
    return True
