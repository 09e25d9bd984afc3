"""Synchronous execution, history and logs."""

import asyncio

from models import execution as ex_model
from models import workflow as wf_model
from schemas.execution import execute_request, status_filter
from schemas.workflow import page
from models.errors import ExecutionTimeout
from server.errors import CODED
from server.execution_start import request_depth, start_run, sync_answer
from .base import BaseHandler


class ExecuteHandler(BaseHandler):
    error_shape = CODED
    trigger = "api"

    async def post(self, workflow_id):
        depth = request_depth(self.request.headers, self.settings_.max_depth)
        wf = wf_model.workflow_ref(self.workspace, workflow_id)
        variables, timeout = execute_request(await self.json_body(), self.settings_.execute_timeout)
        run = start_run(self.runtime, wf, variables, self.trigger, timeout, depth=depth)
        await wait_for_end(run, timeout)
        status, body = sync_answer(run, run.result)
        self.write_json(body, status)


async def wait_for_end(run, timeout):
    """Wait for the run's end. The coordinator enforces the timeout; this is a safety net."""
    try:
        await asyncio.wait_for(asyncio.shield(run.finished), timeout + 5)
    except asyncio.TimeoutError:
        raise ExecutionTimeout("execution timed out", execution_id=run.execution_id)


class ExecutionsHandler(BaseHandler):
    def get(self, workflow_id):
        wf = wf_model.get_workflow(self.workspace, workflow_id)
        args = self.query_args("limit", "offset", "status")
        limit, offset = page(args)
        status = status_filter(args)
        rows, total = ex_model.list_executions(wf.id, limit, offset, status)
        self.write_json({"executions": [ex_model.execution_json(r) for r in rows],
                         "total": total, "limit": limit, "offset": offset})


class ExecutionHandler(BaseHandler):
    def get(self, workflow_id, execution_id):
        wf = wf_model.get_workflow(self.workspace, workflow_id)
        self.write_json(ex_model.execution_json(ex_model.get_execution(wf.id, execution_id), full=True))


class LogsHandler(BaseHandler):
    def get(self, workflow_id, execution_id):
        wf = wf_model.get_workflow(self.workspace, workflow_id)
        row = ex_model.get_execution(wf.id, execution_id)
        self.write_json({"execution_id": row.id,
                         "logs": [ex_model.log_json(r) for r in ex_model.logs_of(row.id)]})


class CancelHandler(BaseHandler):
    async def post(self, workflow_id, execution_id):
        wf = wf_model.get_workflow(self.workspace, workflow_id)
        row = ex_model.get_execution(wf.id, execution_id)
        run = self.runtime.runs.cancel(row.id)
        if run is not None:
            await asyncio.wait([run.finished], timeout=10)
            row = ex_model.get_execution(wf.id, execution_id)
        self.write_json({"ok": True, "status": row.status})
