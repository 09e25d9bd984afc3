"""Workflows and their graphs (blocks and edges), and the queries over them."""

import typing

import peewee

from models.errors import NotFound, WorkflowNotFound, ValidationError
from .base import BaseModel, JSONField, iso, new_id, new_token, utcnow
from .journal import apply as apply_journal
from .journal import insert_rows, workflow_version


class Workflow(BaseModel):
    pk = peewee.AutoField()
    id = peewee.CharField(unique=True, default=new_id)
    workspace = peewee.CharField(index=True)
    name = peewee.CharField()
    description = peewee.TextField(default="")
    deployed = peewee.BooleanField(default=False)
    deployed_at = peewee.DateTimeField(null=True)
    armed_until = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    version = peewee.IntegerField(default=0)  # bumped on every graph save


class GraphSnapshot(BaseModel):
    """One saved graph, never changed: what every run of that version ran (and resumes on)."""
    pk = peewee.AutoField()
    workflow = peewee.CharField()
    version = peewee.IntegerField()
    blocks = JSONField()    # as load_graph returns them (webhook credentials included)
    edges = JSONField()
    saved_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "graph_version"
        indexes = ((("workflow", "version"), True),)


class Block(BaseModel):
    pk = peewee.AutoField()
    workflow = peewee.CharField(index=True)
    block_id = peewee.CharField()
    type = peewee.CharField()
    config = JSONField()
    position = JSONField()
    ordinal = peewee.IntegerField()
    webhook_id = peewee.CharField(null=True, unique=True)


class Edge(BaseModel):
    pk = peewee.AutoField()
    workflow = peewee.CharField(index=True)
    source = peewee.CharField()
    target = peewee.CharField()
    source_handle = peewee.CharField(null=True)
    ordinal = peewee.IntegerField()


def workflow_json(wf: Workflow) -> dict:
    return {
        "id": wf.id,
        "name": wf.name,
        "description": wf.description,
        "deployed": bool(wf.deployed),
        "deployed_at": iso(wf.deployed_at),
        "armed_until": iso(wf.armed_until),
        "created_at": iso(wf.created_at),
        "updated_at": iso(wf.updated_at),
        "graph_version": wf.version,
    }


def get_workflow(workspace: str, workflow_id: str) -> Workflow:
    """The workflow, or WorkflowNotFound (also for another workspace's)."""
    wf = Workflow.get_or_none((Workflow.id == workflow_id) & (Workflow.workspace == workspace))
    if wf is None:
        raise WorkflowNotFound()
    return wf


class WorkflowRef(typing.NamedTuple):
    id: str
    workspace: str
    version: int


def workflow_ref(workspace: str, workflow_id: str) -> WorkflowRef:
    """(id, workspace, graph version), or WorkflowNotFound."""
    version = workflow_version(workspace, workflow_id)
    if version is None:
        raise WorkflowNotFound()
    return WorkflowRef(workflow_id, workspace, version)


def list_workflows(workspace: str, limit: int, offset: int):
    query = Workflow.select().where(Workflow.workspace == workspace)
    total = query.count()
    rows = [] if limit == 0 else list(query.order_by(Workflow.pk.desc()).limit(limit).offset(offset))
    return rows, total


def load_graph(workflow_id: str):
    """(blocks, edges) as saved, in saved order, as plain dicts."""
    # Tuples, not model objects: a 5,000-block graph is read back after every save.
    blocks = [
        {"id": block_id, "type": type_, "config": config, "position": position}
        for block_id, type_, config, position in
        Block.select(Block.block_id, Block.type, Block.config, Block.position)
        .where(Block.workflow == workflow_id).order_by(Block.ordinal).tuples()
    ]
    edges = []
    for source, target, handle in (Edge.select(Edge.source, Edge.target, Edge.source_handle)
                                   .where(Edge.workflow == workflow_id).order_by(Edge.ordinal).tuples()):
        edge = {"source": source, "target": target}
        if handle is not None:
            edge["source_handle"] = handle
        edges.append(edge)
    return blocks, edges


def graph_of_version(workflow_id: str, version: int):
    """(blocks, edges) of a saved version of the graph, or None when that version is not stored."""
    from .base import database
    p = database.param
    row = database.execute_sql(
        f"SELECT blocks, edges FROM graph_version WHERE workflow = {p} AND version = {p}",
        (workflow_id, version)).fetchone()
    if row is None:
        return None
    field = GraphSnapshot.blocks
    return field.python_value(row[0]), field.python_value(row[1])


def store_snapshot(workflow_id: str, version: int, block_rows=None, edge_rows=None):
    """Keep the graph as saved as `version`: from the rows just written, else as stored."""
    if block_rows is None:
        blocks, edges = load_graph(workflow_id)
    else:
        blocks = [{"id": b["block_id"], "type": b["type"], "config": b["config"],
                   "position": b["position"]} for b in block_rows]
        edges = [{k: v for k, v in (("source", e["source"]), ("target", e["target"]),
                                    ("source_handle", e["source_handle"])) if v is not None}
                 for e in edge_rows]
    GraphSnapshot.create(workflow=workflow_id, version=version, blocks=blocks, edges=edges)


def full_workflow_json(wf: Workflow, public_url: str) -> dict:
    """The workflow with its graph; webhook blocks also show their trigger URL."""
    blocks, edges = load_graph(wf.id)
    for block in blocks:
        if block["type"] == "webhook" and block["config"].get("webhook_id"):
            block["webhook_url"] = f"{public_url}/api/webhooks/{block['config']['webhook_id']}"
    body = workflow_json(wf)
    body["blocks"] = blocks
    body["edges"] = edges
    return body


# -- writes: these run on the writer thread (see models.writer) -------------

def create_workflow(workspace: str, name: str, description: str) -> dict:
    wf = Workflow.create(workspace=workspace, name=name, description=description)
    return workflow_json(wf)


def update_workflow(workspace: str, workflow_id: str, changes: dict) -> dict:
    wf = get_workflow(workspace, workflow_id)
    for key, value in changes.items():
        setattr(wf, key, value)
    wf.updated_at = utcnow()
    wf.save()
    return workflow_json(wf)


def delete_workflow(workspace: str, workflow_id: str):
    from .execution import delete_executions_of
    from .schedule import forget_schedules
    wf = get_workflow(workspace, workflow_id)
    forget_schedules(wf.id)
    Block.delete().where(Block.workflow == wf.id).execute()
    Edge.delete().where(Edge.workflow == wf.id).execute()
    GraphSnapshot.delete().where(GraphSnapshot.workflow == wf.id).execute()
    delete_executions_of(wf.id)
    wf.delete_instance()


def save_graph(workspace: str, workflow_id: str, blocks: list, edges: list, public_url: str,
               keep_versions: int = 100) -> dict:
    """Replace the graph as its next version. Webhook blocks keep the credentials the server issued them."""
    wf = get_workflow(workspace, workflow_id)
    issued = {
        b.block_id: (b.config.get("webhook_id"), b.config.get("webhook_secret"))
        for b in Block.select().where((Block.workflow == wf.id) & (Block.type == "webhook"))
    }
    Block.delete().where(Block.workflow == wf.id).execute()
    Edge.delete().where(Edge.workflow == wf.id).execute()
    block_rows = []
    for ordinal, block in enumerate(blocks):
        config = dict(block["config"])
        webhook_id = None
        if block["type"] == "webhook":
            webhook_id, secret = issued.get(block["id"]) or (new_token(), new_token())
            config["webhook_id"], config["webhook_secret"] = webhook_id, secret
        block_rows.append({
            "workflow": wf.id, "block_id": block["id"], "type": block["type"],
            "config": config, "position": block["position"], "ordinal": ordinal,
            "webhook_id": webhook_id,
        })
    edge_rows = [
        {"workflow": wf.id, "source": e["source"], "target": e["target"],
         "source_handle": e.get("source_handle"), "ordinal": ordinal}
        for ordinal, e in enumerate(edges)
    ]
    # executemany with the SQL built once: peewee's insert_many spent most of a
    # 5,000-block save building SQL text.
    insert_rows(Block, block_rows)
    insert_rows(Edge, edge_rows)
    wf.updated_at = utcnow()
    wf.version += 1
    wf.save()
    store_snapshot(wf.id, wf.version, block_rows, edge_rows)
    prune_versions(wf.id, wf.version - keep_versions)
    return full_workflow_json(wf, public_url)


def deploy(workspace: str, workflow_id: str) -> dict:
    wf = get_workflow(workspace, workflow_id)
    now = utcnow()
    Workflow.update(deployed=True, deployed_at=now, updated_at=now).where(Workflow.pk == wf.pk).execute()
    return {"ok": True, "deployed_at": iso(now), "graph_version": wf.version}


def undeploy(workspace: str, workflow_id: str) -> dict:
    wf = get_workflow(workspace, workflow_id)
    Workflow.update(deployed=False, deployed_at=None, armed_until=None,
                    updated_at=utcnow()).where(Workflow.pk == wf.pk).execute()
    return {"ok": True}


def arm(workspace: str, workflow_id: str, window: float) -> dict:
    import datetime
    wf = get_workflow(workspace, workflow_id)
    if not wf.deployed:
        raise ValidationError("workflow is not deployed: deploy it before arming")
    if not Block.select().where((Block.workflow == wf.id) & (Block.type == "webhook")).exists():
        raise ValidationError("workflow has no webhook block to arm")
    until = utcnow() + datetime.timedelta(seconds=window)
    Workflow.update(armed_until=until).where(Workflow.pk == wf.pk).execute()
    return {"ok": True, "armed_until": iso(until)}


class WebhookRef(typing.NamedTuple):
    """A webhook block and its workflow, as a call to the webhook needs them."""
    pk: int              # the workflow's
    id: str              # the workflow's
    workspace: str
    version: int         # the workflow's graph version
    deployed: bool
    armed_until: typing.Any  # naive UTC datetime, or None
    block_id: str
    secret: str | None


# Raw SQL: webhook calls run these once or twice each (peewee's query
# building was 0.3 ms of a 2 ms call; the statements themselves take µs).
def _webhook_sql():
    from .base import database
    return (f"SELECT w.pk, w.id, w.workspace, w.version, w.deployed, w.armed_until, b.block_id, b.config "
            f"FROM block b JOIN workflow w ON w.id = b.workflow "
            f"WHERE b.webhook_id = {database.param} AND b.type = 'webhook'")


def find_webhook(webhook_id: str) -> WebhookRef | None:
    """The webhook with that id and its workflow, or None."""
    from .base import database
    row = database.execute_sql(_webhook_sql(), (webhook_id,)).fetchone()
    if row is None:
        return None
    pk, wf_id, workspace, version, deployed, armed_until, block_id, config = row
    secret = Block.config.python_value(config).get("webhook_secret")
    return WebhookRef(pk, wf_id, workspace, version, bool(deployed),
                      Workflow.armed_until.python_value(armed_until), block_id,
                      secret if isinstance(secret, str) else None)


def consume_arm(workflow_pk: int, version: int) -> bool:
    """Disarm if armed, deployed, not expired and still at graph `version`, in one conditional UPDATE.

    The row count decides the single winner, across threads and processes.
    """
    from .base import database
    p = database.param
    cursor = database.execute_sql(
        f"UPDATE workflow SET armed_until = NULL WHERE pk = {p} AND version = {p} AND deployed = {p} "
        f"AND armed_until IS NOT NULL AND armed_until > {p}",
        (workflow_pk, version, True, Workflow.armed_until.db_value(utcnow())))
    return cursor.rowcount == 1


def take_arm(workflow_pk: int, version: int, ops) -> bool:
    """Writer job: consume the arm and store the run it starts (`ops`, journal ops) together.

    False, with nothing stored, when the arm was not there to take or the
    graph is no longer at `version`. One transaction: a store that refuses
    the run's writes keeps the arm as it was.
    """
    if not consume_arm(workflow_pk, version):
        return False
    apply_journal(ops)
    return True


def armed(hook: WebhookRef) -> bool:
    """Would a call take this webhook's arm now (deployed, armed, window open)?"""
    return hook.deployed and hook.armed_until is not None and hook.armed_until > utcnow()


def restore_arm(workflow_pk: int, until):
    """Re-arm a workflow whose consumed arm did not start a run (unless re-armed or undeployed)."""
    (Workflow.update(armed_until=until)
     .where((Workflow.pk == workflow_pk) & (Workflow.deployed == True)  # noqa: E712
            & (Workflow.armed_until.is_null(True)))
     .execute())


# -- graph versions ---------------------------------------------------------

def _version_json(row) -> dict:
    # `number` is the same as `graph_version`: the name the version list was asked for by.
    return {"graph_version": row.version, "number": row.version, "saved_at": iso(row.saved_at),
            "blocks": len(row.blocks), "edges": len(row.edges)}


def list_versions(workspace: str, workflow_id: str, limit: int, offset: int):
    """A page of the workflow's stored graph versions, newest first: (rows as JSON, total)."""
    wf = get_workflow(workspace, workflow_id)
    query = GraphSnapshot.select().where(GraphSnapshot.workflow == wf.id)
    total = query.count()
    rows = [] if limit == 0 else query.order_by(GraphSnapshot.version.desc()).limit(limit).offset(offset)
    return [_version_json(r) for r in rows], total


def get_version(workspace: str, workflow_id: str, version: int) -> dict:
    """One stored version with its graph, or NotFound."""
    wf = get_workflow(workspace, workflow_id)
    row = GraphSnapshot.get_or_none((GraphSnapshot.workflow == wf.id) & (GraphSnapshot.version == version))
    if row is None:
        raise NotFound(f"workflow has no stored graph version {version}")
    body = _version_json(row)
    body.update(workflow_id=wf.id, blocks=row.blocks, edges=row.edges)
    return body


def restore_version(workspace: str, workflow_id: str, version: int, public_url: str,
                    keep_versions: int = 100) -> dict:
    """Save stored `version` again as the newest version; answers like save_graph."""
    stored = get_version(workspace, workflow_id, version)
    return save_graph(workspace, workflow_id, stored["blocks"], stored["edges"], public_url, keep_versions)


def prune_versions(workflow_id: str, up_to: int):
    """Drop stored versions <= `up_to`, except those a stored (or running) execution ran."""
    if up_to < 1:
        return
    from .execution import Execution
    used = Execution.select(Execution.graph_version).where(
        (Execution.workflow == workflow_id) & Execution.graph_version.is_null(False))
    GraphSnapshot.delete().where(
        (GraphSnapshot.workflow == workflow_id) & (GraphSnapshot.version <= up_to)
        & GraphSnapshot.version.not_in(used)).execute()
