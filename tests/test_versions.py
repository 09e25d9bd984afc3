"""Graph versions: every save is a version; list, read, restore; runs say which they ran; pruning."""

import datetime

import pytest

from tests.helpers import START, configure, edge


D = datetime.datetime


def graph(data, hook=False):
    blocks = [START, {"id": "out", "type": "response", "config": {"data": data}}]
    edges = [edge("start", "out")]
    if hook:
        blocks.append({"id": "hook", "type": "webhook", "config": {}})
        edges.append(edge("hook", "out"))
    return {"blocks": blocks, "edges": edges}


async def save(api, wf, body):
    status, saved = await api.put(f"/api/workflows/{wf}/graph", body)
    assert status == 200, saved
    return saved


@pytest.mark.gen_test
async def test_each_save_is_a_version_and_runs_record_theirs(api):
    status, wf = await api.post("/api/workflows", {"name": "v"})
    assert wf["graph_version"] == 0
    wid = wf["id"]
    assert (await save(api, wid, graph("one")))["graph_version"] == 1
    status, body = await api.execute(wid, {})
    assert body["output"] == "one"
    assert (await save(api, wid, graph("two")))["graph_version"] == 2
    status, body = await api.execute(wid, {})
    assert body["output"] == "two"

    status, page = await api.get(f"/api/workflows/{wid}/versions")
    assert status == 200 and page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert [(v["graph_version"], v["number"], v["blocks"], v["edges"]) for v in page["versions"]] == [
        (2, 2, 2, 1), (1, 1, 2, 1)]
    saved = [D.fromisoformat(v["saved_at"].rstrip("Z")) for v in page["versions"]]
    assert saved[0] >= saved[1] and all(v["saved_at"].endswith("Z") for v in page["versions"])
    status, one = await api.get(f"/api/workflows/{wid}/versions/1")
    assert status == 200 and one["blocks"][1]["config"] == {"data": "one"} and one["edges"] == [edge("start", "out")]
    assert (one["graph_version"], one["number"], one["saved_at"]) == (1, 1, page["versions"][1]["saved_at"])

    status, runs = await api.get(f"/api/workflows/{wid}/executions")
    assert [r["graph_version"] for r in runs["executions"]] == [2, 1]
    status, run = await api.get(f"/api/workflows/{wid}/executions/{body['execution_id']}")
    assert (run["graph_version"], run["trigger"], run["trigger_payload"]) == (2, "api", None)
    status, got = await api.get(f"/api/workflows/{wid}")
    assert got["graph_version"] == 2
    status, deployed = await api.post(f"/api/workflows/{wid}/deploy")
    assert deployed["graph_version"] == 2


@pytest.mark.gen_test
async def test_restore_saves_an_old_version_as_the_newest(api):
    status, wf = await api.post("/api/workflows", {"name": "v"})
    wid = wf["id"]
    await save(api, wid, graph("one"))
    await save(api, wid, graph("two"))
    status, restored = await api.post(f"/api/workflows/{wid}/versions/1/restore")
    assert status == 200 and restored["graph_version"] == 3
    status, body = await api.execute(wid, {})
    assert body["output"] == "one"
    status, page = await api.get(f"/api/workflows/{wid}/versions?limit=1&offset=1")
    assert page["total"] == 3 and [v["graph_version"] for v in page["versions"]] == [2]


@pytest.mark.gen_test
async def test_restore_keeps_webhook_credentials_and_the_arm(api):
    status, wf = await api.post("/api/workflows", {"name": "v"})
    wid = wf["id"]
    first = await save(api, wid, graph("one", hook=True))
    hook = next(b for b in first["blocks"] if b["type"] == "webhook")["config"]
    await save(api, wid, graph("two", hook=True))
    await api.post(f"/api/workflows/{wid}/deploy")
    status, armed = await api.post(f"/api/workflows/{wid}/arm")
    status, restored = await api.post(f"/api/workflows/{wid}/versions/1/restore")
    assert status == 200
    again = next(b for b in restored["blocks"] if b["type"] == "webhook")["config"]
    assert again == hook and restored["armed_until"] == armed["armed_until"]
    status, body, _ = await api.call("POST", f"/api/webhooks/{hook['webhook_id']}?wait=true", {"x": 1}, key=None,
                                     headers={"X-Webhook-Secret": hook["webhook_secret"]})
    assert status == 200 and body["output"] == "one", body
    status, run = await api.get(f"/api/workflows/{wid}/executions/{body['execution_id']}")
    assert run["trigger"] == "webhook" and run["graph_version"] == 3 and run["trigger_payload"]["body"] == {"x": 1}


@pytest.mark.gen_test
async def test_unknown_versions_and_other_workspaces_are_404(api):
    from tests.conftest import OTHER_KEY
    status, wf = await api.post("/api/workflows", {"name": "v"})
    wid = wf["id"]
    await save(api, wid, graph("one"))
    for path in ("/versions/2", "/versions/0", "/versions/x", "/versions/99999999999999999999999",
                 "/versions/2/restore"):
        method = "POST" if path.endswith("restore") else "GET"
        status, body, _ = await api.call(method, f"/api/workflows/{wid}{path}")
        assert status == 404 and set(body) == {"error"}, (path, body)
    status, body, _ = await api.call("GET", f"/api/workflows/{wid}/versions/1", key=OTHER_KEY)
    assert status == 404
    status, body, _ = await api.call("GET", f"/api/workflows/{wid}/versions?limit=-1")
    assert status == 400


@configure(keep_versions=2)
@pytest.mark.gen_test
async def test_old_versions_are_pruned_unless_a_run_used_them(api):
    status, wf = await api.post("/api/workflows", {"name": "v"})
    wid = wf["id"]
    await save(api, wid, graph(1))
    await api.execute(wid, {})  # a run of version 1: it stays
    for n in (2, 3, 4, 5):
        await save(api, wid, graph(n))
    status, page = await api.get(f"/api/workflows/{wid}/versions")
    assert [v["graph_version"] for v in page["versions"]] == [5, 4, 1]


@pytest.mark.gen_test(timeout=120)
async def test_a_hundred_versions_are_kept_by_default(api):
    status, wf = await api.post("/api/workflows", {"name": "v"})
    wid = wf["id"]
    for n in range(1, 103):
        await save(api, wid, graph(n))
    status, page = await api.get(f"/api/workflows/{wid}/versions?limit=1&offset=99")
    assert page["total"] == 100 and page["versions"][0]["graph_version"] == 3
    status, body, _ = await api.call("GET", f"/api/workflows/{wid}/versions/2")
    assert status == 404
