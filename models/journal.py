"""A run's writes, applied by the writer thread in the order the coordinator made them.

Ops are tuples: ("run", row), ("run_update", execution_id, fields),
("log", row), ("log_update", execution_id, block_id, fields), ("event", row).
This is the engine's hottest write path, so statements are built once per
shape and sent with `executemany`; values still go through each field's
`db_value`, so JSON and times are stored exactly as the models store them.
"""

import peewee

from .base import database, storable_json
from .execution import BlockLog, Execution, ExecutionEvent

_INSERTS = {"run": Execution, "log": BlockLog, "event": ExecutionEvent}
_sql_cache = {}


def _quote(name):
    left, right = database.quote  # e.g. '""' for SQLite and PostgreSQL, '``' for MySQL
    return f"{left}{name}{right}"


def _insert_sql(model, names):
    key = ("insert", model, names)
    sql = _sql_cache.get(key)
    if sql is None:
        p = database.param
        cols = ", ".join(_quote(model._meta.fields[n].column_name) for n in names)
        sql = (f"INSERT INTO {_quote(model._meta.table_name)} ({cols}) "
               f"VALUES ({', '.join([p] * len(names))})")
        _sql_cache[key] = sql
    return sql


def _update_sql(model, names, where):
    key = ("update", model, names, where)
    sql = _sql_cache.get(key)
    if sql is None:
        p = database.param
        sets = ", ".join(f"{_quote(model._meta.fields[n].column_name)} = {p}" for n in names)
        cond = " AND ".join(f"{_quote(model._meta.fields[n].column_name)} = {p}" for n in where)
        sql = f"UPDATE {_quote(model._meta.table_name)} SET {sets} WHERE {cond}"
        _sql_cache[key] = sql
    return sql


def _values(model, names, row):
    fields = model._meta.fields
    return [fields[n].db_value(row[n]) for n in names]


def insert_rows(model, rows):
    """Insert `rows` (mappings with the same keys) with one statement built once: `executemany`."""
    if rows:
        names = tuple(rows[0])
        database.cursor().executemany(_insert_sql(model, names),
                                      [_values(model, names, row) for row in rows])


def apply(ops):
    cursor = database.cursor()
    pending_kind, pending_rows = None, []

    def flush():
        if pending_rows:
            model = _INSERTS[pending_kind]
            names = tuple(pending_rows[0])
            cursor.executemany(_insert_sql(model, names),
                               [_values(model, names, row) for row in pending_rows])
            pending_rows.clear()

    for op in ops:
        kind = op[0]
        if kind in _INSERTS:
            if kind != pending_kind:
                flush()
                pending_kind = kind
            pending_rows.append(op[1])
            continue
        flush()
        if kind == "run_update":
            names = tuple(op[2])
            cursor.execute(_update_sql(Execution, names, ("id",)),
                           _values(Execution, names, op[2]) + [op[1]])
        elif kind == "log_update":
            names = tuple(op[3])
            cursor.execute(_update_sql(BlockLog, names, ("execution", "block_id")),
                           _values(BlockLog, names, op[3]) + [op[1], op[2]])
        else:
            raise ValueError(f"unknown journal op {kind!r}")
    flush()


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
    return True
