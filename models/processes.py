"""Which server processes are alive, and what happens to runs whose owner died."""

import datetime
import os
import socket

import peewee

from .base import utcnow
from .execution import BlockLog, Execution, ExecutionEvent, ProcessRow
from .notify import runs_changed
from .workflow import graph_of_version

STOPPED = "server stopped before the run finished"


def register(process_id: str):
    ProcessRow.create(id=process_id, host=socket.gethostname(), pid=os.getpid())


def heartbeat(process_id: str):
    ProcessRow.update(heartbeat_at=utcnow()).where(ProcessRow.id == process_id).execute()


def unregister(process_id: str):
    ProcessRow.delete().where(ProcessRow.id == process_id).execute()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_owners(me: str, stale_after: float) -> set:
    """Owners of running runs that are gone: no row, same host and no such pid, or a stale heartbeat."""
    owners = {o for (o,) in Execution.select(Execution.owner)
              .where((Execution.status == "running") & (Execution.owner != me)).distinct().tuples()}
    if not owners:
        return set()
    rows = {p.id: p for p in ProcessRow.select().where(ProcessRow.id.in_(list(owners)))}
    host = socket.gethostname()
    limit = utcnow() - datetime.timedelta(seconds=stale_after)
    dead = set()
    for owner in owners:
        row = rows.get(owner)
        if row is None or row.heartbeat_at < limit:
            dead.add(owner)
        elif row.host == host and (row.pid == os.getpid() or not _pid_alive(row.pid)):
            dead.add(owner)
    return dead


def resolve_orphans(me: str, stale_after: float) -> int:
    """Mark runs of dead owners failed (their running block logs cancelled). Returns how many."""
    dead = dead_owners(me, stale_after)
    if not dead:
        return 0
    ids = [i for (i,) in Execution.select(Execution.id)
           .where((Execution.status == "running") & Execution.owner.in_(list(dead))).tuples()]
    fail_runs(ids)
    ProcessRow.delete().where(ProcessRow.id.in_(list(dead))).execute()
    return len(ids)


def fail_runs(ids, error=STOPPED):
    """Mark these runs failed and their running block logs cancelled."""
    now = utcnow()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        (BlockLog.update(status="cancelled", error=error, finished_at=now)
         .where(BlockLog.execution.in_(chunk) & (BlockLog.status == "running")).execute())
        (Execution.update(status="failed", error=error, finished_at=now)
         .where(Execution.id.in_(chunk) & (Execution.status == "running")).execute())
        runs_changed(chunk)  # streams following them from another process end now


def claim(execution_id: str, me: str, dead_owner: str) -> bool:
    """Take over a run of a dead owner. One conditional UPDATE: exactly one process wins."""
    return (Execution.update(owner=me)
            .where((Execution.id == execution_id) & (Execution.owner == dead_owner)
                   & (Execution.status == "running")).execute()) == 1


def claim_orphans(me: str, stale_after: float, limit: int = 1000) -> list:
    """Claim the running runs of dead owners; return what each needs to go on (see resume_data).

    Runs that cannot go on (stored before snapshots, or their graph is gone)
    are marked failed instead. A dead owner's row goes once none of its runs is left.
    """
    dead = dead_owners(me, stale_after)
    if not dead:
        return []
    orphans = list(Execution.select(Execution.id, Execution.owner)
                   .where((Execution.status == "running") & Execution.owner.in_(list(dead)))
                   .order_by(Execution.pk).limit(limit).tuples())
    claimed, hopeless = [], []
    for execution_id, owner in orphans:
        if not claim(execution_id, me, owner):
            continue  # another process was faster
        data = resume_data(execution_id)
        if data is None:
            hopeless.append(execution_id)
        else:
            claimed.append(data)
    fail_runs(hopeless)
    left = {o for (o,) in Execution.select(Execution.owner)
            .where((Execution.status == "running") & Execution.owner.in_(list(dead))).distinct().tuples()}
    ProcessRow.delete().where(ProcessRow.id.in_(list(dead - left))).execute()
    return claimed


def resume_data(execution_id: str):
    """Plain data to continue a run: its row, block logs, counters and graph; None if it cannot."""
    row = Execution.get(Execution.id == execution_id)
    if row.graph_version is None or row.timeout is None:
        return None
    graph = graph_of_version(row.workflow, row.graph_version)
    if graph is None:
        return None
    logs = [{"block_id": b, "status": s, "output": o, "attempts": a}
            for b, s, o, a in BlockLog.select(BlockLog.block_id, BlockLog.status, BlockLog.output,
                                              BlockLog.attempts)
            .where(BlockLog.execution == execution_id).order_by(BlockLog.seq).tuples()]
    last_log = (BlockLog.select(peewee.fn.MAX(BlockLog.seq))
                .where(BlockLog.execution == execution_id).scalar()) or 0
    last_event = (ExecutionEvent.select(peewee.fn.MAX(ExecutionEvent.seq))
                  .where(ExecutionEvent.execution == execution_id).scalar()) or 0
    run = {"id": row.id, "workflow": row.workflow, "workspace": row.workspace,
           "trigger": row.trigger, "variables": row.variables, "trigger_payload": row.trigger_payload,
           "started_at": row.started_at, "timeout": row.timeout, "graph_version": row.graph_version,
           "parent_execution_id": row.parent_execution_id, "parent_block_id": row.parent_block_id,
           "parent_index": row.parent_index, "depth": row.depth or 0}
    return {"run": run, "logs": logs, "seq": last_event, "log_seq": last_log,
            "blocks": graph[0], "edges": graph[1]}
