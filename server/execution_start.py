"""Starting a run from a request: load the workflow, plan, start. Shared by /execute, SSE, webhooks."""

import json
import re

from actors.dag import Graph
from actors.plan import DEPTH_HEADER, plan_run
from models import reads
from models import workflow as wf_model
from actors.coordinator import ANNOUNCED, inline_only
from actors.persist import STORAGE_CODE
from actors.run_cost import MAX_INPUT_BYTES, small_first_turn
from models.errors import (ActorflowError, DepthExceeded, ExecutionFailed, ExecutionTimeout,
                           ShuttingDown, StorageUnavailable, ValidationError)
from models.journal import StaleWorkflow

REFS = 1024  # workflows whose last loaded version a run may start from without a read


def _put(mapping, key, value, size):
    """mapping[key] = value, dropping the oldest entry first when `size` are held."""
    if len(mapping) >= size and key not in mapping:
        mapping.pop(next(iter(mapping)))
    mapping[key] = value


class GraphCache:
    """Recently run graphs, keyed by workflow id and graph version. Loop thread only.

    A miss is loaded and built on a reader thread (models.store), never on the loop.
    """

    def __init__(self, store, size=256):
        self._store = store
        self._size = size
        self._entries = {}

    def version_of(self, workflow_id):
        """The cached graph version of the workflow, or None."""
        hit = self._entries.get(workflow_id)
        return hit[0] if hit is not None else None

    def put(self, workflow_id, version, entry):
        _put(self._entries, workflow_id, (version, entry), self._size)

    async def get(self, workflow_id, version):
        """(blocks, edges, Graph) of that version of the workflow's graph."""
        hit = self._entries.get(workflow_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        entry = await self._store.read(built_graph, workflow_id, version)
        self.put(workflow_id, version, entry)
        return entry


def built_graph(workflow_id, version):
    """On a reader thread: (blocks, edges, Graph) of that version."""
    blocks, edges = reads.graph_to_run(workflow_id, version)
    return blocks, edges, Graph.build(blocks, edges)


def _ref_and_graph(workspace, workflow_id, cached_version):
    ref = wf_model.workflow_ref(workspace, workflow_id)
    return ref, (None if ref.version == cached_version else built_graph(ref.id, ref.version))


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


class RunStarter:
    """Loads workflows and starts their runs, for requests, webhooks, schedules and sub-runs.

    Loop thread only; its reads are awaited on the store's readers.
    """

    def __init__(self, store, runs):
        self.store = store
        self.runs = runs
        self.graphs = GraphCache(store)
        self.refs = {}  # (workspace, workflow id) -> the WorkflowRef last loaded
        self.inline = {}  # (workflow id, version) -> whether all its blocks are inline
        self.small = {}   # (workflow id, version) -> whether its runs' first turn is small (run_cost)

    async def load(self, workspace, workflow_id):
        """The workflow's WorkflowRef (or WorkflowNotFound), its graph cached: one read hop."""
        ref, entry = await self.store.read(_ref_and_graph, workspace, workflow_id,
                                           self.graphs.version_of(workflow_id))
        if entry is not None:
            self.graphs.put(ref.id, ref.version, entry)
        _put(self.refs, (workspace, workflow_id), ref, REFS)
        return ref

    def cached(self, workspace, workflow_id):
        """The WorkflowRef `load` last found for this workspace and id (it may be stale), or None."""
        return self.refs.get((workspace, workflow_id))

    async def start_request(self, workspace, workflow_id, body, trigger, depth=0, body_bytes=None):
        """Start the run an /execute or /execute/stream request asks for: (run, timeout).

        `body()` (awaited) gives the request's (variables, timeout), or raises;
        `body_bytes` is the body's size, when the run may be small (actors.run_cost).
        A workflow loaded here before starts from memory where it can
        (start_if_current); any error on that path is left to the full one,
        which reports errors in their usual order (an unknown workflow before
        a bad body).
        """
        ref = self.cached(workspace, workflow_id)
        if ref is not None and await self._checks_in_time(ref, trigger):
            try:
                variables, timeout = await body()
                run = await self.start_if_current(ref, variables, trigger, timeout, depth, body_bytes)
            except ActorflowError:
                run = None
            if run is not None:
                return run, timeout
        wf = await self.load(workspace, workflow_id)
        variables, timeout = await body()
        return await self.start(wf, variables, trigger, timeout, depth=depth, body_bytes=body_bytes), timeout

    async def _checks_in_time(self, ref, trigger):
        """Whether a request's run of `ref` could check the version before any block acts
        (coordinator.checks_in_time, for a request), from the cached graph: no body parsed, no plan."""
        if trigger in ANNOUNCED:
            return True
        key = (ref.id, ref.version)
        known = self.inline.get(key)
        if known is None:
            _, _, graph = await self.graphs.get(ref.id, ref.version)
            known = inline_only(graph, self.runs.engine.registry)
            _put(self.inline, key, known, REFS)
        return known

    async def start_if_current(self, ref, variables, trigger, timeout, depth=0, body_bytes=None):
        """Start a run of `ref` (from `cached`) without reading the workflow first.

        The run's start commits only while the workflow is still at
        ref.version; call it only when that check comes before any of its
        blocks could act (`_checks_in_time`; the coordinator refuses a plan
        where it would not). Returns the run once its start is stored (or
        refused by the store: its end says so), or None when the workflow has
        changed or gone: then nothing of it was stored or run, and the caller
        loads the workflow and starts it again. Raises ValidationError or
        ShuttingDown before any run exists.
        """
        plan = await self.plan(ref, variables, trigger, timeout, depth=depth, expect_version=True,
                               body_bytes=body_bytes)
        run = self.runs.start(plan)
        try:
            await run.started
        except StaleWorkflow:
            self.refs.pop((ref.workspace, ref.id), None)
            return None
        except StorageUnavailable:
            pass  # the run's end event tells whoever follows it
        return run

    async def start(self, wf, variables, trigger, timeout, webhook_block=None, trigger_payload=None,
                    depth=0, parent=None, body_bytes=None):
        """Plan and start a run of `wf` (a Workflow row or WorkflowRef) at `depth`.

        `parent` (plan.Parent) links a sub-run to the block that started it.

        Raises ValidationError before any run exists.
        """
        return self.runs.start(await self.plan(wf, variables, trigger, timeout, webhook_block,
                                               trigger_payload, depth, parent, body_bytes=body_bytes))

    async def plan(self, wf, variables, trigger, timeout, webhook_block=None, trigger_payload=None,
                   depth=0, parent=None, start_stored=False, expect_version=False, body_bytes=None):
        """The RunPlan `start` would start (see plan.plan_run). Raises ValidationError, ShuttingDown."""
        blocks, edges, graph = await self.graphs.get(wf.id, wf.version)
        if not self.runs.accepting:  # checked after the read: shutdown may have begun meanwhile
            raise ShuttingDown("server is shutting down")
        on_caller = body_bytes is not None and body_bytes <= MAX_INPUT_BYTES and self._small(wf.id, wf.version, graph)
        return plan_run(execution_id=self.runs.new_execution_id(), workflow_id=wf.id,
                        workspace=wf.workspace, blocks=blocks, edges=edges, variables=variables,
                        trigger=trigger, timeout=timeout, webhook_block=webhook_block,
                        trigger_payload=trigger_payload, graph=graph, depth=depth,
                        graph_version=wf.version, parent=parent, start_stored=start_stored,
                        expect_version=expect_version, on_caller=on_caller)

    def _small(self, workflow_id, version, graph):
        """Whether runs of this version have a small first turn (actors.run_cost), remembered per version."""
        key = (workflow_id, version)
        known = self.small.get(key)
        if known is None:
            registry = self.runs.engine.registry
            known = small_first_turn(graph, lambda kind: kind in registry and registry[kind].inline)
            _put(self.small, key, known, REFS)
        return known


def sync_answer(run, result):
    """(status, body) for a finished run, as /execute answers."""
    status = result["status"]
    eid = run.execution_id
    if status == "completed":
        text = result.get("output_text")
        if text is not None:  # the output's JSON, made once for the run: the answer embeds it
            return 200, (f'{{"execution_id":{json.encoder.encode_basestring(eid)},"status":"completed","output":{text},'
                         f'"duration_ms":{result["duration_ms"]:d}}}').encode()
        return 200, {"execution_id": eid, "status": "completed", "output": result["output"],
                     "duration_ms": result["duration_ms"]}
    if result.get("code") == STORAGE_CODE:
        raise StorageUnavailable(result["error"], execution_id=eid)
    if status == "timeout":
        raise ExecutionTimeout(result["error"] or "execution timed out", execution_id=eid)
    raise ExecutionFailed(result["error"] or "execution failed", execution_id=eid,
                          block_id=result.get("block_id"))
