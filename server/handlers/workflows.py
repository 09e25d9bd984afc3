"""Workflow CRUD and graph saving."""

from models import reads
from models import workflow as wf_model
from schemas import load
from schemas.graph import validate_graph
from schemas.workflow import CreateWorkflow, UpdateWorkflow, page
from models.errors import ValidationError
from server.errors import CODED
from server.scheduler import with_fire_times
from .base import BaseHandler, off_loop, parse_json


CREATE, UPDATE = CreateWorkflow(), UpdateWorkflow()


class WorkflowsHandler(BaseHandler):
    async def get(self):
        limit, offset = page(self.query_args("limit", "offset"))
        await self.write_read(reads.workflows_page, self.workspace, limit, offset)

    async def post(self):
        body = await self.json_body()
        if body is None:
            raise ValidationError("request body must be a JSON object with a name")
        data = load(CREATE, body)
        created = await self.runtime.writer.call(
            wf_model.create_workflow, self.workspace, data["name"], data["description"])
        await self.write_json(created, 201)


def full_workflow(workspace, workflow_id, public_url):
    """On a reader thread: the workflow with its graph and its schedules' next due times."""
    return with_fire_times(reads.workflow_full(workspace, workflow_id, public_url))


class WorkflowHandler(BaseHandler):
    def initialize(self, runtime):
        super().initialize(runtime)
        if self.request.method == "GET":
            # Set before the path is decoded, so that a refused path (NUL) answers coded too.
            self.error_shape = CODED

    async def get(self, workflow_id):
        await self.write_read(full_workflow, self.workspace, workflow_id, self.public_url())

    async def patch(self, workflow_id):
        body = await self.json_body()
        if body is None:
            raise ValidationError("request body must be a JSON object with name and/or description")
        changes = load(UPDATE, body)
        updated = await self.runtime.writer.call(
            wf_model.update_workflow, self.workspace, workflow_id, changes)
        await self.write_json(updated)

    async def delete(self, workflow_id):
        await self.runtime.store.read(reads.workflow_exists, self.workspace, workflow_id)
        await self.runtime.runs.cancel_workflow(workflow_id)
        await self.runtime.writer.call(wf_model.delete_workflow, self.workspace, workflow_id)
        await self.write_json({"ok": True})


def read_graph(raw, registry, settings):
    """Parse and check a graph body: off the IOLoop thread, since it may be 16 MiB."""
    return validate_graph(parse_json(raw), registry, settings.max_blocks, settings.max_edges)


class GraphHandler(BaseHandler):
    error_shape = CODED
    max_body_setting = "max_graph_body"

    async def put(self, workflow_id):
        await self.runtime.store.read(reads.workflow_exists, self.workspace, workflow_id)
        blocks, edges = await off_loop(read_graph, self.request.body, self.runtime.registry,
                                       self.settings_)
        saved = await self.runtime.writer.call(
            wf_model.save_graph, self.workspace, workflow_id, blocks, edges, self.public_url(),
            self.settings_.keep_versions)
        await self.write_json(with_fire_times(saved))
