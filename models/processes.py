"""Which server processes are alive, and what happens to runs whose owner died."""

import datetime
import os
import socket

from .base import utcnow
from .execution import BlockLog, Execution, ProcessRow

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
    now = utcnow()
    ids = [i for (i,) in Execution.select(Execution.id)
           .where((Execution.status == "running") & Execution.owner.in_(list(dead))).tuples()]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        (BlockLog.update(status="cancelled", error=STOPPED, finished_at=now)
         .where(BlockLog.execution.in_(chunk) & (BlockLog.status == "running")).execute())
        (Execution.update(status="failed", error=STOPPED, finished_at=now)
         .where(Execution.id.in_(chunk) & (Execution.status == "running")).execute())
    ProcessRow.delete().where(ProcessRow.id.in_(list(dead))).execute()
    return len(ids)
