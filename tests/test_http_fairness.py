"""Fair sharing of outgoing HTTP (CONTRACT §11): connections per run and per workspace, over real sockets."""

import asyncio
import time

import pykka
import pytest

from actors.block import WaitingBlockActor
from tests.conftest import OTHER_KEY, Api
from tests.helpers import START, configure, edge
from tests.llm_fixtures import echo  # noqa: F401  (fixture)


async def until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never came true"
        await asyncio.sleep(0.02)


async def running_blocks(api, wf, n, timeout=30):
    """Wait until the workflow's one run has `n` http blocks running; returns the run."""
    deadline = time.monotonic() + timeout
    while True:
        status, listing = await api.get(f"/api/workflows/{wf}/executions")
        if listing["executions"]:
            [execution] = listing["executions"]
            status, logs = await api.get(f"/api/workflows/{wf}/executions/{execution['id']}/logs")
            if sum(1 for e in logs["logs"] if e["block_type"] == "http" and e["status"] == "running") == n:
                return execution
        assert time.monotonic() < deadline, "the blocks never started"
        await asyncio.sleep(0.05)


def fan_out(url, n, timeout=60):
    blocks = [START] + [{"id": f"g{i}", "type": "http", "config": {"url": url, "timeout": timeout}}
                        for i in range(n)]
    return blocks, [edge("start", b["id"]) for b in blocks[1:]]


async def another_workspace_calls(server, echo):
    """Workspace B runs a one-http-block workflow; it must complete (within its 20 s timeout)."""
    other = Api(server.base_url, OTHER_KEY)
    try:
        wf_b = await other.workflow([START, {"id": "b", "type": "http", "config": {
            "url": echo.url + "/echo/b", "timeout": 20}}], [edge("start", "b")])
        status, body = await other.execute(wf_b, {})
        assert status == 200, body
        assert body["output"]["b"]["body"]["path"] == "/echo/b"
    finally:
        other.client.close()


@configure(http_per_workspace=3, http_per_run=2)
@pytest.mark.gen_test(timeout=90)
async def test_a_busy_workspace_cannot_starve_another(api, server, echo):
    # Workspace A: two runs of five blocks each, all stuck on a slow endpoint.
    wf_a = await api.workflow(*fan_out(echo.url + "/gate/a?tag={{ variables.tag }}", 5))
    run1 = asyncio.ensure_future(api.execute(wf_a, {"tag": "r1"}))
    await until(lambda: len(echo.held("a")) == 2)                  # the run's share
    run2 = asyncio.ensure_future(api.execute(wf_a, {"tag": "r2"}))
    await until(lambda: len(echo.held("a")) == 3)                  # the workspace's share
    assert sorted(echo.held("a")) == ["r1", "r1", "r2"]

    # Workspace B's trivial block goes through while A's wait.
    await another_workspace_calls(server, echo)

    # A's next request waits its turn, and the wait counts toward its timeout.
    wf_late = await api.workflow([START, {"id": "late", "type": "http", "config": {
        "url": echo.url + "/echo/late", "timeout": 0.5}}], [edge("start", "late")])
    status, body = await api.execute(wf_late, {})
    assert status == 500, body
    assert "timed out waiting for a connection" in body["error"], body
    assert "workspace's connections are in use" in body["error"], body
    assert "/echo/late" not in [r["path"] for r in echo.requests]

    echo.open_gate("a")
    for run in (run1, run2):
        status, body = await run
        assert status == 200, body
        assert sorted(body["output"]) == [f"g{i}" for i in range(5)]
    assert echo.most_held["a"] == 3


@configure(http_per_workspace=1, http_per_run=1)
@pytest.mark.gen_test(timeout=60)
async def test_cancel_ends_a_wait_for_a_connection(api, echo):
    # Run X holds the workspace's only connection; run Y's three blocks wait for it.
    wf_x = await api.workflow(*fan_out(echo.url + "/gate/x", 1))
    run_x = asyncio.ensure_future(api.execute(wf_x, {}))
    await until(lambda: len(echo.held("x")) == 1)
    wf_y = await api.workflow(*fan_out(echo.url + "/echo/y", 3))
    run_y = asyncio.ensure_future(api.execute(wf_y, {}))
    execution = await running_blocks(api, wf_y, 3)
    status, body = await api.post(f"/api/workflows/{wf_y}/executions/{execution['id']}/cancel")
    assert status == 200, body
    assert body["status"] == "cancelled"        # the run ended: no block kept waiting
    status, body = await run_y
    assert status == 500 and "cancelled" in body["error"], body
    status, logs = await api.get(f"/api/workflows/{wf_y}/executions/{execution['id']}/logs")
    assert {entry["block_id"]: entry["status"] for entry in logs["logs"] if entry["block_id"] != "start"} == {
        "g0": "cancelled", "g1": "cancelled", "g2": "cancelled"}
    # Y's block actors are gone (nothing still waiting for the connection X holds)...
    await until(lambda: len(pykka.ActorRegistry.get_by_class(WaitingBlockActor)) == 1, timeout=10)
    assert [r["path"] for r in echo.requests] == ["/gate/x"]        # ...and never connected
    assert len(echo.held("x")) == 1                                 # and X still holds its own
    echo.open_gate("x")
    status, body = await run_x
    assert status == 200, body
