"""Graph versions: list, read one, restore one as the newest."""

import re

from models import workflow as wf_model
from models.errors import NotFound
from schemas.workflow import page
from server.scheduler import with_fire_times
from .base import BaseHandler

_VERSION = re.compile(r"[1-9][0-9]{0,17}")


def version_number(raw: str) -> int:
    """A version from the path: plain digits, at least 1; anything else is no such version."""
    if not _VERSION.fullmatch(raw):
        raise NotFound(f"workflow has no stored graph version {raw[:40]!r}")
    return int(raw)


class VersionsHandler(BaseHandler):
    async def get(self, workflow_id):
        limit, offset = page(self.query_args("limit", "offset"))
        rows, total = await self.runtime.store.read(
            wf_model.list_versions, self.workspace, workflow_id, limit, offset)
        await self.write_json({"versions": rows, "total": total, "limit": limit, "offset": offset})


class VersionHandler(BaseHandler):
    async def get(self, workflow_id, version):
        await self.write_read(wf_model.get_version, self.workspace, workflow_id, version_number(version))


class RestoreVersionHandler(BaseHandler):
    async def post(self, workflow_id, version):
        restored = await self.runtime.writer.call(
            wf_model.restore_version, self.workspace, workflow_id, version_number(version),
            self.public_url(), self.settings_.keep_versions)
        await self.write_json(with_fire_times(restored))
