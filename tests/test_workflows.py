import json
import re

import pytest

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.gen_test
async def test_create_get_patch_delete(api):
    status, wf = await api.post("/api/workflows", {"name": "First"})
    assert status == 201
    assert wf["name"] == "First" and wf["description"] == ""
    assert wf["deployed"] is False and wf["deployed_at"] is None and wf["armed_until"] is None
    assert ISO.match(wf["created_at"]) and ISO.match(wf["updated_at"])
    status, got = await api.get(f"/api/workflows/{wf['id']}")
    assert status == 200
    assert got["blocks"] == [] and got["edges"] == []
    assert {k: got[k] for k in wf} == wf

    status, patched = await api.patch(f"/api/workflows/{wf['id']}", {"description": "d"})
    assert status == 200 and patched["description"] == "d" and patched["name"] == "First"
    status, patched = await api.patch(f"/api/workflows/{wf['id']}", {"name": "Renamed"})
    assert status == 200 and patched["name"] == "Renamed"

    status, body = await api.delete(f"/api/workflows/{wf['id']}")
    assert status == 200 and body == {"ok": True}
    status, body = await api.get(f"/api/workflows/{wf['id']}")
    assert status == 404 and body == {"error": body["error"], "error_code": "WORKFLOW_NOT_FOUND"}
    status, body = await api.delete(f"/api/workflows/{wf['id']}")
    assert status == 404 and set(body) == {"error"}


@pytest.mark.gen_test
async def test_create_validation_is_plain_400(api):
    for payload in [None, {}, {"name": ""}, {"name": 5}, {"name": None}, [], "x", {"name": "a", "description": 3}]:
        status, body, _ = await api.call("POST", "/api/workflows",
                                         raw=json.dumps(payload) if payload is not None else b"")
        assert status == 400 and set(body) == {"error"}, (payload, body)
    status, body, _ = await api.call("POST", "/api/workflows", raw=b"{not json")
    assert status == 400 and set(body) == {"error"}


@pytest.mark.gen_test
async def test_patch_validation(api):
    status, wf = await api.post("/api/workflows", {"name": "x"})
    for payload in [{}, {"name": ""}, {"name": 1}, {"unknown": 1}]:
        status, body = await api.patch(f"/api/workflows/{wf['id']}", payload)
        assert status == 400 and set(body) == {"error"}, (payload, body)
    status, body, _ = await api.call("PATCH", f"/api/workflows/{wf['id']}", raw=b"")
    assert status == 400 and set(body) == {"error"}
    status, body = await api.patch("/api/workflows/missing", {"name": "y"})
    assert status == 404 and set(body) == {"error"}


@pytest.mark.gen_test
async def test_list_pagination(api):
    ids = []
    for i in range(5):
        status, wf = await api.post("/api/workflows", {"name": f"w{i}"})
        ids.append(wf["id"])
    status, body = await api.get("/api/workflows")
    assert status == 200
    assert body["total"] == 5 and body["limit"] == 50 and body["offset"] == 0
    assert [w["id"] for w in body["workflows"]] == ids[::-1]  # newest first
    assert "blocks" not in body["workflows"][0]
    status, body = await api.get("/api/workflows?limit=2&offset=1")
    assert [w["id"] for w in body["workflows"]] == ids[::-1][1:3] and body["limit"] == 2
    status, body = await api.get("/api/workflows?limit=0")
    assert status == 200 and body["workflows"] == [] and body["total"] == 5
    status, body = await api.get("/api/workflows?limit=100000")
    assert status == 200 and body["limit"] == 500
    for bad in ("limit=-1", "limit=abc", "offset=-3", "offset=1.5", "limit=1e3",
                "offset=9223372036854775808", "limit=%C2%B2", "offset=%D9%A3"):
        status, body = await api.get(f"/api/workflows?{bad}")
        assert status == 400 and set(body) == {"error"}, bad


GRAPH = {
    "blocks": [
        {"id": "start", "type": "starter", "config": {}, "position": {"x": 0, "y": 0}},
        {"id": "check", "type": "condition", "config": {"conditions": [{"id": "big", "expression": "start.n > 5"}]},
         "position": {"x": 100, "y": 0.5}},
        {"id": "out", "type": "response", "config": {"data": {"a": 1}}, "position": {"x": 300, "y": 0}},
    ],
    "edges": [
        {"source": "start", "target": "check"},
        {"source": "check", "target": "out", "source_handle": "big"},
    ],
}


@pytest.mark.gen_test
async def test_graph_saved_and_returned_exactly(api):
    status, wf = await api.post("/api/workflows", {"name": "g"})
    status, saved = await api.put(f"/api/workflows/{wf['id']}/graph", GRAPH)
    assert status == 200, saved
    assert saved["blocks"] == GRAPH["blocks"] and saved["edges"] == GRAPH["edges"]
    status, got = await api.get(f"/api/workflows/{wf['id']}")
    assert got["blocks"] == GRAPH["blocks"] and got["edges"] == GRAPH["edges"]
    # defaults for config and position
    status, saved = await api.put(f"/api/workflows/{wf['id']}/graph",
                                  {"blocks": [{"id": "s", "type": "starter"}], "edges": []})
    assert saved["blocks"] == [{"id": "s", "type": "starter", "config": {}, "position": {"x": 0, "y": 0}}]
    status, saved = await api.put(f"/api/workflows/{wf['id']}/graph", {"blocks": [], "edges": []})
    assert status == 200 and saved["blocks"] == []


async def _bad(api, wf_id, graph):
    status, body = await api.put(f"/api/workflows/{wf_id}/graph", graph)
    assert status == 400, body
    assert body["error_code"] == "VALIDATION_ERROR" and isinstance(body["error"], str)
    for d in body["details"]:
        assert "path" in d and "message" in d
    return body["details"]


@pytest.mark.gen_test
async def test_graph_validation_details(api):
    status, wf = await api.post("/api/workflows", {"name": "g"})
    wid = wf["id"]
    await api.put(f"/api/workflows/{wid}/graph", GRAPH)
    s = {"id": "s", "type": "starter"}
    r = {"id": "r", "type": "response"}

    d = await _bad(api, wid, {"blocks": [{"type": "starter"}], "edges": []})
    assert d[0]["path"] == "blocks[0].id"
    d = await _bad(api, wid, {"blocks": [{"id": "x"}], "edges": []})
    assert d[0]["path"] == "blocks[0].type" and d[0]["block_id"] == "x"
    d = await _bad(api, wid, {"blocks": [{"id": "", "type": "starter"}], "edges": []})
    assert d[0]["path"] == "blocks[0].id"
    d = await _bad(api, wid, {"blocks": [s, {"id": "x", "type": "nope"}], "edges": []})
    assert d[0]["path"] == "blocks[1].type" and d[0]["block_id"] == "x"
    d = await _bad(api, wid, {"blocks": [s, s], "edges": []})
    assert d[0]["block_id"] == "s" and "duplicate" in d[0]["message"]
    d = await _bad(api, wid, {"blocks": [s], "edges": [{"source": "s", "target": "ghost"}]})
    assert d[0]["path"] == "edges[0]" and d[0]["target"] == "ghost"
    d = await _bad(api, wid, {"blocks": [s], "edges": [{"source": "s"}]})
    assert d[0]["path"] == "edges[0].target"
    d = await _bad(api, wid, {"blocks": [s, r], "edges": [{"source": "r", "target": "r"}]})
    assert "self-loop" in d[0]["message"]
    d = await _bad(api, wid, {"blocks": [s, r], "edges": [{"source": "s", "target": "r"}] * 2})
    assert d[0]["path"] == "edges[1]" and "duplicate" in d[0]["message"]
    a, b, c = ({"id": n, "type": "response"} for n in "abc")
    d = await _bad(api, wid, {"blocks": [s, a, b, c], "edges": [
        {"source": "s", "target": "a"}, {"source": "a", "target": "b"},
        {"source": "b", "target": "c"}, {"source": "c", "target": "a"}]})
    assert "cycle" in d[0]["message"]
    d = await _bad(api, wid, {"blocks": [s, {"id": "c", "type": "code", "config": {"code": 5}}], "edges": []})
    assert d[0]["path"] == "blocks[1].config.code" and d[0]["block_id"] == "c"
    d = await _bad(api, wid, {"blocks": [s, {"id": "k", "type": "condition", "config": {}}], "edges": []})
    assert d[0]["block_id"] == "k"
    d = await _bad(api, wid, {"blocks": [{"id": "s", "type": "starter", "config": []}], "edges": []})
    assert d[0]["path"] == "blocks[0].config"
    d = await _bad(api, wid, {"blocks": [{"id": "s", "type": "starter", "position": {"x": "a"}}], "edges": []})
    assert d[0]["path"] == "blocks[0].position.x"
    d = await _bad(api, wid, {"blocks": [s, {"id": "t", "type": "sleep", "config": {"timeout": -1}}], "edges": []})
    assert d[0]["path"] == "blocks[1].config.timeout"
    await _bad(api, wid, {"blocks": [], "edges": {}})
    await _bad(api, wid, {"blocks": []})
    await _bad(api, wid, {"edges": []})
    await _bad(api, wid, {"blocks": ["x"], "edges": [3]})
    # several problems reported at once
    d = await _bad(api, wid, {"blocks": [{"id": "a"}, {"type": "starter"}], "edges": [{"source": "a", "target": "zz"}]})
    assert len(d) >= 3
    status, body, _ = await api.call("PUT", f"/api/workflows/{wid}/graph", raw=b"[1,2")
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR"
    status, body, _ = await api.call("PUT", f"/api/workflows/{wid}/graph", raw=b"")
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR"
    # the previous graph stays
    status, got = await api.get(f"/api/workflows/{wid}")
    assert got["blocks"] == GRAPH["blocks"]


@pytest.mark.gen_test
async def test_graph_unknown_workflow(api):
    status, body = await api.put("/api/workflows/missing/graph", {"blocks": [], "edges": []})
    assert status == 404 and body["error_code"] == "WORKFLOW_NOT_FOUND"


@pytest.mark.gen_test
async def test_webhook_credentials_are_server_made_and_kept(api):
    status, wf = await api.post("/api/workflows", {"name": "hooks"})
    wid = wf["id"]
    graph = {"blocks": [{"id": "hook", "type": "webhook", "config": {"webhook_id": "mine", "webhook_secret": "short"}},
                        {"id": "other", "type": "webhook"}], "edges": []}
    status, saved = await api.put(f"/api/workflows/{wid}/graph", graph)
    assert status == 200
    cfg = {b["id"]: b["config"] for b in saved["blocks"]}
    assert cfg["hook"]["webhook_id"] != "mine" and cfg["hook"]["webhook_secret"] != "short"
    for c in cfg.values():
        assert len(c["webhook_id"]) >= 22 and len(c["webhook_secret"]) >= 22
        assert re.match(r"^[A-Za-z0-9_-]+$", c["webhook_id"])
    assert cfg["hook"]["webhook_id"] != cfg["other"]["webhook_id"]
    # saved again without them, and with forged ones: they stay
    graph2 = {"blocks": [{"id": "hook", "type": "webhook", "config": {}},
                         {"id": "other", "type": "webhook", "config": {"webhook_id": "forged", "webhook_secret": "x" * 30}}],
              "edges": []}
    status, saved2 = await api.put(f"/api/workflows/{wid}/graph", graph2)
    cfg2 = {b["id"]: b["config"] for b in saved2["blocks"]}
    assert cfg2 == cfg
    status, got = await api.get(f"/api/workflows/{wid}")
    hook = next(b for b in got["blocks"] if b["id"] == "hook")
    assert hook["webhook_url"].endswith(f"/api/webhooks/{cfg['hook']['webhook_id']}")
    # another workflow can't take over the ids
    status, wf2 = await api.post("/api/workflows", {"name": "thief"})
    status, saved3 = await api.put(f"/api/workflows/{wf2['id']}/graph",
                                   {"blocks": [{"id": "hook", "type": "webhook", "config": cfg["hook"]}], "edges": []})
    assert saved3["blocks"][0]["config"]["webhook_id"] != cfg["hook"]["webhook_id"]


@pytest.mark.gen_test(timeout=60)  # a 5,000-block save takes seconds on a busy machine
async def test_oversized_bodies(api, server):
    status, wf = await api.post("/api/workflows", {"name": "big"})
    big = json.dumps({"name": "x" * (1024 * 1024 + 10)})
    status, body, _ = await api.call("POST", "/api/workflows", raw=big)
    assert status == 413 and set(body) == {"error"}
    # graphs may be larger than API bodies, up to 16 MiB, but at most 5,000 blocks
    blocks = [{"id": f"b{i}", "type": "response", "config": {"data": "y" * 200}} for i in range(5001)]
    status, body = await api.put(f"/api/workflows/{wf['id']}/graph", {"blocks": blocks, "edges": []})
    assert status == 400 and body["error_code"] == "VALIDATION_ERROR" and "5000" in body["error"]
    blocks = [{"id": "s", "type": "starter"}] + [
        {"id": f"b{i}", "type": "response", "config": {"data": "y" * 200}} for i in range(4999)]
    status, body = await api.put(f"/api/workflows/{wf['id']}/graph",
                                 {"blocks": blocks, "edges": [{"source": "s", "target": f"b{i}"} for i in range(4999)]})
    assert status == 200 and len(body["blocks"]) == 5000


@pytest.mark.gen_test
async def test_malformed_inputs_never_500(api):
    status, wf = await api.post("/api/workflows", {"name": "m"})
    wid = wf["id"]
    bodies = [b"\xff\xfe", b"{\"name\": NaN}", b"[" * 100000, b"null", b"123", b"\"s\"", b"{\"a\":"]
    for raw in bodies:
        for method, path in [("POST", "/api/workflows"), ("PATCH", f"/api/workflows/{wid}"),
                             ("PUT", f"/api/workflows/{wid}/graph"), ("POST", f"/api/workflows/{wid}/execute")]:
            status, body, resp = await api.call(method, path, raw=raw)
            assert 400 <= status < 500, (method, path, raw[:20], status, body)
            assert isinstance(body, dict) and "error" in body
            assert "Traceback" not in resp.body.decode("utf-8", "replace")
    status, body = await api.get("/api/health", key=None)
    assert status == 200
