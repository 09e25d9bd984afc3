"""Deploy, undeploy and arm a workflow's webhooks."""

from models import workflow as wf_model
from .base import BaseHandler


class DeployHandler(BaseHandler):
    async def post(self, workflow_id):
        await self.write_json(await self.runtime.writer.call(wf_model.deploy, self.workspace, workflow_id))


class UndeployHandler(BaseHandler):
    async def post(self, workflow_id):
        await self.write_json(await self.runtime.writer.call(wf_model.undeploy, self.workspace, workflow_id))


class ArmHandler(BaseHandler):
    async def post(self, workflow_id):
        await self.write_json(await self.runtime.writer.call(
            wf_model.arm, self.workspace, workflow_id, self.settings_.arm_window))
