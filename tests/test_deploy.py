"""Deploy, undeploy and arm, over real HTTP (CONTRACT §4; seed "Deploy")."""

import asyncio
import datetime
import re

import pytest

from tests.conftest import OTHER_KEY
from tests.helpers import START, configure, edge

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOOK = {"id": "hook", "type": "webhook"}
OUT = {"id": "out", "type": "response", "config": {"data": {"ok": True}}}


def parse(ts):
    assert ISO.match(ts), ts
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


async def hook_workflow(api):
    return await api.workflow([HOOK, OUT], [edge("hook", "out")])


@pytest.mark.gen_test
async def test_new_workflow_is_not_deployed(api):
    wf = await hook_workflow(api)
    status, body = await api.get(f"/api/workflows/{wf}")
    assert status == 200
    assert (body["deployed"], body["deployed_at"], body["armed_until"]) == (False, None, None)


@pytest.mark.gen_test
async def test_deploy_then_undeploy(api):
    wf = await hook_workflow(api)
    before = utcnow() - datetime.timedelta(seconds=1)
    status, body = await api.post(f"/api/workflows/{wf}/deploy")
    assert status == 200, body
    assert set(body) == {"ok", "deployed_at", "graph_version"} and body["ok"] is True
    assert body["graph_version"] == 1  # the graph it deployed
    deployed_at = parse(body["deployed_at"])
    assert before <= deployed_at <= utcnow() + datetime.timedelta(seconds=1)

    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["deployed"] is True and got["deployed_at"] == body["deployed_at"]
    status, listed = await api.get("/api/workflows")
    assert [w["deployed"] for w in listed["workflows"] if w["id"] == wf] == [True]

    status, body = await api.post(f"/api/workflows/{wf}/undeploy")
    assert (status, body) == (200, {"ok": True})
    status, got = await api.get(f"/api/workflows/{wf}")
    assert (got["deployed"], got["deployed_at"], got["armed_until"]) == (False, None, None)


@pytest.mark.gen_test
async def test_deploy_without_webhook_block_is_fine(api):
    wf = await api.workflow([START], [])
    status, body = await api.post(f"/api/workflows/{wf}/deploy")
    assert status == 200 and body["ok"] is True
    # ... but it cannot be armed: nothing to trigger.
    status, body = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 400 and set(body) == {"error"}
    assert "webhook" in body["error"]


@pytest.mark.gen_test
async def test_arm_needs_deploy(api):
    wf = await hook_workflow(api)
    status, body = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 400 and set(body) == {"error"}, body
    assert "deploy" in body["error"]
    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["armed_until"] is None


@pytest.mark.gen_test
async def test_arm_opens_the_default_window(api):
    wf = await hook_workflow(api)
    await api.post(f"/api/workflows/{wf}/deploy")
    before = utcnow()
    status, body = await api.post(f"/api/workflows/{wf}/arm")
    after = utcnow()
    assert status == 200, body
    assert set(body) == {"ok", "armed_until"} and body["ok"] is True
    until = parse(body["armed_until"])
    window = datetime.timedelta(seconds=600)
    slack = datetime.timedelta(seconds=2)
    assert before + window - slack <= until <= after + window + slack
    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["armed_until"] == body["armed_until"]


@configure(arm_window=30.0)
@pytest.mark.gen_test
async def test_arm_window_setting_and_rearm_restarts_it(api):
    wf = await hook_workflow(api)
    await api.post(f"/api/workflows/{wf}/deploy")
    status, first = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    delta = parse(first["armed_until"]) - utcnow()
    assert datetime.timedelta(seconds=25) <= delta <= datetime.timedelta(seconds=32)
    await asyncio.sleep(0.05)
    status, second = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    assert parse(second["armed_until"]) > parse(first["armed_until"])
    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["armed_until"] == second["armed_until"]


@pytest.mark.gen_test
async def test_undeploy_disarms_and_redeploy_does_not_rearm(api):
    wf = await hook_workflow(api)
    await api.post(f"/api/workflows/{wf}/deploy")
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200
    status, body = await api.post(f"/api/workflows/{wf}/undeploy")
    assert (status, body) == (200, {"ok": True})
    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["armed_until"] is None and got["deployed"] is False
    status, _ = await api.post(f"/api/workflows/{wf}/deploy")
    assert status == 200
    status, got = await api.get(f"/api/workflows/{wf}")
    assert got["deployed"] is True and got["armed_until"] is None
    # Arming after undeploy needs a new deploy: here it has one.
    status, _ = await api.post(f"/api/workflows/{wf}/arm")
    assert status == 200


@pytest.mark.gen_test
async def test_undeploy_of_a_workflow_never_deployed(api):
    wf = await hook_workflow(api)
    status, body = await api.post(f"/api/workflows/{wf}/undeploy")
    assert (status, body) == (200, {"ok": True})


@pytest.mark.gen_test
@pytest.mark.parametrize("action", ["deploy", "undeploy", "arm"])
async def test_unknown_or_foreign_workflow_is_plain_404(api, action):
    status, body = await api.post(f"/api/workflows/nope/{action}")
    assert status == 404 and set(body) == {"error"}, body
    wf = await hook_workflow(api)
    await api.post(f"/api/workflows/{wf}/deploy")
    status, body = await api.post(f"/api/workflows/{wf}/{action}", key=OTHER_KEY)
    assert status == 404 and set(body) == {"error"}, body


@pytest.mark.gen_test
@pytest.mark.parametrize("action", ["deploy", "undeploy", "arm"])
async def test_needs_an_api_key(api, action):
    wf = await hook_workflow(api)
    status, body = await api.post(f"/api/workflows/{wf}/{action}", key=None)
    assert status == 401 and set(body) == {"error"}
    status, body = await api.post(f"/api/workflows/{wf}/{action}", key="af_not_a_key")
    assert status == 401 and set(body) == {"error"}
    status, got = await api.get(f"/api/workflows/{wf}")
    assert (got["deployed"], got["armed_until"]) == (False, None)


@pytest.mark.gen_test
async def test_get_workflow_shows_webhook_url_and_credentials(api, server):
    wf = await api.workflow([START, HOOK, {"id": "hook2", "type": "webhook"}, OUT],
                            [edge("hook", "out")])
    status, body = await api.get(f"/api/workflows/{wf}")
    assert status == 200
    hooks = [b for b in body["blocks"] if b["type"] == "webhook"]
    assert len(hooks) == 2
    for block in hooks:
        webhook_id = block["config"]["webhook_id"]
        assert len(webhook_id) >= 22 and len(block["config"]["webhook_secret"]) >= 22
        assert block["webhook_url"] == f"{server.base_url}/api/webhooks/{webhook_id}"
    assert hooks[0]["config"]["webhook_id"] != hooks[1]["config"]["webhook_id"]
    assert all("webhook_url" not in b for b in body["blocks"] if b["type"] != "webhook")


@configure(public_url="https://hooks.example.com")
@pytest.mark.gen_test
async def test_webhook_url_uses_public_url(api):
    wf = await hook_workflow(api)
    status, body = await api.get(f"/api/workflows/{wf}")
    hook = next(b for b in body["blocks"] if b["id"] == "hook")
    assert hook["webhook_url"] == \
        f"https://hooks.example.com/api/webhooks/{hook['config']['webhook_id']}"
