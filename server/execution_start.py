"""Starting a run from a request: load the workflow, plan, start. Shared by /execute, SSE, webhooks."""

import re

from actors.dag import Graph
from actors.plan import DEPTH_HEADER, plan_run
from models import workflow as wf_model
from actors.persist import STORAGE_CODE
from models.errors import (DepthExceeded, ExecutionFailed, ExecutionTimeout, ShuttingDown,
                           StorageUnavailable, ValidationError)


class GraphCache:
    """Recently run graphs, keyed by workflow id and graph version. Loop thread only."""

    def __init__(self, size=256):
        self._size = size
        self._entries = {}

    def get(self, workflow_id, version):
        """(blocks, edges, Graph) of that version of the workflow's graph."""
        hit = self._entries.get(workflow_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        saved = wf_model.graph_of_version(workflow_id, version)
        blocks, edges = saved if saved is not None else wf_model.load_graph(workflow_id)
        entry = (blocks, edges, Graph.build(blocks, edges))
        if len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[workflow_id] = (version, entry)
        return entry


def request_depth(headers, max_depth) -> int:
    """The depth of a run a request would start, from its X-Actorflow-Depth header.

    No header: 0. Anything but 1-9 ASCII digits: ValidationError. Deeper than
    `max_depth`: DepthExceeded (nothing is started).
    """
    raw = headers.get(DEPTH_HEADER)
    if raw is None:
        return 0
    raw = raw.strip()
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise ValidationError(f"{DEPTH_HEADER} must be a non-negative integer")
    depth = int(raw)
    if depth > max_depth:
        raise DepthExceeded(f"run refused: {DEPTH_HEADER} is {depth}, deeper than the limit of "
                            f"{max_depth} (a workflow calling itself, or a loop of workflows?)")
    return depth


def start_run(runtime, wf, variables, trigger, timeout, webhook_block=None, trigger_payload=None,
              depth=0, parent=None):
    """Plan and start a run of `wf` (a Workflow row or WorkflowRef) at `depth`.

    `parent` (plan.Parent) links a sub-run to the block that started it.

    Raises ValidationError before any run exists.
    """
    if not runtime.runs.accepting:
        raise ShuttingDown("server is shutting down")
    blocks, edges, graph = runtime.graphs.get(wf.id, wf.version)
    plan = plan_run(execution_id=runtime.runs.new_execution_id(), workflow_id=wf.id,
                    workspace=wf.workspace, blocks=blocks, edges=edges, variables=variables,
                    trigger=trigger, timeout=timeout, webhook_block=webhook_block,
                    trigger_payload=trigger_payload, graph=graph, depth=depth,
                    graph_version=wf.version, parent=parent)
    return runtime.runs.start(plan)


def sync_answer(run, result):
    """(status, body) for a finished run, as /execute answers."""
    status = result["status"]
    eid = run.execution_id
    if status == "completed":
        return 200, {"execution_id": eid, "status": "completed", "output": result["output"],
                     "duration_ms": result["duration_ms"]}
    if result.get("code") == STORAGE_CODE:
        raise StorageUnavailable(result["error"], execution_id=eid)
    if status == "timeout":
        raise ExecutionTimeout(result["error"] or "execution timed out", execution_id=eid)
    raise ExecutionFailed(result["error"] or "execution failed", execution_id=eid,
                          block_id=result.get("block_id"))
