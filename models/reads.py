"""What the handlers read, as plain data: each function runs on a reader thread (models.store).

Each returns dicts, lists and tuples (or raises a domain error), so nothing
that holds a connection or lazily queries crosses back to the IOLoop.
"""

from . import execution as ex
from . import workflow as wf
from .workspace import workspace_for_key


def key_workspace(key: str):
    """The workspace of an API key, or None."""
    return workspace_for_key(key)


def workflow_exists(workspace: str, workflow_id: str) -> str:
    """The workflow's id, or WorkflowNotFound."""
    return wf.get_workflow(workspace, workflow_id).id


def workflows_page(workspace: str, limit: int, offset: int) -> dict:
    rows, total = wf.list_workflows(workspace, limit, offset)
    return {"workflows": [wf.workflow_json(r) for r in rows],
            "total": total, "limit": limit, "offset": offset}


def workflow_full(workspace: str, workflow_id: str, public_url: str) -> dict:
    return wf.full_workflow_json(wf.get_workflow(workspace, workflow_id), public_url)


def executions_page(workspace: str, workflow_id: str, limit: int, offset: int, status) -> dict:
    row = wf.get_workflow(workspace, workflow_id)
    rows, total = ex.list_executions(row.id, limit, offset, status)
    return {"executions": [ex.execution_json(r) for r in rows],
            "total": total, "limit": limit, "offset": offset}


def execution_full(workspace: str, workflow_id: str, execution_id: str) -> dict:
    row = wf.get_workflow(workspace, workflow_id)
    return ex.execution_json(ex.get_execution(row.id, execution_id), full=True)


def execution_logs(workspace: str, workflow_id: str, execution_id: str, limit: int, offset: int) -> dict:
    row = ex.get_execution(wf.get_workflow(workspace, workflow_id).id, execution_id)
    rows, total = ex.logs_of(row.id, limit, offset)
    return {"execution_id": row.id, "logs": [ex.log_json(r) for r in rows],
            "total": total, "limit": limit, "offset": offset}


def execution_of(workspace: str, workflow_id: str, execution_id: str):
    """(workflow id, execution id, status), or a NotFound."""
    workflow = wf.get_workflow(workspace, workflow_id)
    row = ex.get_execution(workflow.id, execution_id)
    return workflow.id, row.id, row.status


def graph_to_run(workflow_id: str, version: int):
    """(blocks, edges) of that version of the graph (the live graph when it is not stored)."""
    saved = wf.graph_of_version(workflow_id, version)
    return saved if saved is not None else wf.load_graph(workflow_id)


def stored_poll(execution_id: str, after: int, limit: int):
    """One look at a run followed from the database: (events, status, last event, end row).

    events: [(seq, text)] after `after`. When there are none, `status` is the
    run's stored status; when it is no longer running (and still nothing came,
    its end and last events commit together), `last` is its last stored
    (seq, text) and `end` its (id, status, output, error, duration_ms, error_block).
    """
    rows = ex.stored_events(execution_id, after, limit)
    if rows:
        return rows, None, None, None
    status = ex.status_of(execution_id)
    if status == "running":
        return [], status, None, None
    rows = ex.stored_events(execution_id, after, limit)
    if rows:
        return rows, status, None, None
    return [], status, ex.last_event(execution_id), ex.end_row(execution_id)


def child_run_of(parent_execution_id: str, parent_block_id: str, index):
    """{id, status, output, error} of the best sub-run a block item started (see execution.child_run), or None."""
    row = ex.child_run(parent_execution_id, parent_block_id, index)
    return None if row is None else {"id": row.id, "status": row.status, "output": row.output,
                                     "error": row.error}
