"""What a run needs before it starts: a graph snapshot, its entries and its variables."""

import dataclasses
from typing import Any

from models.errors import ValidationError
from .blocks.starter import apply_inputs
from .dag import Graph

# Carried by every request an http block or agent http tool sends: the sending
# run's depth plus one. A run started by a request without it has depth 0.
DEPTH_HEADER = "X-Actorflow-Depth"


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a run stopped: its stored block logs and counters, and its time left."""
    logs: tuple             # stored block logs in start order: {block_id, status, output, attempts}
    seq: int                # last stored event number: the run's events go on from here
    log_seq: int            # last block log number
    elapsed: float          # seconds since the run started
    remaining: float        # seconds left before its original deadline (<= 0: past it)


@dataclasses.dataclass(frozen=True)
class RunPlan:
    execution_id: str
    workflow_id: str
    workspace: str
    graph: Graph
    entries: tuple
    variables: Any
    trigger: str            # api, stream or webhook
    trigger_payload: Any    # the webhook call, for webhook runs
    timeout: float
    depth: int = 0          # how many runs started this one (requests, sub-runs)
    graph_version: int | None = None
    resume: Resume | None = None    # set when the run goes on after its server stopped
    parent: "Parent | None" = None  # set for sub-runs of workflow and map blocks
    # Its row and execution_started event are committed already (a webhook call
    # stores them in the transaction that takes the arm; see coordinator.first_writes).
    start_stored: bool = False
    # Planned from a cached graph, without reading the workflow: its start commits
    # only while the workflow is still at graph_version (announced runs only, whose
    # blocks wait for that commit; see coordinator.first_writes).
    expect_version: bool = False
    # Small enough for its coordinator to run it on the thread that starts it (see
    # actors.run_cost): the starter vouches for the graph and the body's size.
    on_caller: bool = False


@dataclasses.dataclass(frozen=True)
class Parent:
    """The run, block and (for a map) item index that started a sub-run."""
    execution_id: str
    block_id: str
    index: int | None = None


def plan_run(*, execution_id, workflow_id, workspace, blocks, edges, variables, trigger,
             timeout, webhook_block=None, trigger_payload=None, graph=None, depth=0,
             graph_version=None, parent=None, start_stored=False, expect_version=False,
             on_caller=False) -> RunPlan:
    """Check a run can start and freeze what it will see. Raises ValidationError."""
    if webhook_block is not None:
        entries = (webhook_block,)
    else:
        starters = [b for b in blocks if b["type"] == "starter"]
        if not starters:
            raise ValidationError("workflow has no starter block to execute from",
                                  details=[{"path": "blocks", "message": "no block of type starter"}])
        variables = apply_inputs(starters, variables)
        entries = tuple(b["id"] for b in starters)
    return RunPlan(execution_id=execution_id, workflow_id=workflow_id, workspace=workspace,
                   graph=graph or Graph.build(blocks, edges), entries=entries, variables=variables,
                   trigger=trigger, trigger_payload=trigger_payload, timeout=timeout, depth=depth,
                   graph_version=graph_version, parent=parent, start_stored=start_stored,
                   expect_version=expect_version, on_caller=on_caller)


def plan_resume(stored, now) -> RunPlan:
    """The plan that continues a stored run (see models.processes.resume_data) at time `now`.

    The run keeps its original deadline: `started_at` + its timeout.
    """
    run = stored["run"]
    elapsed = max(0.0, (now - run["started_at"]).total_seconds())
    resume = Resume(logs=tuple(stored["logs"]), seq=stored["seq"], log_seq=stored["log_seq"],
                    elapsed=elapsed, remaining=run["timeout"] - elapsed)
    return RunPlan(execution_id=run["id"], workflow_id=run["workflow"], workspace=run["workspace"],
                   graph=Graph.build(stored["blocks"], stored["edges"]), entries=(),
                   variables=run["variables"], trigger=run["trigger"],
                   trigger_payload=run["trigger_payload"], timeout=run["timeout"],
                   depth=run.get("depth") or 0, graph_version=run["graph_version"], resume=resume,
                   parent=Parent(run["parent_execution_id"], run["parent_block_id"], run["parent_index"])
                   if run.get("parent_execution_id") else None)
