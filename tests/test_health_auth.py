import pytest

from tests.conftest import KEY, OTHER_KEY


@pytest.mark.gen_test
async def test_health_needs_no_key(api):
    status, body = await api.get("/api/health", key=None)
    assert status == 200
    assert body["ok"] is True and isinstance(body["version"], str)


@pytest.mark.gen_test
async def test_missing_and_bad_keys_are_401_plain(api):
    for path in ("/api/workflows", "/api/workflows/nope", "/api/workflows/nope/executions"):
        status, body = await api.get(path, key=None)
        assert status == 401 and set(body) == {"error"}, (path, body)
        status, body = await api.get(path, key="wrong")
        assert status == 401 and set(body) == {"error"}
    status, body = await api.put("/api/workflows/nope/graph", {"blocks": [], "edges": []}, key=None)
    assert status == 401 and set(body) == {"error"}
    status, body = await api.post("/api/workflows/nope/execute", {}, key=None)
    assert status == 401 and set(body) == {"error"}


@pytest.mark.gen_test
async def test_x_api_key_header_works(api):
    status, body = await api.get("/api/workflows", key=None, headers={"X-API-Key": KEY})
    assert status == 200 and body["total"] == 0


@pytest.mark.gen_test
async def test_other_workspace_sees_nothing(api):
    wf_id = await api.workflow([{"id": "s", "type": "starter"}])
    status, body = await api.get("/api/workflows", key=OTHER_KEY)
    assert status == 200 and body["workflows"] == [] and body["total"] == 0
    status, body = await api.get(f"/api/workflows/{wf_id}", key=OTHER_KEY)
    assert status == 404 and body["error_code"] == "WORKFLOW_NOT_FOUND"
    for method, path, payload in [
        ("PATCH", f"/api/workflows/{wf_id}", {"name": "x"}),
        ("DELETE", f"/api/workflows/{wf_id}", None),
        ("POST", f"/api/workflows/{wf_id}/deploy", None),
        ("POST", f"/api/workflows/{wf_id}/arm", None),
        ("GET", f"/api/workflows/{wf_id}/executions", None),
    ]:
        status, body, _ = await api.call(method, path, payload, key=OTHER_KEY)
        assert status == 404 and set(body) == {"error"}, (method, path, body)
    status, body = await api.post(f"/api/workflows/{wf_id}/execute", {}, key=OTHER_KEY)
    assert status == 404 and body["error_code"] == "WORKFLOW_NOT_FOUND"
    status, body = await api.put(f"/api/workflows/{wf_id}/graph", {"blocks": [], "edges": []},
                                 key=OTHER_KEY)
    assert status == 404 and body["error_code"] == "WORKFLOW_NOT_FOUND"
    # still there for its owner
    status, body = await api.get(f"/api/workflows/{wf_id}")
    assert status == 200


@pytest.mark.gen_test
async def test_unknown_route_is_json_404(api):
    status, body = await api.get("/nope", key=None)
    assert status == 404 and "error" in body
    status, body = await api.get("/api/workflows/a/b/c/d")
    assert status == 404 and "error" in body


@pytest.mark.gen_test
async def test_wrong_method_is_json_405(api):
    status, body, _ = await api.call("DELETE", "/api/workflows")
    assert status == 405 and "error" in body


@pytest.mark.gen_test
async def test_a_stalled_half_request_does_not_block_others(api, server):
    from tornado.tcpclient import TCPClient
    stream = await TCPClient().connect("127.0.0.1", server.port)
    await stream.write(b"POST /api/workflows HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                       b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n{\"name\": ")
    status, body = await api.get("/api/workflows")
    assert status == 200
    status, body = await api.get("/api/health", key=None)
    assert status == 200
    stream.close()


@pytest.mark.gen_test
async def test_a_revoked_key_is_refused_once_its_cached_lookup_expires(api, server):
    from models import workspace as ws
    from server.auth import AuthCache
    now = [0.0]
    assert server.runtime.auth_cache.ttl <= 2.0  # the bound every process keeps (docs/api.md)
    server.runtime.auth_cache = AuthCache(ttl=2.0, clock=lambda: now[0])
    row, key = ws.create_key("default", "to revoke")
    assert (await api.get("/api/workflows", key=key))[0] == 200
    ws.revoke_key(row.id)
    now[0] += 1.9
    assert (await api.get("/api/workflows", key=key))[0] == 200  # still within its cached lookup
    now[0] += 0.2
    status, body = await api.get("/api/workflows", key=key)
    assert status == 401 and set(body) == {"error"}
    assert (await api.get("/api/workflows", key="af_never_seen"))[0] == 401
    ws.create_key("default", "late", key="af_never_seen")
    assert (await api.get("/api/workflows", key="af_never_seen"))[0] == 401  # a miss is cached too
    now[0] += 2.1
    assert (await api.get("/api/workflows", key="af_never_seen"))[0] == 200
