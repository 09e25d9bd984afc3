"""Synchronous execution, history and logs."""

import asyncio

from models import reads
from schemas.execution import status_filter
from schemas.workflow import page
from server.errors import CODED
from server.execution_start import request_depth, sync_answer
from .base import BaseHandler


class ExecuteHandler(BaseHandler):
    error_shape = CODED
    trigger = "api"

    async def post(self, workflow_id):
        depth = request_depth(self.request.headers, self.settings_.max_depth)
        run, timeout = await self.runtime.starter.start_request(self.workspace, workflow_id, self.execute_body,
                                                                self.trigger, depth, len(self.request.body))
        await wait_for_end(run, timeout)
        status, body = sync_answer(run, run.result)
        await self.write_json(body, status)


async def wait_for_end(run, timeout):
    """Wait for the run's end. The coordinator enforces the timeout; this is a safety net."""
    await run.wait_end(timeout + 5)


class ExecutionsHandler(BaseHandler):
    async def get(self, workflow_id):
        args = self.query_args("limit", "offset", "status")
        limit, offset = page(args)
        status = status_filter(args)
        await self.write_read(reads.executions_page, self.workspace, workflow_id, limit, offset, status)


class ExecutionHandler(BaseHandler):
    async def get(self, workflow_id, execution_id):
        await self.write_read(reads.execution_full, self.workspace, workflow_id, execution_id)


class LogsHandler(BaseHandler):
    async def get(self, workflow_id, execution_id):
        # A run has at most one log per block: by default the page holds them all.
        most = self.settings_.max_blocks
        limit, offset = page(self.query_args("limit", "offset"), default_limit=most, max_limit=most)
        await self.write_read(reads.execution_logs, self.workspace, workflow_id, execution_id, limit, offset)


class CancelHandler(BaseHandler):
    async def post(self, workflow_id, execution_id):
        read = self.runtime.store.read
        _, eid, status = await read(reads.execution_of, self.workspace, workflow_id, execution_id)
        run = self.runtime.runs.cancel(eid)
        if run is not None:
            await asyncio.wait([run.finished], timeout=10)
            _, _, status = await read(reads.execution_of, self.workspace, workflow_id, execution_id)
        await self.write_json({"ok": True, "status": status})
