"""X-Actorflow-Depth (CONTRACT §11): outgoing requests carry it, /execute, streams and webhooks refuse too deep."""

import asyncio

import pytest

from actors.netpolicy import cidrs
from tests.conftest import KEY
from tests.helpers import START, configure, edge
from tests.llm_fixtures import echo  # noqa: F401  (fixture)
from tests.test_webhooks import fire, hooked

DEPTH = "X-Actorflow-Depth"


async def execute_at(api, wf, depth, variables=None):
    return await api.call("POST", f"/api/workflows/{wf}/execute", {"variables": variables or {}},
                          headers={DEPTH: depth})


@pytest.mark.gen_test(timeout=30)
async def test_http_block_sends_its_runs_depth_plus_one(api, echo):
    wf = await api.workflow([START, {"id": "call", "type": "http", "config": {
        "url": echo.url + "/echo", "headers": {"x-actorflow-depth": "0"}}}],   # cannot reset it
        [edge("start", "call")])
    status, body = await api.execute(wf, {})
    assert status == 200, body
    assert echo.requests[-1]["headers"]["x-actorflow-depth"] == "1"
    status, body, _ = await execute_at(api, wf, "5")
    assert status == 200, body
    assert echo.requests[-1]["headers"]["x-actorflow-depth"] == "6"
    assert len(echo.requests) == 2


@configure(max_depth=3)
@pytest.mark.gen_test(timeout=30)
async def test_execute_refuses_too_deep_and_bad_values(api):
    wf = await api.workflow([START], [])
    status, body, _ = await execute_at(api, wf, "3")            # at the limit: runs
    assert status == 200, body
    status, body, _ = await execute_at(api, wf, "4")
    assert status == 409, body
    assert body["error_code"] == "DEPTH_EXCEEDED"
    assert "3" in body["error"]
    for bad in ("-1", "1.5", "x", "1,2", "\u0663", "9" * 12):
        status, body, _ = await execute_at(api, wf, bad.encode("utf-8").decode("latin-1"))
        assert status == 400, (bad, body)
        assert body["error_code"] == "VALIDATION_ERROR"
    status, runs = await api.get(f"/api/workflows/{wf}/executions")
    assert runs["total"] == 1                                   # only the one at the limit


@configure(max_depth=3)
@pytest.mark.gen_test(timeout=30)
async def test_stream_refuses_too_deep_before_the_stream(api):
    wf = await api.workflow([START], [])
    status, body, response = await api.call("POST", f"/api/workflows/{wf}/execute/stream", {},
                                            headers={DEPTH: "4"})
    assert status == 409, body
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["error_code"] == "DEPTH_EXCEEDED"
    status, body, response = await api.call("POST", f"/api/workflows/{wf}/execute/stream", {},
                                            headers={DEPTH: "3"})
    assert status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert b"execution_completed" in response.body


@configure(max_depth=3)
@pytest.mark.gen_test(timeout=30)
async def test_webhook_refuses_too_deep_without_using_the_arm(api):
    wf, hook, secret = await hooked(api)
    status, body, _ = await fire(api, hook, {"x": 1}, secret=secret, headers={DEPTH: "4"},
                                 query="?wait=true")
    assert status == 409, body
    assert body == {"error": body["error"]} and "depth" in body["error"].lower()
    status, body, _ = await fire(api, hook, {"x": 2}, secret=secret, headers={DEPTH: "3"},
                                 query="?wait=true")
    assert status == 200, body                                  # the arm was still there
    assert body["output"] == {"got": 2}


@configure(max_depth=3, http_allow=cidrs("127.0.0.0/8"))
@pytest.mark.gen_test(timeout=60)
async def test_workflow_calling_itself_stops_at_the_limit(api, server):
    # Two http blocks per run, each POSTing to the run's own workflow (allowed
    # here: calling this server is refused by default): without the limit this
    # multiplies for ever. With max_depth 3: 1 + 2 + 4 + 8 runs, and the
    # requests of depth 4 are refused (409), which these blocks keep as output.
    call = {"method": "POST", "fail_on_status": False,
            "url": server.base_url + "/api/workflows/{{ variables.self }}/execute",
            "headers": {"Authorization": f"Bearer {KEY}"},
            "body": {"variables": {"self": "{{ variables.self }}"}}}
    wf = await api.workflow([START, {"id": "a", "type": "http", "config": call},
                             {"id": "b", "type": "http", "config": call}],
                            [edge("start", "a"), edge("start", "b")])
    run = asyncio.ensure_future(api.execute(wf, {"self": wf}))
    while not run.done():  # the server answers others while the runs call it
        status, _ = await api.get("/api/health", key=None, timeout=1)
        assert status == 200
        await asyncio.sleep(0.05)
    status, body = run.result()
    assert status == 200, body
    level = body["output"]
    for _ in range(3):
        assert level["a"]["status"] == 200, level
        level = level["a"]["body"]["output"]
    assert level["a"]["status"] == 409
    assert level["a"]["body"]["error_code"] == "DEPTH_EXCEEDED"
    status, runs = await api.get(f"/api/workflows/{wf}/executions?limit=100")
    assert runs["total"] == 15
    assert {r["status"] for r in runs["executions"]} == {"completed"}
    status, _ = await api.get("/api/health", key=None, timeout=1)
    assert status == 200
