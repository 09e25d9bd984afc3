"""Executions, their per-block logs and event log, and the processes that own them."""

import peewee

from models.errors import ExecutionNotFound
from .base import BaseModel, JSONField, iso, utcnow


class Execution(BaseModel):
    pk = peewee.AutoField()
    id = peewee.CharField(unique=True)
    workflow = peewee.CharField()
    workspace = peewee.CharField()
    status = peewee.CharField()
    trigger = peewee.CharField()
    variables = JSONField(null=True)
    output = JSONField(null=True)
    error = peewee.TextField(null=True)
    error_block = peewee.CharField(null=True)
    owner = peewee.CharField(null=True)
    started_at = peewee.DateTimeField()
    finished_at = peewee.DateTimeField(null=True)
    duration_ms = peewee.IntegerField(null=True)
    # What a resume needs beyond the logs: the graph it ran, its time budget, the webhook call.
    graph_version = peewee.IntegerField(null=True)
    timeout = peewee.FloatField(null=True)
    trigger_payload = JSONField(null=True)
    # A sub-run (workflow or map block) points at the run and block that started it.
    parent_execution_id = peewee.CharField(null=True, index=True)
    parent_block_id = peewee.CharField(null=True)
    parent_index = peewee.IntegerField(null=True)   # the item's index, for map blocks
    # How many runs started this one (X-Actorflow-Depth, sub-runs): a resumed run keeps its limit.
    depth = peewee.IntegerField(null=True)

    class Meta:
        # Each index is written with every run, so only those the queries use: a
        # workflow's runs (with or without a status), and the runs still running, by
        # owner (a partial index: a finished run leaves it, a run stored finished never
        # enters it).
        indexes = ((("workflow", "status"), False),)


Execution.add_index(Execution.index(Execution.owner, name="execution_running_owner",
                                    where=(Execution.status == "running")))


class BlockLog(BaseModel):
    pk = peewee.AutoField()
    execution = peewee.CharField()  # indexed first in (execution, block_id)
    seq = peewee.IntegerField()
    block_id = peewee.CharField()
    block_type = peewee.CharField()
    status = peewee.CharField()
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    duration_ms = peewee.IntegerField(null=True)
    input = JSONField(null=True)
    output = JSONField(null=True)
    error = peewee.TextField(null=True)
    attempts = peewee.IntegerField(default=0)
    stdout = peewee.TextField(null=True)
    resumed = peewee.BooleanField(null=True)  # true: started again after its server stopped

    class Meta:
        indexes = ((("execution", "block_id"), True),)


class ExecutionEvent(BaseModel):
    """The run's stream events (all but chunks), for replaying a finished run."""
    pk = peewee.AutoField()
    execution = peewee.CharField()
    seq = peewee.IntegerField()
    data = peewee.TextField()

    class Meta:
        indexes = ((("execution", "seq"), False),)  # a replay reads them in order


class ProcessRow(BaseModel):
    """A server process that owns runs; its heartbeat shows it is alive."""
    id = peewee.CharField(primary_key=True)
    host = peewee.CharField()
    pid = peewee.IntegerField()
    started_at = peewee.DateTimeField(default=utcnow)
    heartbeat_at = peewee.DateTimeField(default=utcnow)


def execution_json(row: Execution, full=False) -> dict:
    body = {
        "id": row.id,
        "workflow_id": row.workflow,
        "status": row.status,
        "trigger": row.trigger,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration_ms": row.duration_ms,
        "error": row.error,
        "graph_version": row.graph_version,
        "parent_execution_id": row.parent_execution_id,
        "parent_block_id": row.parent_block_id,
    }
    if row.parent_index is not None:
        body["parent_index"] = row.parent_index
    if full:
        body["block_id"] = row.error_block
        body["variables"] = row.variables
        body["output"] = row.output
        # What started the run: a schedule's tick, a webhook's call; null for API runs.
        body["trigger_payload"] = row.trigger_payload
    return body


def log_json(row: BlockLog) -> dict:
    body = {
        "block_id": row.block_id,
        "block_type": row.block_type,
        "status": row.status,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration_ms": row.duration_ms,
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "attempts": row.attempts,
    }
    if row.resumed:
        body["resumed"] = True
    if row.block_type == "code" or row.stdout is not None:
        body["stdout"] = row.stdout if row.stdout is not None else ""
    return body


def list_executions(workflow_id: str, limit: int, offset: int, status: str | None):
    query = Execution.select().where(Execution.workflow == workflow_id)
    if status:
        query = query.where(Execution.status == status)
    total = query.count()
    rows = [] if limit == 0 else list(query.order_by(Execution.pk.desc()).limit(limit).offset(offset))
    return rows, total


def get_execution(workflow_id: str, execution_id: str) -> Execution:
    row = Execution.get_or_none((Execution.id == execution_id) & (Execution.workflow == workflow_id))
    if row is None:
        raise ExecutionNotFound()
    return row


def logs_of(execution_id: str, limit: int, offset: int):
    """(a page of the run's block logs in the order they started, how many it has)."""
    query = BlockLog.select().where(BlockLog.execution == execution_id)
    total = query.count()
    rows = [] if limit == 0 else list(query.order_by(BlockLog.seq).limit(limit).offset(offset))
    return rows, total


def delete_executions_of(workflow_id: str):
    ids = Execution.select(Execution.id).where(Execution.workflow == workflow_id)
    BlockLog.delete().where(BlockLog.execution.in_(ids)).execute()
    ExecutionEvent.delete().where(ExecutionEvent.execution.in_(ids)).execute()
    Execution.delete().where(Execution.workflow == workflow_id).execute()


def child_run(parent_execution_id: str, parent_block_id: str, index):
    """The best sub-run a block (item `index` of a map, or None) started.

    Completed first, then one still running, then the newest that ended
    otherwise: a sub-run that ended is never run again for the same item.
    """
    query = Execution.select().where((Execution.parent_execution_id == parent_execution_id)
                                     & (Execution.parent_block_id == parent_block_id))
    query = query.where(Execution.parent_index.is_null() if index is None
                        else Execution.parent_index == index)
    rank = peewee.Case(None, [(Execution.status == "completed", 0), (Execution.status == "running", 1)], 2)
    return query.order_by(rank, Execution.pk.desc()).first()


def stored_events(execution_id: str, after: int, limit: int):
    """A page of stored events after `after`: [(seq, text)]."""
    return list(ExecutionEvent.select(ExecutionEvent.seq, ExecutionEvent.data)
                .where((ExecutionEvent.execution == execution_id) & (ExecutionEvent.seq > after))
                .order_by(ExecutionEvent.seq).limit(limit).tuples())


def status_of(execution_id: str):
    row = (Execution.select(Execution.status).where(Execution.id == execution_id)
           .tuples().first())
    return row[0] if row else None


def last_event(execution_id: str):
    """(seq, text) of the run's last stored event, or None."""
    return (ExecutionEvent.select(ExecutionEvent.seq, ExecutionEvent.data)
            .where(ExecutionEvent.execution == execution_id)
            .order_by(ExecutionEvent.seq.desc()).tuples().first())


def end_row(execution_id: str):
    """(id, status, output, error, duration_ms, error_block) of a run, or None."""
    row = Execution.get_or_none(Execution.id == execution_id)
    if row is None:
        return None
    return row.id, row.status, row.output, row.error, row.duration_ms, row.error_block or None
