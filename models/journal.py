"""A run's writes, applied by the writer thread in the order the coordinator made them.

Ops are tuples: ("run", row), ("run_update", execution_id, fields),
("log", row), ("log_update", execution_id, block_id, fields), ("event", row).
Consecutive inserts of one kind go in one INSERT.
"""

from .execution import BlockLog, Execution, ExecutionEvent

_INSERTS = {"run": Execution, "log": BlockLog, "event": ExecutionEvent}


def apply(ops):
    pending_kind, pending_rows = None, []

    def flush():
        if pending_rows:
            model = _INSERTS[pending_kind]
            for start in range(0, len(pending_rows), 100):
                model.insert_many(pending_rows[start:start + 100]).execute()
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
            Execution.update(**op[2]).where(Execution.id == op[1]).execute()
        elif kind == "log_update":
            (BlockLog.update(**op[3])
             .where((BlockLog.execution == op[1]) & (BlockLog.block_id == op[2])).execute())
        else:
            raise ValueError(f"unknown journal op {kind!r}")
    flush()
